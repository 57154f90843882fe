"""`import-config CONFIG.toml [--dataset DATASET.toml]`: turn kohya TOML files into a job file."""

from __future__ import annotations

import argparse

from .._common import RAW, add_set_option


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
        "   # a kohya_ss GUI config: print the job\n"
        "  python -m kohya_orchestrator import-config training_config.toml --data img "
        "--model ~/models/v1-5.safetensors --output out --out job.toml"
        "   # a config made on another machine\n\n"
        "next: python -m kohya_orchestrator validate job.toml",
        formatter_class=RAW,
    )
    parser.add_argument(
        "config",
        metavar="CONFIG",
        help="the sd-scripts --config_file (flat or sectioned; a Colab notebook's "
        "training_config.toml), a LoRA_Easy_Training_Scripts TOML, or a kohya_ss GUI saved "
        "config (.json or .toml)",
    )
    parser.add_argument("--dataset", metavar="DATASET.toml", help="the --dataset_config file")
    parser.add_argument("--family", choices=list(FAMILIES), help="model family")
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="this machine's image folder: the config's repeat folders (20_name/ ...) are "
        "looked up in it (default: paths not here become placeholders)",
    )
    parser.add_argument("--model", metavar="PATH", help="this machine's base model")
    parser.add_argument("--output", metavar="DIR", help="this machine's output folder")
    add_set_option(parser)
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
    """Import, report, and print or write."""
    import sys
    from pathlib import Path

    from ...jobs.import_any import import_config
    from ...jobs.import_paths import LocalPaths
    from ...jobs.import_report import build_import_report
    from ...jobs.layers import parse_set_overrides
    from ...jobs.loading import dump_job_toml
    from ...jobs.output_file import write_new_file
    from ...ui.messages import console, ok
    from .._common import install_arguments

    _, arguments = install_arguments(args.sd_scripts, search=False)
    local = LocalPaths(
        data=Path(args.data).expanduser().absolute() if args.data else None,
        model=_model(args.model),
        output=Path(args.output).expanduser().absolute() if args.output else None,
    )
    result = import_config(
        Path(args.config),
        Path(args.dataset) if args.dataset else None,
        family=args.family,
        arguments=arguments,
        local=local,
        overrides=parse_set_overrides(args.overrides),
    )
    header = [f"Imported from {args.config} ({result.format}) by kohya_orchestrator."]
    text = dump_job_toml(result.job, header=header)
    report = build_import_report(result.data, result.problems, result.job)
    err = console(sys.stderr)
    for line in report.lines(args.config, args.out):
        err.print(line, markup=False, highlight=False)
    if args.out:
        out = write_new_file(Path(args.out), text, force=args.force)
        ok(f"wrote {out}")
    else:
        sys.stdout.write(text)
    return 0


def _model(value: str | None) -> str | None:
    """``--model``: a path here is made absolute (the job file may live elsewhere); anything
    else (a Hugging Face id) is kept as written."""
    from pathlib import Path

    from ...models.model import looks_like_hub_id

    if value is None:
        return None
    path = Path(value).expanduser()
    if path.exists() or not looks_like_hub_id(value):
        return str(path.absolute())
    return value
