"""SLURM bookkeeping without a cluster: what ``queue cancel`` scancels, pending tasks SLURM
dropped, and a refused submission. The cluster itself: test_slurm_cluster.py (marker slurm)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil
import pytest

from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.queue import JobQueue, JobStatus, NewJob
from kohya_orchestrator.queue.locks import RunnerLock
from kohya_orchestrator.queue.slurm_tasks import (
    SLURM_STOPPED,
    _record,
    cancel_jobs,
    reconcile_slurm,
    run_slurm_task,
    slurm_ids,
    submit_array,
)

from .conftest import FakeLab, make_job, no_accelerate


def _submitted(tmp_path: Path, names: Sequence[str]) -> JobQueue:
    """Jobs exported and recorded as submitted as array 77 (what submit_array records)."""
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, n)) for n in names])
    ids = [j.id for j in queue.jobs()]
    queue.mark_exported(ids, "exported to x.sbatch")
    for task, job_id in enumerate(ids):
        _record(queue, job_id, f"77_{task}", tmp_path / "x.sbatch")
    return queue


def test_cancel_scancels_pending_tasks_and_waits_for_running_ones(tmp_path: Path) -> None:
    queue = _submitted(tmp_path, ["a", "b", "c"])
    assert queue.get(1).reason == "submitted to SLURM as 77_0"
    lock = RunnerLock(queue.path)
    try:
        assert queue.claim(lock, None, ids=[2], exported=True) is not None  # task 77_1 runs
        cancelled: list[list[str]] = []
        done = cancel_jobs(queue, [1, 2], cancel=lambda ids: cancelled.append(list(ids)), wait_s=1)
    finally:
        lock.release()
    # the pending one is canceled at once; the running one was asked, did not end, so scancel
    assert [j.status for j in done] == [JobStatus.CANCELED, JobStatus.RUNNING]
    assert queue.cancel_requested(2)
    assert cancelled == [["77_0", "77_1"]]
    assert cancel_jobs(queue, [3], cancel=lambda ids: cancelled.append(list(ids)))[0].status == (
        JobStatus.CANCELED
    )
    assert cancelled[-1] == ["77_2"]


def test_pending_tasks_slurm_no_longer_knows_are_canceled(tmp_path: Path) -> None:
    queue = _submitted(tmp_path, ["a", "b"])
    changed = reconcile_slurm(queue, states=lambda array: {"77_1": "PENDING"})
    assert [j.id for j in changed] == [1]
    assert queue.get(1).status == JobStatus.CANCELED
    assert queue.get(1).reason == "SLURM ended 77_0 before it started"
    assert queue.get(2).status == JobStatus.EXPORTED

    def no_slurm(array: str) -> dict[str, str]:
        raise ConfigError([])

    assert reconcile_slurm(queue, states=no_slurm) == []  # SLURM cannot be asked: no change
    assert queue.get(2).status == JobStatus.EXPORTED


def test_a_refused_submission_puts_the_jobs_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "a"))])
    queue.mark_exported([1], "exported")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch here
    with pytest.raises(ConfigError) as info:
        submit_array(queue, [1], tmp_path / "x.sbatch")
    assert "not found on PATH" in info.value.problems[0].message
    assert queue.get(1).status == JobStatus.QUEUED
    assert slurm_ids(queue) == {}


def _task_options(install: Install) -> dict[str, object]:
    return {"install": install, "launch": no_accelerate, "probe": False, "poll_s": 0.1}


def test_an_array_task_trains_its_job_and_reports_back(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    """What `queue slurm-task` does on the node, here in this process with the stand-in."""
    fake.plan({"*": fake.ok()})
    queue = _submitted(tmp_path, ["a", "b"])
    job = run_slurm_task(queue, 2, slurm_id="77_1", **_task_options(install))  # type: ignore[arg-type]
    assert job.status == JobStatus.SUCCEEDED
    assert job.run_dir is not None and job.run_dir.parent == queue.path / "runs"
    assert (job.run_dir / "status").read_text().strip() == "succeeded"
    assert queue.attempts(2)[0].returncode == 0
    assert queue.get(1).status == JobStatus.EXPORTED  # another task's job: untouched
    assert [c["name"] for c in fake.calls()] == ["b"]
    # a task whose job is no longer waiting (canceled while pending, or done) trains nothing
    assert run_slurm_task(queue, 2, **_task_options(install)).status == JobStatus.SUCCEEDED  # type: ignore[arg-type]
    assert len(fake.calls()) == 1


def test_sigterm_stops_the_training_and_records_slurms_cancel(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    fake.plan({"*": fake.hang()})
    queue = _submitted(tmp_path, ["slow"])

    def terminate_when_running() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if queue.get(1).run_dir is not None and fake.calls():
                break
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)  # what SLURM sends at scancel or the time limit

    threading.Thread(target=terminate_when_running, daemon=True).start()
    before = signal.getsignal(signal.SIGTERM)
    job = run_slurm_task(queue, 1, slurm_id="77_0", **_task_options(install))  # type: ignore[arg-type]
    assert signal.getsignal(signal.SIGTERM) == before
    assert job.status == JobStatus.CANCELED and job.reason == SLURM_STOPPED
    assert queue.attempts(1)[-1].status == "canceled"
    assert job.run_dir is not None
    assert (job.run_dir / "slurm.txt").read_text().strip() == SLURM_STOPPED
    assert (job.run_dir / "status").read_text().strip() == "canceled"  # stopped in order
    assert not psutil.pid_exists(fake.calls()[0]["pid"]) or (
        psutil.Process(fake.calls()[0]["pid"]).status() == psutil.STATUS_ZOMBIE
    )
