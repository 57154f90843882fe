"""RichProgressSink: turns events into a live rich display (terminal or Jupyter). Parses nothing."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from ..events import (
    CheckpointSaved,
    ChildError,
    ChildWarning,
    EpochStarted,
    Event,
    PhaseChanged,
    PlanMismatch,
    RunFinished,
    SampleImageSaved,
    SampleSuspect,
    StepProgress,
    TrainingPlan,
    plan_line,
)

__all__ = ["RichProgressSink"]


class TrainerEtaColumn(ProgressColumn):
    """The time left as sd-scripts' own bar says it (``eta`` field, seconds), ``-:--:--`` before.

    rich's own estimate needs several updates inside its 30 s window, so with slow steps (a minute
    each on a small card) it never shows one; the trainer's tqdm always has its estimate.
    """

    def render(self, task: Task) -> Text:
        """``h:mm:ss``, like rich's TimeRemainingColumn."""
        eta = task.fields.get("eta")
        if eta is None or not math.isfinite(eta):
            return Text("-:--:--", style="progress.remaining")
        minutes, seconds = divmod(round(eta), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


class RichProgressSink:
    """Overall and epoch bars with loss, ETA and the last checkpoint; messages printed above."""

    def __init__(self, console: Console | None = None, *, transient: bool = False) -> None:
        """Show progress on ``console`` (default: stdout, or the notebook output)."""
        self.console = console or Console()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TrainerEtaColumn(),
            console=self.console,
            transient=transient,
        )
        self._overall: TaskID | None = None
        self._epoch: TaskID | None = None
        self._epoch_size: int | None = None  # steps per epoch: the plan's, then the bar's
        self._loss = ""
        self._last_checkpoint = ""
        self._hints_shown: set[str] = set()
        self._started = False

    def _ensure(self) -> None:
        if not self._started:
            self._progress.start()
            self._started = True

    def handle(self, event: Event) -> None:
        """Update the bars or print a line."""
        p = self._progress
        if isinstance(event, PhaseChanged):
            self._ensure()
            p.console.print(f"[dim]· {event.phase.value.replace('_', ' ')}[/dim]")
        elif isinstance(event, TrainingPlan):
            self._ensure()
            if event.batches_per_epoch:
                accumulation = event.gradient_accumulation_steps or 1
                self._epoch_size = -(-event.batches_per_epoch // accumulation)
            p.console.print(f"plan: {plan_line(event)}")
            if self._overall is None and event.total_steps:
                self._overall = p.add_task("steps", total=event.total_steps, info="")
        elif isinstance(event, EpochStarted):
            self._ensure()
            if self._epoch is not None:
                p.remove_task(self._epoch)
            self._epoch = p.add_task(
                f"epoch {event.epoch}/{event.total_epochs}", total=self._epoch_size, info=""
            )
        elif isinstance(event, StepProgress):
            self._ensure()
            if self._overall is None:
                self._overall = p.add_task("steps", total=event.total_steps, info="")
            self._loss = "" if event.avr_loss is None else f"loss {event.avr_loss:.4g}"
            if event.avr_loss is not None and math.isnan(event.avr_loss):
                self._loss = "[red]loss NaN[/red]"
            p.update(
                self._overall,
                completed=event.step,
                total=event.total_steps,
                info=self._info(),
                eta=event.eta_s,
            )
            if event.epoch_total_steps:
                self._epoch_size = event.epoch_total_steps
            if self._epoch is not None and event.epoch_step is not None:
                p.update(
                    self._epoch,
                    completed=event.epoch_step,
                    total=event.epoch_total_steps or self._epoch_size,
                    info="",
                    eta=event.epoch_eta_s,
                )
        elif isinstance(event, CheckpointSaved):
            self._ensure()
            self._last_checkpoint = f"saved {Path(event.path).name}"
            if self._overall is not None:  # the last save comes after the last step line
                p.update(self._overall, info=self._info())
            p.console.print(f"[green]✓[/green] checkpoint {event.path}")
        elif isinstance(event, SampleImageSaved):
            self._ensure()
            p.console.print(f"[green]✓[/green] sample {event.path}")
        elif isinstance(event, (PlanMismatch, SampleSuspect)):  # the run's own checks
            self._ensure()
            p.console.print(f"[yellow]! {escape(event.message)}[/yellow]")
        elif isinstance(event, ChildWarning):
            pass  # collected in events.jsonl; printing them would bury the bars
        elif isinstance(event, ChildError):
            self._ensure()
            p.console.print(f"[red]⨯ {event.category}[/red]: {event.message}")
            if event.remedy and event.remedy not in self._hints_shown:
                # the launcher and the trainer both report one Ctrl-C or watchdog stop: say it once
                self._hints_shown.add(event.remedy)
                p.console.print(f"  [dim]hint: {event.remedy}[/dim]")
        elif isinstance(event, RunFinished):
            colour = {"succeeded": "green", "canceled": "yellow"}.get(event.status.value, "red")
            self.close()
            self.console.print(
                f"[{colour}]{event.status.value}[/{colour}] in {event.duration_s:.0f} s"
                + (f": {event.reason}" if event.reason else "")
            )

    def _info(self) -> str:
        return "  ".join(x for x in (self._loss, self._last_checkpoint) if x)

    def close(self) -> None:
        """Stop the live display."""
        if self._started:
            self._progress.stop()
            self._started = False
