"""``doctor``: find the sd-scripts install, probe its Python, and say what needs fixing."""

from __future__ import annotations

# Only argparse and sys at import time (cli/main.py: `--help` must start fast); the rest is
# imported in run().
import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from kohya_orchestrator.environment.discovery import Install
    from kohya_orchestrator.environment.doctor import Check
    from kohya_orchestrator.environment.manifest import ArgManifest
    from kohya_orchestrator.environment.probe import Environment

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Find the kohya-ss sd-scripts install and the Python that runs it, ask that Python about torch,
CUDA, GPUs and the packages training needs, and print one verdict per check with its fix:
  ✓ fine   ! works, with a caveat   ⨯ training will fail until fixed

The install is looked up in this order: --sd-scripts, $KOHYA_SD_SCRIPTS,
~/.config/kohya_orchestrator/config.toml (sd_scripts = "..."), then the current folder,
~/kohya_ss, ~/LoRA_Easy_Training_Scripts, ~/fluxgym and ~/sd-scripts (docs/install-discovery.md).
"""

EPILOG = """\
examples:
  python -m kohya_orchestrator doctor
  python -m kohya_orchestrator doctor --sd-scripts ~/kohya_ss --json > doctor.json

next step: python -m kohya_orchestrator validate docs/examples/oilpaint.toml --sd-scripts ~/kohya_ss
"""

_MARKS = {"ok": "[green]✓[/green]", "warn": "[yellow]![/yellow]", "fail": "[red]⨯[/red]"}


def add_parser(subparsers: Any) -> None:
    """Register the ``doctor`` verb.

    Args:
        subparsers: What ``ArgumentParser.add_subparsers()`` returned.
    """
    parser = subparsers.add_parser(
        "doctor",
        help="check the sd-scripts install, its Python, torch, GPU and packages",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "job",
        nargs="?",
        metavar="JOB.toml",
        help="also check that the install has what this job needs (its optimizer's package, "
        "attention backend, tracker, a GPU for its precision and memory tier)",
    )
    parser.add_argument(
        "--sd-scripts",
        default=None,
        metavar="PATH",
        help="the kohya_ss (or LETS, fluxgym) folder, or the sd-scripts folder itself",
    )
    parser.add_argument(
        "--python",
        default=None,
        metavar="PATH",
        help="the interpreter to use instead of the install's venv (like $KOHYA_PYTHON)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print install, environment and checks as JSON"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="limit for the probe, which imports torch (default: 120)",
    )
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="read the install's training-script arguments again instead of using the cache",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the checks and print them.

    Args:
        args: Parsed arguments (``sd_scripts``, ``python``, ``json``, ``timeout``).

    Returns:
        0 when no check failed, 1 otherwise; 2 with ``--json`` when no install was found.

    Raises:
        SetupError: No install was found (the CLI turns it into a message and exit code 2).
    """
    import json
    from pathlib import Path

    from kohya_orchestrator.environment.discovery import require_install
    from kohya_orchestrator.environment.doctor import check_manifest, diagnose
    from kohya_orchestrator.environment.manifest import ManifestError, load_manifest
    from kohya_orchestrator.environment.probe import probe_environment
    from kohya_orchestrator.errors import SetupError
    from kohya_orchestrator.ui.messages import console

    sd_scripts = getattr(args, "sd_scripts", None)
    python = getattr(args, "python", None)
    try:
        install = require_install(
            None if sd_scripts is None else Path(sd_scripts),
            python=None if python is None else Path(python),
        )
    except SetupError as exc:
        if not getattr(args, "json", False):
            raise
        # A script reading --json gets JSON either way (exit 2, as for the message).
        message = str(exc).split("\n  hint: ")[0]
        failure = {"install": None, "ok": False, "error": message, "hint": exc.hint}
        sys.stdout.write(json.dumps(failure, indent=2, ensure_ascii=False) + "\n")
        from kohya_orchestrator.ui.messages import fail, hint

        fail(message)  # and the person at the terminal still reads why
        if exc.hint:
            hint(exc.hint, file=sys.stderr)
        return 2
    environment = probe_environment(install, timeout_s=float(getattr(args, "timeout", 120.0)))
    checks = diagnose(environment)
    manifest, cached, error = None, False, None
    if environment.python_version is not None:
        try:
            manifest, cached = load_manifest(install, refresh=bool(getattr(args, "refresh", False)))
        except ManifestError as exc:
            error = str(exc)
        checks.append(check_manifest(manifest, cached, error))
    job_path = getattr(args, "job", None)
    if job_path:
        checks.extend(_job_checks(Path(job_path), install, environment, manifest))
    failed = any(c.status == "fail" for c in checks)
    if getattr(args, "json", False):
        payload = {
            "install": install.model_dump(mode="json"),
            "environment": environment.model_dump(mode="json"),
            "checks": [c.model_dump(mode="json") for c in checks],
            "arguments": None
            if manifest is None
            else {
                "sd_scripts_commit": manifest.commit,
                "commit_date": manifest.commit_date,
                "made_at": manifest.made_at,
                "cached": cached,
                "scripts": {k: len(v) for k, v in manifest.scripts.items()},
                "errors": manifest.errors,
                "networks": list(manifest.networks),
            },
            "ok": not failed,
        }
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    else:
        _print_report(console(sys.stdout), install, checks)
    return 1 if failed else 0


