"""``queue run --on sky``: the queued jobs, one after another, each as a SkyPilot task.

Each job is claimed like a local runner claims it (``running``, an attempt), launched through
SkyPilot (:func:`~kohya_orchestrator.queue.sky.launch_on_sky`), and its streamed events fill a
run directory under the queue's ``runs/``; the remote's final event says how it ended. A launch
SkyPilot refuses (no credentials, no capacity) fails that job with SkyPilot's message and the queue
goes on. ``queue cancel`` of a job already on the cloud is not passed to SkyPilot: stop it with
``sky cancel`` / ``sky jobs cancel``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OrchestratorError
from ..jobs.loading import validate_job
from ..launch.rundir import slugify
from ..sinks import EventSink
from .locks import RunnerLock
from .records import JobStatus, QueueJob
from .sky import SkyTask, build_sky_task, launch_on_sky, receive_events, start_local_run
from .store import JobQueue

__all__ = ["Launcher", "run_queue_on_sky"]

Launcher = Callable[[SkyTask, bool], Iterable[str]]
"""Launches a task (``managed``: a managed spot job) and yields its output lines."""

_STATUS = {"succeeded": JobStatus.SUCCEEDED, "canceled": JobStatus.CANCELED}


def _sky_launch(task: SkyTask, managed: bool) -> Iterable[str]:  # pragma: no cover - a cloud
    return launch_on_sky(task, managed=managed)


def run_queue_on_sky(
    queue: JobQueue,
    *,
    gpus: str | None = "A100:1",
    cloud: str | None = None,
    use_spot: bool = False,
    product: str | None = None,
    sd_scripts_ref: str | None = None,
    runs: Path | None = None,
    ids: Collection[int] | None = None,
    sweep: str | None = None,
    launcher: Launcher = _sky_launch,
    sinks: Callable[[QueueJob], Sequence[EventSink]] | None = None,
    notify: Callable[[QueueJob, str], None] | None = None,
) -> list[QueueJob]:
    """Train every queued job (of ``ids`` / ``sweep``) through SkyPilot; returns them as ended."""
    runs = runs if runs is not None else queue.path / "runs"
    where = f"sky {gpus or 'cpu'}"
    lock = RunnerLock(queue.path)
    done: list[QueueJob] = []
    try:
        queue.register_runner(lock, [where])
        queue.recover()
        while (job := queue.claim(lock, where, ids=ids, sweep=sweep)) is not None:
            options = {"gpus": gpus, "cloud": cloud, "use_spot": use_spot, "product": product}
            options["sd_scripts_ref"] = sd_scripts_ref
            status, reason = _run_one(queue, job, options, runs, launcher, sinks, notify)
            queue.finish(job, status, reason)
            done.append(queue.get(job.id))
            if notify is not None:
                notify(done[-1], reason or status.value)
    finally:
        queue.unregister_runner(lock)
        lock.release()
    return done


def _run_one(
    queue: JobQueue,
    job: QueueJob,
    options: dict[str, Any],
    runs: Path,
    launcher: Launcher,
    sinks: Callable[[QueueJob], Sequence[EventSink]] | None,
    notify: Callable[[QueueJob, str], None] | None,
) -> tuple[JobStatus, str | None]:
    n = queue.begin_attempt(
        job,
        kind="first" if job.attempts == 0 else "rerun",
        overrides={},
        remedies=[],
        resumed_from=None,
    )
    try:
        model = validate_job(queue.read_job(job), source=str(job.job_file))
        task = build_sky_task(model, name=f"kohya-q{job.id}-{slugify(job.name)}", **options)
        run_dir = start_local_run(model, task, runs)
        queue.attempt_started(job.id, n, run_dir.path.resolve(), None)
        if notify is not None:
            notify(job, f"launched on SkyPilot as {task['name']}; run directory {run_dir.path}")
        finished = receive_events(
            launcher(task, bool(options["use_spot"])),
            run_dir,
            sinks(job) if sinks is not None else (),
        )
    except (ConfigError, OrchestratorError) as exc:
        reason = str(exc).splitlines()[0]
        queue.finish_attempt(job.id, n, "failed", reason, None)
        return JobStatus.FAILED, reason
    except Exception as exc:  # SkyPilot's own errors (credentials, capacity): this job fails
        reason = f"SkyPilot: {type(exc).__name__}: {exc}".splitlines()[0]
        queue.finish_attempt(job.id, n, "failed", reason, None)
        return JobStatus.FAILED, reason
    status = _STATUS.get(finished.status.value, JobStatus.FAILED)
    queue.finish_attempt(job.id, n, finished.status.value, finished.reason, finished.returncode)
    return status, finished.reason
