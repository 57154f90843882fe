"""The run directory: the on-disk contract of one run (ansible-runner's artifacts folder).

::

    <runs root>/<YYYYmmdd-HHMMSS>-<slug>/
      job.json  config.toml  dataset.toml  sample_prompts.txt  command.json  environment.json
      console.log   raw child output, one merged stream, bytes as received
      events.jsonl  one typed event per line
      status        pending|starting|running|succeeded|failed|canceled
      rc            exit code
      orchestrator.lock  flock-ed by the orchestrator for the run's life (empty)
      orchestrator.json  its pid, start time and host; the trainer's pid and start time

A run directory is never reused. Every file except the two append-only logs is written to a
temporary file in the same folder and renamed over the target, so a reader never sees half a file.

Faults: while a run is open, a ``.space-reserve`` file holds 64 KiB of the disk, released before
the final records are written, so that a disk the trainer (or anything else) filled still takes
the run's end. A run whose status is still open but whose lock is free lost its orchestrator
(SIGKILL, a crash, a power cut): readers report it as ``interrupted`` (:meth:`RunDir.interruption`)
and stop what is left of its trainer (:meth:`RunDir.stop_leftovers`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import sys
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field

from kohya_orchestrator.errors import ConfigError, Problem

from .._fs import write_atomic
from .monitor import process_runs, process_started, processes_naming
from .process import kill_tree, session_members

if sys.platform != "win32":
    import fcntl

__all__ = [
    "COMMAND_JSON",
    "CONFIG_TOML",
    "CONSOLE_LOG",
    "DATASET_TOML",
    "ENVIRONMENT_JSON",
    "EVENTS_JSONL",
    "INTERRUPTED",
    "JOB_JSON",
    "ORCHESTRATOR_JSON",
    "ORCHESTRATOR_LOCK",
    "RC",
    "SAMPLE_PROMPTS_TXT",
    "STATUS",
    "RunDir",
    "RunSummary",
    "list_runs",
    "redact_env",
    "slugify",
    "write_error_reason",
]

JOB_JSON = "job.json"
CONFIG_TOML = "config.toml"
DATASET_TOML = "dataset.toml"
SAMPLE_PROMPTS_TXT = "sample_prompts.txt"
COMMAND_JSON = "command.json"
ENVIRONMENT_JSON = "environment.json"
CONSOLE_LOG = "console.log"
EVENTS_JSONL = "events.jsonl"
STATUS = "status"
RC = "rc"
ORCHESTRATOR_LOCK = "orchestrator.lock"
ORCHESTRATOR_JSON = "orchestrator.json"
INTERRUPTED = "interrupted"
"""What readers report for an open run whose orchestrator is gone (never written to ``status``)."""

_OPEN_STATUSES = ("pending", "starting", "running")
_RESERVE = ".space-reserve"
_RESERVE_BYTES = 64 * 1024
# psutil's create_time() of one process, read twice, differs by far less than this
_SAME_START_S = 1.0

_STAMP_FORMAT = "%Y%m%d-%H%M%S"
_RUN_NAME = re.compile(r"^(?P<stamp>\d{8}-\d{6})-(?P<slug>.+)$")
_SLUG_MAX = 60
_SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
_SECRET_VALUE = re.compile(r"^(hf_|sk-|ghp_|github_pat_)[A-Za-z0-9_]{16,}")
REDACTED = "***"


def slugify(name: str) -> str:
    """A file-name-safe, lower-case form of ``name`` (``"My Style!"`` -> ``"my-style"``).

    Args:
        name: Any text, e.g. the job's output name.

    Returns:
        ASCII letters, digits, ``.``, ``_`` and ``-`` only, at most 60 characters; ``"run"`` when
        nothing is left.
    """
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text.lower())
    text = re.sub(r"-{2,}", "-", text).strip("-._")[:_SLUG_MAX].strip("-._")
    return text or "run"


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with the values of secret-looking variables masked as ``***``.

    A variable is secret when its name contains TOKEN, KEY, SECRET, PASSWORD, PASSWD or CREDENTIAL
    (case-insensitive; this covers HF_TOKEN, HUGGING_FACE_HUB_TOKEN and WANDB_API_KEY), or when its
    value looks like an access token (``hf_...``, ``sk-...``, ``ghp_...``).

    Args:
        env: Variables to write somewhere a user may share (command.json, bug reports).

    Returns:
        The same keys; secret values replaced.
    """
    out: dict[str, str] = {}
    for key, value in env.items():
        upper = key.upper()
        secret = any(word in upper for word in _SECRET_WORDS) or bool(_SECRET_VALUE.match(value))
        out[key] = REDACTED if secret else value
    return out


