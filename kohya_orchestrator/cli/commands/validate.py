"""`validate JOB.toml`: check a job file and the paths it names; print every problem at once."""

from __future__ import annotations

import argparse

from .._common import RAW, add_set_option


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb."""
    parser = subparsers.add_parser(
        "validate",
        help="check a job file (types, rules, paths)",
        description="Check a job file: unknown keys, wrong types, cross-field rules, and that the "
        "paths it names exist. With --sd-scripts (or $KOHYA_SD_SCRIPTS) also check the network "
        "against the LyCORIS installed there (docs/networks.md). Prints every problem at once; "
        "exit 2 when there is one.",
        epilog="examples:\n"
        "  python -m kohya_orchestrator validate docs/examples/oilpaint.toml\n"
        "  python -m kohya_orchestrator validate docs/examples/oilpaint.toml "
        "--set network.algo=lokr\n"
        "  python -m kohya_orchestrator validate docs/examples/oilpaint.toml "
        "--sd-scripts ~/kohya_ss\n\n"
        "next: python -m kohya_orchestrator render docs/examples/oilpaint.toml --out rendered/",
        formatter_class=RAW,
    )
    parser.add_argument("job", metavar="JOB.toml", help="the job file")
    add_set_option(parser)
    parser.add_argument("--no-paths", action="store_true", help="skip the checks that paths exist")
    parser.add_argument(
        "--sd-scripts",
        metavar="PATH",
        help="also check the job against this install: its own arguments (read once from its "
        "parsers, then cached) and its lycoris-lora (default: $KOHYA_SD_SCRIPTS when set; no "
        "search, so validate stays fast)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate and report."""
    from ...datasets.plan import plan_job
    from ...environment.lycoris import check_network_compat, network_guidance
    from ...environment.probe import probe_package_versions
    from ...errors import Problem
    from ...jobs.arguments import check_job_arguments
    from ...jobs.checks import check_outputs, check_paths
    from ...models import job_warnings
    from ...ui.messages import ok, print_problems
    from .._common import install_arguments, load_job_from_args, require_no_problems

    # only when pointed at an install: validate stays fast
    install, arguments = install_arguments(args.sd_scripts, search=False)
    job = load_job_from_args(args, arguments)
    found = [] if args.no_paths else check_paths(job, placeholders="warning") + check_outputs(job)
    to_fill = [p for p in found if p.code == "placeholder"]
    if not args.no_paths and not to_fill and not any(p.severity == "error" for p in found):
        # what `plan` finds in the image folders: none to train on, unreadable files
        found += plan_job(job, source=args.job).warnings
    problems: list[Problem] = [p for p in found if p.severity == "error"]
    warnings = [p for p in found if p.severity != "error"]
    warnings += job_warnings(job) + network_guidance(job)
    if arguments is not None:
        problems += check_job_arguments(job, arguments)
    if install is not None:
        versions = probe_package_versions(install, ("lycoris-lora",))
        if versions is not None:
            compat = check_network_compat(job, versions["lycoris-lora"], python=install.python)
            problems += [p for p in compat if p.severity == "error"]
            warnings += [p for p in compat if p.severity != "error"]
    require_no_problems(problems, args.job)
    if warnings:
        print_problems(warnings)
    said = (
        f"{args.job}: job is valid ({job.network.algo}, {job.optimizer.type}, {job.model.family})"
    )
    if to_fill:
        n = len(to_fill)
        said += f"; {n} placeholder{'s' if n != 1 else ''} to fill in before it trains (above)"
    ok(said)
    return 0
