"""JobQueue bookkeeping not reached by the runner tests: reading, all-or-none adds, claims by id,
and crash recovery of a runner that really died (a child process that exits without releasing its
lock). The "trainer" left behind is a sleeping Python whose command line names the run
directory's config.toml, as the real trainer's does; nothing here trains.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.launch.rundir import RunDir
from kohya_orchestrator.queue import JobQueue, JobStatus, NewJob
from kohya_orchestrator.queue.locks import RunnerLock

from .conftest import make_job

# A runner that claims job 1, records its attempt (run directory and trainer pid), then dies
# without releasing its lock or unregistering, as a SIGKILLed runner does.
DEAD_RUNNER = textwrap.dedent(
    """\
    import os, sys
    from pathlib import Path
    from kohya_orchestrator.queue import JobQueue
    from kohya_orchestrator.queue.locks import RunnerLock
    queue = JobQueue(Path(sys.argv[1]))
    lock = RunnerLock(queue.path)
    queue.register_runner(lock, (None,))
    job = queue.claim(lock, None)
    n = queue.begin_attempt(job, kind="first", overrides={}, remedies=[], resumed_from=None)
    trainer = int(sys.argv[3]) if sys.argv[3] != "none" else None
    queue.attempt_started(job.id, n, Path(sys.argv[2]), trainer)
    print(lock.id, flush=True)
    os._exit(0)
    """
)


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; whatever is left is killed and reaped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _dead_runner(queue: JobQueue, run_dir: Path, trainer_pid: int | None) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            DEAD_RUNNER,
            str(queue.path),
            str(run_dir),
            str(trainer_pid).lower(),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


def test_repr_get_missing_and_filters(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "q")
    assert repr(queue) == f"JobQueue({str(queue.path)!r})"
    queue.add([NewJob(make_job(tmp_path, "loose"))])
    queue.add([NewJob(make_job(tmp_path, n)) for n in ("s1", "s2")], sweep="sw")
    assert [j.name for j in queue.jobs(ids={1, 3})] == ["loose", "s2"]
    assert [j.name for j in queue.jobs(sweep="sw", ids=[3])] == ["s2"]
    assert queue.sweeps() == ["sw"]  # the job outside any sweep names none
    assert queue.runner_alive(queue.get(1)) is False  # never claimed: no runner
    with pytest.raises(ConfigError) as info:
        queue.get(99)
    assert info.value.problems[0].path == "job 99"
    assert "no such job" in info.value.problems[0].message


def test_claim_by_ids_and_an_empty_id_list(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, n)) for n in ("a", "b", "c")])
    lock = RunnerLock(queue.path)
    try:
        assert queue.claim(lock, None, ids=[]) is None
        job = queue.claim(lock, "1", ids=[3, 2])
        assert job is not None and (job.id, job.status, job.gpu) == (2, JobStatus.RUNNING, "1")
        assert queue.claim(lock, None, ids=[2]) is None  # running, not queued
        assert queue.get(1).status == JobStatus.QUEUED
    finally:
        lock.release()


def test_a_failed_add_removes_its_files_and_rows(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "q")
    # a stray folder where the second job's frozen copy must go: that write fails
    (queue.path / "jobs" / "0002-b.toml").mkdir()
    with pytest.raises(IsADirectoryError):
        queue.add([NewJob(make_job(tmp_path, n)) for n in ("a", "b")])
    assert queue.jobs() == []
    assert not (queue.path / "jobs" / "0001-a.toml").exists()


def test_finished_jobs_do_not_hold_their_output_name(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "same"))])
    with pytest.raises(ConfigError) as info:
        queue.add([NewJob(make_job(tmp_path, "same"))])
    assert info.value.problems[0].path == "training.output_name"
    queue.cancel(1)  # canceled: finished, its output name is free again
    (again,) = queue.add([NewJob(make_job(tmp_path, "same"))])
    assert again.id == 2 and again.status == JobStatus.QUEUED


def test_recover_stops_the_dead_runners_trainer_and_closes_its_run(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "k"))])
    run_dir = (tmp_path / "runs" / "r1").resolve()
    run_dir.mkdir(parents=True)
    RunDir(run_dir).set_status("running")
    # the trainer's command line names <run_dir>/config.toml, like the real one's
    trainer = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", str(run_dir / "config.toml")],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    spawned.append(trainer)
    runner_id = _dead_runner(queue, run_dir, trainer.pid)
    lock_file = queue.path / "runners" / f"{runner_id}.lock"
    assert lock_file.is_file()  # left behind by the dead runner

    (job,) = queue.recover()

    assert job.status == JobStatus.INTERRUPTED
    assert f"the leftover trainer (pid {trainer.pid}) was stopped" in (job.reason or "")
    assert trainer.wait(10) == -9
    assert not psutil.pid_exists(trainer.pid)
    assert queue.attempts(1)[0].status == "interrupted"
    assert (run_dir / "status").read_text().strip() == "failed"
    finished = json.loads((run_dir / "events.jsonl").read_text().splitlines()[-1])
    assert finished["kind"] == "run_finished" and "is gone" in finished["reason"]
    assert not lock_file.exists()  # the dead runner's lock file is cleaned up
    assert queue.recover() == []  # once only


def test_recover_without_a_trainer_leaves_the_reason_short(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "k"))])
    _dead_runner(queue, tmp_path / "runs" / "missing", None)
    (job,) = queue.recover()
    assert job.reason is not None and job.reason.endswith("is gone")
    assert not (tmp_path / "runs" / "missing").exists()  # nothing is created for it
