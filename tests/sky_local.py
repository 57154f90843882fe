"""SkyPilot's part, played here: a :class:`~kohya_orchestrator.launch.sky.SkyBackend` that runs a
task's own setup-less run command as a process on this machine (process control only; it proves
the task's commands, the stream, cancel, restarts and the way outputs come back, never a cloud).

What it stands in for, and how:

- **file mounts**: a local path becomes a symlink at the mount point; a bucket (``{"source":
  "s3://b/p", "mode": "MOUNT"}``) is the folder ``<tmp>/buckets/b/p``, symlinked there too, so a
  second start of the run sees what the first wrote (as a bucket mount does);
- **setup**: the remote venv is this Python, the kohya install in ``$HOME`` is the queue's
  stand-in trainer;
- **the job**: ``bash -c <run>`` in a session of its own; ``follow`` streams its merged output;
- **a preemption** (managed job): ``preempt(line)`` true SIGKILLs every process of the job,
  ``before_restart()`` runs, and the run command starts again, its output following in the same
  stream (as ``sky jobs logs`` does across a recovery);
- **cancel**: SIGTERM to the job's session, as SkyPilot's cancel stops a job's processes;
- **fetch_outputs**: a copy of the remote output folder (the cluster's, or the bucket's);
- **release** (``sky down``): recorded in ``released``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil

from kohya_orchestrator.launch.sky import SkyHandle


def _lose_instance(proc: subprocess.Popen[str]) -> None:
    """What a preemption does to the job's processes: all of them die at once, with no signal
    they could handle (the trainer too, though it runs in a session of its own)."""
    tree = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGKILL)
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(tree, timeout=10)


class LocalSky:
    def __init__(
        self,
        tmp_path: Path,
        install_dir: Path,
        *,
        preempt: Callable[[str], bool] | None = None,
        before_restart: Callable[[], None] | None = None,
    ) -> None:
        self.home = tmp_path / "home"
        self.buckets = tmp_path / "buckets"
        self.home.mkdir(exist_ok=True)
        if not (self.home / "kohya-sd-scripts").exists():
            (self.home / "kohya-sd-scripts").symlink_to(install_dir)
        self.env = {**os.environ, "HOME": str(self.home)}
        self.preempt = preempt
        self.before_restart = before_restart
        self.procs: dict[int, subprocess.Popen[str]] = {}
        self.run: dict[int, str] = {}
        self.launched: list[tuple[dict[str, Any], bool]] = []
        self.canceled: list[SkyHandle] = []
        self.released: list[SkyHandle] = []

    def local(self, remote: str) -> Path:
        """A remote path (``~/...``) or bucket URL as the folder that plays it here."""
        if "://" in remote:
            return self.buckets / remote.split("://", 1)[1]
        return Path(remote.replace("~", str(self.home), 1))

    def _start(self, run: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["bash", "-c", run],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def launch(self, task: Mapping[str, Any], managed: bool, output_source: str) -> SkyHandle:
        self.launched.append((dict(task), managed))
        for dst, src in task["file_mounts"].items():
            target = self.local(dst)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            if isinstance(src, dict):  # a bucket
                folder = self.local(src["source"])
                folder.mkdir(parents=True, exist_ok=True)
                target.symlink_to(folder)
            else:
                target.symlink_to(src)
        venv = self.home / "kohya-job" / ".venv" / "bin"
        if not venv.exists():
            venv.mkdir(parents=True)
            (venv / "python").symlink_to(sys.executable)
        proc = self._start(str(task["run"]))
        self.procs[proc.pid] = proc
        self.run[proc.pid] = str(task["run"])
        return SkyHandle(str(task["name"]), proc.pid, managed, output_source)

    def follow(self, handle: SkyHandle) -> Iterator[str]:
        assert handle.job_id is not None
        proc = self.procs[handle.job_id]
        preempted = False
        while True:
            assert proc.stdout is not None
            for line in proc.stdout:
                yield line
                if handle.managed and not preempted and self.preempt and self.preempt(line):
                    preempted = True
                    _lose_instance(proc)
                    break
            proc.wait()
            proc.stdout.close()
            if not preempted or proc.pid != handle.job_id:
                return
            if self.before_restart is not None:
                self.before_restart()
            proc = self._start(self.run[handle.job_id])  # SkyPilot's recovery: run again
            self.procs[proc.pid] = proc

    def cancel(self, handle: SkyHandle) -> None:
        self.canceled.append(handle)
        assert handle.job_id is not None
        if handle.job_id not in self.procs:  # launched by another process: its session
            os.killpg(handle.job_id, signal.SIGTERM)
        for proc in self.procs.values():  # this job's start, or its restart
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)

    def fetch_outputs(self, handle: SkyHandle, into: Path) -> None:
        source = self.local(handle.output_source)
        if source.is_dir():
            shutil.copytree(source, into, dirs_exist_ok=True, symlinks=True)

    def restarts(self, handle: SkyHandle) -> int | None:
        return None

    def release(self, handle: SkyHandle) -> None:
        self.released.append(handle)

    def stop_all(self) -> None:
        """Leave nothing running after a test."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
