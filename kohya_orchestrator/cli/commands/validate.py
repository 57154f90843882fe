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
        "paths it names exist. Prints every problem at once; exit 2 when there is one.",
        epilog="examples:\n"
        "  python -m kohya_orchestrator validate docs/examples/oilpaint.toml\n"
        "  python -m kohya_orchestrator validate job.toml --set network.algo=lokr\n\n"
        "next: python -m kohya_orchestrator render job.toml --out rendered/",
        formatter_class=RAW,
    )
    parser.add_argument("job", metavar="JOB.toml", help="the job file")
    add_set_option(parser)
    parser.add_argument("--no-paths", action="store_true", help="skip the checks that paths exist")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate and report."""
    from ...checks import check_paths
    from ...ui.messages import ok
    from .._common import load_job_from_args, print_warnings, require_no_problems

    job = load_job_from_args(args)
    if not args.no_paths:
        require_no_problems(check_paths(job), args.job)
    print_warnings(job)
    ok(f"{args.job}: job is valid ({job.network.algo}, {job.optimizer.type}, {job.model.family})")
    return 0
