"""The run page's writer: keeps ``<run dir>/index.html`` up to date as events arrive.

:class:`RunPageSink` folds every event (the same fold as everything else) and rewrites the page
(:func:`kohya_orchestrator.ui.runpage.render_run_page`) atomically, at most every
``min_interval_s`` seconds, at once for the events a reader waits for (the banner, an epoch, a
checkpoint, a sample, a warning), and a last time when the run ends (``close``, called after the
run's status is written, so that a full disk keeps its last bytes for the status). Sample images are linked
(hard link, else copied) into ``<run dir>/samples/`` so that the page's links stay relative and
the run folder can be moved or copied with its pictures. :func:`write_run_page` builds the page
of an existing run from its ``events.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from urllib.parse import quote

from .._fs import write_atomic
from ..events import (
    CheckpointSaved,
    EpochStarted,
    Event,
    PlanMismatch,
    RunFinished,
    SampleImageSaved,
    SampleSuspect,
    SummaryFold,
    TrainingPlan,
    read_events,
)
from ..ui.runpage import PageFiles, render_run_page

__all__ = ["PAGE_NAME", "SAMPLES_DIR", "RunPageSink", "write_run_page"]

PAGE_NAME = "index.html"
"""The run page's file name in the run directory."""

SAMPLES_DIR = "samples"
"""Where the page's copies (hard links) of the sample images go, in the run directory."""

_AT_ONCE = (
    TrainingPlan,
    EpochStarted,
    CheckpointSaved,
    SampleImageSaved,
    SampleSuspect,
    PlanMismatch,
)


class RunPageSink:
    """Writes ``index.html`` into a run directory while the run goes on (an ``EventSink``)."""

    def __init__(
        self,
        run_dir: Path | str,
        *,
        min_interval_s: float = 2.0,
        output_dir: Path | str | None = None,
    ) -> None:
        """Write the page of the run in ``run_dir``.

        Args:
            run_dir: The run directory.
            min_interval_s: Least time between two writes, for events nobody waits for.
            output_dir: Where to look for a checkpoint or sample that is not at the path its event
                names (the output folder was moved since).
        """
        self.run_dir = Path(run_dir)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.min_interval_s = min_interval_s
        self._fold = SummaryFold()
        self._hrefs: dict[str, str] = {}
        self._checkpoints: list[str] = []
        self._last_write = -float("inf")
        self._dirty = False
        self.live = True

    def __repr__(self) -> str:
        return f"RunPageSink({str(self.run_dir)!r})"

    def handle(self, event: Event) -> None:
        """Fold the event; rewrite the page when it is due."""
        self._take(event)
        if isinstance(event, RunFinished):
            return  # close() writes the final page, after the run's status is on disk
        if (
            isinstance(event, _AT_ONCE)
            or time.monotonic() - self._last_write >= self.min_interval_s
        ):
            self.write()

    def _take(self, event: Event) -> None:
        self._fold.add(event)
        self._dirty = True
        if isinstance(event, SampleImageSaved):
            self._hrefs[event.path] = self._link_sample(self._find(event.path, "sample"))
        elif isinstance(event, CheckpointSaved):
            self._checkpoints.append(event.path)

    def close(self) -> None:
        """Write the final page."""
        if self._dirty or not (self.run_dir / PAGE_NAME).exists():
            self.write()

    def write(self) -> Path:
        """Write the page now; returns its path."""
        summary = self._fold.summary()
        sizes: dict[str, int | None] = {}
        for path in self._checkpoints:
            try:
                sizes[path] = self._find(path).stat().st_size
            except OSError:
                sizes[path] = None  # not written yet, or removed since
        run_id = summary.started.run_id if summary.started is not None else self.run_dir.name
        html = render_run_page(
            summary,
            run_id=run_id,
            files=PageFiles(sample_hrefs=dict(self._hrefs), checkpoint_sizes=sizes),
            live=self.live and summary.finished is None,
        )
        self._last_write = time.monotonic()
        self._dirty = False
        return write_atomic(self.run_dir / PAGE_NAME, html)

    def _find(self, path: str, sub: str = "") -> Path:
        found = Path(path)
        if not found.exists() and self.output_dir is not None:
            moved = self.output_dir / sub / found.name
            if moved.exists():
                return moved
        return found

    def _link_sample(self, source: Path) -> str:
        """Link (or copy) a sample image into the run directory; returns its relative URL."""
        target = self.run_dir / SAMPLES_DIR / source.name
        href = f"{SAMPLES_DIR}/{quote(source.name)}"
        if target.exists():
            return href
        try:
            target.parent.mkdir(exist_ok=True)
            try:
                os.link(source, target)
            except OSError:  # another file system, or links not allowed: copy
                shutil.copyfile(source, target)
        except OSError:
            with contextlib.suppress(OSError):
                target.unlink()
            # the image is missing or unreadable: point at it where it is
            return quote(os.path.relpath(source, self.run_dir).replace(os.sep, "/"))
        return href


def write_run_page(run_dir: Path | str, *, live: bool = False) -> Path:
    """(Re)write the run page of a run directory from its ``events.jsonl``.

    Args:
        run_dir: The run directory.
        live: Let the page reload itself while the run has not finished (for a run still going
            on in another process; its own writer replaces the page anyway).

    Returns:
        The page's path.
    """
    output_dir: str | None = None
    with contextlib.suppress(OSError, ValueError, LookupError, TypeError):
        job = json.loads((Path(run_dir) / "job.json").read_text(encoding="utf-8"))
        output_dir = job["training"]["output_dir"]
    sink = RunPageSink(run_dir, min_interval_s=float("inf"), output_dir=output_dir)
    sink.live = live
    for event in read_events(run_dir):
        sink._take(event)
    return sink.write()
