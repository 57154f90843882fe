"""Sweep expansion edge cases: quoted grid values, duplicate and missing grids, optimizer type
grids, unknown algos and types, job names, and the latent-cache notes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import dump_job_toml
from kohya_orchestrator.queue import JobQueue, expand_sweep, parse_grid, queue_sweep
from kohya_orchestrator.queue.sweep import compare_sweep

from .conftest import make_job

NOW = datetime(2026, 12, 1, 10, 15, 0)


def _job_file(tmp_path: Path, extra: str = "", **training: object) -> Path:
    path = tmp_path / "job.toml"
    text = dump_job_toml(make_job(tmp_path, "style", **training))
    path.write_text(extra + text, encoding="utf-8")
    return path


def test_commas_inside_quotes_stay_in_one_value() -> None:
    (axis,) = parse_grid(["network.network_args='a=1,b=2',\"c,d\",plain"])
    assert axis.texts == ("'a=1,b=2'", '"c,d"', "plain")
    assert axis.values == ("a=1,b=2", "c,d", "plain")


def test_one_key_gridded_twice_and_no_grid_at_all() -> None:
    with pytest.raises(ConfigError) as info:
        parse_grid(["network.algo=lora", "network.algo=loha"])
    (problem,) = info.value.problems
    assert problem.path == "--grid network.algo=loha"
    assert problem.message == "'network.algo' has two --grid options"
    with pytest.raises(ConfigError) as info:
        parse_grid([])
    assert [(p.path, p.message) for p in info.value.problems] == [("--grid", "no grid given")]


def test_an_optimizer_type_grid_drops_the_keys_the_type_does_not_take(tmp_path: Path) -> None:
    path = _job_file(tmp_path)
    plan = expand_sweep(path, ["optimizer.type=AdamW,Lion"], ["optimizer.eps=1e-8"], now=NOW)
    adamw, lion = (j.job for j in plan.jobs)
    assert [j.name for j in plan.jobs] == ["style-opt_AdamW", "style-opt_Lion"]
    assert adamw.optimizer.eps == 1e-8  # type: ignore[union-attr]
    assert lion.optimizer.type == "Lion" and not hasattr(lion.optimizer, "eps")
    assert "optimizer.eps (set by --set) is dropped for optimizer 'Lion'" in "\n".join(plan.notes)
    assert plan.arguments == ["--set optimizer.eps=1e-8", "--grid optimizer.type=AdamW,Lion"]


def test_unknown_algo_and_type_are_left_to_validation(tmp_path: Path) -> None:
    path = _job_file(tmp_path)
    with pytest.raises(ConfigError) as info:
        expand_sweep(path, ["network.algo=lora,nope"], now=NOW)
    (problem,) = info.value.problems
    assert problem.message.endswith("(in algo_nope)")
    with pytest.raises(ConfigError) as info:
        expand_sweep(path, ["optimizer.type=Nope1,Nope2"], now=NOW)
    assert [p.message.rsplit("(in ", 1)[1] for p in info.value.problems] == [
        "opt_Nope1)",
        "opt_Nope2)",
    ]


def test_a_problem_shared_by_all_combinations_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        expand_sweep(
            _job_file(tmp_path), ["network.network_dim=4,8"], ["training.max_train_epochs=0"]
        )
    (problem,) = info.value.problems
    assert problem.path == "training.max_train_epochs"
    assert problem.message.endswith("(in every combination)")


def test_a_named_job_names_each_sweep_job(tmp_path: Path) -> None:
    path = _job_file(tmp_path, extra='name = "Oil Paint"\n')
    plan = expand_sweep(path, ["network.network_dim=4,8"], now=NOW)
    assert plan.name == "oil-paint-20261201-101500"
    assert [j.job.name for j in plan.jobs] == ["Oil Paint-dim_4", "Oil Paint-dim_8"]
    assert [j.name for j in plan.jobs] == ["style-dim_4", "style-dim_8"]


def test_shared_cache_without_a_latent_axis_is_shared_by_all(tmp_path: Path) -> None:
    plan = expand_sweep(
        _job_file(tmp_path), ["network.network_dim=4,8"], share_latent_cache=True, now=NOW
    )
    (note,) = [n for n in plan.notes if n.startswith("latent cache")]
    assert note.startswith("latent cache shared") and "not across values" not in note


def test_uncached_latents_suggest_sharing_a_cache(tmp_path: Path) -> None:
    plan = expand_sweep(
        _job_file(tmp_path, cache_latents=False), ["network.network_dim=4,8"], now=NOW
    )
    assert not any(j.job.training.cache_latents for j in plan.jobs)
    assert any(
        n.startswith("latents are not cached") and "--share-latent-cache" in n for n in plan.notes
    )


def test_a_grid_that_turns_caching_off_overrides_the_shared_cache(tmp_path: Path) -> None:
    plan = expand_sweep(
        _job_file(tmp_path),
        ["training.cache_latents=false"],
        share_latent_cache=True,
        now=NOW,
    )
    (job,) = plan.jobs
    assert job.job.training.cache_latents is False
    assert not any("latent" in n for n in plan.notes)  # nothing is cached, nothing to share


def test_compare_a_sweep_that_never_ran(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "q")
    plan = expand_sweep(_job_file(tmp_path), ["network.network_dim=4,8"], name="s")
    added = queue_sweep(queue, plan)
    assert compare_sweep(queue, "s") == [(added[0], None), (added[1], None)]
    assert compare_sweep(queue, "other") == []