class RunSummary(BaseModel):
    """What :func:`list_runs` reads back from one run directory; any of it may be missing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path = Field(description="The run directory.")
    run_id: str = Field(description="Its folder name.")
    job_name: str | None = Field(default=None, description="Job name (job.json, else folder).")
    status: str | None = Field(
        default=None,
        description="Content of 'status' (None: never set), or 'interrupted' when it is still open "
        "but its orchestrator is gone.",
    )
    reason: str | None = Field(default=None, description="Why it is interrupted.")
    returncode: int | None = Field(default=None, description="Content of 'rc', when written.")
    started_at: datetime | None = Field(default=None, description="From the folder name.")
    has_console_log: bool = Field(default=False, description="Whether console.log exists.")


class RunDir:
    """One run's folder. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        """Wrap an existing folder; prefer :meth:`create` or :meth:`open`."""
        self.path = path
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        """``RunDir('<path>')``."""
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        """The folder's path, so a RunDir can be passed where a path is expected."""
        return str(self.path)

    @classmethod
    def create(cls, root: Path, name: str, *, now: datetime | None = None) -> RunDir:
        """Make a new, empty run folder ``<root>/<YYYYmmdd-HHMMSS>-<slug(name)>``.

        If that folder exists (two runs in the same second), ``-2``, ``-3``... is appended. The
        folder is made with ``exist_ok=False``, so two processes can never get the same one.

        Args:
            root: The runs root (created if missing).
            name: The job name; it is slugified.
            now: The start time (default: the local time now).

        Returns:
            The new run directory.
        """
        root.mkdir(parents=True, exist_ok=True)
        base = f"{(now or datetime.now()).strftime(_STAMP_FORMAT)}-{slugify(name)}"
        n = 1
        while True:
            path = root / (base if n == 1 else f"{base}-{n}")
            try:
                path.mkdir(exist_ok=False)
            except FileExistsError:
                n += 1
                continue
            return cls(path)

    @classmethod
    def begin(cls, root: Path, name: str) -> RunDir:
        """:meth:`create`, then :meth:`reserve_space` and :meth:`hold`: a run's directory.

        Raises:
            OSError: The disk is full (or the folder not writable); no folder is left behind.
        """
        run_dir = cls.create(root, name)
        try:
            run_dir.reserve_space()
            run_dir.hold()
        except OSError:
            run_dir.release()
            shutil.rmtree(run_dir.path, ignore_errors=True)  # ours, made a moment ago
            raise
        return run_dir

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """Reopen an existing run folder.

        Raises:
            ConfigError: ``path`` is not a folder.
        """
        if not path.is_dir():
            raise ConfigError(
                [
                    Problem(
                        path=str(path),
                        message="not a run directory (no such folder)",
                        hint="pass the folder of one run, e.g. runs/20260216-080729-my-style",
                    )
                ],
                source=str(path),
            )
        return cls(path)

    @property
    def run_id(self) -> str:
        """The folder name."""
        return self.path.name

    @property
    def console_log(self) -> Path:
        """Path of console.log (written by the launcher, not through this class)."""
        return self.path / CONSOLE_LOG

    @property
    def events_jsonl(self) -> Path:
        """Path of events.jsonl."""
        return self.path / EVENTS_JSONL

    def file(self, name: str) -> Path:
        """The path of a file in the run folder.

        Raises:
            ValueError: ``name`` is not a plain file name.
        """
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"not a plain file name: {name!r}")
        return self.path / name

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Atomically write ``data`` to ``name`` (temporary file + rename).

        Returns:
            The file's path.
        """
        return write_atomic(self.file(name), data)

    def write_text(self, name: str, text: str) -> Path:
        """Atomically write ``text`` as UTF-8 (line endings kept as given)."""
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, data: Any) -> Path:
        """Atomically write a pydantic model or a JSON-able value, indented, ending with a newline.

        Returns:
            The file's path.
        """
        if isinstance(data, BaseModel):
            text = data.model_dump_json(indent=2)
        else:
            text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
        return self.write_text(name, text + "\n")

    def append_event_line(self, line: str) -> None:
        """Append one line to events.jsonl and flush it (a newline is added when missing).

        Raises:
            ValueError: ``line`` contains a newline before its end.
        """
        if "\n" in line.rstrip("\n"):
            raise ValueError("an event line must not contain a newline")
        with self.events_jsonl.open("a", encoding="utf-8") as f:
            f.write(line.rstrip("\n") + "\n")
            f.flush()

    def set_status(self, status: str, returncode: int | None = None) -> None:
        """Write ``status`` (and ``rc`` first, when given), each atomically.

        Args:
            status: One of pending, starting, running, succeeded, failed, canceled.
            returncode: The exit code, once known.

        When the disk is full, the status is written over the old one in place (that needs no
        new block); the first error is raised once both files were tried.

        Raises:
            OSError: ``rc`` could not be written, or ``status`` only in place, or not at all.
        """
        if not status or not status.isprintable() or status.strip() != status:
            raise ValueError(f"bad status: {status!r}")
        error: OSError | None = None
        if returncode is not None:
            try:
                self.write_text(RC, f"{int(returncode)}\n")
            except OSError as exc:
                error = exc
        try:
            self.write_text(STATUS, status + "\n")
        except OSError as exc:
            if not _overwrite_in_place(self.path / STATUS, (status + "\n").encode()):
                raise
            error = error or exc
        if error is not None:
            raise error

    def read_status(self) -> str | None:
        """The status, or None when it was never written."""
        return _read_stripped(self.path / STATUS)

    def read_returncode(self) -> int | None:
        """The exit code, or None when it was never written (or is unreadable)."""
        text = _read_stripped(self.path / RC)
        try:
            return None if text is None else int(text)
        except ValueError:
            return None

    # ------------------------------------------------------------------ faults
    def reserve_space(self, nbytes: int = _RESERVE_BYTES) -> None:
        """Hold ``nbytes`` of the disk in ``.space-reserve`` for the run's final records.

        Raises:
            OSError: It could not be written (the disk is full already); nothing is left behind.
        """
        path = self.path / _RESERVE
        try:
            with path.open("wb") as f:
                f.write(os.urandom(nbytes))  # random: a compressing file system keeps it whole
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            path.unlink(missing_ok=True)
            raise

    def release_space(self) -> None:
        """Give the reserved space back (before the final records); never raises."""
        with contextlib.suppress(OSError):
            (self.path / _RESERVE).unlink(missing_ok=True)

    def hold(self) -> None:
        """Lock ``orchestrator.lock`` for this process and record it in ``orchestrator.json``.

        The kernel drops the lock when the process ends, however it ends: a reader that finds the
        lock free while the status is open knows the orchestrator is gone. Call before the first
        status is written; :meth:`release` after the last one.

        Raises:
            OSError: The lock or the record could not be written.
        """
        fd = os.open(self.path / ORCHESTRATOR_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if sys.platform != "win32":
                with contextlib.suppress(OSError):  # no locks here (ENOLCK): the pid decides
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.write_json(ORCHESTRATOR_JSON, _whoami())
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def note_trainer(self, pid: int) -> None:
        """Add the trainer's pid and start time to ``orchestrator.json`` (its session's id).

        Raises:
            OSError: The record could not be written.
        """
        record = {**_whoami(), "trainer_pid": pid, "trainer_started": process_started(pid)}
        self.write_json(ORCHESTRATOR_JSON, record)

    def release(self) -> None:
        """Drop the lock taken by :meth:`hold` (after the final status); idempotent."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def interruption(self) -> str | None:
        """Why this run is interrupted, or None: its status is open (pending, starting, running)
        but the orchestrator that ran it is gone (its lock is free and its pid, at its start time,
        runs no more). Runs from before the lock existed, or of another host, are never judged."""
        if self.read_status() not in _OPEN_STATUSES:
            return None
        lock = self.path / ORCHESTRATOR_LOCK
        record = _read_json(self.path / ORCHESTRATOR_JSON)
        if not lock.is_file() or _lock_held(lock):
            return None
        if record.get("host") not in (None, socket.gethostname()):
            return None
        pid = record.get("pid")
        if isinstance(pid, int) and process_runs(pid, record.get("started"), _SAME_START_S):
            return None
        if self.read_status() not in _OPEN_STATUSES:  # it ended while we looked
            return None
        who = f"pid {pid}" if isinstance(pid, int) else "its process"
        return f"its orchestrator ({who}) is gone: it was killed or crashed while the run was open"

    def stop_leftovers(self) -> list[int]:
        """SIGKILL what is left of an interrupted run's trainer; returns the pids signalled.

        Found by the recorded trainer pid at its start time (its tree, and its session: the
        trainer runs in a session of its own) and by command line (``--config_file`` and this
        run's ``config.toml``, started after the orchestrator: the trainer before it was recorded).
        Call only for a run whose :meth:`interruption` is not None. Also frees the run's
        ``.space-reserve`` (its orchestrator's scratch space, not a record).
        """
        self.release_space()
        record = _read_json(self.path / ORCHESTRATOR_JSON)
        roots: list[psutil.Process] = []
        pid, started = record.get("trainer_pid"), record.get("trainer_started")
        if isinstance(pid, int) and isinstance(started, (int, float)):
            roots += session_members(pid, started - _SAME_START_S)
        since = record.get("started")
        if isinstance(since, (int, float)):
            config = f"--config_file {self.path.resolve() / CONFIG_TOML}"  # not an editor of it
            roots += processes_naming(config, since - _SAME_START_S)
        signalled: list[int] = []
        for proc in roots:
            if proc.pid != os.getpid() and proc.pid not in signalled:
                signalled += [p for p in kill_tree(proc.pid) if p not in signalled]
        return signalled

    def summary(self) -> RunSummary:
        """Read what is there; never raises for missing or damaged files.

        An interrupted run (:meth:`interruption`) is reported as ``interrupted`` with the reason,
        and what is left of its trainer is stopped (:meth:`stop_leftovers`).
        """
        match = _RUN_NAME.match(self.path.name)
        started: datetime | None = None
        slug: str | None = None
        if match:
            slug = match.group("slug")
            with contextlib.suppress(ValueError):
                started = datetime.strptime(match.group("stamp"), _STAMP_FORMAT)
        reason = self.interruption()
        if reason is not None:
            self.stop_leftovers()
        return RunSummary(
            path=self.path,
            run_id=self.run_id,
            job_name=_job_name(self.path / JOB_JSON) or slug,
            status=INTERRUPTED if reason is not None else self.read_status(),
            reason=reason,
            returncode=self.read_returncode(),
            started_at=started,
            has_console_log=self.console_log.is_file(),
        )


