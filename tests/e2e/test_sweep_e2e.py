"""e2e: `sweep --run` with two tiny real trainings (lora vs loha, 64 px, 1 epoch) on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.jobs.loading import dump_job_toml, validate_job
from kohya_orchestrator.queue import JobQueue, JobStatus

from .conftest import tiny_job

pytestmark = pytest.mark.e2e


def test_sweep_lora_vs_loha_runs_and_prints_the_table(
    lab_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "220")  # one table row per line
    job = validate_job(tiny_job(lab_env, tmp_path, "e2e_sweep", training={"max_train_epochs": 1}))
    path = tmp_path / "job.toml"
    path.write_text(dump_job_toml(job), encoding="utf-8")
    queue_dir = tmp_path / "q"
    rc = main(
        [
            "sweep",
            str(path),
            "--grid",
            "network.algo=lora,loha",
            "--queue",
            str(queue_dir),
            "--name",
            "e2e",
            "--run",
            "--cpu-threads",
            "2",
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    jobs = JobQueue(queue_dir).jobs(sweep="e2e")
    assert [j.name for j in jobs] == ["e2e_sweep-algo_lora", "e2e_sweep-algo_loha"]
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * 2
    for j in jobs:
        assert j.run_dir is not None and j.run_dir.parent == queue_dir / "runs"
        assert (j.run_dir / "status").read_text().strip() == "succeeded"
        assert json.loads((j.run_dir / "queue.json").read_text())["kind"] == "first"
        assert (tmp_path / "out" / f"{j.name}.safetensors").stat().st_size > 10_000
    config = (jobs[1].run_dir / "config.toml").read_text()  # type: ignore[operator]
    assert "lycoris.kohya" in config and "algo=loha" in config
    # the comparison table, one row per job
    table = out.out[out.out.rindex("sweep e2e:") :]
    rows = {line.split()[0]: line for line in table.splitlines() if "e2e_sweep-algo_" in line}
    assert set(rows) == {"e2e_sweep-algo_lora", "e2e_sweep-algo_loha"}
    for name, algo in (("e2e_sweep-algo_lora", "lora"), ("e2e_sweep-algo_loha", "loha")):
        cells = rows[name].split()
        assert cells[1] == algo and "succeeded" in cells
        assert "4" in cells  # steps: 4 images x 2 repeats / batch 2, one epoch
        assert "KiB" in rows[name] or "MiB" in rows[name]
