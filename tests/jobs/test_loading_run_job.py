"""load_job on a run directory and its job.json (jobs/loading.py read_job_file): rerunnable runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import load_job, validate_job


def _run_dir(tmp_path: Path) -> tuple[Path, object]:
    job = validate_job(
        {
            "name": "oilpaint",
            "model": {"pretrained_model_name_or_path": str(tmp_path / "sd15.safetensors")},
            "dataset": {
                "resolution": [768, 512],
                "subsets": [{"image_dir": str(tmp_path / "10_boats")}],
            },
            "network": {"algo": "lokr", "network_dim": 16, "factor": 8},
            "optimizer": {"type": "Prodigy", "learning_rate": 1.0},
            "training": {"max_train_epochs": 3, "output_dir": str(tmp_path / "out")},
            "sampling": {"sample_every_n_epochs": 1, "prompts": [{"prompt": "a boat"}]},
        }
    )
    run = tmp_path / "runs" / "20261207-101500-oilpaint"
    run.mkdir(parents=True)
    # written as run.py writes it
    (run / "job.json").write_text(job.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return run, job


def test_a_run_directory_and_its_job_json_load_back_to_the_same_job(tmp_path: Path) -> None:
    run, job = _run_dir(tmp_path)
    assert load_job(run) == job
    assert load_job(run / "job.json") == job
    changed = load_job(run, overrides=["training.output_name=v2"])
    assert changed.training.output_name == "v2" and changed.network == job.network  # type: ignore[attr-defined]


def test_a_broken_job_json_or_a_folder_without_one_is_a_clear_error(tmp_path: Path) -> None:
    run, _ = _run_dir(tmp_path)
    (run / "job.json").write_text('{"training": {', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"malformed JSON: Expecting property name"):
        load_job(run)
    (run / "job.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="a job is a JSON object of sections"):
        load_job(run / "job.json")
    with pytest.raises(ConfigError, match=r"is a folder without job\.json") as info:
        load_job(tmp_path / "runs")
    assert info.value.problems[0].hint == "give a job file (.toml) or a run directory (runs/<id>)"
    with pytest.raises(ConfigError, match="job file not found"):
        load_job(tmp_path / "missing.json")
