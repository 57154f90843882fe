"""``install``: build a kohya-ss sd-scripts install the product finds and ``doctor`` passes."""

from __future__ import annotations

# Only argparse and sys at import time (cli/main.py: `--help` must start fast).
import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kohya_orchestrator.installer import StepReport

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
From nothing to a trainer: check out kohya-ss sd-scripts at the commit this version of the
product is tested against, create a venv with the torch build that fits this machine (the CUDA
build the NVIDIA driver supports, from nvidia-smi; the CPU build without one), sd-scripts' own
requirements, lycoris-lora and the tagger's ONNX runtime. DIR gets sd-scripts/, venv/ and
install.log; the install is then registered in ~/.config/kohya_orchestrator/config.toml (unless
that already names one), so every verb finds it.

Run it again at any time: finished steps are skipped, an interrupted install resumes, and an
existing folder that install did not make is never touched.
"""

EPILOG = """\
examples:
  python -m kohya_orchestrator install
  python -m kohya_orchestrator install ~/kohya-sd-scripts --torch cu124
  python -m kohya_orchestrator install ./lab --from ~/src/sd-scripts --torch cpu --no-register

next step: python -m kohya_orchestrator doctor
"""


def add_parser(subparsers: Any) -> None:
    """Register the ``install`` verb.

    Args:
        subparsers: What ``ArgumentParser.add_subparsers()`` returned.
    """
    from kohya_orchestrator.installer.plan import BUILDS, DEFAULT_SOURCE, PINNED_COMMIT

    parser = subparsers.add_parser(
        "install",
        help="create a kohya-ss sd-scripts install (checkout, venv, torch, requirements)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "dir",
        nargs="?",
        default=None,
        metavar="DIR",
        help="where to install (new or empty folder; default: ~/kohya-sd-scripts)",
    )
    parser.add_argument(
        "--from",
        dest="source",
        default=DEFAULT_SOURCE,
        metavar="GIT",
        help=f"sd-scripts git URL or local git directory (default: {DEFAULT_SOURCE})",
    )
    parser.add_argument(
        "--ref",
        default=PINNED_COMMIT,
        metavar="COMMIT",
        help=f"commit, tag or branch to check out (default: the tested {PINNED_COMMIT[:8]})",
    )
    parser.add_argument(
        "--torch",
        dest="torch_build",
        default="auto",
        choices=BUILDS,
        help="torch build: auto (from nvidia-smi), cpu, or a CUDA build (default: auto)",
    )
    parser.add_argument(
        "--torch-packages",
        default=None,
        metavar="SPECS",
        help="replace the torch packages, e.g. 'torch==2.7.1 torchvision==0.22.1'",
    )
    parser.add_argument(
        "--torch-index",
        default=None,
        metavar="URL",
        help="where torch comes from instead of download.pytorch.org/whl/<build>; "
        "'pypi' means pip's own index",
    )
    parser.add_argument(
        "--python",
        default=None,
        metavar="PATH",
        help="interpreter that creates the venv (default: this one if 3.10-3.12, else the "
        "first python3.10/3.11/3.12 on PATH)",
    )
    parser.add_argument(
        "--pip-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for every pip install, e.g. --pip-arg=--no-index (repeatable)",
    )
    parser.add_argument(
        "--no-register",
        action="store_true",
        help="do not write the install into ~/.config/kohya_orchestrator/config.toml",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Install and print progress.

    Args:
        args: Parsed arguments.

    Returns:
        0 when the install is ready.

    Raises:
        SetupError: What failed, why and how to fix it (the CLI prints it; exit 2).
    """
    from pathlib import Path

    from kohya_orchestrator.environment.discovery import default_config_path
    from kohya_orchestrator.installer import InstallOptions, run_install
    from kohya_orchestrator.ui.messages import console, hint, ok

    out = console(sys.stdout)
    target = Path(args.dir).expanduser() if args.dir else Path.home() / "kohya-sd-scripts"
    options = InstallOptions(
        target=target,
        source=args.source,
        ref=args.ref,
        torch_build=args.torch_build,
        torch_packages=tuple((args.torch_packages or "").split()),
        torch_index=args.torch_index,
        python=None if args.python is None else Path(args.python).expanduser(),
        pip_args=tuple(args.pip_arg),
        register=not args.no_register,
    )

    def show(r: StepReport) -> None:
        from rich.markup import escape

        text = escape(r.detail)
        if r.status == "start":
            out.print(f"[bold][{r.index}/{r.total}] {r.step}[/bold]: {text}")
        elif r.status == "progress":
            out.print(f"      [dim]{text}[/dim]")
        elif r.status == "note":
            out.print(f"      [yellow]![/yellow] {text}")
        elif r.status == "skipped":
            out.print(f"      [green]✓[/green] {text} [dim](skipped)[/dim]")
        else:
            out.print(f"      [green]✓[/green] {text}")

    result = run_install(
        options, show, config_file=default_config_path() if options.register else None
    )
    ok(
        f"sd-scripts {result.commit[:12]} with torch {result.versions.get('torch')} "
        f"({result.torch.build}) at {result.target} in {result.seconds:.0f} s"
    )
    if result.registered is not None:
        hint(f"registered in {result.registered}: every verb finds it now")
    else:
        hint(f"pass --sd-scripts {result.target} (or set KOHYA_SD_SCRIPTS) to use it")
    hint("next: python -m kohya_orchestrator doctor")
    return 0