def write_error_reason(exc: OSError, folder: Path) -> str:
    """What a failed write into ``folder`` means, in a few words (``no space left on <folder>``)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on {folder}"
    return f"cannot write into {folder}: {exc.strerror or exc}"


def list_runs(root: Path) -> list[RunSummary]:
    """Summaries of the run folders under ``root``, oldest first.

    Folders count as runs when their name has the run-id form or they hold job.json or status;
    runs that crashed half-way (no status, partial console.log) are listed too.

    Args:
        root: The runs root; a missing one has no runs.

    Returns:
        One summary per run, sorted by folder name (the start time).
    """
    if not root.is_dir():
        return []
    runs = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if not (
            _RUN_NAME.match(entry.name)
            or (entry / JOB_JSON).is_file()
            or (entry / STATUS).is_file()
        ):
            continue
        runs.append(RunDir(entry).summary())
    return runs


def _overwrite_in_place(path: Path, data: bytes) -> bool:
    """Write ``data`` over an existing small file's first bytes and cut the rest: no new block."""
    try:
        with path.open("r+b") as f:
            f.write(data)
            f.truncate()
            f.flush()
    except OSError:
        return False
    return True


def _whoami() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "started": process_started(os.getpid()),
        "host": socket.gethostname(),
    }


def _lock_held(path: Path) -> bool:
    if sys.platform == "win32":  # pragma: no cover - no Windows CI yet: the pid decides
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:  # no locks on this file system (ENOLCK): the pid decides
        return exc.errno in (errno.EAGAIN, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_stripped(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def _job_name(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("name"), str) and data["name"]:
        return str(data["name"])
    training = data.get("training")
    if isinstance(training, dict) and isinstance(training.get("output_name"), str):
        return str(training["output_name"]) or None
    return None
