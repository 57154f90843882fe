"""A cloud run beyond the stream: outputs back into the output folder, a spot preemption and its
restart, cancel from the queue, and the bucket that keeps a managed job's outputs.

SkyPilot's part is played here by tests/sky_local.py (the task's own run command as a local
process, the queue's stand-in trainer); only the calls into ``sky`` are not run (no cloud).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from fake_runs import saved_state
from sky_local import LocalSky

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.events import read_events
from kohya_orchestrator.jobs.loading import load_job
from kohya_orchestrator.jobs.restart import prepare_restart
from kohya_orchestrator.launch.sky import SkyHandle, read_handle
from kohya_orchestrator.queue import JobQueue, JobStatus, NewJob
from kohya_orchestrator.queue.locks import RunnerLock
from kohya_orchestrator.queue.sky import build_sky_task, start_local_run
from kohya_orchestrator.queue.sky_outputs import deliver_outputs
from kohya_orchestrator.queue.sky_queue import run_queue_on_sky
from kohya_orchestrator.queue.sky_run import CANCELED_ON_SKY
from kohya_orchestrator.run import absolute_job

from .conftest import FakeLab, make_job
from .test_cli_verbs import sd_scripts  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[2]
OILPAINT = REPO / "docs" / "examples" / "oilpaint.toml"


def _oilpaint() -> object:
    return absolute_job(load_job(OILPAINT), OILPAINT.parent)


def test_a_bucket_holds_output_logs_and_runs_and_the_run_resumes_latest() -> None:
    task = build_sky_task(_oilpaint(), use_spot=True, bucket="s3://my-bucket/kohya/")  # type: ignore[arg-type]
    assert task["file_mounts"]["~/kohya-job/persist"] == {
        "source": "s3://my-bucket/kohya",
        "mode": "MOUNT",
    }
    run = str(task["run"])
    assert 'output_dir = "persist/output"' in run and 'logging_dir = "persist/logs"' in run
    assert run.splitlines()[-1].endswith(
        '--runs "$HOME"/kohya-job/persist/runs --jsonl --resume-latest'
    )
    assert task.output_source == "s3://my-bucket/kohya/output"
    plain = build_sky_task(_oilpaint())  # type: ignore[arg-type]
    assert plain.output_source == "~/kohya-job/output" and "--resume-latest" not in plain["run"]


def test_the_bucket_task_loads_with_skypilots_own_loader() -> None:
    sky = pytest.importorskip("sky", reason="SkyPilot is not installed (the 'cloud' extra)")
    task = build_sky_task(_oilpaint(), use_spot=True, bucket="gs://b/kohya")  # type: ignore[arg-type]
    loaded = sky.Task.from_yaml_config(dict(task))
    (storage,) = loaded.storage_mounts.values()
    assert list(loaded.storage_mounts) == ["~/kohya-job/persist"]
    assert storage.source == "gs://b/kohya" and storage.mode.value == "MOUNT"
    assert [r.use_spot for r in loaded.resources] == [True]


def test_a_bad_bucket_and_spot_without_one_are_refused(
    tmp_path: Path,
    sd_scripts: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ConfigError) as info:
        build_sky_task(_oilpaint(), bucket="my-bucket")  # type: ignore[arg-type]
    assert [p.path for p in info.value.problems] == ["--bucket"]
    runs = tmp_path / "runs"
    argv = ["train", str(OILPAINT), "--sd-scripts", str(sd_scripts), "--no-probe", "--on", "sky"]
    assert main([*argv, "--spot", "--runs", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "--spot" in err and "--bucket s3://" in err
    assert not runs.exists()


def test_outputs_come_back_without_overwriting_anything(tmp_path: Path) -> None:
    staging, out = tmp_path / "staging", tmp_path / "out"
    (staging / "sample").mkdir(parents=True)
    (staging / "lora.safetensors").write_bytes(b"remote final")
    (staging / "lora-000002.safetensors").write_bytes(b"remote epoch 2")
    (staging / "sample" / "a.png").write_bytes(b"remote a")
    (staging / "sample" / "b.png").write_bytes(b"remote b")
    saved_state(staging / "lora-000001-state")
    (out / "sample").mkdir(parents=True)
    (out / "lora-000001-state").mkdir()  # an older state of that name: never mixed with it
    (out / "lora-000001-state" / "model.safetensors").write_bytes(b"old weights")
    (out / "lora-000002.safetensors").write_bytes(b"the user's own")
    (out / "sample" / "a.png").write_bytes(b"the user's a")
    done = deliver_outputs(staging, out)
    assert sorted(done.moved) == ["lora.safetensors", "sample/b.png"]
    assert sorted(done.kept) == ["lora-000001-state", "lora-000002.safetensors", "sample/a.png"]
    assert sorted(p.name for p in (out / "lora-000001-state").iterdir()) == ["model.safetensors"]
    assert (staging / "lora-000001-state" / "random_states_0.pkl").is_file()  # kept whole
    assert (out / "lora-000002.safetensors").read_bytes() == b"the user's own"
    assert (out / "sample" / "a.png").read_bytes() == b"the user's a"
    assert (out / "sample" / "b.png").read_bytes() == b"remote b"
    assert (staging / "lora-000002.safetensors").read_bytes() == b"remote epoch 2"  # not lost
    assert "3 left in" in done.summary() and "lora-000002.safetensors" in done.summary()


def test_resume_latest_goes_on_from_the_newest_state_or_sets_the_old_start_aside(
    tmp_path: Path,
) -> None:
    job = make_job(tmp_path, "pre")
    out = Path(job.training.output_dir)
    same, notes = prepare_restart(job, "stamp")
    assert same == job and notes == ["no saved state: training from the start"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "pre-000001.safetensors").write_bytes(b"1")
    again, notes = prepare_restart(job, "stamp")
    assert again.training.resume is None
    assert (out / "superseded" / "stamp" / "pre-000001.safetensors").read_bytes() == b"1"
    assert not (out / "pre-000001.safetensors").exists() and "1 checkpoint(s)" in notes[0]
    old = saved_state(out / "pre-000001-state")
    new = saved_state(out / "pre-000002-state")
    os.utime(old, (1000, 1000))
    saved_state(out / "other-000009-state")  # another job's state is not ours
    torn = out / "pre-000003-state"  # the instance went while it was being saved
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"weights")
    resumed, notes = prepare_restart(job, "again")
    assert resumed.training.resume == str(new)
    assert not torn.exists() and (out / "superseded" / "again" / torn.name).is_dir()
    assert notes == [
        f"1 state folder(s) the earlier start did not finish saving ({torn.name}) moved to "
        f"{out / 'superseded' / 'again'}",
        f"resuming from {new}",
    ]


def _bucket_queue(tmp_path: Path, name: str) -> JobQueue:
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, name))])
    return queue


def test_a_preempted_spot_job_restarts_resumes_and_is_recorded(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
) -> None:
    """The spot instance dies (SIGKILL) mid-run; SkyPilot runs the task again on a new instance
    with the bucket mounted: the restart resumes from the state saved before, the local run
    directory holds both starts in order with a warning between them, and the queue records it."""
    fake.plan({"*": fake.hang()})
    queue = _bucket_queue(tmp_path, "spot")
    bucket_name = "kohya-q1-spot"

    def before_restart() -> None:  # what sd-scripts saved before the preemption, in the bucket
        fake.plan({"*": fake.ok()})
        saved_state(sky.buckets / "bkt" / "runs" / bucket_name / "output" / "spot-000001-state")

    sky = LocalSky(
        tmp_path,
        sd_scripts,
        preempt=lambda line: "prepare images." in line,
        before_restart=before_restart,
    )
    try:
        (job,) = run_queue_on_sky(
            queue, gpus=None, use_spot=True, bucket="s3://bkt/runs", backend=sky, poll_s=0.1
        )
    finally:
        sky.stop_all()
    assert job.status == JobStatus.SUCCEEDED, job.reason
    assert (
        job.reason is not None
        and "SkyPilot restarted it 1 time(s) after a preemption" in job.reason
    )
    ((task, managed),) = sky.launched
    assert managed is True and "--resume-latest" in task["run"]
    calls = fake.calls()
    assert len(calls) == 2 and calls[0]["resume"] is None
    assert calls[1]["resume"].endswith("persist/output/spot-000001-state")
    assert job.run_dir is not None
    events = read_events(job.run_dir)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    kinds = [e.kind for e in events]
    assert kinds.count("run_started") == 2 and kinds[-1] == "run_finished"
    notes = [e for e in events if e.kind == "log_line" and "SkyPilot started it again" in e.text]  # type: ignore[union-attr]
    assert len(notes) == 1 and "preempted" in notes[0].text  # type: ignore[union-attr]
    assert json.loads((job.run_dir / "restarts.json").read_text())[0]["how"].startswith("preempted")
    assert json.loads((job.run_dir / "sky.json").read_text())["restarts"] == 1
    # the outputs (final file and the state) came from the bucket into the local output folder
    out = Path(queue.read_job(job)["training"]["output_dir"])
    assert (out / "spot.safetensors").is_file() and (out / "spot-000001-state").is_dir()
    (attempt,) = queue.attempts(job.id)
    assert attempt.status == "succeeded" and "restarted it 1 time" in (attempt.reason or "")


def _wait(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _trainer_pids(fake: FakeLab) -> list[int]:
    return [int(c["pid"]) for c in fake.calls()]


def _gone(pids: list[int]) -> bool:
    return all(not psutil.pid_exists(p) or psutil.Process(p).status() == "zombie" for p in pids)


def test_queue_cancel_reaches_the_run_on_the_cloud(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
) -> None:
    """queue cancel while the runner follows the cloud run: the runner cancels it through the
    backend (SIGTERM to the remote job), the remote train stops its trainer in order and reports
    canceled, and the queue records canceled."""
    fake.plan({"*": fake.hang()})
    queue = _bucket_queue(tmp_path, "stopme")
    sky = LocalSky(tmp_path, sd_scripts)
    done: list[object] = []
    runner = threading.Thread(
        target=lambda: done.extend(run_queue_on_sky(queue, gpus=None, backend=sky, poll_s=0.1))
    )
    runner.start()
    try:
        _wait(lambda: fake.calls(), "the stand-in trainer to start")
        queue.cancel(1)
        runner.join(timeout=60)
    finally:
        sky.stop_all()
    assert not runner.is_alive()
    (job,) = done
    assert job.status == JobStatus.CANCELED  # type: ignore[attr-defined]
    assert [h.name for h in sky.canceled] == ["kohya-q1-stopme"]
    assert job.run_dir is not None  # type: ignore[attr-defined]
    assert (job.run_dir / "status").read_text().strip() == "canceled"  # type: ignore[attr-defined]
    assert read_events(job.run_dir)[-1].kind == "run_finished"  # type: ignore[attr-defined]
    _wait(lambda: _gone(_trainer_pids(fake)), "the trainer to be gone", 10)


def test_queue_cancel_reaches_a_cloud_run_whose_runner_is_gone(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The `queue run --on sky` process died while its job ran on the cloud: `queue cancel`
    cancels the remote run from the handle recorded in the run directory."""
    import kohya_orchestrator.launch.sky as sky_module

    fake.plan({"*": fake.hang()})
    queue = _bucket_queue(tmp_path, "orphan")
    sky = LocalSky(tmp_path, sd_scripts)
    lock = RunnerLock(queue.path)
    queue.register_runner(lock, ["sky cpu"])
    job = queue.claim(lock, "sky cpu")
    assert job is not None
    n = queue.begin_attempt(job, kind="first", overrides={}, remedies=[], resumed_from=None)
    model = load_job(job.job_file)
    task = build_sky_task(model, gpus=None, name="kohya-orphan")
    run_dir = start_local_run(model, task, queue.path / "runs")
    queue.attempt_started(job.id, n, run_dir.path.resolve(), None)
    handle = sky.launch(dict(task), False, task.output_source)
    run_dir.write_json("sky.json", handle.to_json())
    try:
        _wait(lambda: fake.calls(), "the stand-in trainer to start")
        queue.unregister_runner(lock)  # the runner is gone; its cloud run goes on
        lock.release()
        other = LocalSky(tmp_path, sd_scripts)  # a new process: it knows only the handle
        monkeypatch.setattr(sky_module, "SkyPilotBackend", lambda: other)
        assert main(["queue", "cancel", "1", "--queue", str(queue.path)]) == 0
        assert "job 1: canceled kohya-orphan on SkyPilot" in capsys.readouterr().out
        assert other.canceled == [handle]
        _wait(lambda: sky.procs[handle.job_id].poll() is not None, "the remote run to stop", 20)  # type: ignore[index]
    finally:
        sky.stop_all()
    assert queue.get(1).status == JobStatus.CANCELED
    assert read_handle(run_dir.path) == SkyHandle(
        "kohya-orphan", handle.job_id, False, task.output_source
    )
    # queue cancel first closed the run as interrupted (its runner is gone), then canceled it
    assert run_dir.read_status() == "failed"
    assert (run_dir.path / "canceled.txt").read_text() == CANCELED_ON_SKY + "\n"
    _wait(lambda: _gone(_trainer_pids(fake)), "the trainer to be gone", 10)


