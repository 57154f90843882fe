"""How a SLURM task killed outright gets recorded: the mapping from SLURM's end state to the
queue's, and ``record_slurm_ends`` on a real queue whose runner is really gone (its lock
released). SLURM's answers are given as it gives them (``SlurmTaskState``); the real cluster:
test_slurm_cluster.py (marker slurm)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from kohya_orchestrator.launch.rundir import RunDir
from kohya_orchestrator.launch.slurm import SlurmTaskState, parse_scontrol_job
from kohya_orchestrator.queue import JobQueue, JobStatus, NewJob
from kohya_orchestrator.queue.locks import RunnerLock
from kohya_orchestrator.queue.slurm_tasks import (
    _record,
    reconcile_slurm,
    record_slurm_ends,
    slurm_outcome,
)

from .conftest import make_job

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slurm"


@pytest.mark.parametrize(
    ("state", "exit_code", "status", "reason"),
    [
        ("CANCELLED", "0:9", JobStatus.CANCELED, "SLURM canceled 5_1 (scancel)"),
        ("TIMEOUT", "0:0", JobStatus.CANCELED, "SLURM's time limit ended 5_1 (TIMEOUT)"),
        ("DEADLINE", "0:0", JobStatus.CANCELED, "SLURM's time limit ended 5_1 (DEADLINE)"),
        (
            "PREEMPTED",
            "0:0",
            JobStatus.INTERRUPTED,
            "preempted by SLURM (5_1): 'queue retry --resume' continues it",
        ),
        ("NODE_FAIL", "0:0", JobStatus.INTERRUPTED, "node failed: SLURM ended 5_1 as NODE_FAIL"),
        ("BOOT_FAIL", "0:0", JobStatus.INTERRUPTED, "node failed: SLURM ended 5_1 as BOOT_FAIL"),
        (
            "OUT_OF_MEMORY",
            "0:125",
            JobStatus.FAILED,
            "out of host memory (SLURM OUT_OF_MEMORY, 5_1)",
        ),
        (
            "FAILED",
            "0:9",
            JobStatus.INTERRUPTED,
            "SLURM ended 5_1 as FAILED (exit code 0:9: killed by SIGKILL) while the queue still "
            "had it running",
        ),
        (
            "COMPLETED",
            "0:0",
            JobStatus.INTERRUPTED,
            "SLURM ended 5_1 as COMPLETED (exit code 0:0) while the queue still had it running",
        ),
    ],
)
def test_slurms_end_states_map_to_the_queues(
    state: str, exit_code: str, status: JobStatus, reason: str
) -> None:
    assert slurm_outcome(SlurmTaskState(state, exit_code=exit_code), "5_1") == (status, reason)


def test_a_user_cancel_and_states_that_are_not_an_end() -> None:
    cancelled = SlurmTaskState("CANCELLED", exit_code="0:15")
    assert slurm_outcome(cancelled, "5_1", by_user=True) == (
        JobStatus.CANCELED,
        "canceled by the user",
    )
    for state in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED", "CONFIGURING"):
        assert slurm_outcome(SlurmTaskState(state), "5_1") is None


def _killed_task(tmp_path: Path, *, cancel: bool = False) -> tuple[JobQueue, Path]:
    """Job 1 submitted as 77_0 and taken by a task whose runner then vanished (its lock is
    released, as the kernel does when the process is SIGKILLed); its run directory left open."""
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "a"))])
    queue.mark_exported([1], "exported to x.sbatch")
    _record(queue, 1, "77_0", tmp_path / "x.sbatch")
    lock = RunnerLock(queue.path)
    queue.register_runner(lock, (None,))
    job = queue.claim(lock, None, ids=[1], exported=True)
    assert job is not None
    n = queue.begin_attempt(job, kind="first", overrides={}, remedies=[], resumed_from=None)
    run_dir = queue.path / "runs" / "a-1"
    run_dir.mkdir(parents=True)
    RunDir(run_dir).set_status("running")
    queue.attempt_started(1, n, run_dir, None)
    if cancel:
        queue.cancel(1)  # queue cancel asked the running job to stop
    lock.release()
    assert not queue.runner_alive(queue.get(1))
    return queue, run_dir


def _now(state: str, exit_code: str = "0:9") -> SlurmTaskState:
    """SLURM's answer for a task that ran this attempt (started before it, ended after)."""
    return SlurmTaskState(state, exit_code=exit_code, start=time.time() - 2, end=time.time() + 1)


