"""`import-config CONFIG.toml [--dataset DATASET.toml]`: turn kohya TOML files into a job file."""

from __future__ import annotations

import argparse

from .._common import RAW


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb."""
    from ...models.family import FAMILIES  # verb modules import only argparse at import time

    parser = subparsers.add_parser(
        "import-config",
        help="convert an existing sd-scripts config.toml (+ dataset.toml) into a job file",
        description="Read a training TOML written for sd-scripts' --config_file (flat or "
        "sectioned, e.g. by the kohya_ss GUI) and its --dataset_config, and write the equivalent "
        "job file. Keys sd-scripts would silently ignore are reported; keys it knows but the job "
        "format does not model are kept under [extra_args].",
        epilog="examples:\n"
        "  python -m kohya_orchestrator import-config rendered/config.toml "
        "--dataset rendered/dataset.toml --out job.toml   # what render wrote\n"
        "  python -m kohya_orchestrator import-config config_lora.toml --family sdxl"
        "   # a kohya_ss GUI config: print the job\n\n"
        "next: python -m kohya_orchestrator validate job.toml",
        formatter_class=RAW,
    )
    parser.add_argument("config", metavar="CONFIG.toml", help="the sd-scripts --config_file")
    parser.add_argument("--dataset", metavar="DATASET.toml", help="the --dataset_config file")
    parser.add_argument("--family", choices=list(FAMILIES), help="model family")
    parser.add_argument("--out", "-o", metavar="JOB.toml", help="write here (default: print)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    parser.add_argument(
        "--sd-scripts",
        metavar="PATH",
        help="keep the arguments this install has (its own parsers) instead of the built-in list "
        "(default: $KOHYA_SD_SCRIPTS when set)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import and print or write."""
    import sys
    from pathlib import Path

    from ...jobs.import_toml import import_kohya_config
    from ...jobs.loading import dump_job_toml
    from ...jobs.output_file import write_new_file
    from ...ui.messages import ok, print_problems
    from .._common import install_arguments

    _, arguments = install_arguments(args.sd_scripts, search=False)
    result = import_kohya_config(
        Path(args.config),
        Path(args.dataset) if args.dataset else None,
        family=args.family,
        arguments=arguments,
    )
    text = dump_job_toml(result.job, header=[f"Imported from {args.config} by kohya_orchestrator."])
    if result.problems:
        print_problems(result.problems)
    if args.out:
        out = write_new_file(Path(args.out), text, force=args.force)
        ok(f"wrote {out}")
    else:
        sys.stdout.write(text)
    return 0
