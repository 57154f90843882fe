"""Helpers for the real-sd-scripts tests: a tiny job on the lab's random-weight SD1.5 model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def lab_env(e2e_lab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline Hugging Face settings for the child; returns the lab folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("KOHYA_SD_SCRIPTS", str(e2e_lab))
    return e2e_lab


def tiny_job(lab: Path, tmp_path: Path, name: str, **overrides: Any) -> dict[str, Any]:
    """A cheap real job: 4 images x 2 repeats at 64 px, batch 2, CPU settings."""
    data = tmp_path / "img"
    if not data.exists():
        shutil.copytree(lab / "data" / "img", data)
    job: dict[str, Any] = {
        "name": name,
        "model": {
            "pretrained_model_name_or_path": str(lab / "models" / "sd15-random-diffusers"),
            "tokenizer_cache_dir": str(lab / "tokcache"),
        },
        "dataset": {
            "resolution": 64,
            "batch_size": 2,
            "enable_bucket": False,
            "subsets": [{"image_dir": str(data / "2_oilpaint style")}],
        },
        "network": {"algo": "lora", "network_dim": 4, "network_alpha": 1.0},
        "optimizer": {"type": "AdamW", "learning_rate": 1e-4},
        "training": {
            "output_dir": str(tmp_path / "out"),
            "output_name": name,
            "max_train_epochs": 2,
            "save_every_n_epochs": 1,
            "mixed_precision": "no",
            "attention": "none",
            "cache_latents": True,
            "max_data_loader_n_workers": 0,
        },
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(job.get(section), dict):
            job[section] = {**job[section], **values}
        else:
            job[section] = values
    return job
