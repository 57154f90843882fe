"""Start the trainer, tee its output, and stop its whole process tree: the only ``Popen`` here.

The child runs in a new session (its own process group) with ``stdin`` closed and ``stderr`` merged
into ``stdout``: sd-scripts writes tqdm and rich logs to stderr and its banner, epoch and checkpoint
lines to stdout, and the parser needs their relative order. One thread reads the pipe in binary and
appends every chunk to ``console.log`` (flushed) before handing it to ``on_output``.

Stopping (:meth:`ProcessHandle.cancel`) works on the group and on the psutil tree, because
``accelerate launch`` is a parent whose trainer child keeps running (and saves) when only the parent
is signalled (measured: docs/e2e-lab.md, "Signals").

Nothing of a run outlives it: while the child runs, a light thread records its descendants (every
second); once it has exited, for whatever reason (done, crashed, killed from outside, canceled),
:meth:`ProcessHandle.wait` stops what is left of its process group, its session and the recorded
descendants (SIGTERM, a short grace, SIGKILL) before it returns, and lists them in
:attr:`ProcessHandle.leftovers`. When nothing is left, that costs one scan of the pid table.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import psutil

from kohya_orchestrator.errors import LaunchError
from kohya_orchestrator.render.command import LaunchSpec

__all__ = ["OutputCallback", "ProcessHandle", "kill_tree", "session_members", "spawn"]

OutputCallback = Callable[[bytes], None]

_READ_SIZE = 65536
# After the child exits, how long wait() lets the reader drain the pipe. A descendant that outlived
# the child and inherited the pipe keeps it open; the reader then goes on in the background.
_DRAIN_S = 5.0
_POLL_S = 0.05
_REAP_S = 5.0
_MAX_RECORDED_ERRORS = 20
# How often the descendants are recorded while the child runs (one psutil scan of /proc each).
_TRACK_S = 1.0
# After the child exited: seconds between SIGTERM and SIGKILL for what it left running.
_LEFTOVER_GRACE_S = 3.0
# A process created this long before the child is never taken for one of its group (the clock of
# psutil's create_time() can be a second off time.time()).
_CLOCK_SLACK_S = 2.0
_SIGNAL_NAMES = {"int": "SIGINT", "term": "SIGTERM", "kill": "SIGKILL"}
# The child leads a group of its own (a new session on POSIX).
_NEW_GROUP: dict[str, Any] = (
    {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
    if sys.platform == "win32"
    else {"start_new_session": True}
)


def spawn(
    spec: LaunchSpec,
    *,
    console_log: Path,
    on_output: OutputCallback | None = None,
    leftover_grace_s: float = _LEFTOVER_GRACE_S,
    track_interval_s: float = _TRACK_S,
    on_log_error: Callable[[OSError], None] | None = None,
) -> ProcessHandle:
    """Start ``spec.argv`` and tee its merged output to ``console_log``.

    Args:
        spec: What to run. ``spec.env`` is added to (and overrides) ``os.environ``.
        console_log: File the raw output is appended to (created with its parent folder).
        on_output: Called from the reader thread with each raw chunk, after it was written to
            ``console_log``. Exceptions it raises are recorded in
            :attr:`ProcessHandle.output_errors` and never stop the reading.
        leftover_grace_s: After the process exited, seconds between the SIGTERM and the SIGKILL
            sent to what it left running (see :meth:`ProcessHandle.wait`).
        track_interval_s: Seconds between two records of the process's descendants.
        on_log_error: Called once, from the reader thread, when writing ``console_log`` fails
            (a full disk); the output is then only drained and passed to ``on_output``.

    Returns:
        A handle to wait for, poll or cancel the process.

    Raises:
        LaunchError: The working directory is missing, or the program could not be started.
    """
    if not spec.argv:
        raise LaunchError("cannot start the trainer: the command is empty")
    if not spec.cwd.is_dir():
        raise LaunchError(f"cannot start the trainer: working directory {spec.cwd} does not exist")
    console_log.parent.mkdir(parents=True, exist_ok=True)
    log = console_log.open("ab")
    env = {**os.environ, **spec.env}
    spawned_at = time.time()
    try:
        popen = subprocess.Popen(
            list(spec.argv),
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            shell=False,
            **_NEW_GROUP,
        )
    except OSError as exc:
        log.close()
        raise LaunchError(
            f"could not start {spec.argv[0]!r}: {exc.strerror or exc}. "
            "Check that the program exists and is executable (see command.json in the run folder)."
        ) from exc
    return ProcessHandle(
        popen,
        log=log,
        console_log=console_log,
        on_output=on_output,
        on_log_error=on_log_error,
        leftover_grace_s=leftover_grace_s,
        track_interval_s=track_interval_s,
        spawned_at=spawned_at,
    )


class ProcessHandle:
    """A running (or finished) trainer started by :func:`spawn`.

    Thread-safe: :meth:`cancel` may be called from a signal handler's thread while another thread
    is in :meth:`wait`.
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        *,
        log: BinaryIO,
        console_log: Path,
        on_output: OutputCallback | None,
        on_log_error: Callable[[OSError], None] | None = None,
        leftover_grace_s: float = _LEFTOVER_GRACE_S,
        track_interval_s: float = _TRACK_S,
        spawned_at: float | None = None,
    ) -> None:
        """Wrap a started process; use :func:`spawn` rather than calling this."""
        self._popen = popen
        self._log = log
        self.console_log = console_log
        self._on_output = on_output
        self._on_log_error = on_log_error
        self._log_failed = False
        # Re-entrant: a second Ctrl-C handled on the thread that is inside cancel() must not
        # deadlock; it escalates to SIGKILL instead.
        self._cancel_lock = threading.RLock()
        self._cancel_done = False
        self._canceled = False
        self._cancelling = False
        # Every descendant seen while the child ran (psutil.Process remembers its create_time, so a
        # reused pid is never taken for it). Written by the tracker thread and by stops.
        self._tracked: dict[int, psutil.Process] = {}
        self._track_lock = threading.Lock()
        self._exited = threading.Event()
        self._reaped = False
        self._leftover_grace_s = leftover_grace_s
        # pid -> [description, last signal sent]: what outlived the child and had to be stopped
        self._survivors: dict[int, list[str]] = {}
        self._bytes_read = 0
        self.output_errors: list[str] = []
        """Exceptions raised by ``on_output`` or by writing the log (the first 20)."""
        self._leader: psutil.Process | None
        try:
            self._leader = psutil.Process(popen.pid)
        except psutil.Error:
            self._leader = None  # it already exited
        # Members of its group are never older than the child (compared on psutil's clock)
        self._started = (spawned_at if spawned_at is not None else time.time()) - _CLOCK_SLACK_S
        if self._leader is not None:
            with contextlib.suppress(psutil.Error):
                self._started = self._leader.create_time()
        self._reader = threading.Thread(
            target=self._read_output, name=f"tee-{popen.pid}", daemon=True
        )
        self._reader.start()
        self._tracker = threading.Thread(
            target=self._track, args=(track_interval_s,), name=f"track-{popen.pid}", daemon=True
        )
        self._tracker.start()

    def __enter__(self) -> ProcessHandle:
        """Use as a context manager: leaving it cancels a still-running process."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Cancel the process if it is still running, then wait for it."""
        if self.poll() is None:
            self.cancel()
        self.wait()

    @property
    def pid(self) -> int:
        """Process id of the child (also its process-group id on POSIX)."""
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """Exit code once known (negative: killed by that signal), else None."""
        return self._popen.returncode

    @property
    def canceled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._canceled

    @property
    def leftovers(self) -> list[str]:
        """What outlived the process and was stopped after it exited, one line each.

        E.g. ``pid 4242 python train_network.py --config_file … (SIGTERM)``: the pid, its command
        line (shortened) and the last signal it was sent (``still running after SIGKILL`` when
        even that did not end it). Complete once :meth:`wait` returned.
        """
        with self._track_lock:
            survivors = {pid: list(entry) for pid, entry in self._survivors.items()}
        lines = []
        for pid, (text, stage) in sorted(survivors.items()):
            proc = self._tracked.get(pid)
            still = proc is not None and _alive(proc)
            end = f"still running after {_SIGNAL_NAMES[stage]}" if still else _SIGNAL_NAMES[stage]
            lines.append(f"pid {pid} {text} ({end})")
        return lines

    @property
    def bytes_read(self) -> int:
        """How many bytes of output were read so far."""
        return self._bytes_read

    @property
    def output_closed(self) -> bool:
        """True once the reader saw the end of the output and closed ``console.log``."""
        return not self._reader.is_alive()

    def poll(self) -> int | None:
        """Return the exit code if the process has exited, else None."""
        return self._popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit and for its output to be drained.

        Args:
            timeout: Seconds to wait for the exit; None waits for ever.

        Returns:
            The exit code (negative: killed by that signal).

        Raises:
            TimeoutError: The process was still running after ``timeout`` seconds.

        After the exit, and before returning: a stop in progress (:meth:`cancel`, from any thread)
        finishes its escalation; then whatever the process left running (members of its process
        group or session, descendants recorded while it ran) gets SIGTERM and, after the
        ``leftover_grace_s`` of :func:`spawn`, SIGKILL (listed in :attr:`leftovers`); then the
        output gets up to 5 more seconds to drain.
        """
        try:
            rc = self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"process {self.pid} still running after {timeout} s") from None
        self._exited.set()
        self._stop_leftovers()
        self._reader.join(_DRAIN_S)
        return rc

    def descendants(self) -> list[int]:
        """Pids of the live descendants (children, grandchildren...) of the process.

        Only found while the process itself runs: orphans re-parent away from it.
        """
        if self._popen.poll() is not None or self._leader is None:
            return []
        try:
            children = self._leader.children(recursive=True)
        except psutil.Error:
            return []
        self._record(children)
        return [p.pid for p in children if _alive(p)]

    def cancel(self, grace_s: float = 10.0) -> None:
        """Stop the process and every descendant; returns when none is left. Idempotent.

        SIGINT goes to the process group (sd-scripts then stops with a KeyboardInterrupt in each
        process), then after ``grace_s`` SIGTERM, then after at most 5 s more SIGKILL to every
        remaining process of the tree and the group. The tree is snapshotted before the first
        signal and refreshed before each one, since children re-parent when their parent dies.

        Calling it again while it waits (from a signal handler on the same thread, e.g. a second
        Ctrl-C) sends SIGKILL at once; calling it from another thread waits for the first call.
        An exception that interrupts the waiting (a KeyboardInterrupt) also sends SIGKILL to
        everything left before it propagates. :meth:`wait` returns only after a stop finished.

        Args:
            grace_s: Seconds to wait after SIGINT before escalating.
        """
        with self._cancel_lock:
            if self._cancel_done:
                return
            if self._cancelling:
                self._send("kill", self._tracked, sys.platform != "win32")
                return
            self._canceled = True
            self._cancelling = True
            try:
                self._stop_tree(grace_s)
            except BaseException:
                self._kill_now()
                raise
            finally:
                self._cancel_done = True
        self._reader.join(_DRAIN_S)

    # ---------------------------------------------------------------- internals

    def _read_output(self) -> None:
        stdout = self._popen.stdout
        assert stdout is not None  # spawn() always passes stdout=PIPE
        fd = stdout.fileno()
        try:
            while True:
                try:
                    chunk = os.read(fd, _READ_SIZE)
                except OSError:
                    break
                if not chunk:
                    break
                self._bytes_read += len(chunk)
                try:
                    if not self._log_failed:
                        self._log.write(chunk)
                        self._log.flush()
                except OSError as exc:  # disk full: keep draining so the child never blocks
                    self._log_failed = True
                    self._record_error(f"writing {self.console_log}: {exc}")
                    if self._on_log_error is not None:
                        with contextlib.suppress(Exception):
                            self._on_log_error(exc)
                if self._on_output is not None:
                    try:
                        self._on_output(chunk)
                    except Exception as exc:
                        self._record_error(f"on_output raised {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(OSError):
                self._log.close()
            with contextlib.suppress(OSError):
                stdout.close()

    def _track(self, interval_s: float) -> None:
        # Record the descendants while the child runs: after it exits, its orphans re-parent away
        # and only these records (or a shared group/session) still tie them to the run.
        while self._popen.poll() is None and self._leader is not None:
            with contextlib.suppress(psutil.Error):
                self._record(self._leader.children(recursive=True))
            if self._exited.wait(interval_s):
                return

    def _record(self, procs: list[psutil.Process]) -> None:
        with self._track_lock:
            for proc in procs:
                known = self._tracked.get(proc.pid)
                if known is None or known != proc:  # equal: same pid and same create_time
                    self._tracked[proc.pid] = proc

    def _procs(self, tracked: dict[int, psutil.Process]) -> list[psutil.Process]:
        with self._track_lock:
            return list(tracked.values())

    def _record_error(self, text: str) -> None:
        if len(self.output_errors) < _MAX_RECORDED_ERRORS:
            self.output_errors.append(text)

    def _leader_running(self) -> bool:
        return self._popen.poll() is None

    def _stop_tree(self, grace_s: float) -> None:
        # The group id is the leader's pid (new session). Only signal the group while the leader
        # is not reaped, or soon after: a reaped pid could in principle be reused.
        use_group = sys.platform != "win32" and self._leader_running()
        tracked = self._tracked
        self._refresh(tracked)
        if not self._anything_alive(tracked):
            return

        stages: list[tuple[str, float]] = [("int", grace_s), ("term", min(grace_s, 5.0))]
        for stage, wait_s in stages:
            self._refresh(tracked)
            if not self._anything_alive(tracked):
                break
            self._note_survivors(tracked, stage)
            self._send(stage, tracked, use_group)
            self._wait_gone(tracked, wait_s)
        self._refresh(tracked)
        if self._anything_alive(tracked) or use_group:
            self._note_survivors(tracked, "kill")
            self._send("kill", tracked, use_group)
            self._wait_gone(tracked, _REAP_S)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(_REAP_S)

    def _stop_leftovers(self) -> None:
        # The leader has exited. A stop in progress holds the lock: wait for its escalation.
        with self._cancel_lock:
            if self._reaped or (self._cancelling and not self._cancel_done):
                return  # done already, or re-entered from the stopping thread itself
            self._reaped = True
            tracked = self._tracked
            try:
                for stage, wait_s in (("term", self._leftover_grace_s), ("kill", _REAP_S)):
                    self._refresh(tracked)
                    if not self._anything_alive(tracked):
                        return
                    self._note_survivors(tracked, stage)
                    self._send(stage, tracked, False)
                    self._wait_gone(tracked, wait_s)
            except BaseException:
                self._kill_now()
                raise

    def _kill_now(self) -> None:
        """SIGKILL everything left at once, without waiting (a stop was interrupted)."""
        tracked = self._tracked
        with contextlib.suppress(Exception):
            self._refresh(tracked)
        self._note_survivors(tracked, "kill")
        self._send("kill", tracked, sys.platform != "win32" and self._leader_running())

    def _refresh(self, tracked: dict[int, psutil.Process]) -> None:
        """Add the current descendants and, once the leader is gone, its group's members."""
        if sys.platform != "win32" and not self._leader_running():
            self._record(list(self._orphaned_group_members().values()))
        roots = [p for p in self._procs(tracked) if _alive(p)]
        if self._leader is not None and self._leader_running():
            roots.insert(0, self._leader)
        for root in roots:
            try:
                children = root.children(recursive=True)
            except psutil.Error:
                continue
            self._record(children)

    def _orphaned_group_members(self) -> dict[int, psutil.Process]:
        # The leader is gone: what of its group or session outlived it (a reused id cannot match).
        if self._id_reused():
            return {}
        found = session_members(self.pid, self._started, skip=(os.getpid(), self.pid))
        return {p.pid: p for p in found}

    def _id_reused(self) -> bool:
        """Whether the reaped leader's pid names a new process: then its group and session ids
        may too. (The kernel never hands out a pid still used as a group or session id, so while
        our group has members, the pid stays free.)"""
        return psutil.pid_exists(self.pid)

    def _note_survivors(self, tracked: dict[int, psutil.Process], stage: str) -> None:
        """Remember what outlived the leader, and the signal it is about to get."""
        if self._leader_running():
            return
        alive = [p for p in self._procs(tracked) if _alive(p)]
        new = {p.pid: _describe(p) for p in alive if p.pid not in self._survivors}
        with self._track_lock:
            for proc in alive:
                self._survivors[proc.pid] = [
                    new.get(proc.pid) or self._survivors[proc.pid][0],
                    stage,
                ]

    def _anything_alive(self, tracked: dict[int, psutil.Process]) -> bool:
        return self._leader_running() or any(_alive(p) for p in self._procs(tracked))

    def _send(self, stage: str, tracked: dict[int, psutil.Process], use_group: bool) -> None:
        if sys.platform == "win32":  # pragma: no cover - no Windows CI yet
            if stage == "int" and self._leader_running():
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.CTRL_BREAK_EVENT)
                return
            procs = [p for p in self._procs(tracked) if _alive(p)]
            if self._leader is not None and self._leader_running():
                procs.append(self._leader)
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    if stage == "term":
                        proc.terminate()
                    else:
                        proc.kill()
            return
        sig = {"int": signal.SIGINT, "term": signal.SIGTERM, "kill": signal.SIGKILL}[stage]
        if use_group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
        # Members of other groups (a child that called setsid) do not get the group signal.
        for proc in self._procs(tracked):
            if not _alive(proc):
                continue
            try:
                in_group = use_group and os.getpgid(proc.pid) == self.pid
            except OSError:
                continue
            if not in_group:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)

    def _wait_gone(self, tracked: dict[int, psutil.Process], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._leader_running():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._popen.wait(_POLL_S)
            if not self._anything_alive(tracked):
                return
            if time.monotonic() >= deadline:
                return
            if not self._leader_running():
                time.sleep(_POLL_S)


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (an exited process nobody reaped is not running)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(proc: psutil.Process, limit: int = 160) -> str:
    """The command line of ``proc``, shortened (its name when that cannot be read)."""
    try:
        text = " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        text = "?"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def session_members(
    leader: int, since: float, *, skip: tuple[int, ...] = ()
) -> list[psutil.Process]:
    """Live processes of the session or process group ``leader`` started at or after ``since``
    (psutil's clock; the leader itself included while it runs). A syscall per pid first, psutil
    only for the few that match."""
    found: list[psutil.Process] = []
    for pid in psutil.pids():
        if pid in skip:
            continue
        try:
            if leader not in (os.getpgid(pid), os.getsid(pid)):
                continue
            proc = psutil.Process(pid)
            if proc.create_time() < since or not _alive(proc):
                continue
        except (OSError, psutil.Error):
            continue
        found.append(proc)
    return found


def kill_tree(pid: int, *, timeout_s: float = 5.0) -> list[int]:
    """SIGKILL a process and all its descendants (snapshotted first), then wait for them.

    For processes this Python did not start (e.g. a detached run found by its pid). For a process
    from :func:`spawn`, use :meth:`ProcessHandle.cancel`, which also keeps its exit code.

    Args:
        pid: The root of the tree.
        timeout_s: How long to wait for them to disappear.

    Returns:
        The pids that were signalled.
    """
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    signalled: list[int] = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
            signalled.append(proc.pid)
    deadline = time.monotonic() + timeout_s
    while any(_alive(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    return signalled
