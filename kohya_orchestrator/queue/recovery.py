"""After a runner died: stop the trainer it left behind, close its run directory; find the state
to resume from."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..events import EventAdapter, RunFinished, RunStatus, read_events
from ..jobs.restart import complete_state, newest_state
from ..launch.process import kill_tree
from ..launch.rundir import RunDir
from .records import Attempt, QueueJob

__all__ = ["close_interrupted_run", "latest_state", "stop_leftover_trainer"]

_OPEN_STATUSES = (None, "pending", "starting", "running")


def _is_our_trainer(pid: int, run_dir: Path) -> bool:
    # The trainer's command line names <run_dir>/config.toml, so a pid reused by an unrelated
    # process since the runner died is never signalled. Without /proc (macOS) the pid, recorded
    # moments before the crash, is trusted.
    proc = Path("/proc")
    if not (proc / "self").exists():  # pragma: no cover - Linux CI
        return True
    try:
        cmdline = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False  # gone
    return os.fsencode(str(run_dir)) in cmdline  # a zombie has an empty command line


def stop_leftover_trainer(job: QueueJob) -> bool:
    """SIGKILL the process tree of a dead runner's trainer; True when something was signalled.

    A trainer runs in its own session, so it outlives a runner killed with SIGKILL (and would go
    on writing checkpoints that a rerun then collides with).
    """
    if job.trainer_pid is None or job.run_dir is None:
        return False
    if job.runner_host is not None and job.runner_host != socket.gethostname():
        return False  # not ours to signal
    if not _is_our_trainer(job.trainer_pid, job.run_dir.resolve()):
        return False
    return bool(kill_tree(job.trainer_pid))


def close_interrupted_run(run_dir: Path, reason: str) -> None:
    """Give a run directory that its dead runner left 'running' an end: status, event, note."""
    if not run_dir.is_dir():
        return
    rd = RunDir(run_dir)
    if rd.read_status() not in _OPEN_STATUSES:
        return
    events = read_events(run_dir)
    if not any(e.kind == "run_finished" for e in events):
        last = events[-1] if events else None
        finished = RunFinished(
            seq=last.seq + 1 if last else 0,
            t=last.t if last else 0.0,
            status=RunStatus.FAILED,
            returncode=None,
            duration_s=last.t if last else 0.0,
            reason=reason,
        )
        path = rd.events_jsonl
        # the dead writer may have left half a line: start ours on a fresh one
        if path.is_file() and path.stat().st_size:
            with path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    rd.append_event_line("")
        rd.append_event_line(EventAdapter.dump_json(finished).decode("utf-8"))
    rd.write_text("interrupted.txt", reason + "\n")
    rd.set_status(RunStatus.FAILED.value)


def latest_state(data: dict[str, Any], attempts: Sequence[Attempt]) -> Path | None:
    """The newest whole sd-scripts state folder of a job (``<name>-state``,
    ``<name>-<epoch>-state``, ``<name>-step<N>-state``), from its attempts' StateSaved events or
    its output folder; a folder torn by a crash while saving is skipped."""
    training = data.get("training", {}) if isinstance(data.get("training"), dict) else {}
    output_dir = Path(str(training.get("output_dir", "")))
    output_name = str(training.get("output_name", "lora"))
    candidates: set[Path] = set()
    for attempt in attempts:
        if attempt.run_dir is None:
            continue
        for event in read_events(attempt.run_dir):
            if event.kind == "state_saved":
                candidates.add(output_dir / Path(event.path).name)
    newest = newest_state(output_dir, output_name)
    if newest is not None:
        candidates.add(newest)
    existing = [p for p in candidates if p.is_dir() and complete_state(p)]
    if not existing:
        return None
    return max(existing, key=lambda p: (p.stat().st_mtime, p.name))
