"""The runner killed with SIGKILL mid-job, then restarted: nothing lost, nothing run twice, no orphan.

The runner is a process of its own (tests/queue/_drive_queue.py) running the stand-in trainer,
which replays part of a real capture and then hangs (not proof of training). In this sandbox
PID 1 does not reap orphans, so a killed orphan may linger as a zombie: zombies count as gone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.queue import JobQueue, JobStatus, NewJob
from kohya_orchestrator.queue.locks import RunnerLock
from kohya_orchestrator.run import read_events

from .conftest import FakeLab, make_job, run_fake

DRIVER = Path(__file__).resolve().parent / "_drive_queue.py"
REPO = Path(__file__).resolve().parents[2]


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _replayed_bytes(fake: FakeLab, chunks: int) -> int:
    rows = [
        json.loads(line)
        for line in (fake.logs / "a_lora_accelerate" / "chunks.jsonl").read_text().splitlines()
    ]
    texts = [r["text"] for r in rows if r["stream"] in ("stdout", "stderr")][:chunks]
    return sum(len(t.replace("a_lora_accelerate", "k1").encode()) for t in texts)


def _drive(queue: JobQueue, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(DRIVER), str(queue.path)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_sigkill_the_runner_mid_job_then_restart(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    fake.plan({"k1": fake.hang(), "*": fake.ok()})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, n)) for n in ("k1", "k2", "k3")])
    log = tmp_path / "driver.log"

    first = _drive(queue, log)
    # wait until the stand-in has printed its 30 chunks and gone silent (were it killed while
    # printing, the broken pipe would end it before the restart could)
    silent = _replayed_bytes(fake, 30)
    trainer = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and first.poll() is None:
        job = queue.get(1)
        if (
            job.trainer_pid is not None
            and job.run_dir is not None
            and (job.run_dir / "console.log").is_file()
            and (job.run_dir / "console.log").stat().st_size >= silent
        ):
            trainer = job.trainer_pid
            break
        time.sleep(0.05)
    assert trainer is not None, log.read_text()
    first.kill()  # SIGKILL: no cleanup at all
    first.wait(10)
    assert _running(trainer)  # the trainer, in its own session, outlived its runner
    assert queue.get(1).status == JobStatus.RUNNING and not queue.runner_alive(queue.get(1))

    second = _drive(queue, log)
    assert second.wait(60) == 0, log.read_text()

    assert [queue.get(i).status for i in (1, 2, 3)] == [
        JobStatus.INTERRUPTED,
        JobStatus.SUCCEEDED,
        JobStatus.SUCCEEDED,
    ]
    assert [c["name"] for c in fake.calls()] == ["k1", "k2", "k3"]  # none twice
    assert not _running(trainer)  # the orphan was stopped on restart
    k1 = queue.get(1)
    assert "interrupted" in (k1.reason or "") and "was stopped" in (k1.reason or "")
    assert queue.attempts(1)[0].status == "interrupted"
    run_dir = k1.run_dir
    assert run_dir is not None
    assert (run_dir / "status").read_text().strip() == "failed"
    assert (run_dir / "interrupted.txt").is_file()
    events = read_events(run_dir)
    assert events[-1].kind == "run_finished"
    assert [e.seq for e in events] == list(range(len(events)))

    # only an explicit retry runs it again
    fake.plan({"*": fake.ok()})
    queue.retry(1)
    (again,) = run_fake(queue, install)
    assert again.status == JobStatus.SUCCEEDED and again.attempts == 2
    assert [c["name"] for c in fake.calls()] == ["k1", "k2", "k3", "k1"]


def test_a_live_runner_keeps_its_job(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "live"))])
    lock = RunnerLock(queue.path)
    try:
        claimed = queue.claim(lock, "0")
        assert claimed is not None and claimed.status == JobStatus.RUNNING
        other = JobQueue(queue.path)  # another process's view of the same folder
        assert other.recover() == []
        assert other.runner_alive(other.get(1))
        assert other.claim(RunnerLock(queue.path), "1") is None  # never claimed twice
    finally:
        lock.release()
    assert [j.status for j in JobQueue(queue.path).recover()] == [JobStatus.INTERRUPTED]
