"""installer.plan: the torch build per driver, the requirements kept, failures explained."""

from __future__ import annotations

import pytest

from kohya_orchestrator.installer.plan import (
    choose_torch,
    explain_failure,
    filter_requirements,
    parse_cuda_version,
)

# The header of a real nvidia-smi (driver 550, an RTX 4090 box).
SMI = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.14              Driver Version: 550.54.14      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
"""


class TestParseCudaVersion:
    def test_header(self) -> None:
        assert parse_cuda_version(SMI) == (12, 4)

    def test_no_driver(self) -> None:
        text = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
        assert parse_cuda_version(text) is None


class TestChooseTorch:
    @pytest.mark.parametrize(
        ("cuda", "build", "torch"),
        [
            ((13, 0), "cu128", "torch==2.7.1"),
            ((12, 8), "cu128", "torch==2.7.1"),
            ((12, 7), "cu126", "torch==2.6.0"),
            ((12, 4), "cu124", "torch==2.6.0"),
            ((12, 2), "cu118", "torch==2.6.0"),
            ((11, 8), "cu118", "torch==2.6.0"),
        ],
    )
    def test_auto_follows_the_driver(self, cuda: tuple[int, int], build: str, torch: str) -> None:
        choice = choose_torch("auto", cuda, "Linux")
        assert choice.build == build and choice.packages[0] == torch
        assert choice.index_url == f"https://download.pytorch.org/whl/{build}"
        assert f"CUDA {cuda[0]}.{cuda[1]}" in choice.reason and not choice.cpu_only

    def test_no_gpu_is_the_cpu_build(self) -> None:
        choice = choose_torch("auto", None, "Linux")
        assert choice.cpu_only and choice.packages == ("torch==2.6.0", "torchvision==0.21.0")
        assert choice.index_url == "https://download.pytorch.org/whl/cpu"
        assert "no NVIDIA driver" in choice.reason

    def test_a_driver_too_old_falls_back_to_cpu_and_says_so(self) -> None:
        choice = choose_torch("auto", (11, 4), "Linux")
        assert choice.cpu_only and "update the NVIDIA driver" in choice.reason

    def test_macos_takes_pypi_wheels(self) -> None:
        assert choose_torch("auto", None, "Darwin").index_url is None

    def test_asked_build_and_overrides(self) -> None:
        choice = choose_torch(
            "cu124", None, "Windows", packages=("torch==2.5.1",), index="https://mirror/whl"
        )
        assert choice.build == "cu124" and choice.packages == ("torch==2.5.1",)
        assert choice.index_url == "https://mirror/whl"
        assert "as asked" in choice.reason and "https://mirror/whl" in choice.reason

    def test_pypi_means_pips_own_index(self) -> None:
        choice = choose_torch("cpu", None, "Linux", index="pypi")
        assert choice.index_url is None and "pip’s own index" in choice.reason

    def test_unknown_build(self) -> None:
        with pytest.raises(ValueError, match="unknown torch build 'cu999'"):
            choose_torch("cu999", None, "Linux")


class TestFilterRequirements:
    TEXT = "accelerate==1.6.0\n# a comment\n\nbitsandbytes\nrich==14.1.0  # logs\n-e .\n"

    def test_gpu_keeps_bitsandbytes(self) -> None:
        keep, notes = filter_requirements(self.TEXT, cpu_only=False)
        assert keep == ["accelerate==1.6.0", "bitsandbytes", "rich==14.1.0"]
        assert notes == ["left out '-e .': the scripts import library/ from their own folder"]

    def test_cpu_drops_bitsandbytes(self) -> None:
        keep, notes = filter_requirements(self.TEXT, cpu_only=True)
        assert keep == ["accelerate==1.6.0", "rich==14.1.0"]
        assert any("bitsandbytes" in n for n in notes)


class TestExplainFailure:
    @pytest.mark.parametrize(
        ("output", "what"),
        [
            ("OSError: [Errno 28] No space left on device", "the disk is full"),
            (
                "fatal: unable to access 'https://github.com/x/': Could not resolve host",
                "the network",
            ),
            (
                "ERROR: Could not find a version that satisfies the requirement torch==9",
                "pip found no matching package",
            ),
            ("fatal: '/tmp/x' does not appear to be a git repository", "not a git repository"),
            ("error: pathspec 'abc' did not match any file(s) known to git", "not in the source"),
        ],
    )
    def test_known(self, output: str, what: str) -> None:
        found = explain_failure(output)
        assert found is not None and what in found[0] and found[1]

    def test_unknown(self) -> None:
        assert explain_failure("Segmentation fault") is None
