"""A preempted spot run on the real trainer: the SkyPilot task's own run command, twice.

SkyPilot's part (mounts, a folder as the bucket, the preemption, running the task again) is
played by tests/sky_local.py; everything else is real: the product's ``train --jsonl
--resume-latest`` in the task, sd-scripts on CPU with the lab's random-weight SD1.5 model. The
first start is killed outright (every process, as when a spot instance goes) right after it saved
its epoch-1 state (when epoch 2 starts); the second start resumes from that state in the bucket, finishes, and the
outputs come back into the job's local output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sky_local import LocalSky

from kohya_orchestrator.events import read_events
from kohya_orchestrator.jobs.loading import dump_job_toml, validate_job
from kohya_orchestrator.queue import JobQueue, JobStatus, NewJob
from kohya_orchestrator.queue.sky_queue import run_queue_on_sky

from .conftest import tiny_job

pytestmark = pytest.mark.e2e


def _second_epoch_starts(line: str) -> bool:
    """After epoch 1 and its state were saved whole (killed while saving, a state is torn and
    never resumed from: tests/queue/test_recovery_steps.py)."""
    return '"kind":"epoch_started"' in line and '"epoch":2' in line


def test_a_preempted_spot_run_resumes_from_its_saved_state(lab_env: Path, tmp_path: Path) -> None:
    data = tiny_job(lab_env, tmp_path, "spot", training={"save_state": True})
    job = validate_job(data)
    (tmp_path / "spot.toml").write_text(dump_job_toml(job), encoding="utf-8")
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(job)])
    sky = LocalSky(
        tmp_path,
        lab_env,
        preempt=_second_epoch_starts,
    )
    try:
        (done,) = run_queue_on_sky(
            queue, gpus=None, use_spot=True, bucket="s3://lab-bucket/runs", backend=sky
        )
    finally:
        sky.stop_all()
    assert done.status == JobStatus.SUCCEEDED, done.reason
    assert "SkyPilot restarted it 1 time(s) after a preemption" in (done.reason or "")
    assert done.run_dir is not None
    events = read_events(done.run_dir)
    kinds = [e.kind for e in events]
    assert kinds.count("run_started") == 2 and kinds[-1] == "run_finished"
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # the second start was told to resume from the state the first saved, and sd-scripts did
    bucket = tmp_path / "buckets" / "lab-bucket" / "runs" / "kohya-q1-spot"
    remote_runs = sorted((bucket / "runs").iterdir())
    assert len(remote_runs) == 2
    second = json.loads((remote_runs[1] / "job.json").read_text())
    assert second["training"]["resume"].endswith("persist/output/spot-000001-state")
    console = (done.run_dir / "console.log").read_text(encoding="utf-8")
    assert "--resume-latest: resuming from" in console
    assert "resume training from local state" in console  # sd-scripts' own line
    restart = kinds.index("run_started", 1)
    epochs = [e.epoch for e in events[restart:] if e.kind == "epoch_started"]  # type: ignore[attr-defined]
    assert epochs == [2]  # epoch 1 was not trained again
    # every output came back into the local output folder
    out = Path(job.training.output_dir)
    assert (out / "spot.safetensors").is_file() and (out / "spot-000001.safetensors").is_file()
    assert (out / "spot-000001-state").is_dir()
    assert json.loads((done.run_dir / "sky.json").read_text())["restarts"] == 1
