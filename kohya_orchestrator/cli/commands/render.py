"""`render JOB.toml --out DIR`: write the files sd-scripts reads, without running anything."""

from __future__ import annotations

import argparse

from .._common import RAW, add_set_option


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb."""
    parser = subparsers.add_parser(
        "render",
        help="write config.toml, dataset.toml and sample_prompts.txt for sd-scripts",
        description="Validate a job and write the files sd-scripts reads: config.toml "
        "(--config_file), dataset.toml (--dataset_config) and sample_prompts.txt when the job has "
        "prompts. Existing files are never overwritten unless --force is given; nothing is "
        "written when the job has a problem.",
        epilog="examples:\n"
        "  python -m kohya_orchestrator render docs/examples/oilpaint.toml --out rendered/\n"
        "  python -m kohya_orchestrator render docs/examples/oilpaint.toml --out r/ "
        "--set training.max_train_epochs=4\n\n"
        "then: accelerate launch train_network.py --config_file rendered/config.toml",
        formatter_class=RAW,
    )
    parser.add_argument("job", metavar="JOB.toml", help="the job file")
    parser.add_argument("--out", "-o", required=True, metavar="DIR", help="folder to write into")
    parser.add_argument("--force", action="store_true", help="replace files already in DIR")
    parser.add_argument("--no-paths", action="store_true", help="skip the checks that paths exist")
    parser.add_argument(
        "--sd-scripts",
        metavar="PATH",
        help="check the job against this install's own arguments first (default: "
        "$KOHYA_SD_SCRIPTS when set)",
    )
    add_set_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Render and write."""
    from dataclasses import replace
    from pathlib import Path

    from ...errors import ConfigError, Problem
    from ...jobs.arguments import check_job_arguments
    from ...jobs.checks import check_outputs, check_paths
    from ...render.files import write_rendered
    from ...ui.messages import ok, print_problems
    from .._common import (
        install_arguments,
        load_job_from_args,
        print_warnings,
        require_no_problems,
    )

    _, arguments = install_arguments(args.sd_scripts, search=False)
    job = load_job_from_args(args, arguments)
    problems = [] if arguments is None else check_job_arguments(job, arguments)
    if not args.no_paths:
        problems += check_paths(job)
    require_no_problems(problems, args.job)
    if not args.no_paths:  # rendering writes no model, so a clash with earlier outputs is a warning
        clashes = [replace(p, severity="warning") for p in check_outputs(job)]
        if clashes:
            print_problems(clashes)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError([Problem("--out", f"not a folder: {out}", "give a folder path")])
    written = write_rendered(job, out, force=args.force)
    print_warnings(job)
    for path in written:
        ok(f"wrote {path}")
    return 0
