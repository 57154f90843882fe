"""Sample the trainer's resource use (psutil tree, optional nvidia-smi) on a light thread.

The monitor only measures and calls back with a plain dict; turning samples into
``ResourceSample`` events and painting them is the caller's business.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import psutil

__all__ = [
    "ResourceMonitor",
    "SampleCallback",
    "process_runs",
    "process_started",
    "processes_naming",
    "sample_gpu_memory",
]

SampleCallback = Callable[[dict[str, Any]], None]

_MIB = 1024 * 1024


class ResourceMonitor:
    """Every ``interval_s`` seconds, measure the process tree under ``pid`` and call ``callback``.

    Each sample is a dict: ``t`` (seconds since start), ``pid``, ``num_processes``, ``rss_bytes``,
    ``rss_mib`` (sum over the tree), ``cpu_percent`` (sum over the tree; 100 = one core busy) and,
    when nvidia-smi is on PATH, ``gpu_memory_used_mib`` (one entry per GPU; None otherwise).

    The thread ends by itself when the process is gone. Exceptions raised by ``callback`` are
    swallowed (counted in :attr:`callback_errors`): a broken consumer must never stop a run.
    """

    def __init__(
        self,
        pid: int,
        interval_s: float,
        callback: SampleCallback,
        *,
        gpu: bool | None = None,
    ) -> None:
        """Prepare the monitor; call :meth:`start` (or use it as a context manager).

        Args:
            pid: Root of the process tree (the launcher).
            interval_s: Seconds between samples (nvidia-smi costs ~50 ms, so keep it >= 1 on GPUs).
            callback: Receives each sample, on the monitor thread.
            gpu: Query nvidia-smi; None means "when it is on PATH".
        """
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.pid = pid
        self.interval_s = interval_s
        self._callback = callback
        self._smi = shutil.which("nvidia-smi") if gpu is not False else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"monitor-{pid}", daemon=True)
        self._procs: dict[int, psutil.Process] = {}
        self._t0 = time.monotonic()
        self.callback_errors = 0
        self.samples_taken = 0

    def __enter__(self) -> ResourceMonitor:
        """Start sampling."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop sampling."""
        self.stop()

    def start(self) -> None:
        """Start the sampling thread (the first sample is taken at once)."""
        self._t0 = time.monotonic()
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sampling and wait for the thread (at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the sampling thread is alive."""
        return self._thread.is_alive()

    def sample(self) -> dict[str, Any] | None:
        """Take one sample now (None when the process is gone)."""
        root = self._procs.get(self.pid)
        try:
            if root is None:
                root = psutil.Process(self.pid)
                self._procs[self.pid] = root
            if not root.is_running() or root.status() == psutil.STATUS_ZOMBIE:
                return None
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        current: dict[int, psutil.Process] = {}
        rss = 0
        cpu = 0.0
        for proc in tree:
            # Reuse Process objects so cpu_percent() measures since the previous sample.
            known = self._procs.get(proc.pid, proc)
            try:
                with known.oneshot():
                    rss += known.memory_info().rss
                    cpu += known.cpu_percent(None)
            except psutil.Error:
                continue
            current[proc.pid] = known
        self._procs = current
        return {
            "t": round(time.monotonic() - self._t0, 3),
            "pid": self.pid,
            "num_processes": len(current),
            "rss_bytes": rss,
            "rss_mib": round(rss / _MIB, 1),
            "cpu_percent": round(cpu, 1),
            "gpu_memory_used_mib": sample_gpu_memory(self._smi) if self._smi else None,
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            data = self.sample()
            if data is None:
                return
            self.samples_taken += 1
            try:
                self._callback(data)
            except Exception:
                self.callback_errors += 1
            self._stop.wait(self.interval_s)


def sample_gpu_memory(nvidia_smi: str | None = None, timeout_s: float = 5.0) -> list[int] | None:
    """Used memory per GPU in MiB from ``nvidia-smi``, or None when it is absent or fails.

    Args:
        nvidia_smi: Path of the tool (default: looked up on PATH).
        timeout_s: Limit for one query.
    """
    smi = nvidia_smi or shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run(
            [smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    used: list[int] = []
    for line in done.stdout.splitlines():
        with contextlib.suppress(ValueError):
            used.append(int(float(line.strip())))
    return used


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (psutil's clock), or None when it does not run."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def process_runs(pid: int, started: object, slack_s: float = 1.0) -> bool:
    """Whether ``pid`` runs (not a zombie) and, when ``started`` is a time, started then: a pid
    reused by another process since does not count."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if isinstance(started, (int, float)):
            return abs(proc.create_time() - started) < slack_s
        return True
    except psutil.Error:
        return False


def processes_naming(text: str, since: float) -> list[psutil.Process]:
    """Live processes started at or after ``since`` whose command line contains ``text``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "create_time"]):
        info = proc.info
        if (info["create_time"] or 0.0) >= since and text in " ".join(info["cmdline"] or ()):
            found.append(proc)
    return found
