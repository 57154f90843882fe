"""`plan JOB.toml | --train-dir DIR ...`: the exact buckets, batches, epochs and steps of a run."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ._dataset_shared import parse_resolution, print_findings

if TYPE_CHECKING:
    from ...datasets.plan_models import StepPlan


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb."""
    parser = subparsers.add_parser(
        "plan",
        help="exact steps, epochs and buckets sd-scripts will run",
        description="Compute what sd-scripts will compute for a job or a kohya folder tree: "
        "aspect-ratio buckets (from image headers), batches per epoch, reg balancing, "
        "gradient accumulation, processes, epochs and total steps. Shows the seed formula "
        "steps = (image_nums * repeat) * epochs / batch_size with your numbers, and why "
        "sd-scripts' real count differs. Exit 1 when sd-scripts would fail on the data.",
        epilog="examples:\n"
        "  python -m kohya_orchestrator plan docs/examples/oilpaint.toml\n"
        "  python -m kohya_orchestrator plan docs/examples/oilpaint.toml "
        "--set dataset.batch_size=4 --json\n"
        "  python -m kohya_orchestrator plan --train-dir docs/examples/img "
        "--resolution 512 --batch-size 2 --epochs 10\n"
        "  python -m kohya_orchestrator plan --train-dir data/train --reg-dir data/reg "
        "--epochs 10   # with regularisation images\n\n"
        "next: python -m kohya_orchestrator dataset inspect docs/examples/img"
        "   # to fix what the plan warns about",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("job", nargs="?", metavar="JOB.toml", help="the job file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one job key, e.g. --set training.max_train_epochs=8 (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--num-processes", type=int, default=1, metavar="N", help="processes (GPUs); default 1"
    )
    tree = parser.add_argument_group("without a job file (a kohya folder tree)")
    tree.add_argument("--train-dir", metavar="DIR", help="parent of <repeats>_<name> folders")
    tree.add_argument("--reg-dir", metavar="DIR", help="the same for regularisation images")
    tree.add_argument("--resolution", metavar="W[,H]", help="training resolution (default 512)")
    tree.add_argument("--batch-size", type=int, metavar="N", help="images per batch (default 1)")
    tree.add_argument("--epochs", type=int, metavar="N", help="max_train_epochs")
    tree.add_argument(
        "--max-train-steps", type=int, metavar="N", help="steps when --epochs is not given"
    )
    tree.add_argument(
        "--bucket",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="aspect-ratio bucketing (default: on, as in our jobs)",
    )
    tree.add_argument("--min-bucket-reso", type=int, metavar="N", help="default 256")
    tree.add_argument("--max-bucket-reso", type=int, metavar="N", help="default 1024")
    tree.add_argument("--bucket-reso-steps", type=int, metavar="N", help="default 64")
    tree.add_argument(
        "--bucket-no-upscale", action="store_true", default=None, help="never upscale images"
    )
    tree.add_argument("--grad-accum", type=int, metavar="N", help="gradient accumulation steps")
    tree.add_argument("--validation-split", type=float, metavar="F", help="e.g. 0.1")
    tree.add_argument("--validation-seed", type=int, metavar="N", help="seed of the split")
    tree.add_argument("--seed", type=int, metavar="N", help="training seed")
    parser.set_defaults(func=run)


_TREE_OPTIONS = (
    "reg_dir",
    "resolution",
    "batch_size",
    "epochs",
    "max_train_steps",
    "bucket",
    "min_bucket_reso",
    "max_bucket_reso",
    "bucket_reso_steps",
    "bucket_no_upscale",
    "grad_accum",
    "validation_split",
    "validation_seed",
    "seed",
)


def _check_positive(args: argparse.Namespace) -> None:
    from ...errors import ConfigError, Problem

    problems = []
    for key in ("batch_size", "epochs", "max_train_steps", "grad_accum", "num_processes"):
        value = getattr(args, key)
        if value is not None and value < 1:
            flag = "--" + key.replace("_", "-")
            problems.append(Problem(flag, f"must be 1 or more (got {value})", None))
    split = args.validation_split
    if split is not None and not 0.0 <= split < 1.0:
        problems.append(Problem("--validation-split", "must be in [0, 1)", "e.g. 0.1"))
    if problems:
        raise ConfigError(problems, source="plan")


def _plan_from_args(args: argparse.Namespace) -> StepPlan:
    from pathlib import Path

    from ...datasets.plan import plan_dataset, plan_job
    from ...errors import ConfigError, Problem

    _check_positive(args)
    if args.job and args.train_dir:
        raise ConfigError(
            [Problem("--train-dir", "give a job file or --train-dir, not both", None)],
            source="plan",
        )
    if args.job:
        given = [k for k in _TREE_OPTIONS if getattr(args, k) is not None]
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise ConfigError(
                [Problem(flags, "only for --train-dir", "with a job, use --set KEY=VALUE")],
                source="plan",
            )
        from ...jobs.loading import load_job

        job = load_job(Path(args.job), overrides=args.overrides)
        return plan_job(job, num_processes=args.num_processes, source=args.job)
    if not args.train_dir:
        raise ConfigError(
            [Problem("plan", "give a job file or --train-dir DIR", "see --help for examples")],
            source="plan",
        )
    options: dict[str, Any] = {
        "resolution": parse_resolution(args.resolution),
        "enable_bucket": True if args.bucket is None else args.bucket,
        "bucket_no_upscale": bool(args.bucket_no_upscale),
    }
    renames = {
        "batch_size": "batch_size",
        "epochs": "max_train_epochs",
        "max_train_steps": "max_train_steps",
        "min_bucket_reso": "min_bucket_reso",
        "max_bucket_reso": "max_bucket_reso",
        "bucket_reso_steps": "bucket_reso_steps",
        "grad_accum": "gradient_accumulation_steps",
        "validation_split": "validation_split",
        "validation_seed": "validation_seed",
        "seed": "seed",
    }
    for flag, key in renames.items():
        value = getattr(args, flag)
        if value is not None:
            options[key] = value
    return plan_dataset(args.train_dir, args.reg_dir, num_processes=args.num_processes, **options)


def run(args: argparse.Namespace) -> int:
    """Plan and print."""
    from ...datasets.plan_text import render_plan_text
    from ...ui.messages import console

    plan = _plan_from_args(args)
    if args.json:
        print(plan.model_dump_json(indent=2))
    else:
        console().print(render_plan_text(plan), markup=False)
        print_findings(plan.warnings, root=plan.source)
    return 1 if plan.errors else 0
