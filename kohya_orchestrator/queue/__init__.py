"""A persistent training queue, sweeps, SLURM and SkyPilot (issues #8, #19).

- :class:`JobQueue` (``store.py``, records in ``records.py``): the queue folder (SQLite + frozen
  job copies) and atomic claims; ``locks.py`` tells live runners from dead ones and
  ``recovery.py`` cleans up after dead ones (their jobs are *interrupted*, never silently re-run).
- :class:`QueueRunner` / :func:`run_queue` (``worker.py``): one worker per GPU, in order, past
  failures, with lighter-plan retries after CUDA out of memory.
- :func:`expand_sweep` / :func:`queue_sweep` / :func:`compare_sweep` (``sweep.py``): a job file
  times ``--grid`` values, validated before anything is queued.
- :func:`render_slurm_script` (``slurm.py``): the queue as an ``sbatch`` job array;
  ``slurm_tasks.py`` submits it, runs one array task on its node and reports back into the queue.
- ``sky.py`` / ``sky_queue.py``: a job as a SkyPilot task (cloud GPUs) and its events streamed back
  into a local run directory; ``queue run --on sky``.

Example::

    from kohya_orchestrator.queue import JobQueue, NewJob, run_queue
    from kohya_orchestrator.jobs.loading import load_job

    queue = JobQueue()  # ~/.local/share/kohya_orchestrator/queue
    queue.add([NewJob(load_job(Path("a.toml"))), NewJob(load_job(Path("b.toml")))])
    run_queue(queue, gpus=("0", "1"))
"""

from __future__ import annotations

from .records import Attempt, JobStatus, NewJob, QueueJob, default_queue_dir
from .slurm import render_slurm_script
from .store import JobQueue
from .sweep import SweepJob, SweepPlan, compare_sweep, expand_sweep, parse_grid, queue_sweep
from .worker import QueueNotice, QueueRunner, run_queue

__all__ = [
    "Attempt",
    "JobQueue",
    "JobStatus",
    "NewJob",
    "QueueJob",
    "QueueNotice",
    "QueueRunner",
    "SweepJob",
    "SweepPlan",
    "compare_sweep",
    "default_queue_dir",
    "expand_sweep",
    "parse_grid",
    "queue_sweep",
    "render_slurm_script",
    "run_queue",
]
