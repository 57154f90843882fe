"""`runs rerun RUN`: train a run's job (its job.json) again, as ``train runs/<id>`` does.

The new run directory goes beside the old one. The old run's outputs exist, so the usual
overwrite check refuses until the rerun gets a new name: ``--set training.output_name=...``.
"""

from __future__ import annotations

import argparse

RERUN_EXAMPLES = (
    "  python -m kohya_orchestrator runs rerun latest --set training.output_name=oilpaint_v2\n"
    "  python -m kohya_orchestrator runs rerun runs/20261124-221500-oilpaint --smoke\n"
)


def add_rerun_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``rerun`` options of ``runs`` (the rest are ``train``'s: run ``train RUN_DIR``)."""
    group = parser.add_argument_group("rerun (train a run's job again)")
    group.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="rerun: override one job key, e.g. --set training.output_name=v2 (repeatable)",
    )
    group.add_argument("--sd-scripts", metavar="PATH", help="rerun: kohya_ss or sd-scripts folder")
    group.add_argument("--smoke", action="store_true", help="rerun: a smoke run first (train)")
    group.add_argument(
        "--then-train", action="store_true", help="rerun: with --smoke, then the full job"
    )


def rerun(args: argparse.Namespace, run_dir: object) -> int:
    """``train <run_dir>`` with the ``--set``/``--sd-scripts``/``--smoke`` options given to runs."""
    from ...launch.rundir import RunDir
    from . import train

    assert isinstance(run_dir, RunDir)
    parser = argparse.ArgumentParser(prog="runs rerun", allow_abbrev=False)
    train.add_parser(parser.add_subparsers())
    argv = ["train", str(run_dir.path), "--runs", str(run_dir.path.parent)]
    argv += [f"--set={o}" for o in args.overrides]
    if args.sd_scripts:
        argv += ["--sd-scripts", args.sd_scripts]
    argv += ["--smoke"] * args.smoke + ["--then-train"] * args.then_train
    result: int = train.run(parser.parse_args(argv))
    return result
