"""Run the queue: one worker thread per GPU, each taking the next job in order until none is left.

Each job runs through :func:`kohya_orchestrator.run.start` in its own run directory (with the
usual events), pinned to its worker's GPU through ``LaunchOptions(gpu_ids=(gpu,))``. A failure
never stops the queue. A job that fails with CUDA out of memory is retried with a lighter plan:
the job's memory remedies (:func:`kohya_orchestrator.jobs.remedies.memory_remedies`, a fixed order)
applied cumulatively, one more per retry, at most ``oom_retries`` times. Every attempt is a row
in the queue and has a ``queue.json`` in its run directory saying what was applied and why.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..environment.discovery import Install, require_install
from ..environment.manifest import arguments_of
from ..environment.probe import Environment, probe_environment
from ..errors import ConfigError, OrchestratorError, Problem
from ..events import RunStatus, read_events
from ..jobs.layers import Layer, compose_layers
from ..jobs.loading import validate_job
from ..jobs.remedies import Remedy, memory_remedies
from ..launch.rundir import RunDir
from ..models import TrainingJob
from ..models.arguments import Arguments
from ..render.command import LaunchOptions
from ..run import RunResult, Watchdogs, start
from ..sinks import EventSink
from .locks import RunnerLock
from .records import Attempt, JobStatus, QueueJob
from .store import JobQueue

__all__ = ["QueueNotice", "QueueRunner", "nest_overrides", "run_queue"]

NoticeKind = Literal["recovered", "waiting", "started", "retrying", "finished"]


@dataclass(frozen=True)
class QueueNotice:
    """Something a runner did, for a display (the CLI prints one line per notice)."""

    kind: NoticeKind
    job: QueueJob
    message: str
    run_dir: Path | None = None
    status: JobStatus | None = None


def nest_overrides(dotted: dict[str, Any]) -> dict[str, Any]:
    """``{"training.cache_latents": True}`` -> ``{"training": {"cache_latents": True}}``."""
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _default_launch(cpu_threads: int) -> Callable[[str | None], LaunchOptions]:
    def launch(gpu: str | None) -> LaunchOptions:
        return LaunchOptions(
            gpu_ids=None if gpu is None else (gpu,), num_cpu_threads_per_process=cpu_threads
        )

    return launch


class _Stopped(Exception):
    """The runner is stopping (Ctrl-C): the job is interrupted, not failed."""


class QueueRunner:
    """Runs queued jobs until none is left (or, with ``follow``, until stopped)."""

    def __init__(
        self,
        queue: JobQueue,
        *,
        gpus: Sequence[str | None] = (None,),
        install: Install | None = None,
        sd_scripts: Path | None = None,
        launch: Callable[[str | None], LaunchOptions] | None = None,
        cpu_threads: int = 2,
        runs: Path | None = None,
        oom_retries: int = 2,
        watchdogs: Watchdogs | None = None,
        probe: bool = True,
        environment: Environment | None = None,
        ids: Collection[int] | None = None,
        sweep: str | None = None,
        follow: bool = False,
        exported: bool = False,
        poll_s: float = 1.0,
        notify: Callable[[QueueNotice], None] | None = None,
        sinks: Callable[[QueueJob], Sequence[EventSink]] | None = None,
    ) -> None:
        """Configure a runner; nothing starts before :meth:`run`.

        Args:
            queue: The queue to take jobs from.
            gpus: One worker per entry, pinned to that GPU id; ``(None,)`` is one worker that
                leaves ``CUDA_VISIBLE_DEVICES`` alone.
            install: The sd-scripts install (default: found as ``train`` finds it).
            sd_scripts: Where to look for it when ``install`` is not given.
            launch: Launch options for a worker's GPU (default: one process pinned to it).
            cpu_threads: Threads per process for the default launch options.
            runs: Where run directories go (default ``<queue>/runs``).
            oom_retries: Retries with a lighter plan after CUDA out of memory.
            watchdogs: Automatic stops for every run.
            probe: Probe the install once (written to each run's environment.json).
            environment: A probe result to use instead of probing.
            ids: Only these jobs.
            sweep: Only the jobs of this sweep.
            follow: Keep waiting for new jobs instead of returning when none is left.
            exported: Take exported jobs too (a SLURM array task running its own job).
            poll_s: Seconds between heartbeats and cancel checks.
            notify: Called with each notice (from worker threads).
            sinks: Event sinks for a job's runs.
        """
        if not gpus or len(set(gpus)) != len(gpus):
            raise ConfigError(
                [
                    Problem(
                        "--gpus",
                        f"expected distinct GPU ids, got {list(gpus)}",
                        "e.g. --gpus 0,1 (one worker each)",
                    )
                ]
            )
        self.queue = queue
        self.gpus = tuple(gpus)
        self.install = install
        self.sd_scripts = sd_scripts
        self.launch = launch or _default_launch(cpu_threads)
        self.runs = Path(runs) if runs is not None else queue.path / "runs"
        self.oom_retries = max(0, oom_retries)
        self.watchdogs = watchdogs or Watchdogs()
        self.probe = probe
        self.environment = environment
        self.ids = None if ids is None else frozenset(ids)
        self.sweep = sweep
        self.follow = follow
        self.exported = exported
        self.poll_s = poll_s
        self._notify = notify
        self._sinks = sinks
        self._stop = threading.Event()
        self._done: list[QueueJob] = []
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []

    # ------------------------------------------------------------------ public
    def stop(self) -> None:
        """Ask the workers to stop: running trainings are canceled and marked interrupted."""
        self._stop.set()

    def run(self) -> list[QueueJob]:
        """Run jobs until none is left; returns the jobs this runner finished, in order.

        Ctrl-C (KeyboardInterrupt) stops every worker, cancels their trainings, marks those jobs
        interrupted, and is raised again.
        """
        lock = RunnerLock(self.queue.path)
        try:
            self.queue.register_runner(lock, self.gpus)
            for job in self.queue.recover():
                self._tell("recovered", job, job.reason or "interrupted")
            for job in self.queue.jobs():
                if job.status == JobStatus.INTERRUPTED and self._wanted(job):
                    self._tell(
                        "waiting",
                        job,
                        f"interrupted earlier, not rerun by itself: 'queue retry {job.id}' "
                        f"reruns it, 'queue retry {job.id} --resume' resumes it",
                    )
            takes = (JobStatus.QUEUED, JobStatus.EXPORTED) if self.exported else (JobStatus.QUEUED,)
            waiting = [j for j in self.queue.jobs() if j.status in takes and self._wanted(j)]
            if not waiting and not self.follow:
                return []
            install = self.install or require_install(self.sd_scripts)
            environment = self.environment
            if environment is None and self.probe:
                environment = probe_environment(install)
            # Each worker sets its own event when it is done. The main thread waits on those,
            # not on Thread.join: on Python < 3.13 a join interrupted by Ctrl-C marks a thread
            # that is still running as stopped (bpo-45274), so a second join would return while
            # its training still runs.
            done = [threading.Event() for _ in self.gpus]
            for gpu, finished in zip(self.gpus, done, strict=True):
                threading.Thread(
                    target=self._work_then_set,
                    args=(finished, lock, gpu, install, environment),
                    name=f"queue-worker-{gpu if gpu is not None else 'default'}",
                    daemon=True,
                ).start()
            last_beat = 0.0
            try:
                while not all(finished.is_set() for finished in done):
                    for finished in done:
                        finished.wait(0.2)
                    if time.monotonic() - last_beat >= self.poll_s:
                        self.queue.heartbeat(lock.id)
                        last_beat = time.monotonic()
            except BaseException:
                self._stop.set()  # the workers cancel their trainings and mark them interrupted
                for finished in done:
                    finished.wait()
                raise
            if self._errors:
                raise self._errors[0]
        finally:
            self.queue.unregister_runner(lock)
            lock.release()
        return list(self._done)

    # ------------------------------------------------------------------ workers
    def _work_then_set(
        self,
        finished: threading.Event,
        lock: RunnerLock,
        gpu: str | None,
        install: Install,
        environment: Environment | None,
    ) -> None:
        try:
            self._work(lock, gpu, install, environment)
        finally:
            finished.set()

    def _wanted(self, job: QueueJob) -> bool:
        return (self.ids is None or job.id in self.ids) and (
            self.sweep is None or job.sweep == self.sweep
        )

    def _tell(
        self,
        kind: NoticeKind,
        job: QueueJob,
        message: str,
        run_dir: Path | None = None,
        status: JobStatus | None = None,
    ) -> None:
        if self._notify is not None:
            self._notify(QueueNotice(kind, job, message, run_dir, status))

    def _work(
        self,
        lock: RunnerLock,
        gpu: str | None,
        install: Install,
        environment: Environment | None,
    ) -> None:
        try:
            while not self._stop.is_set():
                job = self.queue.claim(
                    lock, gpu, ids=self.ids, sweep=self.sweep, exported=self.exported
                )
                if job is None:
                    if not self.follow:
                        return
                    self._stop.wait(self.poll_s)
                    continue
                status, reason = self._run_job(job, install, environment)
                self.queue.finish(job, status, reason)
                final = self.queue.get(job.id)
                with self._lock:
                    self._done.append(final)
                self._tell("finished", final, reason or status.value, final.run_dir, status)
        except BaseException as exc:  # a bug: stop this runner, report it from run()
            self._errors.append(exc)
            self._stop.set()

    def _run_job(
        self, job: QueueJob, install: Install, environment: Environment | None
    ) -> tuple[JobStatus, str | None]:
        # what this install accepts (its argument manifest, cached), so extra_args that only it has
        # load here as they did at `queue add`
        arguments = arguments_of(install, probe=self.probe)[0]
        try:
            data = self.queue.read_job(job)
            base: dict[str, Any] = {}
            kind = "first" if job.attempts == 0 else "rerun"
            if job.resume_from:
                base["training.resume"] = job.resume_from
                kind = "resume"
            plan_job = _build(data, base, job, arguments)
        except ConfigError as exc:
            return JobStatus.FAILED, _one_line(exc)
        remedies = memory_remedies(plan_job)
        applied: list[Remedy] = []
        retries_left = self.oom_retries
        while True:
            overrides = dict(base)
            for remedy in applied:
                overrides.update(remedy.overrides)
            attempt_job = _build(data, overrides, job, arguments)
            set_aside = _set_aside_outputs(attempt_job, self.queue.attempts(job.id))
            n = self.queue.begin_attempt(
                job,
                kind=kind,
                overrides=overrides,
                remedies=[r.description for r in applied],
                resumed_from=job.resume_from,
            )
            record = {
                "queue": str(self.queue.path),
                "job_id": job.id,
                "job_file": str(job.job_file),
                "attempt": n,
                "kind": kind,
                "gpu": job.gpu,
                "runner": job.runner_id,
                "overrides": overrides,
                "remedies": [r.description for r in applied],
                "resumed_from": job.resume_from,
                "set_aside": set_aside,
            }
            try:
                result = self._attempt(job, n, attempt_job, install, environment, record)
            except _Stopped:
                reason = "interrupted: the queue runner was stopped"
                self.queue.finish_attempt(job.id, n, "interrupted", reason, None)
                return JobStatus.INTERRUPTED, reason
            except OrchestratorError as exc:  # could not start: bad paths, no install, ...
                reason = _one_line(exc)
                self.queue.finish_attempt(job.id, n, "failed", reason, None)
                return JobStatus.FAILED, reason
            self.queue.finish_attempt(
                job.id, n, result.status.value, result.reason, result.returncode
            )
            if result.status == RunStatus.CANCELED:
                return JobStatus.CANCELED, "canceled by the user"
            if result.ok:
                return JobStatus.SUCCEEDED, None
            oom = any(e.category == "oom" for e in result.errors)
            if not oom or retries_left <= 0:
                return JobStatus.FAILED, result.reason
            picked = _next_remedy(data, base, applied, remedies, job, arguments)
            if picked is None:
                return JobStatus.FAILED, f"{result.reason} (no lighter plan left to try)"
            applied.append(picked)
            retries_left -= 1
            kind = "oom-retry"
            self._tell(
                "retrying",
                job,
                f"out of memory; retrying with a lighter plan: "
                f"{', '.join(r.description for r in applied)}",
                result.run_dir,
            )

    def _attempt(
        self,
        job: QueueJob,
        n: int,
        attempt_job: TrainingJob,
        install: Install,
        environment: Environment | None,
        record: dict[str, Any],
    ) -> RunResult:
        if self._stop.is_set():
            raise _Stopped
        run = start(
            attempt_job,
            install=install,
            runs=self.runs,
            launch=self.launch(job.gpu),
            sinks=self._sinks(job) if self._sinks is not None else (),
            watchdogs=self.watchdogs,
            environment=environment,
            probe=False,
        )
        run_dir = run.run_dir.path.resolve()
        RunDir(run_dir).write_json("queue.json", record)
        pids = run.pids
        self.queue.attempt_started(job.id, n, run_dir, pids[0] if pids else None)
        self._tell("started", job, f"attempt {n} ({record['kind']})", run_dir)
        stopping = False
        while True:
            try:
                result = run.wait(self.poll_s)
            except TimeoutError:
                if not stopping and (self._stop.is_set() or self.queue.cancel_requested(job.id)):
                    stopping = True
                    run.cancel()
                continue
            if self._stop.is_set() and result.status == RunStatus.CANCELED:
                raise _Stopped
            return result


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ConfigError):
        return "; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in exc.problems)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _build(
    data: dict[str, Any], overrides: dict[str, Any], job: QueueJob, arguments: Arguments
) -> TrainingJob:
    layers = [Layer(f"queued job {job.id}", data)]
    if overrides:
        layers.append(Layer("queue retry plan", nest_overrides(overrides)))
    composed = compose_layers(layers)
    return validate_job(
        composed.data,
        source=str(job.job_file),
        provenance=composed.provenance,
        arguments=arguments,
    )


def _next_remedy(
    data: dict[str, Any],
    base: dict[str, Any],
    applied: list[Remedy],
    remaining: list[Remedy],
    job: QueueJob,
    arguments: Arguments,
) -> Remedy | None:
    """The next remedy in the fixed order that still gives a valid job (removed from the list)."""
    while remaining:
        remedy = remaining.pop(0)
        overrides = dict(base)
        for r in [*applied, remedy]:
            overrides.update(r.overrides)
        try:
            _build(data, overrides, job, arguments)
        except ConfigError:
            continue
        return remedy
    return None


def _set_aside_outputs(job: TrainingJob, attempts: Sequence[Attempt]) -> list[str]:
    """Move checkpoints that earlier attempts of this job saved out of the way.

    The launch refuses to overwrite an earlier run's files; the earlier attempt's files go to
    ``<output_dir>/superseded/<its run id>/`` (sd-scripts' state folders stay, for resuming).
    """
    out_dir = Path(job.training.output_dir)
    moved: list[str] = []
    for attempt in attempts:
        if attempt.run_dir is None:
            continue
        for event in read_events(attempt.run_dir):
            if event.kind != "checkpoint_saved":
                continue
            path = out_dir / Path(event.path).name
            if not path.is_file():
                continue
            target = out_dir / "superseded" / attempt.run_dir.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(target))
            moved.append(f"{path} -> {target}")
    return moved


def run_queue(queue: JobQueue | Path | None = None, **options: Any) -> list[QueueJob]:
    """Run a queue until no job is left (see :class:`QueueRunner` for the options)."""
    q = queue if isinstance(queue, JobQueue) else JobQueue(queue)
    return QueueRunner(q, **options).run()
