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

    from kohya_orchestrator.events import (
        CheckpointSaved,
        ChildError,
        EpochStarted,
        Event,
        Phase,
        StepProgress,
        TrainingPlan,
    )

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


class _Summary:
    """What the human summary needs, collected event by event."""

    def __init__(self) -> None:
        self.count = 0
        self.plan: TrainingPlan | None = None
        self.epoch: EpochStarted | None = None
        self.last_step: StepProgress | None = None
        self.phase: Phase | None = None
        self.checkpoints: list[CheckpointSaved] = []
        self.sample_steps: list[int | None] = []
        self.warnings = 0
        self.errors: list[ChildError] = []

    def add(self, event: Event) -> None:
        self.count += 1
        if event.kind == "training_plan":
            self.plan = event
        elif event.kind == "epoch_started":
            self.epoch = event
        elif event.kind == "step_progress":
            self.last_step = event
        elif event.kind == "phase_changed":
            self.phase = event.phase
        elif event.kind == "checkpoint_saved":
            self.checkpoints.append(event)
        elif event.kind == "sampling_started":
            self.sample_steps.append(event.step)
        elif event.kind == "child_warning":
            self.warnings += 1
        elif event.kind == "child_error":
            self.errors.append(event)

    def write(self, out: TextIO, log: Path) -> None:
        w = out.write
        w(f"log:         {log} ({self.count} events)\n")
        plan = self.plan
        if plan is not None:
            sizes = ", ".join(str(b) for b in plan.batch_size_per_device or []) or "?"
            w(
                f"plan:        {_n(plan.total_steps)} steps = {_n(plan.epochs)} epochs x "
                f"{_n(plan.steps_per_epoch)} steps/epoch (batch size {sizes}, "
                f"gradient accumulation {_n(plan.gradient_accumulation_steps)}); "
                f"{_n(plan.train_images_with_repeats)} images x repeats\n"
            )
        else:
            w("plan:        none (training never started)\n")
        if self.epoch is not None:
            w(f"epochs:      {self.epoch.epoch}/{self.epoch.total_epochs} started\n")
        step = self.last_step
        if step is not None:
            loss = f", avr_loss {step.avr_loss:.4g}" if step.avr_loss is not None else ""
            w(f"progress:    step {step.step}/{step.total_steps}{loss}\n")
        if self.phase is not None:
            w(f"last phase:  {self.phase.value}\n")
        if self.checkpoints:
            for i, ck in enumerate(self.checkpoints):
                label = (
                    "final" if ck.final else f"epoch {ck.epoch}" if ck.epoch else f"step {ck.step}"
                )
                w(f"{'checkpoints:' if i == 0 else '':<13}{ck.path} ({label})\n")
        else:
            w("checkpoints: none\n")
        if self.sample_steps:
            steps = ", ".join(str(s) for s in self.sample_steps)
            w(f"samples:     {len(self.sample_steps)} round(s), at step {steps}\n")
        w(f"warnings:    {self.warnings}\n")
        if not self.errors:
            w("errors:      none\n")
            return
        w(f"errors:      {len(self.errors)}\n")
        for err in self.errors:
            w(f"  [{err.category}] {err.message}\n")
            if err.remedy:
                w(f"    hint: {err.remedy}\n")
        from kohya_orchestrator.events import classify_failure

        cause = classify_failure(self.errors)
        if cause is not None and len(self.errors) > 1:
            w(f"most likely cause: [{cause.category}] {cause.message}\n")


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


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
    summary = _Summary()
    for event in iter_log_events(log):
        summary.add(event)
    summary.write(out, log)
    return 0
