"""`runs list|show|pictures|compare|pick`: read run directories back, including runs that crashed."""

from __future__ import annotations

import argparse

from .._common import RAW
from ._runs_page import PAGE_EXAMPLES, open_page, write_page
from ._runs_pick import PICK_EXAMPLES, add_pick_arguments, pick
from ._runs_rerun import RERUN_EXAMPLES, add_rerun_arguments, rerun

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ...events import Event, RunSummary


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb."""
    parser = subparsers.add_parser(
        "runs",
        help="list run directories or show one",
        description="List the runs under a runs folder (newest last), or show one run: its "
        "status and exit code, plan, last step and loss, errors with their remedies, and its "
        "outputs per epoch (checkpoint, step, loss, sample images). Works on runs that crashed "
        "or are still running. 'pictures' writes a contact sheet of the samples (prompts x "
        "epochs) and a loss curve into the run folder; 'compare' puts runs (or LoRA files) side "
        "by side; 'pick' publishes one epoch's file (a copy with publish metadata, a model card "
        "and its samples); 'open' opens the run page (index.html) in a browser, 'page' rewrites it; "
        "'rerun' trains the run's job again into a new run directory. "
        "The lowest loss is not the best epoch: judge the samples by eye.",
        epilog="examples:\n"
        "  python -m kohya_orchestrator runs list\n"
        "  python -m kohya_orchestrator runs show runs/20261124-221500-oilpaint\n"
        "  python -m kohya_orchestrator runs show latest --json\n"
        "  python -m kohya_orchestrator runs show latest --sheet --loss-curve\n"
        "  python -m kohya_orchestrator runs pictures latest\n"
        "  python -m kohya_orchestrator runs compare runs/*-ia3 runs/*-loha runs/*-lokr\n"
        + PICK_EXAMPLES
        + PAGE_EXAMPLES
        + RERUN_EXAMPLES
        + "\nnext: python -m kohya_orchestrator lora inspect out/my_style.safetensors"
        "   # a checkpoint's metadata",
        formatter_class=RAW,
    )
    parser.add_argument(
        "action",
        choices=("list", "show", "pictures", "compare", "pick", "open", "page", "rerun"),
        help="what to do",
    )
    parser.add_argument(
        "run",
        nargs="*",
        help="run folder, its name, or 'latest' (show, pictures); several runs or LoRA files "
        "(compare)",
    )
    parser.add_argument("--runs", metavar="DIR", default="runs", help="runs folder (default runs)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--sheet", action="store_true", help="show: also write contact_sheet.png (samples)"
    )
    parser.add_argument("--loss-curve", action="store_true", help="show: also write loss_curve.png")
    add_pick_arguments(parser)
    add_rerun_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List, show, draw pictures or compare."""
    if args.action == "list":
        return _list(args)
    if args.action == "compare":
        return _compare(args)
    if len(args.run) > 1:
        from ...errors import ConfigError, Problem

        raise ConfigError(
            [Problem("run", f"'runs {args.action}' takes one run", "use 'runs compare RUN...'")]
        )
    if args.action == "pictures":
        return _pictures(args)
    if args.action in ("open", "page"):
        rd = resolve_run(args.runs, args.run[0] if args.run else None)
        return open_page(rd) if args.action == "open" else write_page(rd)
    if args.action == "pick":
        return pick(args, resolve_run(args.runs, args.run[0] if args.run else None))
    if args.action == "rerun":
        return rerun(args, resolve_run(args.runs, args.run[0] if args.run else None))
    return _show(args)


