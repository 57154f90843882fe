"""e2e: the real train_network.py on CPU through the product's own `train` (random-weight SD1.5)."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.environment.discovery import find_install
from kohya_orchestrator.events import RunStatus
from kohya_orchestrator.jobs.loading import dump_job_toml, validate_job
from kohya_orchestrator.run import Watchdogs, read_events, start

from .conftest import tiny_job

pytestmark = pytest.mark.e2e


def test_train_cli_small_lora(
    lab_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = validate_job(
        tiny_job(
            lab_env,
            tmp_path,
            "e2e_lora",
            sampling={
                "sample_every_n_epochs": 1,
                "prompts": [
                    {
                        "prompt": "oilpaint style, a red circle",
                        "width": 64,
                        "height": 64,
                        "sample_steps": 2,
                        "seed": 1,
                    }
                ],
            },
        )
    )
    path = tmp_path / "job.toml"
    path.write_text(dump_job_toml(job), encoding="utf-8")
    rc = main(["train", str(path), "--runs", str(tmp_path / "runs"), "--cpu-threads", "2"])
    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    assert "steps" in out.out  # the rich progress display
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "status").read_text().strip() == "succeeded"
    events = read_events(run_dir)
    plan = next(e for e in events if e.kind == "training_plan")
    steps = [e for e in events if e.kind == "step_progress"]
    assert plan.total_steps == 8 and steps[-1].step == plan.total_steps
    assert [e.epoch for e in events if e.kind == "epoch_started"] == [1, 2]
    checkpoints = [Path(e.path).name for e in events if e.kind == "checkpoint_saved"]
    assert checkpoints == ["e2e_lora-000001.safetensors", "e2e_lora.safetensors"]
    for name in checkpoints:
        assert (tmp_path / "out" / name).stat().st_size > 10_000
    samples = [e for e in events if e.kind == "sample_image_saved"]
    assert sorted(e.epoch for e in samples) == [1, 2]
    assert all(Path(e.path).is_file() for e in samples)
    assert events[-1].kind == "run_finished" and events[-1].status == RunStatus.SUCCEEDED
    assert (run_dir / "environment.json").is_file()


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_cancel_mid_training_leaves_no_process(lab_env: Path, tmp_path: Path) -> None:
    data = tiny_job(lab_env, tmp_path, "e2e_cancel", training={"max_train_epochs": 20})
    install = find_install(lab_env)
    assert install is not None
    run = start(
        validate_job(data),
        install=install,
        runs=tmp_path / "runs",
        probe=False,
        watchdogs=Watchdogs(cancel_grace_s=10),
    )
    pids: list[int] = []
    deadline = time.monotonic() + 240
    for event in run.events():
        pids = sorted(set(pids) | set(run.pids))
        if event.kind == "step_progress" and event.step >= 1:
            break
        assert time.monotonic() < deadline, "no training step within 4 minutes"
    pids = sorted(set(pids) | set(run.pids))
    assert len(pids) >= 2  # accelerate launcher + trainer
    run.cancel()
    result = run.wait(120)
    assert result.status == RunStatus.CANCELED
    time.sleep(0.5)
    assert _alive(pids) == []
    assert list((tmp_path / "out").glob("*.safetensors")) == []  # SIGINT saves nothing
