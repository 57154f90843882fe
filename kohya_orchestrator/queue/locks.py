"""Which runners are alive: each holds an exclusive ``flock`` on ``runners/<id>.lock``.

The kernel drops a flock when its process ends, however it ends (SIGKILL, power loss), so on the
machine that ran it the answer is exact; a runner on another host (a shared queue folder) counts
as gone once its heartbeat is older than :data:`STALE_HEARTBEAT_S`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sys
import time
from pathlib import Path

from ..launch.rundir import slugify

if sys.platform != "win32":
    import fcntl

__all__ = ["STALE_HEARTBEAT_S", "RunnerLock", "runner_alive"]

STALE_HEARTBEAT_S = 120.0
"""A runner on another host counts as gone when its heartbeat is older than this."""


class RunnerLock:
    """The lock a live runner holds on ``runners/<id>.lock`` (released by the kernel at exit)."""

    def __init__(self, queue_dir: Path) -> None:
        """Create and lock a new runner lock file (ids are never reused)."""
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{slugify(self.host)}-{self.pid}-{secrets.token_hex(3)}"
        folder = queue_dir / "runners"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{self.id}.lock"
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if sys.platform != "win32":
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(self._fd, f"{self.pid}\n".encode())

    def release(self) -> None:
        """Unlock and delete the lock file."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def runner_alive(
    queue_dir: Path, runner_id: str, host: str | None, heartbeat: float | None
) -> bool:
    """Whether the runner that claimed a job still runs (its lock is held)."""
    fresh = heartbeat is not None and time.time() - heartbeat < STALE_HEARTBEAT_S
    if host is not None and host != socket.gethostname():
        return fresh
    if sys.platform == "win32":  # pragma: no cover - no Windows CI yet
        return fresh
    path = queue_dir / "runners" / f"{runner_id}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True  # someone holds it: the runner is alive
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
