"""The run directory: the on-disk contract of one run (ansible-runner's artifacts folder).

::

    <runs root>/<YYYYmmdd-HHMMSS>-<slug>/
      job.json  config.toml  dataset.toml  sample_prompts.txt  command.json  environment.json
      console.log   raw child output, one merged stream, bytes as received
      events.jsonl  one typed event per line
      status        pending|starting|running|succeeded|failed|canceled
      rc            exit code

A run directory is never reused. Every file except the two append-only logs is written to a
temporary file in the same folder and renamed over the target, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kohya_orchestrator.errors import ConfigError, Problem

from .._fs import write_atomic

__all__ = [
    "COMMAND_JSON",
    "CONFIG_TOML",
    "CONSOLE_LOG",
    "DATASET_TOML",
    "ENVIRONMENT_JSON",
    "EVENTS_JSONL",
    "JOB_JSON",
    "RC",
    "SAMPLE_PROMPTS_TXT",
    "STATUS",
    "RunDir",
    "RunSummary",
    "list_runs",
    "redact_env",
    "slugify",
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
    status: str | None = Field(default=None, description="Content of 'status'; None: never set.")
    returncode: int | None = Field(default=None, description="Content of 'rc', when written.")
    started_at: datetime | None = Field(default=None, description="From the folder name.")
    has_console_log: bool = Field(default=False, description="Whether console.log exists.")


class RunDir:
    """One run's folder. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        """Wrap an existing folder; prefer :meth:`create` or :meth:`open`."""
        self.path = path

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
        """
        if not status or not status.isprintable() or status.strip() != status:
            raise ValueError(f"bad status: {status!r}")
        if returncode is not None:
            self.write_text(RC, f"{int(returncode)}\n")
        self.write_text(STATUS, status + "\n")

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

    def summary(self) -> RunSummary:
        """Read what is there; never raises for missing or damaged files."""
        match = _RUN_NAME.match(self.path.name)
        started: datetime | None = None
        slug: str | None = None
        if match:
            slug = match.group("slug")
            with contextlib.suppress(ValueError):
                started = datetime.strptime(match.group("stamp"), _STAMP_FORMAT)
        return RunSummary(
            path=self.path,
            run_id=self.run_id,
            job_name=_job_name(self.path / JOB_JSON) or slug,
            status=self.read_status(),
            returncode=self.read_returncode(),
            started_at=started,
            has_console_log=self.console_log.is_file(),
        )


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
