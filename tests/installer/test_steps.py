"""installer.steps and the ``install`` verb, end to end on this machine with stand-ins.

The source is a real git repository made here in the shape of sd-scripts, and the packages are
real wheels of stand-in modules installed by the real pip from a local folder (``--no-index``):
this proves the process (order, idempotency, resume, errors, registration), not that torch or
sd-scripts work; the e2e test ``test_install_e2e.py`` installs the real ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.environment.discovery import find_install
from kohya_orchestrator.errors import SetupError
from kohya_orchestrator.installer import MARKER, InstallOptions, StepReport, run_install

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

STANDINS = {
    "torch": "2.0.0",
    "torchvision": "0.1.0",
    "accelerate": "1.6.0",
    "diffusers": "0.32.1",
    "transformers": "4.54.1",
    "lycoris-lora": "4.1.3",
    "bitsandbytes": "0.45.0",
    "onnx": "1.17.0",
    "onnxruntime": "1.20.0",
}


def _wheel(folder: Path, dist: str, version: str) -> None:
    module = "lycoris" if dist == "lycoris-lora" else dist
    stem = f"{dist.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    files = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{stem}-py3-none-any.whl", "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr(f"{info}/RECORD", record)


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """(a git repo shaped like sd-scripts, its commit, a folder of stand-in wheels)."""
    root = tmp_path_factory.mktemp("source")
    repo = root / "sd-scripts"
    (repo / "library").mkdir(parents=True)
    (repo / "train_network.py").write_text("print('stand-in')\n")
    (repo / "library" / "__init__.py").write_text("")
    (repo / "library" / "train_util.py").write_text("import accelerate, diffusers\n")
    (repo / "requirements.txt").write_text(
        "accelerate==1.6.0\ntransformers==4.54.1\ndiffusers[torch]==0.32.1\nbitsandbytes\n-e .\n"
    )
    _git("init", "-q", cwd=repo)
    _git("add", ".", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one", cwd=repo)
    commit = _git("rev-parse", "HEAD", cwd=repo)
    wheels = root / "wheels"
    wheels.mkdir()
    for dist, version in STANDINS.items():
        _wheel(wheels, dist, version)
    _wheel(wheels, "torch", "2.1.0")
    return repo, commit, wheels


def _options(target: Path, src: tuple[Path, str, Path], **kw: object) -> InstallOptions:
    repo, commit, wheels = src
    base: dict[str, object] = {
        "target": target,
        "source": str(repo),
        "ref": commit,
        "torch_build": "cpu",
        "torch_packages": ("torch==2.0.0", "torchvision==0.1.0"),
        "torch_index": "pypi",
        "pip_args": ("--no-index", "--find-links", str(wheels)),
        "extras": ("lycoris-lora==4.1.3",),
        "register": False,
    }
    base.update(kw)
    return InstallOptions(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def installed(
    source: tuple[Path, str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[StepReport], object]:
    target = tmp_path_factory.mktemp("inst") / "kohya"
    reports: list[StepReport] = []
    result = run_install(_options(target, source), reports.append, env=_env())
    return target, reports, result


def _env() -> dict[str, str]:
    import os

    # Only the wheels made here: no index, no pip config of this machine (os.devnull: none).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull}


def test_a_fresh_install(installed: tuple[Path, list[StepReport], object], source) -> None:
    target, reports, result = installed
    _, commit, _ = source
    steps = [r.step for r in reports if r.status == "start"]
    assert steps == [
        "machine",
        "sd-scripts",
        "venv",
        "torch",
        "requirements",
        "extras",
        "verify",
        "finish",
    ]
    assert {r.step for r in reports if r.status == "done"} == set(steps)
    notes = [r.detail for r in reports if r.status == "note"]
    assert any("left out '-e .'" in n for n in notes)
    assert any("left out bitsandbytes" in n for n in notes)
    marker = json.loads((target / MARKER).read_text())
    assert marker["commit"] == commit and marker["torch_build"] == "cpu"
    assert marker["versions"]["torch"] == "2.0.0" and marker["versions"]["lycoris-lora"] == "4.1.3"
    assert result.commit == commit  # type: ignore[attr-defined]
    assert (target / "install.log").read_text().count("$ ") >= 5
    # bitsandbytes was left out of a CPU install; the stand-ins are what pip put in the venv.
    py = target / "venv" / "bin" / "python"
    out = subprocess.run([str(py), "-c", "import bitsandbytes"], capture_output=True, check=False)
    assert out.returncode != 0
    found = find_install(target, env={})
    assert found is not None and found.layout == "kohya_orchestrator"
    assert found.sd_scripts_dir == target / "sd-scripts" and found.python == py


def test_a_rerun_skips_every_step(installed, source) -> None:
    target, _, _ = installed
    reports: list[StepReport] = []
    run_install(_options(target, source), reports.append, env=_env())
    skipped = {r.step for r in reports if r.status == "skipped"}
    assert skipped == {"sd-scripts", "venv", "torch", "requirements", "extras"}


def test_other_torch_packages_reinstall_only_torch_and_after(installed, source) -> None:
    target, _, _ = installed
    reports: list[StepReport] = []
    opts = _options(target, source, torch_packages=("torch==2.1.0", "torchvision==0.1.0"))
    result = run_install(opts, reports.append, env=_env())
    done = {r.step for r in reports if r.status == "done"}
    assert {"torch", "requirements", "extras"} <= done
    assert "venv" not in done and "sd-scripts" not in done
    assert result.versions["torch"] == "2.1.0"


def test_a_folder_install_did_not_make_is_never_touched(tmp_path: Path, source) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(SetupError, match="not empty and was not made by install"):
        run_install(_options(tmp_path, source), env=_env())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_a_file_as_target(tmp_path: Path, source) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(SetupError, match="is a file"):
        run_install(_options(tmp_path / "f", source), env=_env())


def test_not_a_git_repository(tmp_path: Path, source) -> None:
    opts = _options(tmp_path / "i", source, source=str(tmp_path / "nowhere"))
    with pytest.raises(SetupError) as info:
        run_install(opts, env=_env())
    assert "cloning sd-scripts failed" in str(info.value)
    assert "not a git repository" in str(info.value) and "install.log" in str(info.value)
    assert not (tmp_path / "i" / "sd-scripts").exists()


def test_a_commit_the_source_lacks(tmp_path: Path, source) -> None:
    opts = _options(tmp_path / "i", source, ref="0" * 40)
    with pytest.raises(SetupError, match="not in the source repository"):
        run_install(opts, env=_env())
    # The half-made clone is not taken for a checkout by the next run.
    assert not (tmp_path / "i" / "sd-scripts").exists()


def test_pip_finds_nothing_and_finished_steps_are_kept(tmp_path: Path, source) -> None:
    target = tmp_path / "i"
    opts = _options(target, source, torch_packages=("torch==9.9.9",))
    with pytest.raises(SetupError) as info:
        run_install(opts, env=_env())
    assert "pip found no matching package" in str(info.value)
    state = json.loads((target / ".install-state.json").read_text())
    assert set(state) == {"sd-scripts", "venv"} and not (target / MARKER).exists()


def test_no_git(tmp_path: Path, source, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SetupError, match="git is not installed"):
        run_install(_options(tmp_path / "i", source), env=_env())


def test_not_enough_disk(tmp_path: Path, source, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10, 9, 10**9))
    with pytest.raises(SetupError, match=r"1.0 GB free .* needs about 9 GB"):
        run_install(_options(tmp_path / "i", source), env=_env())


class TestRegister:
    def test_a_new_config_file(self, installed, source, tmp_path: Path) -> None:
        target, _, _ = installed
        config = tmp_path / "cfg" / "config.toml"
        result = run_install(
            _options(target, source, register=True), env=_env(), config_file=config
        )
        assert result.registered == config
        assert f'sd_scripts = "{target}"' in config.read_text()
        found = find_install(env={}, config_file=config, search_roots=[tmp_path / "none"])
        assert found is not None and found.root == target

    def test_a_config_without_an_install_gets_one(self, installed, source, tmp_path) -> None:
        target, _, _ = installed
        config = tmp_path / "config.toml"
        config.write_text('python = "/usr/bin/python3"\n')
        run_install(_options(target, source, register=True), env=_env(), config_file=config)
        assert config.read_text().splitlines() == [
            f'sd_scripts = "{target}"',
            'python = "/usr/bin/python3"',
        ]

    def test_a_config_naming_another_install_is_left_alone(
        self, installed, source, tmp_path: Path
    ) -> None:
        target, _, _ = installed
        config = tmp_path / "config.toml"
        config.write_text('sd_scripts = "/opt/kohya_ss"\n')
        result = run_install(
            _options(target, source, register=True), env=_env(), config_file=config
        )
        assert result.registered is None
        assert config.read_text() == 'sd_scripts = "/opt/kohya_ss"\n'
        assert any("already names an install" in n for n in result.notes)


def test_the_cli(installed, source, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    target, _, _ = installed
    repo, commit, wheels = source
    monkeypatch.setenv("XDG_CONFIG_HOME", str(target.parent / "xdg"))
    for key in [k for k in __import__("os").environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", __import__("os").devnull)
    code = main(
        [
            "install",
            str(target),
            "--from",
            str(repo),
            "--ref",
            commit,
            "--torch",
            "cpu",
            "--torch-packages",
            "torch==2.0.0 torchvision==0.1.0",
            "--torch-index",
            "pypi",
            "--pip-arg=--no-index",
            f"--pip-arg=--find-links={wheels}",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "[1/8] machine" in out and "[8/8] finish" in out and "(skipped)" in out
    assert f"sd-scripts {commit[:12]} with torch 2.0.0 (cpu) at {target}" in out
    assert "registered in" in out
    config = target.parent / "xdg" / "kohya_orchestrator" / "config.toml"
    assert str(target) in config.read_text()


def test_the_cli_reports_a_failure_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x").write_text("")
    assert main(["install", str(tmp_path), "--no-register"]) == 2
    err = capsys.readouterr().err
    assert "not empty and was not made by install" in err and "Traceback" not in err


def test_an_existing_checkout_at_another_commit_is_kept_and_reported(installed, source) -> None:
    target, _, _ = installed
    head = _git("rev-parse", "HEAD", cwd=target / "sd-scripts")
    result = run_install(_options(target, source, ref="0" * 40), env=_env())
    assert result.commit == head
    assert any(n.startswith(f"kept the existing checkout at {head[:12]}") for n in result.notes)


def test_the_venv_python_can_be_chosen(tmp_path: Path, source) -> None:
    import sys

    reports: list[StepReport] = []
    opts = _options(tmp_path / "i", source, python=Path(sys.executable), torch_packages=("x==0",))
    with pytest.raises(SetupError):
        run_install(opts, reports.append, env=_env())
    assert f"created with {sys.executable}" in [r.detail for r in reports if r.step == "venv"]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            "echo '| NVIDIA-SMI 550.54.14   Driver Version: 550.54.14   CUDA Version: 12.4 |'",
            (12, 4),
        ),
        ("echo 'NVIDIA-SMI has failed'; exit 9", None),
        (None, None),
    ],
)
def test_detect_cuda_reads_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str | None, expected: object
) -> None:
    from kohya_orchestrator.installer import detect_cuda

    if script is not None:
        exe = tmp_path / "nvidia-smi"
        exe.write_text(f"#!/bin/sh\n{script}\n")
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_cuda() == expected
