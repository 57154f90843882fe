"""NotebookProgressSink: turns events into a live progress bar in a Jupyter cell. Parses nothing.

rich's live display needs ipywidgets in Jupyter and leaves its output in widget state, not in the
cell's outputs. This sink uses IPython's own display machinery instead: two outputs are shown once,
on the first event (a bar with step, epoch, loss, elapsed, ETA and the last checkpoint, and below
it a list of checkpoints, samples, warnings and errors), then replaced in place with
``handle.update(...)`` at most every ``min_interval_s`` seconds, and always on ``RunFinished`` and
:meth:`~NotebookProgressSink.close`. Each output carries ``text/html`` and ``text/plain`` (one line
for the bar), so saved notebooks and ``nbconvert --to script`` readers see the same facts.

IPython is imported only when a sink is made without a ``display`` function (any Jupyter kernel
has it); :func:`in_notebook` never imports it.
"""

from __future__ import annotations

import html
import importlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..events import (
    CheckpointSaved,
    ChildError,
    ChildWarning,
    EpochStarted,
    Event,
    PhaseChanged,
    PlanMismatch,
    ProgressBar,
    RunFinished,
    RunStatus,
    SampleImageSaved,
    SampleSuspect,
    StepProgress,
    TrainingPlan,
)

__all__ = ["DisplayHandle", "NotebookProgressSink", "ProgressView", "in_notebook"]

_COLOURS = {
    RunStatus.SUCCEEDED: "#2e7d32",
    RunStatus.FAILED: "#c62828",
    RunStatus.CANCELED: "#ef6c00",
}
_RUNNING = "#1976d2"
_WARNING_CHARS = 200


class DisplayHandle(Protocol):
    """What ``display(obj, display_id=True)`` returns: :class:`IPython.display.DisplayHandle`."""

    def update(self, obj: Any) -> None:
        """Replace the displayed output with ``obj``."""


