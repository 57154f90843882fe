"""Sweep expansion: names, TOML values, dropped algo keys, problems before anything is queued."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import dump_job_toml
from kohya_orchestrator.models.network import LoraNetwork
from kohya_orchestrator.queue import JobQueue, expand_sweep, parse_grid, queue_sweep

from .conftest import make_job

NOW = datetime(2026, 12, 1, 10, 15, 0)


def _job_file(tmp_path: Path) -> Path:
    job = make_job(tmp_path, "style")
    job = job.model_copy(
        update={"network": LoraNetwork(network_dim=8, network_alpha=4.0, conv_dim=4)}
    )
    path = tmp_path / "job.toml"
    path.write_text(dump_job_toml(job), encoding="utf-8")
    return path


def test_grid_values_are_toml() -> None:
    algo, lr, res = parse_grid(
        [
            "network.algo=loha,lokr",
            "optimizer.learning_rate=1e-4,1.0",
            "dataset.resolution=[768,512],1024",
        ]
    )
    assert algo.values == ("loha", "lokr") and algo.label == "algo"
    assert lr.values == (1e-4, 1.0) and lr.label == "lr"
    assert res.values == ([768, 512], 1024) and res.texts == ("[768,512]", "1024")


def test_malformed_grids_are_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        parse_grid(["network.algo", "training.output_name=a,b", "x.y=1,1", "a.b=1,,2"])
    messages = [p.message for p in info.value.problems]
    assert len(messages) == 4
    assert "set by the sweep" in messages[1]


def test_algo_times_lr_names_and_dropped_keys(tmp_path: Path) -> None:
    path = _job_file(tmp_path)
    plan = expand_sweep(
        path,
        ["network.algo=loha,lokr,ia3", "optimizer.learning_rate=1.0,0.5"],
        ["optimizer.type=Prodigy"],
        now=NOW,
    )
    assert plan.name == "style-20261201-101500"
    assert [j.name for j in plan.jobs] == [
        "style-algo_loha-lr_1.0",
        "style-algo_loha-lr_0.5",
        "style-algo_lokr-lr_1.0",
        "style-algo_lokr-lr_0.5",
        "style-algo_ia3-lr_1.0",
        "style-algo_ia3-lr_0.5",
    ]
    ia3 = plan.jobs[-1].job
    assert ia3.network.algo == "ia3" and ia3.training.output_name == "style-algo_ia3-lr_0.5"
    assert ia3.optimizer.learning_rate == 0.5
    assert plan.jobs[0].labels == {"network.algo": "loha", "optimizer.learning_rate": "1.0"}
    assert plan.jobs[0].job.network.network_dim == 8  # type: ignore[union-attr]
    notes = "\n".join(plan.notes)
    assert "network.network_dim (set by job file job.toml) is dropped for algo 'ia3'" in notes
    assert "network.conv_dim" in notes and "(2 jobs)" in notes
    assert "latent cache not shared" in notes


def test_a_grid_key_that_does_not_apply_merges_jobs(tmp_path: Path) -> None:
    plan = expand_sweep(
        _job_file(tmp_path), ["network.algo=lora,ia3", "network.network_dim=4,16"], now=NOW
    )
    assert [j.name for j in plan.jobs] == [
        "style-algo_lora-dim_4",
        "style-algo_lora-dim_16",
        "style-algo_ia3",
    ]
    assert any("queued once" in n for n in plan.notes)


def test_invalid_combinations_name_the_grid_and_nothing_is_queued(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "q")
    with pytest.raises(ConfigError) as info:
        expand_sweep(
            _job_file(tmp_path), ["network.network_dim=0,4", "optimizer.learning_rate=1e-4,2e-4"]
        )
    (problem,) = info.value.problems
    assert problem.path == "network.network_dim"
    assert "(set by --grid network.network_dim)" in problem.message
    assert "(in dim_0-lr_1e-4, dim_0-lr_2e-4)" in problem.message
    assert "nothing was queued" in str(info.value)
    assert queue.jobs() == []


def test_existing_outputs_stop_the_sweep(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "style-algo_loha.safetensors").write_bytes(b"x")
    with pytest.raises(ConfigError, match="already exists"):
        expand_sweep(_job_file(tmp_path), ["network.algo=lora,loha"])


def test_shared_latent_cache_and_queueing(tmp_path: Path) -> None:
    plan = expand_sweep(
        _job_file(tmp_path),
        ["network.algo=lora,loha", "dataset.resolution=512,768"],
        share_latent_cache=True,
        name="s1",
    )
    assert all(j.job.training.cache_latents_to_disk for j in plan.jobs)
    assert any(
        n.startswith("latent cache shared") and "not across values of dataset.resolution" in n
        for n in plan.notes
    )
    queue = JobQueue(tmp_path / "q")
    added = queue_sweep(queue, plan)
    assert [j.sweep for j in added] == ["s1"] * 4
    assert added[0].overrides == [
        "--grid network.algo=lora,loha",
        "--grid dataset.resolution=512,768",
    ]
    assert queue.sweeps() == ["s1"]
    assert added[3].labels == {"network.algo": "loha", "dataset.resolution": "768"}
