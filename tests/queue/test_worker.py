"""The queue runner's less common paths, with the stand-in trainer replaying real captures.

The stand-in (tests/queue/fake_trainer) only proves process control, never that training works.
Covers: GPU list checks, ``run_queue`` on a folder, recovered and waiting notices, follow mode,
a broken queued copy, a launch that cannot start, OOM retries whose remedies are invalid for the
job, a stop between OOM attempts, and a notice display that raises.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models import TrainingJob
from kohya_orchestrator.queue import JobQueue, JobStatus, NewJob, QueueNotice, QueueRunner
from kohya_orchestrator.queue.locks import RunnerLock
from kohya_orchestrator.queue.worker import nest_overrides, run_queue

from .conftest import FakeLab, make_job, no_accelerate, run_fake


def _no_children_left() -> None:
    assert psutil.Process().children(recursive=True) == []


def _color_aug_job(tmp_path: Path, name: str, **training: Any) -> TrainingJob:
    """A job whose subset turns on color_aug: caching latents is then invalid for it."""
    (tmp_path / "img" / "2_oilpaint style").mkdir(parents=True, exist_ok=True)
    model = tmp_path / "sd15.safetensors"
    model.write_bytes(b"")
    return validate_job(
        {
            "model": {"pretrained_model_name_or_path": str(model)},
            "dataset": {
                "subsets": [
                    {"image_dir": str(tmp_path / "img" / "2_oilpaint style"), "color_aug": True}
                ]
            },
            "training": {
                "max_train_epochs": 2,
                "output_dir": str(tmp_path / "out"),
                "output_name": name,
                "cache_latents": False,
                **training,
            },
        }
    )


def test_nest_overrides() -> None:
    assert nest_overrides({"training.cache_latents": True, "a.b.c": 1, "top": 2}) == {
        "training": {"cache_latents": True},
        "a": {"b": {"c": 1}},
        "top": 2,
    }


@pytest.mark.parametrize("gpus", [(), ("0", "0")])
def test_gpus_must_be_distinct_and_given(tmp_path: Path, gpus: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as info:
        QueueRunner(JobQueue(tmp_path / "q"), gpus=gpus)
    assert info.value.problems[0].path == "--gpus"
    assert str(list(gpus)) in info.value.problems[0].message


def test_run_queue_opens_a_folder_and_runs_its_jobs(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    fake.plan({"*": fake.ok()})
    JobQueue(tmp_path / "q").add([NewJob(make_job(tmp_path, "viapath"))])
    (job,) = run_queue(
        tmp_path / "q", install=install, launch=no_accelerate, probe=False, poll_s=0.1
    )
    assert (job.name, job.status) == ("viapath", JobStatus.SUCCEEDED)
    assert (tmp_path / "out" / "viapath.safetensors").is_file()
    _no_children_left()


def test_probing_the_install_once_writes_the_environment(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    fake.plan({"*": fake.ok()})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "probed"))])
    (job,) = run_fake(queue, install, probe=True)
    assert job.status == JobStatus.SUCCEEDED
    assert job.run_dir is not None and (job.run_dir / "environment.json").is_file()


def test_a_dead_runners_job_is_recovered_and_left_waiting(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, n)) for n in ("orphan", "next")])
    dead = RunnerLock(queue.path)
    queue.register_runner(dead, (None,))
    assert queue.claim(dead, None) is not None
    dead.release()  # its runner is gone: the kernel drops its flock
    fake.plan({"*": fake.ok()})
    notices: list[QueueNotice] = []

    done = run_fake(queue, install, notify=notices.append)

    assert [(j.name, j.status) for j in done] == [("next", JobStatus.SUCCEEDED)]
    kinds = [(n.kind, n.job.id) for n in notices]
    assert kinds[:2] == [("recovered", 1), ("waiting", 1)]
    assert "is gone" in notices[0].message
    assert "'queue retry 1 --resume' resumes it" in notices[1].message
    assert queue.get(1).status == JobStatus.INTERRUPTED  # never rerun by itself
    assert [c["name"] for c in fake.calls()] == ["next"]


def test_follow_waits_for_new_jobs_until_stopped(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    fake.plan({"*": fake.ok()})
    queue = JobQueue(tmp_path / "q")
    runner: QueueRunner

    def notify(notice: QueueNotice) -> None:
        if notice.kind == "finished":
            runner.stop()

    runner = QueueRunner(
        queue,
        install=install,
        launch=no_accelerate,
        probe=False,
        poll_s=0.05,
        follow=True,
        notify=notify,
    )
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.extend(runner.run()))
    thread.start()
    time.sleep(0.3)  # the empty queue does not end a following runner
    assert thread.is_alive() and fake.calls() == []
    queue.add([NewJob(make_job(tmp_path, "late"))])
    thread.join(20)
    assert not thread.is_alive()
    assert [(j.name, j.status) for j in done] == [("late", JobStatus.SUCCEEDED)]
    _no_children_left()


def test_a_broken_queued_copy_fails_that_job_only(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    fake.plan({"*": fake.ok()})
    queue = JobQueue(tmp_path / "q")
    broken, _ = queue.add([NewJob(make_job(tmp_path, n)) for n in ("broken", "fine")])
    broken.job_file.write_text("[training\n", encoding="utf-8")
    first, second = run_fake(queue, install)
    assert first.status == JobStatus.FAILED and first.attempts == 0
    assert first.reason and "\n" not in first.reason
    assert second.status == JobStatus.SUCCEEDED
    assert [c["name"] for c in fake.calls()] == ["fine"]


def test_a_launch_that_cannot_start_fails_the_attempt_and_a_retry_skips_it(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    fake.plan({"*": fake.ok()})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "nostart"))])
    model = tmp_path / "sd15.safetensors"
    model.unlink()  # gone between queueing and running: the launch refuses

    (job,) = run_fake(queue, install)

    assert job.status == JobStatus.FAILED and "\n" not in (job.reason or "x")
    (attempt,) = queue.attempts(job.id)
    assert (attempt.status, attempt.run_dir) == ("failed", None)
    assert fake.calls() == []

    model.write_bytes(b"")
    queue.retry(job.id)
    (again,) = run_fake(queue, install)  # the attempt without a run directory is skipped
    assert again.status == JobStatus.SUCCEEDED and again.attempts == 2


def test_a_retry_after_the_old_checkpoints_were_removed_moves_nothing(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    # saves checkpoints in the replay but exits 1; the user then deletes them before the retry
    fake.plan({"*": {**fake.ok(), "exit_code": 1}})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "cleaned"))])
    (first,) = run_fake(queue, install)
    assert first.status == JobStatus.FAILED
    saved = sorted((tmp_path / "out").glob("cleaned*.safetensors"))
    assert saved
    for path in saved:
        path.unlink()
    fake.plan({"*": fake.ok()})
    queue.retry(1)
    (second,) = run_fake(queue, install)
    assert second.status == JobStatus.SUCCEEDED, second.reason
    assert not (tmp_path / "out" / "superseded").exists()  # nothing was there to set aside


def test_an_invalid_remedy_is_skipped_for_the_next_one(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    """OOM (derived capture, see conftest.fake): caching latents is invalid with a subset's
    color_aug, so the first retry uses the next remedy, gradient checkpointing."""
    fake.plan({"*": fake.oom_unless("gradient_checkpointing")})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(_color_aug_job(tmp_path, "aug"))])
    (job,) = run_fake(queue, install, oom_retries=1)
    assert job.status == JobStatus.SUCCEEDED, job.reason
    first, second = queue.attempts(job.id)
    assert first.status == "failed"
    assert second.remedies == ["gradient checkpointing (slower, much less memory)"]
    assert second.overrides == {"training.gradient_checkpointing": True}


def test_no_valid_remedy_left_fails_with_that_reason(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    fake.plan({"*": fake.oom_unless("never_set")})
    queue = JobQueue(tmp_path / "q")
    job = _color_aug_job(tmp_path, "stuck", gradient_checkpointing=True)
    job = validate_job(
        {**job.model_dump(mode="json", exclude_none=True), "optimizer": {"type": "AdamW8bit"}}
    )
    queue.add([NewJob(job)])
    (done,) = run_fake(queue, install, oom_retries=3)
    assert done.status == JobStatus.FAILED
    assert (done.reason or "").endswith("(no lighter plan left to try)")
    assert "out of memory" in (done.reason or "").lower()
    assert len(queue.attempts(done.id)) == 1


def test_a_stop_between_oom_attempts_interrupts_before_the_retry(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    fake.plan({"*": fake.oom_unless("never_set")})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "oom"))])
    runner: QueueRunner

    def notify(notice: QueueNotice) -> None:
        if notice.kind == "retrying":
            runner.stop()

    runner = QueueRunner(
        queue, install=install, launch=no_accelerate, probe=False, poll_s=0.1, notify=notify
    )
    (job,) = runner.run()
    assert job.status == JobStatus.INTERRUPTED
    assert job.reason == "interrupted: the queue runner was stopped"
    first, second = queue.attempts(job.id)
    assert (first.status, second.status, second.kind) == ("failed", "interrupted", "oom-retry")
    assert second.run_dir is None  # never started
    assert len(fake.calls()) == 1


def test_an_error_in_a_notice_display_stops_the_runner_and_is_raised(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    fake.plan({"*": fake.ok()})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, n)) for n in ("one", "two")])

    def notify(notice: QueueNotice) -> None:
        if notice.kind == "finished":
            raise RuntimeError("display broke")

    with pytest.raises(RuntimeError, match="display broke"):
        run_fake(queue, install, notify=notify)
    assert queue.get(1).status == JobStatus.SUCCEEDED
    assert queue.get(2).status == JobStatus.QUEUED  # the runner stopped instead of going on
    assert [c["name"] for c in fake.calls()] == ["one"]
    _no_children_left()


def test_a_trainer_python_that_cannot_start_fails_the_job(
    tmp_path: Path, fake: FakeLab, install: Install
) -> None:
    fake.plan({"*": fake.ok()})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "nopython"))])
    broken = install.model_copy(update={"python": tmp_path / "no-such-python"})
    (job,) = run_fake(queue, broken)
    assert job.status == JobStatus.FAILED
    assert job.reason and "\n" not in job.reason and "no-such-python" in job.reason
    assert queue.attempts(job.id)[0].status == "failed"
    assert fake.calls() == []
