"""e2e on SLURM: two tiny real CPU trainings as a job array on a one-node cluster (tests/slurm_cluster.py).

``queue export-slurm --submit`` sbatches the array (one task at a time: ``%1``, each tiny
training needs about 6 GB); each task trains its job on the node with the real sd-scripts and
reports back into the queue folder, so ``queue list`` shows both ``succeeded`` with their run
directories, as a local ``queue run`` would have left them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster, on_cluster, slurm  # noqa: F401 (fixtures)

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.jobs.loading import dump_job_toml, validate_job
from kohya_orchestrator.queue import JobQueue

from .conftest import tiny_job

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]


def test_two_real_trainings_as_a_slurm_array(
    lab_env: Path,
    tmp_path: Path,
    on_cluster: SlurmCluster,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = []
    for name in ("slurm_a", "slurm_b"):
        job = validate_job(tiny_job(lab_env, tmp_path, name, training={"max_train_epochs": 1}))
        path = tmp_path / f"{name}.toml"
        path.write_text(dump_job_toml(job), encoding="utf-8")
        files.append(str(path))
    q = tmp_path / "q"
    assert main(["queue", "add", *files, "--queue", str(q)]) == 0
    rc = main(
        [
            "queue",
            "export-slurm",
            "--queue",
            str(q),
            "--submit",
            "--gpus-per-task",
            "0",
            "--cpus-per-task",
            str(min(2, on_cluster.cpus)),
            "--mem",
            "8G",
            "--max-parallel",
            "1",
            "--time",
            "00:15:00",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()

    deadline = time.monotonic() + 600
    seen: set[str] = set()
    while True:
        assert main(["queue", "list", "--queue", str(q), "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        seen.update(j["status"] for j in listed)
        if all(j["status"] in ("succeeded", "failed", "canceled") for j in listed):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(2)
    logs = "\n".join(p.read_text()[-3000:] for p in sorted((q / "slurm" / "logs").glob("*.out")))
    assert [j["status"] for j in listed] == ["succeeded", "succeeded"], logs
    assert "running" in seen  # queue list showed them running on the node meanwhile
    queue = JobQueue(q)
    for job in queue.jobs():
        assert job.run_dir is not None and job.run_dir.parent == q.resolve() / "runs"
        assert (job.run_dir / "status").read_text().strip() == "succeeded"
        assert (job.run_dir / "rc").read_text().strip() == "0"
        events = [
            json.loads(line) for line in (job.run_dir / "events.jsonl").read_text().splitlines()
        ]
        kinds = {e["kind"] for e in events}
        assert {"run_started", "training_plan", "step_progress", "checkpoint_saved"} <= kinds
        assert events[-1]["kind"] == "run_finished" and events[-1]["status"] == "succeeded"
        assert (tmp_path / "out" / f"{job.name}.safetensors").stat().st_size > 10_000
        assert queue.attempts(job.id)[-1].returncode == 0
        assert job.runner_host == on_cluster.node
    deadline = time.monotonic() + 60  # SLURM lists a finished task until its epilog is done
    while on_cluster.states() and time.monotonic() < deadline:
        time.sleep(1)
    assert on_cluster.states() == {}
