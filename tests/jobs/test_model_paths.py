"""Model paths (issue 14, items 4 and 5): Hub ids, placeholders, relative folders, components."""

from __future__ import annotations

from pathlib import Path

import pytest

from kohya_orchestrator.jobs.checks import check_paths
from kohya_orchestrator.jobs.loading import load_job, validate_job
from kohya_orchestrator.models.model import looks_like_hub_id

HUB_IDS = [
    "stabilityai/stable-diffusion-xl-base-1.0",
    "black-forest-labs/FLUX.1-dev",
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "OnomaAIResearch/Illustrious-xl-early-release-v0",
    "cagliostrolab/animagine-xl-3.1",
    "Laxhar/noobai-XL_v1.0",
]
NOT_HUB_IDS = [
    "sd15.safetensors",
    "models/sdxl.safetensors",
    "org/model.ckpt",
    "./a/b",
    "/abs/path",
    "a/../b",
    "org--x/name",
    "sd15-diffusers",
    "a/b/c",
]


@pytest.mark.parametrize("value", HUB_IDS)
def test_well_formed_hub_ids_are_recognised(value: str) -> None:
    assert looks_like_hub_id(value)


@pytest.mark.parametrize("value", NOT_HUB_IDS)
def test_paths_and_malformed_ids_are_not(value: str) -> None:
    assert not looks_like_hub_id(value)


def _job(model: dict, tmp_path: Path) -> dict:
    img = tmp_path / "img" / "10_a"
    img.mkdir(parents=True, exist_ok=True)
    return {
        "model": model,
        "dataset": {"subsets": [{"image_dir": str(img)}]},
        "training": {"output_dir": str(tmp_path / "out"), "max_train_epochs": 1},
    }


def test_the_sdxl_hub_id_with_a_dot_passes_the_path_check(tmp_path: Path) -> None:
    job = validate_job(
        _job(
            {"family": "sdxl", "pretrained_model_name_or_path": HUB_IDS[0]},
            tmp_path,
        )
    )
    assert check_paths(job) == []


def test_a_dit_family_refuses_a_hub_id_and_says_why(tmp_path: Path) -> None:
    job = validate_job(
        _job({"family": "flux", "pretrained_model_name_or_path": HUB_IDS[1]}, tmp_path)
    )
    (p,) = check_paths(job)
    assert p.path == "model.pretrained_model_name_or_path"
    assert "local files only" in p.message and "download" in (p.hint or "")


def test_a_local_looking_path_that_is_missing_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.safetensors")
    job = validate_job(
        _job({"family": "flux", "pretrained_model_name_or_path": missing, "ae": missing}, tmp_path)
    )
    found = {p.path: p for p in check_paths(job)}
    assert "base model does not exist" in found["model.pretrained_model_name_or_path"].message
    assert "does not exist" in found["model.ae"].message


def test_placeholders_warn_for_validate_and_stop_a_launch(tmp_path: Path) -> None:
    job = validate_job(
        _job(
            {"family": "flux", "pretrained_model_name_or_path": "<flux1-dev.safetensors>"},
            tmp_path,
        )
    )
    (warn,) = check_paths(job, placeholders="warning")
    assert warn.severity == "warning" and "placeholder" in warn.message
    assert "--set model.pretrained_model_name_or_path=" in (warn.hint or "")
    (err,) = check_paths(job)
    assert err.severity == "error"


def test_a_relative_diffusers_folder_is_written_absolute(tmp_path: Path) -> None:
    # sd-scripts runs from its own checkout: a relative folder would be looked up there.
    (tmp_path / "sd15-diffusers").mkdir()
    (tmp_path / "models" / "sdxl").mkdir(parents=True)
    (tmp_path / "img" / "10_a").mkdir(parents=True)
    for model, expected in (
        ("sd15-diffusers", tmp_path / "sd15-diffusers"),
        ("models/sdxl", tmp_path / "models" / "sdxl"),  # org/name-shaped, but a local folder
        ("stabilityai/stable-diffusion-xl-base-1.0", None),  # a Hub id stays as it is
    ):
        job_file = tmp_path / "job.toml"
        job_file.write_text(
            f'[model]\npretrained_model_name_or_path = "{model}"\n'
            '[training]\nmax_train_epochs = 1\n[[dataset.subsets]]\nimage_dir = "img/10_a"\n',
            encoding="utf-8",
        )
        job = load_job(job_file)
        got = job.model.pretrained_model_name_or_path
        assert got == (str(expected) if expected else model)


def test_component_paths_are_written_absolute(tmp_path: Path) -> None:
    (tmp_path / "img" / "10_a").mkdir(parents=True)
    job_file = tmp_path / "job.toml"
    job_file.write_text(
        '[model]\nfamily = "flux"\npretrained_model_name_or_path = "flux1-dev.safetensors"\n'
        'clip_l = "te/clip_l.safetensors"\nt5xxl = "<t5xxl.safetensors>"\n'
        '[training]\nmax_train_epochs = 1\n[[dataset.subsets]]\nimage_dir = "img/10_a"\n',
        encoding="utf-8",
    )
    m = load_job(job_file).model
    assert m.pretrained_model_name_or_path == str(tmp_path / "flux1-dev.safetensors")
    assert m.component_paths()["model.clip_l"] == str(tmp_path / "te" / "clip_l.safetensors")
    assert m.component_paths()["model.t5xxl"] == "<t5xxl.safetensors>"  # a placeholder stays