def _job_checks(
    path: Path, install: Install, environment: Environment, manifest: ArgManifest | None
) -> list[Check]:
    """``doctor JOB``: what this job needs from the install, one check per finding."""
    from kohya_orchestrator.environment.doctor import Check
    from kohya_orchestrator.environment.lycoris import check_before_launch
    from kohya_orchestrator.environment.preflight import job_requirements, preflight
    from kohya_orchestrator.errors import ConfigError
    from kohya_orchestrator.jobs.arguments import check_job_arguments
    from kohya_orchestrator.jobs.loading import load_job

    arguments = None if manifest is None else manifest.arguments()
    try:
        job = load_job(path, arguments=arguments)
    except ConfigError as exc:
        return [
            Check(
                name="job",
                status="fail",
                detail=f"{path}: " + "; ".join(f"{p.path}: {p.message}" for p in exc.problems),
                fix=f"python -m kohya_orchestrator validate {path}",
            )
        ]
    found = check_before_launch(job, install, environment)
    if arguments is not None:
        found += check_job_arguments(job, arguments)
    found += preflight(job, install, environment)
    checks = [
        Check(
            name="job",
            status="fail" if p.severity == "error" else "warn",
            detail=f"{p.path}: {p.message}" if p.path else p.message,
            fix=p.hint,
        )
        for p in found
    ]
    if not checks:
        needs = ", ".join(sorted({r.module for r in job_requirements(job)})) or "no extra package"
        checks.append(
            Check(
                name="job",
                status="ok",
                detail=f"{path.name}: the install has what it needs ({needs}; {job.model.script})",
            )
        )
    return checks


def _print_report(out: Console, install: Install, checks: list[Check]) -> None:
    from rich.markup import escape

    found = f"{install.layout} layout, found via {install.source_detail or install.source}"
    out.print(f"sd-scripts  {escape(str(install.sd_scripts_dir))} ({escape(found)})")
    out.print(f"python      {escape(str(install.python))}")
    out.print()
    width = max(len(c.name) for c in checks)
    for check in checks:
        out.print(f"{_MARKS[check.status]} {check.name:<{width}}  {escape(check.detail)}")
        if check.fix and check.status != "ok":
            out.print(f"  {' ' * width}  [dim]fix: {escape(check.fix)}[/dim]")
    warns = sum(c.status == "warn" for c in checks)
    fails = sum(c.status == "fail" for c in checks)
    plural = "s" if warns != 1 else ""
    out.print()
    if fails:
        out.print(f"[red]⨯[/red] {fails} failed, {warns} warning{plural}")
    else:
        out.print(f"[green]✓[/green] ready to train ({warns} warning{plural})")
