"""environment/probe.py: the probe, against interpreters we control, and nvidia-smi parsing."""

from __future__ import annotations

import json
import os
import platform
import stat
import sys
from pathlib import Path

import pytest

from kohya_orchestrator.environment.discovery import Install, require_install
from kohya_orchestrator.environment.doctor import diagnose
from kohya_orchestrator.environment.probe import GpuInfo, parse_nvidia_smi, probe_environment

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="uses sh scripts as interpreters")
SHA = "48d368fa557731ad0488c07304dfeba8c07910eb"


def make_sd_scripts(path: Path) -> Path:
    (path / "library").mkdir(parents=True)
    for name in ("train_network.py", "sdxl_train_network.py", "fine_tune.py"):
        (path / name).write_text("")
    return path


def test_parse_nvidia_smi() -> None:
    text = "NVIDIA GeForce RTX 4090, 24564, 1234\nNVIDIA A100-SXM4-80GB, 81920, [N/A]\n\n"
    assert parse_nvidia_smi(text) == [
        GpuInfo(
            index=0,
            name="NVIDIA GeForce RTX 4090",
            memory_total_mib=24564,
            memory_used_mib=1234,
            source="nvidia-smi",
        ),
        GpuInfo(index=1, name="NVIDIA A100-SXM4-80GB", memory_total_mib=81920, source="nvidia-smi"),
    ]


# ---------------------------------------------------------------------------------------------
# The probe, against interpreters we control: sh wrappers around this Python with a fake torch.

FAKE_TORCH = """
__version__ = "2.5.1+cu124"
class version:
    cuda = "12.4"
    hip = None
class _Props:
    name = "NVIDIA GeForce RTX 4090"
    total_memory = 24564 * 1024 * 1024
class cuda:
    is_available = staticmethod(lambda: True)
    device_count = staticmethod(lambda: 1)
    get_device_properties = staticmethod(lambda i: _Props())
    is_bf16_supported = staticmethod(lambda: True)
class backends:
    class mps:
        is_available = staticmethod(lambda: False)
"""


def write_script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Install:
    """A GUI layout whose venv python runs this Python with a fake torch and lycoris-lora 3.4.0."""
    root = tmp_path / "kohya_ss"
    sd = make_sd_scripts(root / "sd-scripts")
    (sd / ".snapshot-commit").write_text(SHA)
    site = tmp_path / "site"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text(FAKE_TORCH)
    dist = site / "lycoris_lora-3.4.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lycoris-lora\nVersion: 3.4.0\n")
    python = write_script(
        root / "venv" / "bin" / "python",
        f'#!/bin/sh\nPYTHONPATH="{site}" exec "{sys.executable}" "$@"\n',
    )
    # A fake nvidia-smi on PATH, so the merge of both views is tested without a GPU.
    write_script(
        tmp_path / "bin" / "nvidia-smi", "#!/bin/sh\necho 'NVIDIA GeForce RTX 4090, 24564, 1234'\n"
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    return Install(
        root=root, sd_scripts_dir=sd, python=python, layout="kohya_ss_gui", source="argument"
    )


@posix_only
class TestProbe:
    def test_probe_reads_torch_gpus_and_packages(self, fake_install: Install) -> None:
        env = probe_environment(fake_install, timeout_s=60)
        assert env.probe_errors == []
        assert env.python_version == platform.python_version()
        assert env.platform == sys.platform
        assert env.sd_scripts_commit == SHA
        assert env.scripts == ("sdxl_train_network.py", "train_network.py")
        assert env.layout == "kohya_ss_gui"
        assert (env.torch_version, env.cuda_version, env.cuda_available) == (
            "2.5.1+cu124",
            "12.4",
            True,
        )
        assert env.bf16_supported is True
        assert env.gpus == (
            GpuInfo(
                index=0,
                name="NVIDIA GeForce RTX 4090",
                memory_total_mib=24564,
                memory_used_mib=1234,
                source="torch",
            ),
        )
        assert env.lycoris_version == "3.4.0"
        statuses = {c.name: c.status for c in diagnose(env)}
        assert statuses["torch"] == statuses["gpu"] == statuses["bf16"] == "ok"
        assert statuses["lycoris"] == "warn"

    def test_probe_without_torch(self, fake_install: Install) -> None:
        (fake_install.python.parents[2].parent / "site" / "torch" / "__init__.py").unlink()
        (fake_install.python.parents[2].parent / "site" / "torch").rmdir()
        env = probe_environment(fake_install, timeout_s=60)
        assert env.probe_errors == []
        assert env.torch_version is None
        # Torch did not say there is a GPU, so nvidia-smi's view is kept.
        assert [(g.name, g.source) for g in env.gpus] == [("NVIDIA GeForce RTX 4090", "nvidia-smi")]
        checks = {c.name: c for c in diagnose(env)}
        assert checks["torch"].status == "fail"

    def test_python_that_does_not_run(self, fake_install: Install, tmp_path: Path) -> None:
        broken = tmp_path / "broken-python"
        broken.write_text("not a program")
        env = probe_environment(fake_install.model_copy(update={"python": broken}))
        assert env.python_version is None
        assert env.probe_errors[0].startswith(f"could not run {broken}")
        checks = diagnose(env)
        assert [c.name for c in checks] == ["sd-scripts", "commit", "python", "probe"]
        assert [c.status for c in checks] == ["ok", "ok", "fail", "fail"]

    def test_probe_timeout(self, fake_install: Install, tmp_path: Path) -> None:
        slow = write_script(tmp_path / "slow" / "python", "#!/bin/sh\nexec sleep 30\n")
        env = probe_environment(fake_install.model_copy(update={"python": slow}), timeout_s=0.5)
        assert env.probe_errors[0] == f"probe timed out after 0.5 s ({slow} -c <probe>)"

    def test_probe_that_crashes(self, fake_install: Install, tmp_path: Path) -> None:
        bad = write_script(tmp_path / "bad" / "python", "#!/bin/sh\necho boom >&2\nexit 3\n")
        env = probe_environment(fake_install.model_copy(update={"python": bad}))
        assert env.probe_errors[0] == "probe failed (exit 3): boom"


@pytest.mark.e2e
def test_probe_the_real_lab(e2e_lab: Path) -> None:
    install = require_install(e2e_lab, env={})
    assert install.layout == "kohya_orchestrator"  # the lab is made by `install`
    assert install.sd_scripts_dir == e2e_lab / "sd-scripts"
    assert install.python == e2e_lab / "venv" / "bin" / "python"

    env = probe_environment(install)

    assert env.probe_errors == []
    assert env.torch_version is not None
    assert env.torch_version.startswith("2.")
    assert env.cuda_available is False
    # The lab's torch is the CPU build, or where download.pytorch.org cannot be reached a CUDA
    # build from pip's index that runs on the CPU (its install marker says which index).
    marker = json.loads((e2e_lab / "kohya-orchestrator-install.json").read_text())
    cpu_index = (marker["torch_index"] or "").endswith("/cpu")
    assert env.torch_cpu_only is cpu_index
    assert env.lycoris_version == "4.1.3"
    assert {"train_network.py", "sdxl_train_network.py"} <= set(env.scripts)
    assert env.sd_scripts_commit is not None
    assert len(env.sd_scripts_commit) == 40
    assert env.accelerate_version is not None
    checks = {c.name: c for c in diagnose(env)}
    assert checks["torch"].status == ("warn" if cpu_index else "ok")
    assert checks["gpu"].status == "warn"  # no GPU visible: training runs on the CPU
    assert checks["lycoris"].status == "warn"
    assert checks["requirements"].status == "ok"