def _list(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from rich.markup import escape
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
    for r in runs:
        if r.reason:
            console().print(f"[dim]{escape(f'{r.run_id}: {r.status}: {r.reason}')}[/dim]")
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

    from rich.markup import escape as markup_escape

    from ...events import plan_line, read_events, summarize
    from ...launch.rundir import RunDir
    from ...outputs.collect import run_outputs
    from ...ui.messages import console

    rd = resolve_run(args.runs, args.run[0] if args.run else None)
    assert isinstance(rd, RunDir)
    summary = summarize(read_events(rd.path))
    info = _summarise(rd, summary)
    outputs = run_outputs(rd.path)
    written = outputs.write_pictures(sheet=args.sheet, loss_curve=args.loss_curve)
    no_sheet = args.sheet and not outputs.samples
    if args.json:
        # through model_dump_json: a NaN loss becomes "NaN", keeping the output valid JSON
        info["outputs"] = json.loads(outputs.model_dump_json())
        info["pictures"] = [str(p) for p in written]
        sys.stdout.write(json.dumps(info, indent=2, default=str) + "\n")
        return 0
    from ...outputs.smoke import format_duration

    out = console()
    out.rule(f"run {rd.run_id}")
    duration = info["duration_s"]
    out.print(
        f"status: [bold]{info['status']}[/bold]  rc: {info['returncode']}  "
        f"duration: {'?' if duration is None else format_duration(duration)}"
    )
    if info["reason"]:
        out.print(f"reason: {info['reason']}")
    if summary.plan is not None:
        out.print(f"plan: {plan_line(summary.plan)}")
    for notice in (summary.plan_mismatch, *summary.suspect_samples):  # the run's own checks
        if notice is not None:
            out.print(f"[yellow]warning[/yellow]: {markup_escape(notice.message)}", soft_wrap=True)
    if info["last_step"]:
        s = info["last_step"]
        out.print(
            f"last step: {s['step']}/{s['total_steps']}  epoch {s['epoch']}  avr_loss {s['avr_loss']}"
        )
    _print_outputs(outputs)
    for path in written:
        out.print(f"[green]✓[/green] wrote {path}")
    if no_sheet:
        out.print("[dim]no sample images in this run: no contact sheet[/dim]")
    shown: set[str] = set()  # each hint once (launcher and trainer report one interrupt each)
    for e in info["errors"]:
        out.print(f"[red]error ({e['category']})[/red]: {e['message']}")
        if e["remedy"] and e["remedy"] not in shown:
            shown.add(e["remedy"])
            out.print(f"  [dim]hint: {e['remedy']}[/dim]")
    out.print(f"[dim]console log: {rd.console_log}[/dim]")
    return 0


def _summarise(rd: object, summary: RunSummary) -> dict[str, Any]:
    from ...launch.rundir import RunDir

    assert isinstance(rd, RunDir)

    def dump(e: Event | None) -> dict[str, Any] | None:
        return None if e is None else e.model_dump(mode="json", exclude={"seq", "t", "text"})

    found = rd.summary()  # an open run whose orchestrator is gone: interrupted, with the reason
    return {
        "run": str(rd.path),
        "status": found.status,
        "returncode": found.returncode,
        "duration_s": summary.duration_s,
        "reason": found.reason or summary.reason,
        "plan": dump(summary.plan),
        "last_step": dump(summary.last_step),
        "checkpoints": [dump(e) for e in summary.checkpoint_events],
        "samples": [dump(e) for e in summary.samples],
        "errors": [dump(e) for e in summary.errors],
    }


def _size(n: int | None) -> str:
    if n is None:
        return ""
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KiB"


def _loss(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


def _print_outputs(outputs: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ...outputs.collect import RunOutputs
    from ...ui.messages import console

    assert isinstance(outputs, RunOutputs)
    out = console()
    entries = outputs.by_epoch()
    if entries:
        table = Table(box=None, header_style="bold", title_justify="left")
        for col in ("epoch", "step", "loss", "checkpoint", "size", "samples"):
            table.add_column(col, overflow="fold")
        for e in entries:
            c = e.checkpoint
            if c is None:
                ckpt = ""
            else:
                ckpt = escape(c.name) + ("" if c.exists else " [dim](gone)[/dim]")
            missing = sum(not s.exists for s in e.samples)
            samples = f"{len(e.samples)}" + (f" ({missing} missing)" if missing else "")
            table.add_row(
                "" if e.epoch is None else str(e.epoch),
                "" if e.step is None else str(e.step),
                _loss(e.loss),
                ckpt,
                _size(c.size_bytes) if c else "",
                samples,
            )
        out.print(table)
    if outputs.output_dir is not None:
        out.print(f"[dim]outputs: {escape(str(outputs.output_dir))}[/dim]")
    source = {"tensorboard": "TensorBoard", "events": "console avr_loss", "none": "none"}
    if outputs.loss:
        out.print(
            f"loss ({source[outputs.loss_source]}): final average {_loss(outputs.final_loss)}"
        )
    for note in outputs.notes:
        out.print(f"  [dim]note: {escape(note)}[/dim]")
    if outputs.samples:
        out.print(
            "  [dim]hint: the lowest loss is not the best epoch; compare the samples by eye: "
            f"python -m kohya_orchestrator runs pictures {escape(str(outputs.run_dir))}[/dim]"
        )


def _dim_alpha(dim: int | None, alpha: float | None) -> str:
    if dim is None and alpha is None:
        return "-"
    return f"{'?' if dim is None else dim}/{'?' if alpha is None else f'{alpha:g}'}"


def _pictures(args: argparse.Namespace) -> int:
    import json
    import sys

    from ...launch.rundir import RunDir
    from ...outputs.collect import run_outputs
    from ...ui.messages import console, hint, ok

    rd = resolve_run(args.runs, args.run[0] if args.run else None)
    assert isinstance(rd, RunDir)
    outputs = run_outputs(rd.path)
    both = not (args.sheet or args.loss_curve)
    written = outputs.write_pictures(sheet=both or args.sheet, loss_curve=both or args.loss_curve)
    if args.json:
        sys.stdout.write(json.dumps([str(p) for p in written], indent=2) + "\n")
        return 0
    for path in written:
        ok(f"wrote {path}")
    if (both or args.sheet) and not outputs.samples:
        console().print("[dim]no sample images in this run: no contact sheet[/dim]")
        if not any(outputs.prompts):
            hint("add [sampling] prompts and sample_every_n_epochs to the job")
        elif outputs.status in ("running", "starting", "pending"):
            hint("the job samples, but this run has drawn none yet: run this again later")
        else:  # the job has prompts: the run ended before its first sampling round
            hint(
                f"the job samples, but this run ended ({outputs.status or 'status unknown'}) "
                "before its first sampling round"
            )
    return 0


def _compare(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    from ...errors import ConfigError, Problem
    from ...launch.rundir import RunDir
    from ...outputs.compare import compare_runs
    from ...ui.messages import console

    if not args.run:
        raise ConfigError(
            [Problem("run", "name the runs to compare", "runs compare RUN RUN ... (or LoRA files)")]
        )
    sources: list[Path] = []
    for name in args.run:
        path = Path(name)
        if path.is_file():
            sources.append(path)
            continue
        rd = resolve_run(args.runs, name)
        assert isinstance(rd, RunDir)
        sources.append(rd.path)
    result = compare_runs(sources)
    if args.json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        return 0
    # one column per run (comparisons are of a few runs; fields as rows fit a terminal)
    table = Table(box=None, header_style="bold")
    table.add_column("")
    for r in result.rows:  # runs of one job share its name: head them by run id
        table.add_column(escape(r.label), overflow="fold")
    fields: list[tuple[str, list[str]]] = [
        ("job", [escape(r.name) if r.run_id else "" for r in result.rows]),
        ("status", [r.status or "" for r in result.rows]),
        ("algo", [r.algo or "?" for r in result.rows]),
        ("dim/alpha", [_dim_alpha(r.network_dim, r.network_alpha) for r in result.rows]),
        ("optimizer", [escape(r.optimizer or "?") for r in result.rows]),
        ("lr", ["" if r.learning_rate is None else f"{r.learning_rate:g}" for r in result.rows]),
        ("steps", ["" if r.steps is None else str(r.steps) for r in result.rows]),
        ("epochs", ["" if r.epochs is None else str(r.epochs) for r in result.rows]),
        ("time", ["" if r.time_s is None else f"{r.time_s:.0f} s" for r in result.rows]),
        ("final loss", [_loss(r.final_loss) for r in result.rows]),
        ("epoch loss", [_loss(r.epoch_loss) for r in result.rows]),
        ("file", [escape(r.file.name) if r.file else "" for r in result.rows]),
        ("file size", [_size(r.file_size_bytes) for r in result.rows]),
    ]
    for label, values in fields:
        table.add_row(label, *values)
    out = console()
    out.print(table)
    out.print(
        "  [dim]hint: loss is not quality (a LoRA that copies the data has the lowest loss); "
        "judge each run's samples: runs pictures RUN[/dim]"
    )
    return 0
