"""The notebook API: ``train(job)`` blocks, ``start(job)`` returns a Run at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from .environment.discovery import Install
from .events import Event, read_events
from .models import TrainingJob
from .render.command import LaunchOptions
from .run import Run, RunResult, Watchdogs
from .run import start as _start
from .sinks import CallbackSink, EventSink

__all__ = ["iter_events", "start", "train"]


def _progress_sink() -> EventSink:
    """A live bar in the Jupyter cell inside a kernel, else rich's bars on the terminal."""
    from .ui.notebook import NotebookProgressSink, in_notebook

    if in_notebook():
        return NotebookProgressSink()
    from .ui.progress import RichProgressSink

    return RichProgressSink()


def start(
    job: TrainingJob,
    *,
    sd_scripts: Path | None = None,
    install: Install | None = None,
    runs: Path | str = "runs",
    launch: LaunchOptions | None = None,
    on_event: Callable[[Event], object] | None = None,
    show_progress: bool = False,
    watchdogs: Watchdogs | None = None,
) -> Run:
    """Start training ``job`` in the background; see :class:`~kohya_orchestrator.run.Run`.

    ``show_progress`` draws a live bar: in a Jupyter cell inside a notebook kernel
    (:class:`~kohya_orchestrator.ui.notebook.NotebookProgressSink`), else on the terminal.
    """
    sinks: list[EventSink] = []
    if show_progress:
        sinks.append(_progress_sink())
    if on_event is not None:
        sinks.append(CallbackSink(on_event))
    return _start(
        job,
        install=install,
        sd_scripts=sd_scripts,
        runs=Path(runs),
        launch=launch,
        sinks=sinks,
        watchdogs=watchdogs,
    )


def train(
    job: TrainingJob,
    *,
    sd_scripts: Path | None = None,
    install: Install | None = None,
    runs: Path | str = "runs",
    launch: LaunchOptions | None = None,
    on_event: Callable[[Event], object] | None = None,
    show_progress: bool = True,
    watchdogs: Watchdogs | None = None,
) -> RunResult:
    """Train ``job`` and block until it ends. Interrupting (Ctrl-C) cancels the trainer."""
    run = start(
        job,
        sd_scripts=sd_scripts,
        install=install,
        runs=runs,
        launch=launch,
        on_event=on_event,
        show_progress=show_progress,
        watchdogs=watchdogs,
    )
    try:
        return run.wait()
    except KeyboardInterrupt:
        run.cancel()
        return run.wait()


def iter_events(run_dir: Path | str) -> Sequence[Event]:
    """The events recorded in a run directory.

    Raises:
        ConfigError: ``run_dir`` is not a run directory (no such folder, or no events.jsonl and
            no status file in it), so a mistyped path is not taken for a run with no events.
    """
    path = Path(run_dir)
    if not (path / "events.jsonl").is_file() and not (path / "status").is_file():
        from .errors import ConfigError, Problem

        what = "no such folder" if not path.exists() else "not a run directory (no events.jsonl)"
        raise ConfigError(
            [Problem(str(path), what, "pass a run directory, e.g. runs/<id> (runs list)")],
            source="iter_events",
        )
    return read_events(path)
