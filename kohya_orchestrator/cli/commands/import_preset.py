"""`import-preset FILE.json [--out PRESET.toml]`: a kohya_ss GUI preset or saved config as a preset."""

from __future__ import annotations

import argparse

from .._common import RAW


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb."""
    parser = subparsers.add_parser(
        "import-preset",
        help="convert a kohya_ss GUI preset or saved config (.json) into a preset file",
        description="Read a kohya_ss GUI preset (presets/lora/*.json) or a configuration saved "
        "from the GUI, map its form fields (LoRA_type, optimizer, max_resolution, lr_warmup "
        "in percent, epoch, ...) onto the job format, and write a preset file you can run with "
        "'preset FILE.toml --data DIR'. Keys it cannot map are reported, and the GUI's known "
        "traps are fixed rather than copied (zeros it drops, decompose_both=False read as true "
        "by LyCORIS, use_cp overriding use_tucker). The result is validated before it is "
        "written (over a placeholder model and data when the file names none).",
        epilog="examples:\n"
        "  python -m kohya_orchestrator import-preset my_loha.json --out my_loha.toml\n"
        "  python -m kohya_orchestrator import-preset saved_config.json   # print it\n\n"
        "next: python -m kohya_orchestrator preset my_loha.toml --data img --dry-run",
        formatter_class=RAW,
    )
    parser.add_argument("file", metavar="FILE.json", help="the GUI preset or saved config")
    parser.add_argument("--out", "-o", metavar="PRESET.toml", help="write here (default: print)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    parser.add_argument(
        "--sd-scripts",
        metavar="PATH",
        help="keep the options this install has (its own parsers) instead of the built-in list "
        "(default: $KOHYA_SD_SCRIPTS when set)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import, report, and print or write."""
    import sys
    from pathlib import Path

    from ...jobs.import_gui import import_gui_preset
    from ...jobs.import_report import build_import_report
    from ...jobs.output_file import write_new_file
    from ...ui.messages import console, hint, ok
    from .._common import install_arguments

    _, arguments = install_arguments(args.sd_scripts, search=False)
    result = import_gui_preset(Path(args.file), arguments)
    out = Path(args.out) if args.out else None
    text = result.to_toml(str(out) if out else None)
    report = build_import_report(result.data, result.problems, result.job)
    err = console(sys.stderr)
    for line in report.lines(args.file, args.out, next_steps=False):
        err.print(line, markup=False, highlight=False)
    if out is None:
        sys.stdout.write(text)
        return 0
    write_new_file(out, text, force=args.force)
    ok(f"wrote {out}")
    if result.complete:
        hint(f"next: python -m kohya_orchestrator train {out}   (or: plan {out})")
    else:
        hint(f"next: python -m kohya_orchestrator preset {out} --data DIR --model PATH --dry-run")
    return 0
