"""Job-aware preflight: the packages and the GPU a job needs, checked against the install."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.environment.preflight import (
    check_gpu,
    job_requirements,
    preflight,
    vram_tier,
)
from kohya_orchestrator.environment.probe import Environment, GpuInfo
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models import TrainingJob


def job(tmp_path: Path, preset: str | None = None, **sections: Any) -> TrainingJob:
    img = tmp_path / "img" / "2_oilpaint style"
    img.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "model": {"pretrained_model_name_or_path": "runwayml/stable-diffusion-v1-5"},
        "dataset": {"subsets": [{"image_dir": str(img)}]},
        "training": {"max_train_epochs": 1, "output_dir": str(tmp_path / "out")},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    if preset:
        data["preset"] = preset
    return validate_job(data)


def env(**facts: Any) -> Environment:
    base: dict[str, Any] = {
        "sd_scripts_dir": Path("/sd"),
        "python": Path("/py"),
        "python_version": "3.10.11",
        "torch_version": "2.4.1+cu124",
        "cuda_version": "12.4",
    }
    return Environment(**{**base, **facts})


@pytest.mark.parametrize(
    ("optimizer", "module"),
    [
        ({"type": "Prodigy"}, "prodigyopt"),
        ({"type": "AdamW8bit", "learning_rate": 1e-4}, "bitsandbytes"),
        ({"type": "PagedAdamW", "learning_rate": 1e-4}, "bitsandbytes"),
        ({"type": "Lion8bit", "learning_rate": 1e-4}, "bitsandbytes"),
        ({"type": "DAdaptAdam"}, "dadaptation"),
        ({"type": "AdamWScheduleFree", "learning_rate": 1e-4}, "schedulefree"),
        ({"type": "Lion", "learning_rate": 1e-4}, "lion_pytorch"),
        ({"type": "pytorch_optimizer.CAME", "learning_rate": 1e-4}, "pytorch_optimizer"),
        ({"type": "AdamW", "learning_rate": 1e-4}, None),
        ({"type": "AdaFactor", "learning_rate": 1e-4}, None),
    ],
)
def test_the_optimizer_names_its_package(
    tmp_path: Path, optimizer: dict[str, Any], module: str | None
) -> None:
    needs = [r.module for r in job_requirements(job(tmp_path, optimizer=optimizer))]
    assert needs == ([module] if module else [])


def test_attention_and_trackers(tmp_path: Path) -> None:
    j = job(
        tmp_path,
        training={"attention": "xformers", "log_with": "all", "logging_dir": str(tmp_path)},
    )
    assert [(r.module, r.where) for r in job_requirements(j)] == [
        ("xformers", "training.attention"),
        ("tensorboard", "training.log_with"),
        ("wandb", "training.log_with"),
    ]


def test_a_missing_module_is_an_error_with_the_pip_command(tmp_path: Path) -> None:
    install = Install(
        root=tmp_path,
        sd_scripts_dir=tmp_path,
        python=Path(sys.executable),
        layout="explicit",
        source="argument",
    )
    present = job(tmp_path, optimizer={"type": "json.JSONDecoder", "learning_rate": 1e-4})
    assert preflight(present, install, None) == []
    absent = job(tmp_path, optimizer={"type": "no_such_module_q.Opt", "learning_rate": 1e-4})
    (problem,) = preflight(absent, install, None)
    assert problem.path == "optimizer.type"
    assert "needs the 'no_such_module_q' module" in problem.message
    assert "ImportError" in problem.message
    assert problem.hint == f"{sys.executable} -m pip install no_such_module_q"


def test_a_gpu_job_on_a_cpu_only_torch(tmp_path: Path) -> None:
    j = job(tmp_path, training={"mixed_precision": "fp16"})
    (problem,) = check_gpu(j, env(torch_version="2.4.1+cpu", cuda_version=None))
    assert problem.path == "training.mixed_precision"
    assert "needs a GPU (mixed_precision = fp16)" in problem.message
    assert "CPU-only build" in problem.message
    assert 'mixed_precision="no"' in (problem.hint or "")
    (seen,) = check_gpu(j, env())  # a CUDA build that sees no device
    assert "sees no GPU" in seen.message
    assert check_gpu(j, env(cuda_available=True)) == []
    cpu_job = job(tmp_path, training={"mixed_precision": "no"})
    assert check_gpu(cpu_job, env(torch_version="2.4.1+cpu", cuda_version=None)) == []
    assert check_gpu(j, env(torch_version=None)) == []  # unknown: doctor's torch check says it


def test_bf16_on_a_gpu_without_it(tmp_path: Path) -> None:
    j = job(tmp_path, training={"mixed_precision": "bf16"})
    (problem,) = check_gpu(j, env(cuda_available=True, bf16_supported=False))
    assert "no bf16 support" in problem.message
    assert check_gpu(j, env(cuda_available=True, bf16_supported=True)) == []


def test_the_vram_tier_against_the_gpu(tmp_path: Path) -> None:
    j = job(tmp_path, preset="oilpaint+vram-24gb", training={"mixed_precision": "fp16"})
    assert vram_tier(j) == 24
    small = (GpuInfo(index=0, name="RTX 3060", memory_total_mib=12288),)
    (problem,) = check_gpu(j, env(cuda_available=True, gpus=small))
    assert problem.severity == "warning"
    assert "made for 24 GB" in problem.message
    assert "12.0 GB" in problem.message
    assert problem.hint == "use the preset with --vram 12"
    big = (GpuInfo(index=0, name="RTX 4090", memory_total_mib=24564),)
    assert check_gpu(j, env(cuda_available=True, gpus=big)) == []
    assert vram_tier(job(tmp_path, preset="oilpaint")) is None


def test_sdpa_needs_torch_2(tmp_path: Path) -> None:
    install = Install(
        root=tmp_path,
        sd_scripts_dir=tmp_path,
        python=Path(sys.executable),
        layout="explicit",
        source="argument",
    )
    j = job(tmp_path, training={"attention": "sdpa"})
    (problem,) = preflight(j, install, env(torch_version="1.13.1+cu117", cuda_available=True))
    assert problem.path == "training.attention"
    assert preflight(j, install, env(cuda_available=True)) == []
