"""`runs list` and `runs show RUN`: read run directories back, including runs that crashed."""

from __future__ import annotations

import argparse

from .._common import RAW

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb."""
    parser = subparsers.add_parser(
        "runs",
        help="list run directories or show one",
        description="List the runs under a runs folder (newest last), or show one run: its "
        "status and exit code, plan, last step and loss, checkpoints, samples and errors with "
        "their remedies. Works on runs that crashed or are still running.",
        epilog="examples:\n"
        "  python -m kohya_orchestrator runs list\n"
        "  python -m kohya_orchestrator runs show runs/20261124-221500-oilpaint\n"
        "  python -m kohya_orchestrator runs show latest --json",
        formatter_class=RAW,
    )
    parser.add_argument("action", choices=("list", "show"), help="list or show")
    parser.add_argument("run", nargs="?", help="run folder, its name, or 'latest' (show)")
    parser.add_argument("--runs", metavar="DIR", default="runs", help="runs folder (default runs)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List or show."""
    if args.action == "list":
        return _list(args)
    return _show(args)


def _list(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from rich.table import Table

    from ...launch.rundir import list_runs
    from ...ui.messages import console

    runs = list_runs(Path(args.runs))
    if args.json:
        sys.stdout.write(json.dumps([r.model_dump(mode="json") for r in runs], indent=2) + "\n")
        return 0
    if not runs:
        console().print(f"no runs in {args.runs}")
        return 0
    table = Table(box=None, header_style="bold")
    for col in ("run", "job", "status", "rc"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            r.run_id,
            r.job_name or "",
            r.status or "?",
            "" if r.returncode is None else str(r.returncode),
        )
    console().print(table)
    return 0


def resolve_run(runs: str, name: str | None) -> object:
    """The run folder for ``name`` (a path, a folder name under ``runs``, or 'latest')."""
    from pathlib import Path

    from ...errors import ConfigError, Problem
    from ...launch.rundir import RunDir, list_runs

    if not name or name == "latest":
        found = list_runs(Path(runs))
        if not found:
            raise ConfigError([Problem("run", f"no runs in {runs}", "pass --runs DIR")])
        return RunDir.open(found[-1].path)
    path = Path(name)
    if not path.is_dir() and (Path(runs) / name).is_dir():
        path = Path(runs) / name
    return RunDir.open(path)


def _show(args: argparse.Namespace) -> int:
    import json
    import sys

    from ...launch.rundir import RunDir
    from ...run import read_events
    from ...ui.messages import console

    rd = resolve_run(args.runs, args.run)
    assert isinstance(rd, RunDir)
    events = read_events(rd.path)
    info = _summarise(rd, events)
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2, default=str) + "\n")
        return 0
    out = console()
    out.rule(f"run {rd.run_id}")
    out.print(
        f"status: [bold]{info['status']}[/bold]  rc: {info['returncode']}  "
        f"duration: {info['duration_s']}"
    )
    if info["reason"]:
        out.print(f"reason: {info['reason']}")
    if info["plan"]:
        p = info["plan"]
        out.print(
            f"plan: {p['train_images_with_repeats']} images x repeats, {p['batches_per_epoch']} "
            f"batches/epoch, {p['epochs']} epochs, {p['total_steps']} steps"
        )
    if info["last_step"]:
        s = info["last_step"]
        out.print(
            f"last step: {s['step']}/{s['total_steps']}  epoch {s['epoch']}  avr_loss {s['avr_loss']}"
        )
    for c in info["checkpoints"]:
        out.print(
            f"checkpoint: {c['path']}  (epoch {c['epoch']}, step {c['step']}, final {c['final']})"
        )
    for s in info["samples"]:
        out.print(
            f"sample: {s['path']}  (epoch {s['epoch']}, step {s['step']}, prompt {s['prompt_index']})"
        )
    for e in info["errors"]:
        out.print(f"[red]error ({e['category']})[/red]: {e['message']}")
        if e["remedy"]:
            out.print(f"  [dim]hint: {e['remedy']}[/dim]")
    out.print(f"[dim]console log: {rd.console_log}[/dim]")
    return 0


def _summarise(rd: object, events: list[Any]) -> dict[str, Any]:
    from ...launch.rundir import RunDir

    assert isinstance(rd, RunDir)
    by_kind: dict[str, list[object]] = {}
    for e in events:
        by_kind.setdefault(getattr(e, "kind", "?"), []).append(e)

    def dump(e: object) -> dict[str, object]:
        return e.model_dump(mode="json", exclude={"seq", "t", "text"})  # type: ignore[attr-defined, no-any-return]

    finished = by_kind.get("run_finished", [])
    steps = by_kind.get("step_progress", [])
    plans = by_kind.get("training_plan", [])
    return {
        "run": str(rd.path),
        "status": rd.read_status(),
        "returncode": rd.read_returncode(),
        "duration_s": getattr(finished[-1], "duration_s", None) if finished else None,
        "reason": getattr(finished[-1], "reason", None) if finished else None,
        "plan": dump(plans[-1]) if plans else None,
        "last_step": dump(steps[-1]) if steps else None,
        "checkpoints": [dump(e) for e in by_kind.get("checkpoint_saved", [])],
        "samples": [dump(e) for e in by_kind.get("sample_image_saved", [])],
        "errors": [dump(e) for e in by_kind.get("child_error", [])],
    }