def test_a_running_job_whose_task_slurm_canceled_is_recorded_canceled(tmp_path: Path) -> None:
    queue, run_dir = _killed_task(tmp_path)
    asked: list[str] = []

    def ask(slurm_id: str) -> SlurmTaskState:
        asked.append(slurm_id)
        return _now("CANCELLED")

    (job,) = record_slurm_ends(queue, ask=ask)
    assert asked == ["77_0"]
    assert job.status == JobStatus.CANCELED and job.reason == "SLURM canceled 77_0 (scancel)"
    assert job.finished_at is not None
    attempt = queue.attempts(1)[-1]
    assert (attempt.status, attempt.reason) == ("canceled", "SLURM canceled 77_0 (scancel)")
    assert attempt.finished_at is not None
    # the run directory is closed, and says why
    assert (run_dir / "status").read_text().strip() == "failed"
    finished = json.loads((run_dir / "events.jsonl").read_text().splitlines()[-1])
    assert finished["kind"] == "run_finished" and finished["reason"] == job.reason
    assert (run_dir / "slurm.txt").read_text().splitlines() == [
        "SLURM canceled 77_0 (scancel)",
        "SLURM: CANCELLED, exit code 0:9",
    ]
    # recorded once: nothing left to ask
    assert record_slurm_ends(queue, ask=ask) == [] and asked == ["77_0"]


def test_an_interrupted_job_is_explained_and_a_user_cancel_named(tmp_path: Path) -> None:
    queue, run_dir = _killed_task(tmp_path, cancel=True)
    (interrupted,) = queue.recover()  # what a local runner or 'queue cancel' does first
    assert interrupted.status == JobStatus.INTERRUPTED
    (job,) = record_slurm_ends(queue, ask=lambda slurm_id: _now("CANCELLED"))
    assert job.status == JobStatus.CANCELED and job.reason == "canceled by the user"
    assert queue.attempts(1)[-1].status == "canceled"
    assert (run_dir / "slurm.txt").read_text().startswith("canceled by the user\n")


def test_preempted_stays_interrupted_with_slurms_reason(tmp_path: Path) -> None:
    queue, _ = _killed_task(tmp_path)
    queue.recover()
    (job,) = record_slurm_ends(queue, ask=lambda slurm_id: _now("PREEMPTED", "0:0"))
    assert job.status == JobStatus.INTERRUPTED
    assert job.reason is not None and job.reason.startswith("preempted by SLURM (77_0)")
    assert record_slurm_ends(queue, ask=lambda slurm_id: _now("CANCELLED")) == []  # explained


def test_what_slurm_does_not_say_is_over_is_left_alone(tmp_path: Path) -> None:
    queue, run_dir = _killed_task(tmp_path)
    completing = parse_scontrol_job((FIXTURES / "scontrol-running.txt").read_text())
    assert completing is not None
    completing = dataclasses.replace(completing, state="COMPLETING", start=time.time())
    for answer in (None, completing):

        def ask(slurm_id: str, answer: SlurmTaskState | None = answer) -> SlurmTaskState | None:
            return answer

        assert record_slurm_ends(queue, ask=ask) == []
        assert queue.get(1).status == JobStatus.RUNNING
    assert (run_dir / "status").read_text().strip() == "running"
    assert not (run_dir / "slurm.txt").exists()


def test_an_older_task_of_the_job_is_not_taken_for_this_attempt(tmp_path: Path) -> None:
    # the captured answer: a task that ended (2026-12-07T13:06) before this attempt began
    queue, _ = _killed_task(tmp_path)
    queue.recover()
    old = parse_scontrol_job((FIXTURES / "scontrol-cancelled-signal-kill.txt").read_text())
    assert old is not None and old.end is not None
    assert old.end < queue.attempts(1)[-1].started_at
    assert record_slurm_ends(queue, ask=lambda slurm_id: old) == []
    assert queue.get(1).status == JobStatus.INTERRUPTED


def test_a_live_runner_is_not_second_guessed(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "a"))])
    queue.mark_exported([1], "exported")
    _record(queue, 1, "77_0", tmp_path / "x.sbatch")
    lock = RunnerLock(queue.path)
    try:
        queue.register_runner(lock, (None,))
        assert queue.claim(lock, None, ids=[1], exported=True) is not None
        asked: list[str] = []

        def ask(slurm_id: str) -> SlurmTaskState:
            asked.append(slurm_id)
            return _now("CANCELLED")

        changed = reconcile_slurm(queue, states=lambda array: {}, ask=ask)
        assert changed == [] and asked == []  # the task itself records how it ends
        assert queue.get(1).status == JobStatus.RUNNING
    finally:
        lock.release()


def test_queue_list_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kohya_orchestrator.cli.main import main
    from kohya_orchestrator.queue import slurm_tasks

    queue, _ = _killed_task(tmp_path)
    # SLURM's answer (the real commands: test_slurm_cluster.py)
    monkeypatch.setattr(slurm_tasks, "task_end", lambda slurm_id: _now("TIMEOUT", "0:0"))
    assert main(["queue", "list", "--queue", str(queue.path), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["status"] == "canceled"
    assert listed["reason"] == "SLURM's time limit ended 77_0 (TIMEOUT)"
