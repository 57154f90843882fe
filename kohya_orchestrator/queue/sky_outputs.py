"""A cloud run's outputs into the job's own output folder, never over a file that is there.

The remote output folder is first copied whole into ``<run dir>/remote-output/`` (by the
backend: rsync from the cluster, or the bucket's sync command); :func:`deliver_outputs` then moves
each entry into the job's local ``output_dir``. An entry whose name is already taken there stays
where it is, and the result says so: nothing of the user's is overwritten and nothing fetched is
lost.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..jobs.restart import STATE_DIR
from ..launch.rundir import RunDir

__all__ = ["STAGING", "Delivered", "deliver_outputs", "fetch_into_run"]

STAGING = "remote-output"


@dataclass
class Delivered:
    """What a delivery moved, and what it left in the staging folder because the name was taken."""

    output_dir: Path
    moved: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    staging: Path | None = None

    def summary(self) -> str:
        """One line for the user."""
        text = f"{len(self.moved)} output file(s)/folder(s) in {self.output_dir}"
        if self.kept:
            text += (
                f"; {len(self.kept)} left in {self.staging} because {self.output_dir} already "
                f"has an entry of that name ({', '.join(self.kept[:3])})"
            )
        return text


def deliver_outputs(staging: Path, output_dir: Path) -> Delivered:
    """Move every entry of ``staging`` into ``output_dir`` unless that name is already there.

    Entries (files, and folders such as ``sample/`` or ``<name>-state``) move whole; a folder
    whose name exists locally is merged one level down by the same rule, so new samples join an
    existing ``sample/`` folder without replacing any image in it. A saved state is never merged
    (half of one state and half of another would not load): its name taken, it stays whole.
    """
    done = Delivered(output_dir=output_dir, staging=staging)
    _merge(staging, output_dir, done, prefix="")
    return done


def _state(folder: Path) -> bool:
    return STATE_DIR.match(folder.name) is not None


def _merge(source: Path, target: Path, done: Delivered, prefix: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        dest = target / entry.name
        name = prefix + entry.name
        if not dest.exists() and not dest.is_symlink():
            shutil.move(str(entry), str(dest))
            done.moved.append(name)
        elif entry.is_dir() and dest.is_dir() and not entry.is_symlink() and not _state(entry):
            _merge(entry, dest, done, prefix=f"{name}/")
        else:
            done.kept.append(name)


def fetch_into_run(run_dir: RunDir, output_dir: Path, fetch: Callable[[Path], None]) -> Delivered:
    """Fetch the remote outputs into ``<run dir>/remote-output`` and deliver them; writes
    ``outputs.json`` (moved, kept) in the run directory. ``fetch`` is the backend's
    ``fetch_outputs`` bound to the run's handle."""
    staging = run_dir.path / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    fetch(staging)
    done = deliver_outputs(staging, output_dir)
    run_dir.write_json(
        "outputs.json", {"output_dir": str(output_dir), "moved": done.moved, "kept": done.kept}
    )
    if not done.kept:
        shutil.rmtree(staging, ignore_errors=True)
        done.staging = None
    return done
