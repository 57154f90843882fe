"""environment/doctor.py: diagnose() on given facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kohya_orchestrator.environment.doctor import Check, diagnose
from kohya_orchestrator.environment.probe import Environment, GpuInfo

SHA = "48d368fa557731ad0488c07304dfeba8c07910eb"


def healthy(**changes: object) -> Environment:
    base = Environment(
        sd_scripts_dir=Path("/opt/kohya_ss/sd-scripts"),
        sd_scripts_commit=SHA,
        scripts=("sdxl_train_network.py", "train_network.py"),
        python=Path("/opt/kohya_ss/venv/bin/python"),
        python_version="3.10.11",
        platform="linux",
        torch_version="2.5.1+cu124",
        cuda_available=True,
        cuda_version="12.4",
        bf16_supported=True,
        gpus=(GpuInfo(index=0, name="NVIDIA GeForce RTX 4090", memory_total_mib=24564),),
        accelerate_version="1.6.0",
        diffusers_version="0.32.1",
        transformers_version="4.54.1",
        lycoris_version="2.2.0",
        bitsandbytes_version="0.45.0",
        xformers_version="0.0.28",
        prodigyopt_version="1.1.2",
        toml_version="0.10.2",
        voluptuous_version="0.15.2",
    )
    return base.model_copy(update=changes)


def by_name(env: Environment) -> dict[str, Check]:
    return {c.name: c for c in diagnose(env)}


class TestDiagnose:
    def test_healthy_machine(self) -> None:
        checks = diagnose(healthy())
        assert [(c.name, c.status) for c in checks] == [
            ("sd-scripts", "ok"),
            ("commit", "ok"),
            ("python", "ok"),
            ("torch", "ok"),
            ("gpu", "ok"),
            ("bf16", "ok"),
            ("requirements", "ok"),
            ("lycoris", "ok"),
            ("bitsandbytes", "ok"),
            ("optional", "ok"),
            ("paths", "ok"),
        ]
        assert checks[4].detail == "1 GPU(s): NVIDIA GeForce RTX 4090 (24564 MiB)"

    def test_cpu_only_torch(self) -> None:
        checks = by_name(
            healthy(torch_version="2.13.0+cpu", cuda_version=None, cuda_available=False, gpus=())
        )
        assert checks["torch"].status == "warn"
        assert checks["torch"].detail == (
            "torch 2.13.0+cpu is a CPU-only build: training will be very slow"
        )
        assert checks["torch"].fix is not None
        assert "download.pytorch.org/whl/cu" in checks["torch"].fix
        assert checks["gpu"].status == "warn"
        assert checks["gpu"].detail.startswith("no GPU visible")
        assert "bf16" not in checks

    def test_cpu_only_torch_on_a_gpu_machine(self) -> None:
        gpu = GpuInfo(index=0, name="NVIDIA A100", memory_total_mib=81920, source="nvidia-smi")
        checks = by_name(
            healthy(torch_version="2.5.1+cpu", cuda_version=None, cuda_available=False, gpus=(gpu,))
        )
        assert checks["gpu"].detail == "nvidia-smi sees NVIDIA A100, but torch is CPU-only"

    def test_cuda_build_without_device(self) -> None:
        gpu = GpuInfo(index=0, name="NVIDIA A100", source="nvidia-smi")
        checks = by_name(healthy(cuda_available=False, gpus=(gpu,)))
        assert checks["gpu"].status == "warn"
        assert "CUDA_VISIBLE_DEVICES" in (checks["gpu"].fix or "")

    def test_no_bf16(self) -> None:
        check = by_name(healthy(bf16_supported=False))["bf16"]
        assert (check.status, check.fix) == ("warn", 'use mixed_precision = "fp16"')

    def test_mps(self) -> None:
        checks = by_name(
            healthy(cuda_version=None, cuda_available=False, gpus=(), mps_available=True)
        )
        assert (checks["torch"].status, checks["gpu"].status) == ("ok", "ok")

    def test_lycoris_missing(self) -> None:
        check = by_name(healthy(lycoris_version=None))["lycoris"]
        assert check.status == "warn"
        assert check.fix == "/opt/kohya_ss/venv/bin/python -m pip install lycoris-lora"

    def test_lycoris_4(self) -> None:
        check = by_name(healthy(lycoris_version="4.1.3"))["lycoris"]
        assert check.status == "warn"
        assert "duplicated lora name" in check.detail
        assert "empty parameter list" in check.detail
        assert check.fix is not None
        assert "preset=attn-mlp" in check.fix

    def test_lycoris_3(self) -> None:
        check = by_name(healthy(lycoris_version="3.4.0"))["lycoris"]
        assert (check.status, check.detail) == (
            "warn",
            "lycoris-lora 3.4.0: algo=ia3 fails with KeyError: 'ia3'; algo=full fails with "
            "AttributeError: 'Conv2d' object has no attribute 'weight'",
        )

    def test_bitsandbytes_missing(self) -> None:
        check = by_name(healthy(bitsandbytes_version=None))["bitsandbytes"]
        assert check.status == "warn"
        assert "AdamW8bit" in check.detail

    def test_required_package_missing(self) -> None:
        check = by_name(healthy(accelerate_version=None, voluptuous_version=None))["requirements"]
        assert (check.status, check.detail) == ("fail", "missing: accelerate, voluptuous")
        assert check.fix == (
            "cd /opt/kohya_ss/sd-scripts && /opt/kohya_ss/venv/bin/python -m pip install "
            "-r requirements.txt"
        )

    def test_scripts_missing(self) -> None:
        check = by_name(healthy(scripts=()))["sd-scripts"]
        assert check.status == "fail"

    @pytest.mark.parametrize(
        ("version", "status"),
        [("3.9.18", "warn"), ("3.10.6", "ok"), ("3.12.1", "ok"), ("3.13.0", "warn")],
    )
    def test_python_version(self, version: str, status: str) -> None:
        assert by_name(healthy(python_version=version))["python"].status == status

    def test_spaces_in_paths(self) -> None:
        windows = healthy(
            platform="win32",
            sd_scripts_dir=Path("C:/Users/Jane Doe/kohya_ss/sd-scripts"),
            python=Path("C:/Users/Jane Doe/kohya_ss/venv/Scripts/python.exe"),
        )
        check = by_name(windows)["paths"]
        assert check.status == "warn"
        assert check.fix is not None
        assert by_name(windows)["lycoris"].fix is None  # ok: 2.2.0
        no_bnb = by_name(windows.model_copy(update={"bitsandbytes_version": None}))
        assert no_bnb["bitsandbytes"].fix == (
            '"C:/Users/Jane Doe/kohya_ss/venv/Scripts/python.exe" -m pip install bitsandbytes'
        )
        linux = healthy(sd_scripts_dir=Path("/home/jane/my models/sd-scripts"))
        assert by_name(linux)["paths"].status == "ok"

    def test_unknown_commit_and_probe_warning(self) -> None:
        checks = by_name(healthy(sd_scripts_commit=None, probe_errors=["nvidia-smi exit 9: x"]))
        assert checks["commit"].status == "warn"
        assert (checks["probe"].status, checks["probe"].detail) == ("warn", "nvidia-smi exit 9: x")
