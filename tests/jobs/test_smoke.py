"""The smoke transform (jobs/smoke.py): the exact job, cut to 2 steps, one sample, one save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.jobs.smoke import SMOKE_STEPS, smoke_job
from kohya_orchestrator.models import TrainingJob, job_warnings


def _job(tmp_path: Path, **sections: Any) -> TrainingJob:
    data: dict[str, Any] = {
        "name": "oilpaint",
        "model": {"pretrained_model_name_or_path": "runwayml/stable-diffusion-v1-5"},
        "dataset": {"subsets": [{"image_dir": str(tmp_path / "img" / "20_zengxin oilpaint")}]},
        "network": {"algo": "loha", "network_dim": 8, "network_alpha": 4.0},
        "training": {
            "output_dir": str(tmp_path / "out"),
            "output_name": "zengxin",
            "max_train_epochs": 10,
            "save_every_n_epochs": 1,
            "save_last_n_epochs": 3,
            "logging_dir": str(tmp_path / "out" / "logs"),
            "log_with": "tensorboard",
        },
        "sampling": {
            "sample_every_n_epochs": 1,
            "sample_at_first": True,
            "prompts": [{"prompt": "a harbour at dusk"}, {"prompt": "an old fisherman"}],
        },
    }
    for key, value in sections.items():
        data[key] = {**data[key], **value}
    return validate_job(data)


def test_an_epoch_job_becomes_two_steps_one_sample_one_save_in_the_scratch(
    tmp_path: Path,
) -> None:
    job = _job(tmp_path)
    smoke = smoke_job(job, tmp_path / "scratch")
    t, s = smoke.training, smoke.sampling
    assert (t.max_train_epochs, t.max_train_steps) == (None, SMOKE_STEPS) == (None, 2)
    assert (t.save_every_n_epochs, t.save_every_n_steps, t.save_last_n_epochs) == (None,) * 3
    assert t.output_dir == str(tmp_path / "scratch")
    assert t.logging_dir == str(tmp_path / "scratch" / "logs")
    assert [p.prompt for p in s.prompts] == ["a harbour at dusk"]
    assert (s.sample_every_n_steps, s.sample_every_n_epochs, s.sample_at_first) == (2, None, False)
    assert smoke.name == "oilpaint-smoke"
    # the rest is the exact job
    assert smoke.network == job.network and smoke.dataset == job.dataset
    assert smoke.model == job.model and smoke.optimizer == job.optimizer
    assert (t.output_name, t.mixed_precision, t.log_with) == ("zengxin", "fp16", "tensorboard")
    # the original is unchanged
    assert job.training.max_train_epochs == 10 and job.training.output_dir == str(tmp_path / "out")


def test_a_step_job_keeps_no_logging_dir_it_did_not_have(tmp_path: Path) -> None:
    job = _job(
        tmp_path,
        training={"max_train_epochs": None, "max_train_steps": 1500, "logging_dir": None,
                  "log_with": None, "save_every_n_epochs": None, "save_last_n_epochs": None,
                  "save_every_n_steps": 100},
        sampling={"sample_every_n_epochs": None, "sample_every_n_steps": 100},
    )  # fmt: skip
    smoke = smoke_job(job, tmp_path / "scratch")
    assert smoke.training.max_train_steps == 2 and smoke.training.save_every_n_steps is None
    assert smoke.training.logging_dir is None
    assert smoke.sampling.sample_every_n_steps == 2


def test_a_job_without_prompts_samples_nothing(tmp_path: Path) -> None:
    job = _job(tmp_path, sampling={"prompts": [], "sample_every_n_epochs": None,
                                   "sample_at_first": False})  # fmt: skip
    smoke = smoke_job(job, tmp_path / "scratch")
    assert smoke.sampling.prompts == [] and smoke.sampling.sample_every_n_steps is None


def test_the_smoke_job_is_valid_where_set_max_train_steps_is_refused(tmp_path: Path) -> None:
    # what a user would try by hand: --set training.max_train_steps=2 on an epoch job
    from kohya_orchestrator.errors import ConfigError

    job = _job(tmp_path)
    data = job.model_dump(mode="json", exclude_none=True)
    data["training"]["max_train_steps"] = 2
    with pytest.raises(ConfigError, match="both max_train_epochs and max_train_steps"):
        validate_job(data)
    smoke = smoke_job(job, tmp_path / "scratch")
    assert not [w for w in job_warnings(smoke) if w.path.startswith("training.max_train")]


def test_the_jobs_own_output_folder_is_refused(tmp_path: Path) -> None:
    job = _job(tmp_path)
    with pytest.raises(ValueError, match="its own folder"):
        smoke_job(job, tmp_path / "out")