def test_outputs_that_cannot_be_fetched_are_reported_and_the_cluster_kept(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kohya_orchestrator.launch.sky as sky_module

    from .test_cli_verbs import _write

    class NoCopy(LocalSky):
        def fetch_outputs(self, handle: SkyHandle, into: Path) -> None:
            raise OSError("rsync: connection unexpectedly closed")

    fake.plan({"*": fake.ok()})
    sky = NoCopy(tmp_path, sd_scripts)
    monkeypatch.setattr(sky_module, "SkyPilotBackend", lambda keep=False: sky)
    job = _write(tmp_path, "nocopy")
    runs = tmp_path / "runs"
    argv = ["train", str(job), "--sd-scripts", str(sd_scripts), "--no-probe", "--on", "sky"]
    assert main([*argv, "--runs", str(runs)]) == 1
    captured = capsys.readouterr()
    assert "the outputs stay at ~/kohya-job/output: rsync: connection unexpectedly closed" in (
        captured.out + captured.err
    )
    assert "rsync -a kohya-nocopy:kohya-job/output/" in captured.out + captured.err
    (run_dir,) = list(runs.iterdir())
    assert (run_dir / "status").read_text().strip() == "succeeded"  # the training itself did
    assert (run_dir / "outputs-error.txt").is_file()
    assert sky.released == []  # kept up, so the user can copy by hand


class _CutShort(LocalSky):
    """Following the run raises ``error`` after six lines (the stream breaks, or Ctrl-C)."""

    def __init__(self, tmp_path: Path, install: Path, error: BaseException) -> None:
        super().__init__(tmp_path, install)
        self.error = error

    def follow(self, handle: SkyHandle) -> Iterator[str]:
        for n, line in enumerate(super().follow(handle)):
            yield line
            if n == 5:
                raise self.error


def _started_run(tmp_path: Path, name: str) -> tuple[object, object, object]:
    job = make_job(tmp_path, name)
    task = build_sky_task(job, gpus=None, name=f"kohya-{name}")
    return job, task, start_local_run(job, task, tmp_path / "runs")


def test_a_broken_stream_cancels_the_remote_run_and_still_fetches_its_outputs(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
) -> None:
    """SkyPilot's log stream fails mid-run: nothing may train (and bill) unseen."""
    from kohya_orchestrator.queue.sky_run import run_on_sky

    fake.plan({"*": fake.hang()})
    job, task, run_dir = _started_run(tmp_path, "flaky")
    sky = _CutShort(tmp_path, sd_scripts, ConnectionError("API server went away"))
    remote_out = sky.local("~/kohya-job/output")
    try:
        result = run_on_sky(job, task, run_dir, sky)  # type: ignore[arg-type]
        handle = result.handle
        _wait(lambda: sky.procs[handle.job_id].poll() is not None, "the remote run to stop", 20)  # type: ignore[index]
    finally:
        sky.stop_all()
    assert sky.canceled == [result.handle]
    assert result.finished.status.value == "failed"
    assert result.finished.reason == (
        "lost SkyPilot's output stream (ConnectionError: API server went away); "
        "the remote run was canceled"
    )
    assert run_dir.read_status() == "failed"  # type: ignore[attr-defined]
    assert read_events(run_dir.path)[-1].kind == "run_finished"  # type: ignore[attr-defined]
    # what there was was fetched (the stand-in had saved nothing yet) and the machine released
    assert result.fetch_error is None and result.delivered is not None
    assert result.delivered.moved == [] and not remote_out.exists()
    assert sky.released == [result.handle]


def test_ctrl_c_cancels_the_remote_run_and_says_where_the_outputs_stay(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
) -> None:
    from kohya_orchestrator.queue.sky_run import run_on_sky

    fake.plan({"*": fake.hang()})
    job, task, run_dir = _started_run(tmp_path, "ctrlc")
    sky = _CutShort(tmp_path, sd_scripts, KeyboardInterrupt())
    try:
        with pytest.raises(KeyboardInterrupt):
            run_on_sky(job, task, run_dir, sky)  # type: ignore[arg-type]
        (handle,) = sky.canceled
        _wait(lambda: sky.procs[handle.job_id].poll() is not None, "the remote run to stop", 20)  # type: ignore[index]
    finally:
        sky.stop_all()
    assert run_dir.read_status() == "canceled"  # type: ignore[attr-defined]
    last = read_events(run_dir.path)[-1]  # type: ignore[attr-defined]
    assert last.kind == "run_finished" and last.status.value == "canceled"  # type: ignore[union-attr]
    assert "stay at ~/kohya-job/output" in (run_dir.path / "outputs-error.txt").read_text()  # type: ignore[attr-defined]
    assert sky.released == []
