"""environment.py: install discovery on built trees, the probe, and diagnose() on given facts."""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kohya_orchestrator.environment.discovery import (
    Check,
    Environment,
    GpuInfo,
    Install,
    diagnose,
    find_install,
    parse_nvidia_smi,
    probe_environment,
    read_commit,
    require_install,
)
from kohya_orchestrator.errors import SetupError

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="uses sh scripts as interpreters")


def make_sd_scripts(path: Path) -> Path:
    (path / "library").mkdir(parents=True)
    for name in ("train_network.py", "sdxl_train_network.py", "fine_tune.py"):
        (path / name).write_text("")
    return path


def make_venv(path: Path, *, windows: bool = False) -> Path:
    python = path / ("Scripts/python.exe" if windows else "bin/python")
    python.parent.mkdir(parents=True)
    python.write_text("")
    python.chmod(0o755)
    return python


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake HOME, and a current folder that holds no install."""
    home = tmp_path / "home"
    home.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return home


def find(path: Path | None = None, env: dict[str, str] | None = None, **kw: object) -> Install:
    install = find_install(path, env=env if env is not None else {}, **kw)  # type: ignore[arg-type]
    assert install is not None
    return install


class TestLayouts:
    def test_kohya_ss_gui_from_root_or_sd_scripts_dir(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "kohya_ss"
        sd = make_sd_scripts(root / "sd-scripts")
        python = make_venv(root / "venv")
        expected = Install(
            root=root,
            sd_scripts_dir=sd,
            python=python,
            layout="kohya_ss_gui",
            source="argument",
            source_detail="argument",
        )
        assert find(root) == expected
        assert find(sd) == expected
        assert find(sd / "train_network.py") == expected

    def test_kohya_ss_gui_uv_venv(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "kohya_ss"
        make_sd_scripts(root / "sd-scripts")
        python = make_venv(root / ".venv")
        install = find(root)
        assert (install.layout, install.python) == ("kohya_ss_gui", python)

    @pytest.mark.parametrize(("venv", "windows"), [("venv", False), (".venv", True)])
    def test_bare_checkout(self, tmp_path: Path, home: Path, venv: str, windows: bool) -> None:
        sd = make_sd_scripts(tmp_path / "my checkout")
        python = make_venv(sd / venv, windows=windows)
        install = find(sd)
        assert (install.layout, install.root, install.sd_scripts_dir) == ("bare_sd_scripts", sd, sd)
        assert install.python == python

    def test_checkout_named_sd_scripts_with_own_venv_is_bare(
        self, tmp_path: Path, home: Path
    ) -> None:
        sd = make_sd_scripts(tmp_path / "sd-scripts")
        make_venv(sd / "venv")
        make_venv(tmp_path / "venv")  # someone else's venv next to it
        assert find(sd).layout == "bare_sd_scripts"

    def test_lora_easy_training_scripts(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "LoRA_Easy_Training_Scripts"
        sd = make_sd_scripts(root / "backend" / "sd_scripts")
        python = make_venv(sd / "venv")
        for given in (root, sd):
            install = find(given)
            assert install.layout == "lora_easy_training_scripts"
            assert (install.root, install.sd_scripts_dir, install.python) == (root, sd, python)

    def test_fluxgym(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "fluxgym"
        sd = make_sd_scripts(root / "sd-scripts")
        python = make_venv(root / "env")
        install = find(root)
        assert (install.layout, install.root, install.sd_scripts_dir) == ("fluxgym", root, sd)
        assert install.python == python

    def test_conda_when_no_venv(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "kohya_ss"
        make_sd_scripts(root / "sd-scripts")
        python = make_venv(tmp_path / "conda" / "envs" / "kohya")
        install = find(root, env={"CONDA_PREFIX": str(tmp_path / "conda" / "envs" / "kohya")})
        assert (install.layout, install.root, install.python) == ("conda", root, python)

    def test_venv_beats_an_active_conda(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "kohya_ss"
        make_sd_scripts(root / "sd-scripts")
        make_venv(root / "venv")
        make_venv(tmp_path / "conda")
        assert find(root, env={"CONDA_PREFIX": str(tmp_path / "conda")}).layout == "kohya_ss_gui"


class TestSources:
    def test_explicit_python_argument(self, tmp_path: Path, home: Path) -> None:
        sd = make_sd_scripts(tmp_path / "sd")
        python = make_venv(tmp_path / "elsewhere")
        install = find(sd, python=python)
        assert (install.layout, install.python, install.source) == ("explicit", python, "argument")

    def test_env_vars(self, tmp_path: Path, home: Path) -> None:
        sd = make_sd_scripts(tmp_path / "sd")
        python = make_venv(tmp_path / "py")
        env = {"KOHYA_SD_SCRIPTS": str(sd), "KOHYA_PYTHON": str(python)}
        install = find(env=env)
        assert (install.source, install.source_detail) == ("env", "$KOHYA_SD_SCRIPTS")
        assert (install.layout, install.python) == ("explicit", python)

    def test_argument_beats_env(self, tmp_path: Path, home: Path) -> None:
        a = make_sd_scripts(tmp_path / "a")
        make_venv(a / "venv")
        b = make_sd_scripts(tmp_path / "b")
        make_venv(b / "venv")
        assert find(a, env={"KOHYA_SD_SCRIPTS": str(b)}).sd_scripts_dir == a

    def test_user_config_file(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "kohya_ss"
        sd = make_sd_scripts(root / "sd-scripts")
        make_venv(root / "venv")
        python = make_venv(tmp_path / "custom")
        config = home / ".config" / "kohya_orchestrator" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(
            f'sd_scripts = "{root.as_posix()}"\npython = "../../../custom/bin/python"\n'
        )
        install = find(env={"HOME": str(home)})
        assert install.source == "config"
        assert install.source_detail == f"sd_scripts in {config}"
        assert (install.sd_scripts_dir, install.python, install.layout) == (sd, python, "explicit")

    def test_xdg_config_home(self, tmp_path: Path, home: Path) -> None:
        sd = make_sd_scripts(tmp_path / "sd")
        make_venv(sd / "venv")
        config = tmp_path / "xdg" / "kohya_orchestrator" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f"sd_scripts = '{sd.as_posix()}'\n")
        install = find(env={"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "xdg")})
        assert (install.source, install.sd_scripts_dir) == ("config", sd)

    def test_search_roots_then_home_defaults(self, tmp_path: Path, home: Path) -> None:
        root = home / "kohya_ss"
        make_sd_scripts(root / "sd-scripts")
        make_venv(root / "venv")
        install = find(env={"HOME": str(home)}, search_roots=[tmp_path / "nothing"])
        assert (install.source, install.root) == ("search", root)
        other = tmp_path / "fluxgym"
        make_sd_scripts(other / "sd-scripts")
        make_venv(other / "env")
        install = find(env={"HOME": str(home)}, search_roots=[other])
        assert (install.layout, install.root) == ("fluxgym", other)

    def test_current_folder_is_searched(
        self, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sd = make_sd_scripts(tmp_path / "here")
        make_venv(sd / "venv")
        monkeypatch.chdir(sd)
        assert find().sd_scripts_dir == sd


class TestNotFound:
    def test_message_lists_what_was_tried(self, tmp_path: Path, home: Path) -> None:
        config = home / ".config" / "kohya_orchestrator" / "config.toml"
        with pytest.raises(SetupError) as info:
            require_install(env={"HOME": str(home)})
        assert str(info.value) == textwrap.dedent(
            f"""\
            No usable kohya-ss sd-scripts install found. Tried:
              - $KOHYA_SD_SCRIPTS: not set
              - config {config}: not found
              - search root {tmp_path / "cwd"}: no sd-scripts checkout (train_network.py + library/) in it, its sd-scripts/ or backend/sd_scripts/
              - search root {home / "kohya_ss"}: does not exist
              - search root {home / "LoRA_Easy_Training_Scripts"}: does not exist
              - search root {home / "fluxgym"}: does not exist
              - search root {home / "sd-scripts"}: does not exist
              - search root {home / "kohya-sd-scripts"}: does not exist
              hint: pass --sd-scripts PATH (the kohya_ss folder or its sd-scripts folder), or set KOHYA_SD_SCRIPTS (and KOHYA_PYTHON for a Python outside the usual venv), or write sd_scripts = "..." and python = "..." to {config}; no install yet: python -m kohya_orchestrator install"""
        )
        assert info.value.exit_code == 2
        assert find_install(env={"HOME": str(home)}) is None

    def test_checkout_without_python(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "kohya_ss"
        sd = make_sd_scripts(root / "sd-scripts")
        with pytest.raises(SetupError) as info:
            require_install(root, env={})
        assert (
            f"  - argument {root}: sd-scripts at {sd} but no Python in {sd / 'venv'}, "
            f"{sd / '.venv'}, {root / 'env'}, {root / 'venv'}, {root / '.venv'}; "
            "$CONDA_PREFIX is not set\n"
        ) in str(info.value)

    def test_a_broken_env_var_does_not_fall_through(self, tmp_path: Path, home: Path) -> None:
        root = home / "kohya_ss"
        make_sd_scripts(root / "sd-scripts")
        make_venv(root / "venv")
        env = {"HOME": str(home), "KOHYA_SD_SCRIPTS": str(tmp_path / "moved")}
        with pytest.raises(SetupError, match=r"\$KOHYA_SD_SCRIPTS .*moved: does not exist"):
            require_install(env=env)

    def test_missing_explicit_python(self, tmp_path: Path, home: Path) -> None:
        sd = make_sd_scripts(tmp_path / "sd")
        env = {"KOHYA_PYTHON": str(tmp_path / "nope" / "python")}
        with pytest.raises(SetupError, match=r"\$KOHYA_PYTHON=.*nope/python: no such file"):
            require_install(sd, env=env)

    def test_bad_config_file(self, tmp_path: Path, home: Path) -> None:
        config = tmp_path / "config.toml"
        config.write_text("sd_scripts = \n")
        with pytest.raises(SetupError, match="cannot be read"):
            require_install(env={}, config_file=config)
        config.write_text("sd_scripts = 3\n")
        with pytest.raises(SetupError, match="'sd_scripts' must be a non-empty string"):
            require_install(env={}, config_file=config)


class TestReadCommit:
    SHA = "48d368fa557731ad0488c07304dfeba8c07910eb"

    def test_snapshot_file(self, tmp_path: Path) -> None:
        (tmp_path / ".snapshot-commit").write_text(self.SHA + "\n")
        assert read_commit(tmp_path) == self.SHA

    def test_none_without_git(self, tmp_path: Path) -> None:
        assert read_commit(tmp_path) is None

    def test_git_head_by_hand(self, tmp_path: Path) -> None:
        git = tmp_path / ".git"
        (git / "refs" / "heads").mkdir(parents=True)
        (git / "HEAD").write_text("ref: refs/heads/main\n")
        (git / "refs" / "heads" / "main").write_text(self.SHA + "\n")
        assert read_commit(tmp_path) == self.SHA

    def test_packed_refs_and_submodule_gitdir(self, tmp_path: Path) -> None:
        modules = tmp_path / "kohya_ss" / ".git" / "modules" / "sd-scripts"
        modules.mkdir(parents=True)
        (modules / "HEAD").write_text("ref: refs/heads/dev\n")
        (modules / "packed-refs").write_text(f"# pack-refs\n{self.SHA} refs/heads/dev\n")
        sd = tmp_path / "kohya_ss" / "sd-scripts"
        sd.mkdir()
        (sd / ".git").write_text("gitdir: ../.git/modules/sd-scripts\n")
        assert read_commit(sd) == self.SHA

    def test_detached_head(self, tmp_path: Path) -> None:
        (tmp_path / ".git").mkdir()
        (tmp_path / ".git" / "HEAD").write_text(self.SHA.upper() + "\n")
        assert read_commit(tmp_path) == self.SHA

    @pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
    def test_real_git(self, tmp_path: Path) -> None:
        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path), *args],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()

        git("init", "-q")
        (tmp_path / "f").write_text("x")
        git("add", "f")
        git("commit", "-q", "-m", "x")
        assert read_commit(tmp_path) == git("rev-parse", "HEAD")


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
    (sd / ".snapshot-commit").write_text(TestReadCommit.SHA)
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
        assert env.sd_scripts_commit == TestReadCommit.SHA
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


# ---------------------------------------------------------------------------------------------
# diagnose() on hand-built facts


def healthy(**changes: object) -> Environment:
    base = Environment(
        sd_scripts_dir=Path("/opt/kohya_ss/sd-scripts"),
        sd_scripts_commit=TestReadCommit.SHA,
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


# ---------------------------------------------------------------------------------------------


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
    checks = by_name(env)
    assert checks["torch"].status == ("warn" if cpu_index else "ok")
    assert checks["gpu"].status == "warn"  # no GPU visible: training runs on the CPU
    assert checks["lycoris"].status == "warn"
    assert checks["requirements"].status == "ok"
