"""``replay``: re-parse a captured sd-scripts console log into typed events.

Reads the log as bytes, decodes it incrementally (as the runner does while the trainer runs) and
feeds it to :class:`~kohya_orchestrator.events.LogParser`. Prints the events as JSON Lines with
``--jsonl``; otherwise a short summary: the training plan, epochs, checkpoints, the last step and
every error with its remedy.
"""

from __future__ import annotations

# Only argparse and sys at import time (`--help` must stay fast); the rest is imported in run().
import argparse
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from kohya_orchestrator.events import Event, RunSummary

__all__ = ["add_parser", "iter_log_events", "run"]

_CHUNK = 1 << 16

_DESCRIPTION = """\
Re-parse a captured sd-scripts console log (raw stdout+stderr, `\\r` and ANSI codes kept) into
the typed events a live run emits, and print them as JSON Lines or as a short summary.
RUN is a console log file or a run directory holding `console.log`.
"""

_EPILOG = """\
examples:
  python -m kohya_orchestrator replay runs/20261124-215303-oilpaint
  python -m kohya_orchestrator replay runs/20261124-215303-oilpaint/console.log --jsonl > ev.jsonl

next: python -m kohya_orchestrator replay RUN --jsonl | jq 'select(.kind == "child_error")'
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``replay`` verb.

    Args:
        subparsers: The main parser's subparsers.
    """
    parser = subparsers.add_parser(
        "replay",
        help="re-parse a console log into events (JSONL or a summary)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "log", metavar="RUN", help="console log file, or a run directory with console.log"
    )
    parser.add_argument("--jsonl", action="store_true", help="print every event as one JSON line")
    parser.set_defaults(func=run)


def _resolve(path: Path) -> Path:
    from kohya_orchestrator.errors import ConfigError, Problem

    if path.is_dir():
        log = path / "console.log"
        if log.is_file():
            return log
        raise ConfigError(
            [
                Problem(
                    path=str(path),
                    message="this directory holds no console.log",
                    hint="pass the console log file itself, or a run directory (runs/<id>)",
                )
            ],
            source="replay",
        )
    if not path.is_file():
        raise ConfigError(
            [
                Problem(
                    path=str(path),
                    message="no such file",
                    hint="pass a console log, e.g. runs/<id>/console.log, or its run directory",
                )
            ],
            source="replay",
        )
    why = _not_text(path)
    if why is not None:
        raise ConfigError(
            [
                Problem(
                    path=str(path),
                    message=f"this is not a console log: {why}",
                    hint="pass the text a training printed, e.g. runs/<id>/console.log",
                )
            ],
            source="replay",
        )
    return path


def _not_text(path: Path, sample: int = 1 << 16) -> str | None:
    """Why the file cannot be a console log (binary data), or None.

    sd-scripts writes UTF-8 text (tqdm's carriage returns, ANSI colours and Japanese included);
    NUL bytes or a tenth of undecodable bytes in the first 64 KiB mean something else.
    """
    with path.open("rb") as f:
        head = f.read(sample)
    nul = head.count(0)
    if nul:
        return f"{nul} NUL byte{'s' if nul != 1 else ''} in its first {len(head)} bytes"
    bad = head.decode("utf-8", errors="replace").count("\ufffd")
    if head and bad * 10 > len(head):
        return f"{bad} of its first {len(head)} bytes are not UTF-8 text"
    return None


def iter_log_events(path: Path) -> Iterator[Event]:
    """Parse a console log file as a live run would, yielding events as they complete.

    Args:
        path: The console log (raw bytes as the trainer wrote them).

    Yields:
        Events in stream order.
    """
    from kohya_orchestrator.events import Decoder, LogParser

    decoder = Decoder()
    parser = LogParser()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            yield from parser.feed(decoder.decode(chunk))
    yield from parser.feed(decoder.decode(b"", final=True))
    yield from parser.close()


def _write_summary(out: TextIO, log: Path, summary: RunSummary) -> None:
    """The human summary: plan, epochs, progress, checkpoints, samples, warnings, errors."""
    from kohya_orchestrator.events import plan_line

    w = out.write
    w(f"log:         {log} ({summary.events} events)\n")
    if summary.plan is not None:
        w(f"plan:        {plan_line(summary.plan, detailed=True)}\n")
    else:
        w("plan:        none (training never started)\n")
    if summary.epoch_started is not None:
        epoch = summary.epoch_started
        w(f"epochs:      {epoch.epoch}/{epoch.total_epochs} started\n")
    step = summary.last_step
    if step is not None:
        loss = f", avr_loss {step.avr_loss:.4g}" if step.avr_loss is not None else ""
        w(f"progress:    step {step.step}/{step.total_steps}{loss}\n")
    if summary.phase is not None:
        w(f"last phase:  {summary.phase.value}\n")
    if summary.checkpoints:
        for i, ck in enumerate(summary.checkpoint_events):
            label = "final" if ck.final else f"epoch {ck.epoch}" if ck.epoch else f"step {ck.step}"
            w(f"{'checkpoints:' if i == 0 else '':<13}{ck.path} ({label})\n")
    else:
        w("checkpoints: none\n")
    if summary.sampling:
        steps = ", ".join(str(r.step) for r in summary.sampling)
        w(f"samples:     {len(summary.sampling)} round(s), at step {steps}\n")
    w(f"warnings:    {summary.warnings}\n")
    if not summary.errors:
        w("errors:      none\n")
        return
    w(f"errors:      {len(summary.errors)}\n")
    for err in summary.errors:
        w(f"  [{err.category}] {err.message}\n")
        if err.remedy:
            w(f"    hint: {err.remedy}\n")
    cause = summary.failure
    if cause is not None and len(summary.errors) > 1:
        w(f"most likely cause: [{cause.category}] {cause.message}\n")


def run(args: argparse.Namespace) -> int:
    """Replay a console log.

    Args:
        args: ``log`` (file or run directory) and ``jsonl`` (bool).

    Returns:
        0; the exit status says the log was read, not whether the run in it succeeded.

    Raises:
        ConfigError: The file or run directory does not exist.
    """
    from pathlib import Path

    log = _resolve(Path(args.log))
    out = sys.stdout
    if args.jsonl:
        for event in iter_log_events(log):
            out.write(event.model_dump_json() + "\n")
        return 0
    from kohya_orchestrator.events import summarize

    _write_summary(out, log, summarize(iter_log_events(log)))
    return 0
