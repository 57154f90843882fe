"""The queue runner with the stand-in trainer replaying real captures (not proof of training).

Covers: order kept past a crash, an OOM retried with the first memory remedy, OOM retries running
out, two GPUs with two pinned workers, cancel of waiting and running jobs, resume from a saved
state, and the frozen job copy.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from fake_runs import saved_state

from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.queue import JobQueue, JobStatus, NewJob, QueueRunner
from kohya_orchestrator.queue.locks import RunnerLock

from .conftest import FakeLab, make_job, no_accelerate, run_fake


def test_five_jobs_one_crash_one_oom_retried(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    """5 jobs: j2 crashes, j3 runs out of memory until the queue retries it with latents cached.

    The OOM comes from a derived capture (real f_badargs_lora with its exception line replaced by
    a torch OOM line; see conftest.fake): there is no real OOM capture.
    """
    fake.plan(
        {
            "j1": fake.ok(),
            "j2": fake.crash(),
            "j3": fake.oom_unless("cache_latents"),
            "j4": fake.ok(),
            "j5": fake.ok(),
        }
    )
    queue = JobQueue(tmp_path / "q")
    jobs = [make_job(tmp_path, f"j{i}") for i in (1, 2)]
    jobs.append(make_job(tmp_path, "j3", cache_latents=False))
    jobs += [make_job(tmp_path, f"j{i}") for i in (4, 5)]
    queue.add([NewJob(j) for j in jobs])

    done = run_fake(queue, install)

    assert [(j.name, j.status) for j in done] == [
        ("j1", JobStatus.SUCCEEDED),
        ("j2", JobStatus.FAILED),
        ("j3", JobStatus.SUCCEEDED),
        ("j4", JobStatus.SUCCEEDED),
        ("j5", JobStatus.SUCCEEDED),
    ]
    # in order, each once, j3 twice (the second time lighter)
    calls = fake.calls()
    assert [c["name"] for c in calls] == ["j1", "j2", "j3", "j3", "j4", "j5"]
    assert [c["cache_latents"] for c in calls if c["name"] == "j3"] == [False, True]
    j2 = queue.get(2)
    assert "notanumber" in (j2.reason or "") and j2.attempts == 1
    first, second = queue.attempts(3)
    assert (first.kind, first.status, first.remedies) == ("first", "failed", [])
    assert second.kind == "oom-retry" and second.status == "succeeded"
    assert second.remedies == ["cache latents (the VAE leaves the GPU)"]
    assert second.overrides == {"training.cache_latents": True}
    # each attempt recorded in its own run directory
    assert first.run_dir is not None and second.run_dir is not None
    assert first.run_dir != second.run_dir
    assert "--set training.cache_latents=true" in (first.run_dir / "remedies.txt").read_text()
    record = json.loads((second.run_dir / "queue.json").read_text())
    assert record["attempt"] == 2 and record["kind"] == "oom-retry"
    assert record["remedies"] == ["cache latents (the VAE leaves the GPU)"]
    assert (second.run_dir / "status").read_text().strip() == "succeeded"
    assert "cache_latents = true" in (second.run_dir / "config.toml").read_text()
    assert (tmp_path / "out" / "j3.safetensors").is_file()


def test_oom_retries_run_out(tmp_path: Path, fake: FakeLab, install: Install) -> None:
    """Always OOM (derived capture, see conftest.fake): 1 + oom_retries attempts, then failed."""
    fake.plan({"j": fake.oom_unless("never_set")})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "j", cache_latents=False, attention="none"))])
    (job,) = run_fake(queue, install, oom_retries=2)
    assert job.status == JobStatus.FAILED and "out of memory" in (job.reason or "").lower()
    attempts = queue.attempts(job.id)
    assert [a.kind for a in attempts] == ["first", "oom-retry", "oom-retry"]
    # cumulative, in the fixed order
    assert attempts[2].remedies == [
        "cache latents (the VAE leaves the GPU)",
        "memory-efficient attention (sdpa)",
    ]
    assert attempts[2].overrides == {"training.cache_latents": True, "training.attention": "sdpa"}


def test_two_gpus_two_pinned_workers(tmp_path: Path, fake: FakeLab, install: Install) -> None:
    fake.plan({"*": fake.ok(speed=150)})  # about 0.3 s each
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, f"g{i}")) for i in range(4)])
    done = run_fake(queue, install, gpus=("0", "1"))
    assert sorted(j.name for j in done) == ["g0", "g1", "g2", "g3"]
    assert all(j.status == JobStatus.SUCCEEDED for j in done)
    assert {j.gpu for j in done} == {"0", "1"}
    calls = {c["name"]: c for c in fake.calls()}
    for job in done:
        assert job.run_dir is not None
        command = json.loads((job.run_dir / "command.json").read_text())
        assert command["env"]["CUDA_VISIBLE_DEVICES"] == job.gpu
        assert calls[job.name]["cuda"] == job.gpu  # what the trainer saw
    # the first two ran side by side
    starts = sorted(c["t"] for c in fake.calls())
    assert starts[1] - starts[0] < 0.25


def test_cancel_waiting_and_running_jobs(tmp_path: Path, fake: FakeLab, install: Install) -> None:
    fake.plan({"slow": fake.hang(), "*": fake.ok()})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, n)) for n in ("slow", "skipped", "after")])
    queue.cancel(2)
    runner = QueueRunner(queue, install=install, launch=no_accelerate, probe=False, poll_s=0.1)
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(runner.run()))
    thread.start()
    deadline = time.monotonic() + 20
    while not any(c["name"] == "slow" for c in fake.calls()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert queue.get(1).status == JobStatus.RUNNING
    queue.cancel(1)
    thread.join(30)
    assert not thread.is_alive()
    assert [queue.get(i).status for i in (1, 2, 3)] == [
        JobStatus.CANCELED,
        JobStatus.CANCELED,
        JobStatus.SUCCEEDED,
    ]
    assert [c["name"] for c in fake.calls()] == ["slow", "after"]
    run_dir = queue.get(1).run_dir
    assert run_dir is not None and (run_dir / "status").read_text().strip() == "canceled"
    with pytest.raises(ConfigError, match="already succeeded"):
        queue.cancel(3)


def test_interrupted_job_resumes_from_the_latest_state(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    fake.plan({"*": fake.ok()})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "st", save_state=True))])
    # a runner claims the job and dies (its lock goes away with it)
    lock = RunnerLock(queue.path)
    assert queue.claim(lock, None) is not None
    lock.release()
    (interrupted,) = queue.recover()
    assert interrupted.status == JobStatus.INTERRUPTED
    assert run_fake(queue, install) == []  # never rerun by itself
    out = tmp_path / "out"
    saved_state(out / "st-000001-state")
    time.sleep(0.01)
    saved_state(out / "st-000002-state")
    saved_state(out / "other-000009-state")
    job = queue.retry(1, resume=True)
    assert job.status == JobStatus.QUEUED and job.resume_from == str(out / "st-000002-state")
    (done,) = run_fake(queue, install)
    assert done.status == JobStatus.SUCCEEDED and done.resume_from is None
    assert fake.calls()[-1]["resume"] == str(out / "st-000002-state")
    assert queue.attempts(1)[-1].kind == "resume"


def test_resume_without_state_is_refused(tmp_path: Path, install: Install) -> None:
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "nostate"))])
    queue.cancel(1)
    with pytest.raises(ConfigError, match="no saved state"):
        queue.retry(1, resume=True)
    assert queue.retry(1).status == JobStatus.QUEUED


def test_the_queued_copy_is_frozen(tmp_path: Path, fake: FakeLab, install: Install) -> None:
    fake.plan({"*": fake.ok()})
    job = make_job(tmp_path, "frozen")
    queue = JobQueue(tmp_path / "q")
    (queued,) = queue.add([NewJob(job, source="somewhere/job.toml")])
    assert queued.job_file.parent == queue.path / "jobs"
    text = queued.job_file.read_text()
    assert 'output_name = "frozen"' in text and "from somewhere/job.toml" in text
    with pytest.raises(ConfigError, match="also the output of queued job 1"):
        queue.add([NewJob(job)])
    (done,) = run_fake(queue, install)
    assert done.status == JobStatus.SUCCEEDED


def test_retry_of_a_failed_job_moves_its_old_checkpoints_aside(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    # succeeds in the replay (saves files) but exits 1: a rerun must not collide with them
    fake.plan({"*": {**fake.ok(), "exit_code": 1}})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "again"))])
    (first,) = run_fake(queue, install)
    assert first.status == JobStatus.FAILED
    assert (tmp_path / "out" / "again-000001.safetensors").is_file()
    fake.plan({"*": fake.ok()})
    queue.retry(1)
    (second,) = run_fake(queue, install)
    assert second.status == JobStatus.SUCCEEDED, second.reason
    assert first.run_dir is not None
    assert (tmp_path / "out" / "superseded" / first.run_dir.name / "again.safetensors").is_file()
    assert (tmp_path / "out" / "again.safetensors").is_file()


def test_stopping_the_runner_interrupts_its_job(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    """What Ctrl-C on `queue run` does: the training stops, the job is interrupted, not failed."""
    fake.plan({"*": fake.hang()})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, n)) for n in ("first", "second")])
    runner = QueueRunner(queue, install=install, launch=no_accelerate, probe=False, poll_s=0.1)
    thread = threading.Thread(target=runner.run)
    thread.start()
    deadline = time.monotonic() + 20
    while not fake.calls() and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.stop()
    thread.join(30)
    assert not thread.is_alive()
    first, second = queue.jobs()
    assert first.status == JobStatus.INTERRUPTED and "runner was stopped" in (first.reason or "")
    assert second.status == JobStatus.QUEUED and second.attempts == 0
    assert queue.attempts(1)[0].status == "interrupted"
    assert first.run_dir is not None
    assert (first.run_dir / "status").read_text().strip() == "canceled"