@dataclass(frozen=True)
class ProgressView:
    """One state of an output: plain text and HTML of the same facts."""

    text: str
    html: str

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        return {"text/plain": self.text, "text/html": self.html}

    def __str__(self) -> str:
        return self.text


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel's shell, also Colab's and VS Code's).

    Looks at an IPython that is already imported (a kernel always imports it) and never imports
    it; a terminal IPython shell is not a notebook.
    """
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    if get_ipython is None:
        return False
    try:
        shell = get_ipython()
    except Exception:
        return False
    if shell is None:
        return False
    if any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__):
        return True
    return getattr(shell, "kernel", None) is not None


def _hms(seconds: float) -> str:
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _ipython_display() -> Callable[..., DisplayHandle | None]:
    try:
        module = importlib.import_module("IPython.display")
    except ImportError as exc:
        raise ImportError(
            'NotebookProgressSink needs IPython: pip install "kohya-orchestrator[notebook]"'
        ) from exc
    display: Callable[..., DisplayHandle | None] = module.display
    return display


class NotebookProgressSink:
    """A live progress bar and a message list in the notebook cell that started the run."""

    def __init__(
        self,
        *,
        display: Callable[..., DisplayHandle | None] | None = None,
        min_interval_s: float = 0.25,
        max_messages: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Show progress with ``display`` (default: :func:`IPython.display.display`).

        Args:
            display: Called as ``display(view, display_id=True)``; returns a handle with
                ``update(view)``, or None outside IPython (then only the first and the last state
                are shown).
            min_interval_s: Least time between two updates of an output (the last state of a run
                is always shown).
            max_messages: Messages kept in the list below the bar (the newest ones).
            clock: Monotonic seconds, for the throttle (tests pass their own).
        """
        self._display = display if display is not None else _ipython_display()
        self._min_interval_s = min_interval_s
        self._max_messages = max_messages
        self._clock = clock
        self._bar: DisplayHandle | None = None
        self._log: DisplayHandle | None = None
        self._shown = False
        self._last_update: float | None = None
        self._sent: dict[str, ProgressView] = {}
        self._finished = False
        # what the bar shows
        self._t = 0.0
        self._phase: str | None = None
        self._bar_state: ProgressBar | None = None
        self._step: StepProgress | None = None
        self._epoch: int | None = None
        self._total_epochs: int | None = None
        self._checkpoint: str | None = None
        self._end: RunFinished | None = None
        # the list below it: (kind, text)
        self._messages: list[tuple[str, str]] = []
        self._dropped = 0

    # ------------------------------------------------------------------ events
    def handle(self, event: Event) -> None:
        """Record what the event says, then refresh the outputs (throttled)."""
        if self._finished:
            return
        self._t = max(self._t, event.t)
        if isinstance(event, PhaseChanged):
            self._phase = event.phase.value.replace("_", " ")
            self._bar_state = None
        elif isinstance(event, ProgressBar):
            self._bar_state = event
        elif isinstance(event, TrainingPlan):
            self._total_epochs = event.epochs or self._total_epochs
        elif isinstance(event, EpochStarted):
            self._epoch, self._total_epochs = event.epoch, event.total_epochs
        elif isinstance(event, StepProgress):
            self._step = event
            if event.epoch is not None:
                self._epoch = event.epoch
        elif isinstance(event, CheckpointSaved):
            self._checkpoint = Path(event.path).name
            self._add("ok", f"✓ checkpoint {event.path}")
        elif isinstance(event, SampleImageSaved):
            self._add("ok", f"✓ sample {event.path}")
        elif isinstance(event, (PlanMismatch, SampleSuspect)):  # the run's own checks
            self._add("warn", f"⚠ {event.message}")
        elif isinstance(event, ChildWarning):
            first = event.message.strip().splitlines()[0] if event.message.strip() else ""
            if len(first) > _WARNING_CHARS:
                first = first[: _WARNING_CHARS - 1] + "…"
            self._add("warn", f"⚠ {first}")
        elif isinstance(event, ChildError):
            self._add("err", f"⨯ {event.category}: {event.message}")
            if event.remedy:
                self._add("hint", f"  hint: {event.remedy}")
        elif isinstance(event, RunFinished):
            self._end = event
            self._finished = True
        self._refresh(force=self._finished)

    def close(self) -> None:
        """Show the last state (the run has ended)."""
        if self._shown:
            self._refresh(force=True)
        self._finished = True

    # ------------------------------------------------------------------ rendering
    def _add(self, kind: str, text: str) -> None:
        self._messages.append((kind, text))
        if len(self._messages) > self._max_messages:
            del self._messages[0]
            self._dropped += 1

    def _refresh(self, *, force: bool) -> None:
        now = self._clock()
        views = {"bar": self.bar_view(), "log": self.messages_view()}
        if not self._shown:
            self._bar = self._display(views["bar"], display_id=True)
            self._log = self._display(views["log"], display_id=True)
            self._shown, self._last_update, self._sent = True, now, views
            return
        assert self._last_update is not None
        if not force and now - self._last_update < self._min_interval_s:
            return
        sent = False
        for name, handle in (("bar", self._bar), ("log", self._log)):
            view = views[name]
            if self._sent[name] == view:
                continue
            if handle is not None:
                handle.update(view)
            elif force:  # no live output (not IPython): show the last state once more
                self._display(view)
            else:
                continue
            self._sent[name] = view
            sent = True
        if sent:
            self._last_update = now

    def _facts(self) -> list[str]:
        step, end = self._step, self._end
        facts: list[str] = []
        if step is not None:
            text = f"step {step.step}/{step.total_steps}"
            if step.total_steps:
                text += f" ({100 * step.step // step.total_steps}%)"
            facts.append(text)
        elif self._phase is not None:
            text = self._phase
            bar = self._bar_state
            if bar is not None and bar.total:
                text += f" {bar.n}/{bar.total}"
            facts.append(text)
        elif end is None:
            facts.append("starting")
        if self._epoch is not None:
            total = f"/{self._total_epochs}" if self._total_epochs else ""
            facts.append(f"epoch {self._epoch}{total}")
        if step is not None and step.avr_loss is not None:
            loss = step.avr_loss
            facts.append("loss NaN" if math.isnan(loss) else f"loss {loss:.4f}")
        if end is not None:
            done = f"{end.status.value} in {_hms(end.duration_s)}"
            facts.append(done + (f": {end.reason}" if end.reason else ""))
        else:
            facts.append(f"{_hms(self._t)} elapsed")
            if step is not None and step.eta_s is not None and step.step < step.total_steps:
                facts.append(f"ETA {_hms(step.eta_s)}")
            if step is not None and self._phase not in (None, "training"):
                facts.append(self._phase)  # sampling, saving … between steps
        if self._checkpoint is not None:
            facts.append(f"saved {self._checkpoint}")
        return facts

    def bar_view(self) -> ProgressView:
        """The bar as it stands: one text line and an HTML bar."""
        facts = self._facts()
        step, end = self._step, self._end
        fraction = 0.0
        if step is not None and step.total_steps:
            fraction = min(1.0, step.step / step.total_steps)
        colour = _RUNNING if end is None else _COLOURS.get(end.status, _RUNNING)
        nan = step is not None and step.avr_loss is not None and math.isnan(step.avr_loss)
        cells = []
        for fact in facts:
            style = ' style="color:#c62828;font-weight:bold"' if fact == "loss NaN" and nan else ""
            cells.append(f"<span{style}>{html.escape(fact)}</span>")
        markup = (
            '<div class="kohya-progress" style="font-family:monospace;max-width:60em">'
            '<div style="background:#e0e0e0;border-radius:3px;height:0.9em;overflow:hidden">'
            f'<div style="background:{colour};width:{100 * fraction:.1f}%;height:100%"></div>'
            "</div>"
            f'<div style="margin-top:0.2em">{" | ".join(cells)}</div>'
            "</div>"
        )
        return ProgressView(text=" | ".join(facts), html=markup)

    def messages_view(self) -> ProgressView:
        """Checkpoints, samples, warnings and errors so far (the newest ``max_messages``)."""
        lines = list(self._messages)
        if self._dropped:
            lines.insert(0, ("hint", f"… {self._dropped} earlier messages not shown"))
        styles = {
            "ok": "color:#2e7d32",
            "warn": "color:#ef6c00",
            "err": "color:#c62828;font-weight:bold",
            "hint": "color:#757575",
        }
        if not lines:
            return ProgressView(text="", html="")
        rows = "".join(
            f'<div style="{styles[kind]};white-space:pre-wrap">{html.escape(text)}</div>'
            for kind, text in lines
        )
        markup = f'<div class="kohya-messages" style="font-family:monospace">{rows}</div>'
        return ProgressView(text="\n".join(text for _, text in lines), html=markup)
