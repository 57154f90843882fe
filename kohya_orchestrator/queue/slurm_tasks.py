"""SLURM for real: submit queued jobs as a job array, run one array task on its node, report back.

The queue folder is on a filesystem every node sees. Each array task runs
``python -m kohya_orchestrator queue slurm-task --job-id N``: it takes its job like a local runner
does (``running``, with the node, the pid and a heartbeat), trains it in a run directory under the
queue's ``runs/`` (``events.jsonl``, ``console.log``, ``status``, ``rc``), and records how it
ended, so ``queue list`` on the login node shows running, succeeded, failed or canceled.

SLURM ends a task (``scancel``, the time limit, preemption) with SIGTERM, then SIGKILL after
``KillWait`` seconds: the task stops its training within that window and records the job as
canceled, saying SLURM stopped it. ``queue cancel`` of a job in SLURM's hands cancels it in the
queue and ``scancel``s its array task. A task killed outright (SIGKILL with no SIGTERM first,
``KillWait`` over, a node lost, the OOM killer) records nothing and leaves a running job whose
runner is gone: ``queue list`` (:func:`reconcile_slurm`) then asks SLURM how the task ended
(``scontrol``, else ``sacct``) and records that (:func:`slurm_outcome`: canceled, preempted,
node failed, out of memory, ...); when SLURM no longer knows, the job stays as it is (running
with its runner gone, or interrupted), as for a local runner.

::

    <queue>/queue.db   table slurm_tasks: job id -> SLURM id (<array job>_<task>), the script
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..launch.rundir import RunDir
from ..launch.slurm import (
    SlurmError,
    SlurmTaskState,
    on_terminate,
    sbatch,
    scancel,
    squeue_states,
    task_end,
)
from .records import JobStatus, QueueJob
from .recovery import close_interrupted_run, stop_leftover_trainer
from .store import JobQueue

__all__ = [
    "SLURM_STOPPED",
    "cancel_jobs",
    "reconcile_slurm",
    "record_slurm_ends",
    "run_slurm_task",
    "slurm_ids",
    "slurm_outcome",
    "submit_array",
]

SLURM_STOPPED = "stopped by SLURM (scancel, the time limit or preemption: SIGTERM)"

_TABLE = """
CREATE TABLE IF NOT EXISTS slurm_tasks (
    job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
    slurm_id TEXT NOT NULL,
    script TEXT NOT NULL,
    submitted_at REAL NOT NULL
)
"""


def _ensure_table(queue: JobQueue) -> None:
    with queue._connect() as con:
        con.execute(_TABLE)


def slurm_ids(queue: JobQueue) -> dict[int, str]:
    """``{queue job id: "<array job>_<task>"}`` of the jobs submitted to SLURM."""
    with queue._connect() as con:  # reads only: a queue never submitted has no table
        if not con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'slurm_tasks'"
        ).fetchone():
            return {}
        rows = con.execute("SELECT job_id, slurm_id FROM slurm_tasks").fetchall()
    return {int(r["job_id"]): str(r["slurm_id"]) for r in rows}


def _record(queue: JobQueue, job_id: int, slurm_id: str, script: Path) -> None:
    _ensure_table(queue)
    with queue._tx() as con:
        con.execute(
            "INSERT OR REPLACE INTO slurm_tasks (job_id, slurm_id, script, submitted_at) "
            "VALUES (?, ?, ?, ?)",
            (job_id, slurm_id, str(script), time.time()),
        )
        con.execute(
            "UPDATE jobs SET reason = ? WHERE id = ? AND status = 'exported'",
            (f"submitted to SLURM as {slurm_id}", job_id),
        )


def submit_array(
    queue: JobQueue, job_ids: Sequence[int], script: Path, *, extra: Sequence[str] = ()
) -> str:
    """``sbatch`` an exported array script whose task ``i`` runs ``job_ids[i]``; returns its id.

    When SLURM refuses it, the jobs go back to ``queued`` (nothing is lost) and the error is raised.
    """
    try:
        array = sbatch(script, extra=extra)
    except (SlurmError, ConfigError):
        for job_id in job_ids:
            if queue.get(job_id).status == JobStatus.EXPORTED:
                queue.retry(job_id)
        raise
    for task, job_id in enumerate(job_ids):
        _record(queue, job_id, f"{array}_{task}", script)
    return array


def cancel_jobs(
    queue: JobQueue,
    ids: Sequence[int],
    *,
    cancel: Callable[[Sequence[str]], None] = scancel,
    wait_s: float = 20.0,
) -> list[QueueJob]:
    """``queue cancel``: cancel in the queue; ``scancel`` what SLURM still holds.

    A pending job is canceled in the queue and removed from SLURM's queue. A running one is asked
    to stop first: its task stops the training in order (the run directory says ``canceled``)
    and ends; only a task that has not within ``wait_s`` seconds is ``scancel``ed.
    """
    known = slurm_ids(queue)
    done = [queue.cancel(job_id) for job_id in ids]
    pending = [known[j.id] for j in done if j.id in known and j.status != JobStatus.RUNNING]
    running = [j.id for j in done if j.id in known and j.status == JobStatus.RUNNING]
    deadline = time.monotonic() + wait_s
    while running and time.monotonic() < deadline:
        time.sleep(0.5)
        running = [i for i in running if queue.get(i).status == JobStatus.RUNNING]
    if pending or running:
        cancel([*pending, *(known[i] for i in running)])
    return [queue.get(j.id) for j in done]


def reconcile_slurm(
    queue: JobQueue,
    *,
    states: Callable[[str], dict[str, str]] = squeue_states,
    ask: Callable[[str], SlurmTaskState | None] | None = None,
) -> list[QueueJob]:
    """What ``queue list`` does first: bring the queue in line with what SLURM says.

    Submitted jobs that SLURM no longer knows and that never started are canceled (someone ran
    ``scancel`` on a pending task, or SLURM dropped it); tasks killed outright are recorded by
    how SLURM ended them (:func:`record_slurm_ends`). Returns the jobs changed; nothing when
    SLURM cannot be asked.
    """
    return [*_dropped_before_start(queue, states), *record_slurm_ends(queue, ask=ask)]


def _dropped_before_start(
    queue: JobQueue, states: Callable[[str], dict[str, str]]
) -> list[QueueJob]:
    known = slurm_ids(queue)
    waiting = [j for j in queue.jobs(ids=set(known)) if j.status == JobStatus.EXPORTED]
    arrays = sorted({known[j.id].split("_")[0] for j in waiting})
    live: dict[str, str] = {}
    try:
        for array in arrays:
            live.update(states(array))
    except (SlurmError, ConfigError):
        return []
    changed: list[QueueJob] = []
    for job in waiting:
        if known[job.id] in live:
            continue  # pending or running (squeue -r lists each array task)
        with queue._tx() as con:
            cur = con.execute(
                "UPDATE jobs SET status = 'canceled', reason = ?, finished_at = ? "
                "WHERE id = ? AND status = 'exported'",
                (f"SLURM ended {known[job.id]} before it started", time.time(), job.id),
            )
        if cur.rowcount == 1:
            changed.append(queue.get(job.id))
    return changed


#: The start of the reason ``JobQueue.recover`` gives a job whose runner is gone.
_RECOVERED = "interrupted: its queue runner"
#: Seconds of clock difference tolerated between SLURM's controller and the task's node.
_SKEW_S = 5.0


def slurm_outcome(
    found: SlurmTaskState, slurm_id: str, *, by_user: bool = False
) -> tuple[JobStatus, str] | None:
    """The status and reason a job gets from how SLURM ended its task; None while it is not over.

    Args:
        found: What SLURM says of the task.
        slurm_id: ``<array job>_<task>``, for the reason.
        by_user: ``queue cancel`` had asked the job to stop.
    """
    state = found.state
    if not found.ended:
        return None
    if state == "CANCELLED":
        return JobStatus.CANCELED, (
            "canceled by the user" if by_user else f"SLURM canceled {slurm_id} (scancel)"
        )
    if state in ("TIMEOUT", "DEADLINE"):
        return JobStatus.CANCELED, f"SLURM's time limit ended {slurm_id} ({state})"
    if state == "PREEMPTED":
        return JobStatus.INTERRUPTED, (
            f"preempted by SLURM ({slurm_id}): 'queue retry --resume' continues it"
        )
    if state in ("NODE_FAIL", "BOOT_FAIL"):
        return JobStatus.INTERRUPTED, f"node failed: SLURM ended {slurm_id} as {state}"
    if state == "OUT_OF_MEMORY":
        return JobStatus.FAILED, f"out of host memory (SLURM OUT_OF_MEMORY, {slurm_id})"
    code = f" (exit code {found.exit_code}" if found.exit_code else ""
    if code and found.signal_name:
        code += f": killed by {found.signal_name}"
    code += ")" if code else ""
    return JobStatus.INTERRUPTED, (
        f"SLURM ended {slurm_id} as {state}{code} while the queue still had it running"
    )


def record_slurm_ends(
    queue: JobQueue, *, ask: Callable[[str], SlurmTaskState | None] | None = None
) -> list[QueueJob]:
    """Record how SLURM ended the tasks that were killed outright (and so recorded nothing).

    Looks at the jobs submitted to SLURM that are ``running`` with their runner gone, or
    ``interrupted`` by :meth:`~kohya_orchestrator.queue.JobQueue.recover` (its generic reason),
    asks SLURM (``ask``, by default :func:`~kohya_orchestrator.launch.slurm.task_end`) and
    gives the job and its last attempt the status and reason of :func:`slurm_outcome`. A run
    directory left open is closed, and its ``slurm.txt`` says why. Left as they are (and asked
    again next time): tasks SLURM says are not over, that SLURM no longer knows, or whose SLURM
    task ended before the job's last attempt began (an older submission; the attempt ran
    elsewhere).

    Returns:
        The jobs changed.
    """
    ask = ask or task_end
    known = slurm_ids(queue)
    changed: list[QueueJob] = []
    for job in queue.jobs(ids=set(known)):
        if job.status == JobStatus.RUNNING:
            if queue.runner_alive(job):
                continue
        elif job.status != JobStatus.INTERRUPTED or not (job.reason or "").startswith(_RECOVERED):
            continue
        found = ask(known[job.id])
        attempts = queue.attempts(job.id)
        if found is None or not attempts:
            continue
        started = attempts[-1].started_at
        if (found.end is not None and found.end < started - _SKEW_S) or (
            found.start is not None and found.start > started + _SKEW_S
        ):
            continue  # not the task that ran this attempt
        outcome = slurm_outcome(found, known[job.id], by_user=queue.cancel_requested(job.id))
        if outcome is None:
            continue
        if _apply(queue, job, attempts[-1].n, outcome, found):
            changed.append(queue.get(job.id))
    return changed


def _apply(
    queue: JobQueue,
    job: QueueJob,
    attempt: int,
    outcome: tuple[JobStatus, str],
    found: SlurmTaskState,
) -> bool:
    status, reason = outcome
    if job.status == JobStatus.RUNNING:
        stop_leftover_trainer(job)  # SLURM kills the task's processes; this is for safety
        where = "status = 'running' AND runner_id IS ?"
        args: tuple[object, ...] = (job.id, job.runner_id)
    else:
        where = "status = 'interrupted' AND reason IS ?"
        args = (job.id, job.reason)
    now = time.time()
    with queue._tx() as con:
        cur = con.execute(
            "UPDATE jobs SET status = ?, reason = ?, finished_at = COALESCE(finished_at, ?), "
            f"trainer_pid = NULL WHERE id = ? AND {where}",
            (status.value, reason, now, *args),
        )
        if cur.rowcount != 1:
            return False  # changed meanwhile (the task or another 'queue list')
        con.execute(
            "UPDATE attempts SET status = ?, reason = ?, finished_at = COALESCE(finished_at, ?) "
            "WHERE job_id = ? AND n = ?",
            (status.value, reason, now, job.id, attempt),
        )
    if job.run_dir is not None and job.run_dir.is_dir():
        close_interrupted_run(job.run_dir, reason)
        code = f", exit code {found.exit_code}" if found.exit_code else ""
        RunDir(job.run_dir).write_text("slurm.txt", f"{reason}\nSLURM: {found.state}{code}\n")
    return True


def run_slurm_task(
    queue: JobQueue, job_id: int, *, slurm_id: str | None = None, **runner: Any
) -> QueueJob:
    """Inside an array task: train job ``job_id`` of ``queue`` and record how it ended.

    Args:
        queue: The queue folder (shared with the login node).
        job_id: The job this task trains.
        slurm_id: ``<array job>_<task>``, recorded with the job.
        runner: Options of :class:`~kohya_orchestrator.queue.QueueRunner` (install, runs, ...).

    Returns:
        The job as it ended (also when it was not this task's to run: canceled, running
        elsewhere, finished).
    """
    from .worker import QueueRunner

    job = queue.get(job_id)
    if job.status not in (JobStatus.EXPORTED, JobStatus.QUEUED):
        return job  # canceled while pending, or already taken: nothing to do
    if slurm_id:
        _ensure_table(queue)
        with queue._tx() as con:
            con.execute(
                "INSERT OR IGNORE INTO slurm_tasks (job_id, slurm_id, script, submitted_at) "
                "VALUES (?, ?, '', ?)",
                (job_id, slurm_id, time.time()),
            )
    by_user: list[bool] = []
    terminated = threading.Event()

    def stop_training() -> None:
        terminated.wait()
        by_user.append(queue.cancel_requested(job_id))
        # running: the runner stops the training within its poll interval; not taken yet: the
        # job is canceled before it starts
        with contextlib.suppress(ConfigError):
            queue.cancel(job_id)

    with on_terminate(terminated.set):
        threading.Thread(target=stop_training, name="slurm-sigterm", daemon=True).start()
        QueueRunner(queue, ids=(job_id,), exported=True, **runner).run()
    final = queue.get(job_id)
    if terminated.is_set() and final.status != JobStatus.SUCCEEDED:
        reason = "canceled by the user" if any(by_user) else SLURM_STOPPED
        with queue._tx() as con:
            con.execute(
                "UPDATE jobs SET status = 'canceled', reason = ? WHERE id = ? "
                "AND status IN ('failed', 'canceled', 'interrupted')",
                (reason, job_id),
            )
            con.execute(
                "UPDATE attempts SET status = 'canceled', reason = ? WHERE job_id = ? AND n = ?",
                (reason, job_id, final.attempts),
            )
        final = queue.get(job_id)
        if final.run_dir is not None and final.run_dir.is_dir():
            # the run's own record (status, events) stays as the trainer ended; this says why
            RunDir(final.run_dir).write_text("slurm.txt", f"{reason}\n")
    return final
