"""The thin part that talks to SkyPilot: launch a task, follow its output, cancel it, fetch its
outputs, count its restarts. Everything else about a cloud run (the task, the stream into a run
directory, the queue) is SkyPilot-free and takes a :class:`SkyBackend`.

A launch is recorded as a :class:`SkyHandle` in the local run directory (``sky.json``) before
its output is followed, so ``queue cancel`` (and a later look) can reach the run on the cloud
even when the process that launched it is gone.

:class:`SkyPilotBackend` needs the ``cloud`` extra and the user's cloud credentials; the tests
play SkyPilot's part with a local stand-in (tests/sky_local.py) that runs the task's run
command as a process here, and check everything but the calls into ``sky``.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, OrchestratorError, Problem

__all__ = [
    "AUTODOWN_MINUTES",
    "HANDLE_NAME",
    "SkyBackend",
    "SkyHandle",
    "SkyPilotBackend",
    "read_handle",
    "require_skypilot",
]

HANDLE_NAME = "sky.json"


@dataclass(frozen=True)
class SkyHandle:
    """Where a launched task lives: SkyPilot's names for it, and where its outputs will be."""

    name: str
    """The cluster (``sky launch``) or the managed job's name (``sky jobs launch``)."""
    job_id: int | None
    """SkyPilot's job id on that cluster, or the managed job's id."""
    managed: bool
    """A managed job (spot; SkyPilot restarts it after a preemption)."""
    output_source: str
    """The remote output folder on the cluster, or ``<bucket URL>/output``."""

    def to_json(self) -> dict[str, Any]:
        """The handle as JSON data."""
        return asdict(self)


def read_handle(run_dir: Path) -> SkyHandle | None:
    """The handle a cloud run recorded in its run directory, or None (a local run)."""
    path = run_dir / HANDLE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return SkyHandle(
            name=str(data["name"]),
            job_id=None if data["job_id"] is None else int(data["job_id"]),
            managed=bool(data["managed"]),
            output_source=str(data["output_source"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class SkyBackend(Protocol):
    """What a cloud run needs from SkyPilot."""

    def launch(self, task: Mapping[str, Any], managed: bool, output_source: str) -> SkyHandle:
        """Start ``task`` (SkyPilot task data; a managed job when ``managed``); returns once it
        is submitted. ``output_source``: where its outputs will be (kept in the handle)."""
        ...

    def follow(self, handle: SkyHandle) -> Iterable[str]:
        """The run's output lines as they come, across SkyPilot's restarts, until it ends."""
        ...

    def cancel(self, handle: SkyHandle) -> None:
        """Stop the run (the remote ``train`` gets SIGTERM and stops its trainer)."""
        ...

    def fetch_outputs(self, handle: SkyHandle, into: Path) -> None:
        """Copy the remote output folder's contents into the empty folder ``into``."""
        ...

    def restarts(self, handle: SkyHandle) -> int | None:
        """How many times SkyPilot restarted the run (None: it does not say)."""
        ...

    def release(self, handle: SkyHandle) -> None:
        """Stop paying for the run's machine once its outputs are here (a cluster is torn down;
        a managed job's instance is already gone)."""
        ...


AUTODOWN_MINUTES = 30
"""A cluster the product launched tears itself down after this many idle minutes, even when the
product is gone (killed, the laptop closed): a forgotten GPU never bills for long."""


class SkyPilotBackend:  # pragma: no cover - every call needs a cloud account
    """:class:`SkyBackend` through SkyPilot's Python API (``sky``), with the user's credentials.

    ``keep``: leave the cluster up after the run (for another run on it; its autostop still
    applies: SkyPilot's ``down`` after ``AUTODOWN_MINUTES`` idle minutes)."""

    def __init__(self, cluster: str | None = None, keep: bool = False) -> None:
        self.sky = require_skypilot()
        self.cluster = cluster
        self.keep = keep

    def launch(self, task: Mapping[str, Any], managed: bool, output_source: str) -> SkyHandle:
        sky = self.sky
        sky_task = sky.Task.from_yaml_config(dict(task))
        if managed:
            job_ids, _ = sky.stream_and_get(sky.jobs.launch(sky_task, name=task["name"]))
            job_id = job_ids[0] if job_ids else None
            return SkyHandle(task["name"], job_id, True, output_source)
        name = self.cluster or task["name"]
        request = sky.launch(
            sky_task, cluster_name=name, idle_minutes_to_autostop=AUTODOWN_MINUTES, down=True
        )
        job_id, _ = sky.stream_and_get(request)
        return SkyHandle(name, job_id, False, output_source)

    def follow(self, handle: SkyHandle) -> Iterator[str]:
        sky = self.sky
        if handle.managed:
            lines = sky.jobs.tail_logs(job_id=handle.job_id, follow=True, preload_content=False)
        else:
            lines = sky.tail_logs(handle.name, handle.job_id, follow=True, preload_content=False)
        for line in lines:
            if line is not None:
                yield line

    def cancel(self, handle: SkyHandle) -> None:
        sky = self.sky
        if handle.managed:
            sky.stream_and_get(sky.jobs.cancel(job_ids=[handle.job_id]))
        else:
            sky.stream_and_get(sky.cancel(handle.name, job_ids=[handle.job_id]))

    def fetch_outputs(self, handle: SkyHandle, into: Path) -> None:
        source = handle.output_source
        if "://" in source:  # a bucket: the cloud's own sync command (aws s3 sync, gsutil...)
            from sky import cloud_stores  # type: ignore[import-not-found, unused-ignore]

            store = cloud_stores.get_storage_from_path(source)
            command = store.make_sync_dir_command(source, str(into))
            argv = ["bash", "-c", command]
        else:  # the cluster: sky launch wrote an ssh host entry named after it
            remote = source[2:] if source.startswith("~/") else source
            argv = ["rsync", "-a", f"{handle.name}:{remote}/", f"{into}/"]
        _run(argv)

    def restarts(self, handle: SkyHandle) -> int | None:
        if not handle.managed or handle.job_id is None:
            return None
        sky = self.sky
        records = sky.stream_and_get(sky.jobs.queue(refresh=False, job_ids=[handle.job_id]))
        for record in records if isinstance(records, list) else records[0]:
            data = record if isinstance(record, dict) else record.model_dump()
            if data.get("job_id") == handle.job_id:
                return int(data.get("recovery_count") or 0)
        return None

    def release(self, handle: SkyHandle) -> None:
        if not handle.managed and not self.keep:
            self.sky.stream_and_get(self.sky.down(handle.name))


def require_skypilot() -> Any:
    """The ``sky`` module.

    Raises:
        ConfigError: SkyPilot is not installed (``pip install 'kohya-orchestrator[cloud]'``).
    """
    try:
        import sky  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise ConfigError(
            [
                Problem(
                    "--on sky",
                    "SkyPilot is not installed",
                    "pip install 'kohya-orchestrator[cloud]', then 'sky check' for your clouds",
                )
            ],
            source="SkyPilot",
        ) from exc
    return sky


def _run(argv: list[str]) -> None:
    """Run a copy command; its failure is an :class:`OrchestratorError` with its message."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise ConfigError(
            [Problem("outputs", f"{argv[0]} is not installed", "install it, or copy by hand")],
            source="fetching the outputs",
        ) from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise OrchestratorError(f"{shlex.join(argv)} failed ({proc.returncode}): {tail[0]}")
