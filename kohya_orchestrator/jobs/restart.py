"""``train --resume-latest``: the same job started again after its instance went away.

A cloud run kept in a bucket is run again by SkyPilot after a spot preemption, on a new instance,
with the same output folder. :func:`prepare_restart` makes that second start go on from where the
first stopped: with the newest sd-scripts state folder in the output folder
(``<name>-state``, ``<name>-<epoch>-state``, ``<name>-step<N>-state``; saved with
``training.save_state``) it resumes from it (``training.resume``). Without one it starts over,
and first moves the earlier start's checkpoints to ``<output_dir>/superseded/<stamp>/`` so the
new ones never overwrite them (the launch would refuse to).

A state folder is complete only once accelerate wrote its last file, ``random_states_0.pkl``
(after the weights, the optimizer and the scheduler), with no empty file in it: an instance lost
while saving leaves a torn folder that sd-scripts cannot load (``EOFError``, seen with the real
trainer). Torn folders are never resumed from; they are moved aside like old checkpoints.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..models import TrainingJob
from .checks import glob_escape

__all__ = ["STATE_DIR", "complete_state", "newest_state", "prepare_restart", "state_folders"]

STATE_DIR = re.compile(r"^(?P<stem>.+?)(?:-(?:\d+|step\d+))?-state$")
_LAST_FILE = "random_states_0.pkl"  # what accelerate's save_state writes last


def complete_state(folder: Path) -> bool:
    """Whether ``folder`` is a whole saved state (its last file written, no empty file)."""
    try:
        files = [p for p in folder.iterdir() if p.is_file()]
    except OSError:
        return False
    return any(p.name == _LAST_FILE for p in files) and all(p.stat().st_size > 0 for p in files)


def state_folders(output_dir: Path, output_name: str) -> list[Path]:
    """Every state folder of ``output_name`` in ``output_dir``, whole or torn."""
    if not output_dir.is_dir():
        return []
    return [
        entry
        for entry in output_dir.iterdir()
        if entry.is_dir()
        and (match := STATE_DIR.match(entry.name))
        and match.group("stem") == output_name
    ]


def newest_state(output_dir: Path, output_name: str) -> Path | None:
    """The newest complete state folder of ``output_name`` in ``output_dir`` (by time, then
    name)."""
    found = [p for p in state_folders(output_dir, output_name) if complete_state(p)]
    return max(found, key=lambda p: (p.stat().st_mtime, p.name)) if found else None


def prepare_restart(job: TrainingJob, stamp: str) -> tuple[TrainingJob, list[str]]:
    """The job to start again, and what was done (one line each).

    Args:
        job: The job as it was started the first time (paths as the trainer sees them).
        stamp: Names the ``superseded/`` folder when checkpoints are moved aside.
    """
    t = job.training
    out = Path(t.output_dir)
    if t.resume:
        return job, [f"resuming from {t.resume}, as the job says"]
    aside = out / "superseded" / stamp
    notes: list[str] = []
    torn = [p for p in state_folders(out, t.output_name) if not complete_state(p)]
    if torn:
        _move(torn, aside)
        notes.append(
            f"{len(torn)} state folder(s) the earlier start did not finish saving "
            f"({torn[0].name}) moved to {aside}"
        )
    state = newest_state(out, t.output_name)
    if state is not None:
        training = t.model_copy(update={"resume": str(state)})
        return job.model_copy(update={"training": training}), [*notes, f"resuming from {state}"]
    earlier = (
        sorted(out.glob(f"{glob_escape(t.output_name)}-*.{t.save_model_as}"))
        if out.is_dir()
        else []
    )
    final = out / f"{t.output_name}.{t.save_model_as}"
    if final.is_file():
        earlier.append(final)
    if not earlier:
        return job, [*notes, "no saved state: training from the start"]
    _move(earlier, aside)
    return job, [
        *notes,
        f"no saved state: training from the start; the earlier start's {len(earlier)} "
        f"checkpoint(s) are in {aside}",
    ]


def _move(paths: list[Path], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for path in paths:
        shutil.move(str(path), str(into / path.name))
