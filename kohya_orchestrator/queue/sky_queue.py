"""``queue run --on sky``: the queued jobs, one after another, each as a SkyPilot task.

Each job is claimed like a local runner claims it (``running``, an attempt), launched through
SkyPilot and followed by :func:`~kohya_orchestrator.queue.sky_run.run_on_sky`: its streamed events
fill a run directory under the queue's ``runs/``, the remote's final event says how it ended, its
outputs come back into the job's output folder, and SkyPilot's restarts after a preemption are
recorded with the attempt. ``queue cancel`` of a running job reaches SkyPilot (the runner
cancels the remote run within seconds; when the runner is gone, ``queue cancel`` does it from
the handle in the run directory). A launch SkyPilot refuses (no credentials, no capacity) fails
that job with SkyPilot's message and the queue goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OrchestratorError
from ..jobs.loading import validate_job
from ..launch import sky as launch_sky
from ..launch.rundir import slugify
from ..launch.sky import SkyBackend
from ..sinks import EventSink
from .locks import RunnerLock
from .records import JobStatus, QueueJob
from .sky import build_sky_task, start_local_run
from .sky_run import CloudResult, cancel_recorded, run_on_sky
from .store import JobQueue

__all__ = ["cancel_on_sky", "run_queue_on_sky"]

_STATUS = {"succeeded": JobStatus.SUCCEEDED, "canceled": JobStatus.CANCELED}


def run_queue_on_sky(
    queue: JobQueue,
    *,
    gpus: str | None = "A100:1",
    cloud: str | None = None,
    use_spot: bool = False,
    product: str | None = None,
    sd_scripts_ref: str | None = None,
    bucket: str | None = None,
    runs: Path | None = None,
    ids: Collection[int] | None = None,
    sweep: str | None = None,
    backend: SkyBackend | None = None,
    sinks: Callable[[QueueJob], Sequence[EventSink]] | None = None,
    notify: Callable[[QueueJob, str], None] | None = None,
    poll_s: float = 2.0,
) -> list[QueueJob]:
    """Train every queued job (of ``ids`` / ``sweep``) through SkyPilot; returns them as ended.

    ``backend``: what talks to SkyPilot (default :class:`SkyPilotBackend`); ``bucket``: a
    bucket URL for the outputs (each job under ``<bucket>/q<id>-<name>``; a managed spot job
    needs one). ``poll_s``: how often a running job's cancel request is looked for.
    """
    backend = backend if backend is not None else launch_sky.SkyPilotBackend()
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
            name = f"kohya-q{job.id}-{slugify(job.name)}"
            options["bucket"] = f"{bucket.rstrip('/')}/{name}" if bucket else None
            options["name"] = name
            status, reason = _run_one(queue, job, options, runs, backend, sinks, notify, poll_s)
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
    backend: SkyBackend,
    sinks: Callable[[QueueJob], Sequence[EventSink]] | None,
    notify: Callable[[QueueJob, str], None] | None,
    poll_s: float,
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
        task = build_sky_task(model, **options)
        run_dir = start_local_run(model, task, runs)
        queue.attempt_started(job.id, n, run_dir.path.resolve(), None)
        result = run_on_sky(
            model,
            task,
            run_dir,
            backend,
            managed=bool(options["use_spot"]),
            sinks=sinks(job) if sinks is not None else (),
            cancel_requested=lambda: queue.cancel_requested(job.id),
            poll_s=poll_s,
            on_launched=lambda handle: _told(notify, job, handle.name, run_dir.path),
        )
    except (ConfigError, OrchestratorError) as exc:
        reason = str(exc).splitlines()[0]
        queue.finish_attempt(job.id, n, "failed", reason, None)
        return JobStatus.FAILED, reason
    except Exception as exc:  # SkyPilot's own errors (credentials, capacity): this job fails
        reason = f"SkyPilot: {type(exc).__name__}: {exc}".splitlines()[0]
        queue.finish_attempt(job.id, n, "failed", reason, None)
        return JobStatus.FAILED, reason
    finished = result.finished
    status = _STATUS.get(finished.status.value, JobStatus.FAILED)
    why = _reason(result)
    said = result.fetch_error or (result.delivered.summary() if result.delivered else None)
    if notify is not None and said:
        notify(job, said)
    queue.finish_attempt(job.id, n, finished.status.value, why, finished.returncode)
    return status, why


def _told(
    notify: Callable[[QueueJob, str], None] | None, job: QueueJob, name: str, run_dir: Path
) -> None:
    if notify is not None:
        notify(job, f"launched on SkyPilot as {name}; run directory {run_dir}")


def _reason(result: CloudResult) -> str | None:
    """The run's own reason, with the restarts SkyPilot made after preemptions."""
    reason = result.finished.reason
    if result.restarts:
        again = f"SkyPilot restarted it {result.restarts} time(s) after a preemption"
        reason = f"{reason}; {again}" if reason else again
    return reason


def cancel_on_sky(
    queue: JobQueue, jobs: Sequence[QueueJob], backend: SkyBackend | None = None
) -> list[str]:
    """``queue cancel`` for jobs whose queue runner is gone: cancel their recorded cloud runs.

    ``jobs``: the jobs as they were before ``queue cancel`` (running or interrupted). A job
    whose runner is alive is left to it (it sees the request and cancels). Returns one line per
    cloud run canceled here.
    """
    told: list[str] = []
    for job in jobs:
        if job.run_dir is None or queue.runner_alive(job):
            continue
        if not (job.run_dir / "sky.json").is_file():
            continue
        backend = backend if backend is not None else launch_sky.SkyPilotBackend()
        try:
            handle = cancel_recorded(job.run_dir, backend)
        except ConfigError:
            raise  # SkyPilot is not installed: its own message
        except Exception as exc:  # SkyPilot's answer (e.g. the cluster is already gone)
            told.append(f"job {job.id}: SkyPilot could not cancel it: {exc}".splitlines()[0])
            continue
        if handle is not None:
            told.append(f"job {job.id}: canceled {handle.name} on SkyPilot")
    return told
