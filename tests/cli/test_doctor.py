"""The ``doctor`` verb, called through its run(args) entry point."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from kohya_orchestrator.cli.commands import doctor
from kohya_orchestrator.environment import probe as environment
from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.environment.probe import Environment, GpuInfo
from kohya_orchestrator.errors import SetupError

SHA = "48d368fa557731ad0488c07304dfeba8c07910eb"


def make_gui_install(root: Path) -> tuple[Path, Path]:
    sd = root / "sd-scripts"
    (sd / "library").mkdir(parents=True)
    (sd / "train_network.py").write_text("")
    python = root / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return sd, python


def namespace(**kw: object) -> argparse.Namespace:
    defaults: dict[str, object] = {"sd_scripts": None, "python": None, "json": False}
    return argparse.Namespace(**{**defaults, **kw})


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No install reachable from the environment, HOME or the current folder."""
    for name in ("KOHYA_SD_SCRIPTS", "KOHYA_PYTHON", "CONDA_PREFIX", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


def lab_like(sd: Path, python: Path) -> Environment:
    return Environment(
        sd_scripts_dir=sd,
        sd_scripts_commit=SHA,
        scripts=("train_network.py",),
        layout="kohya_ss_gui",
        python=python,
        python_version="3.11.7",
        platform="linux",
        torch_version="2.13.0+cpu",
        accelerate_version="1.6.0",
        diffusers_version="0.32.1",
        transformers_version="4.54.1",
        lycoris_version="4.1.3",
        prodigyopt_version="1.1.2",
        toml_version="0.10.2",
        voluptuous_version="0.15.2",
    )


def test_report_lines(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = isolated / "kohya_ss"
    sd, python = make_gui_install(root)
    monkeypatch.setattr(environment, "probe_environment", lambda i, timeout_s: lab_like(sd, python))

    assert doctor.run(namespace(sd_scripts=root)) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        f"sd-scripts  {sd} (kohya_ss_gui layout, found via argument)",
        f"python      {python}",
        "",
    ]
    marks = [line[:14] for line in out[3:] if line and line[0] in "✓!⨯"]
    assert marks == [
        "✓ sd-scripts  ",
        "✓ commit      ",
        "✓ python      ",
        "! torch       ",
        "! gpu         ",
        "✓ requirements",
        "! lycoris     ",
        "! bitsandbytes",
        "✓ optional    ",
        "✓ paths       ",
        "! arguments   ",  # the stand-in scripts have no setup_parser: the built-in list stands in
        "✓ ready to tra",
    ]
    assert f"                fix: {python} -m pip install bitsandbytes" in out
    assert any("against the built-in list of sd-scripts 48d368fa" in line for line in out)
    assert out[-1] == "✓ ready to train (5 warnings)"


def test_failure_exits_1(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = isolated / "kohya_ss"
    sd, python = make_gui_install(root)
    broken = lab_like(sd, python).model_copy(update={"accelerate_version": None})
    monkeypatch.setattr(environment, "probe_environment", lambda i, timeout_s: broken)

    assert doctor.run(namespace(sd_scripts=sd)) == 1

    out = capsys.readouterr().out.splitlines()
    assert "⨯ requirements  missing: accelerate" in out
    assert out[-1] == "⨯ 1 failed, 5 warnings"


def test_json(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = isolated / "kohya_ss"
    sd, python = make_gui_install(root)
    gpu = GpuInfo(index=0, name="NVIDIA H100", memory_total_mib=81559)
    env = lab_like(sd, python).model_copy(
        update={"cuda_available": True, "cuda_version": "12.4", "gpus": (gpu,)}
    )
    monkeypatch.setattr(environment, "probe_environment", lambda i, timeout_s: env)

    assert doctor.run(namespace(sd_scripts=root, json=True)) == 0

    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is True
    assert Install.model_validate(payload["install"]).sd_scripts_dir == sd
    assert Environment.model_validate(payload["environment"]) == env
    assert {c["name"]: c["status"] for c in payload["checks"]}["gpu"] == "ok"


def test_no_install_raises_setup_error(isolated: Path) -> None:
    with pytest.raises(SetupError, match="No usable kohya-ss sd-scripts install found"):
        doctor.run(namespace())
    with pytest.raises(SetupError, match=r"argument .*nope: does not exist"):
        doctor.run(namespace(sd_scripts=isolated / "nope"))


def test_no_install_with_json_prints_json(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert doctor.run(namespace(json=True)) == 2
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is False and payload["install"] is None
    assert payload["error"].startswith("No usable kohya-ss sd-scripts install found. Tried:")
    assert "python -m kohya_orchestrator install" in payload["hint"]


@pytest.mark.skipif(sys.platform == "win32", reason="sh wrapper as interpreter")
def test_real_probe_of_a_venv_without_torch(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = isolated / "kohya_ss"
    make_gui_install(root)
    # The wrapper runs this test's Python, which has no torch: doctor must say so and fail.
    assert doctor.run(namespace(sd_scripts=root, timeout=60.0)) == 1
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("⨯ torch  ") for line in out)


def test_add_parser() -> None:
    parser = argparse.ArgumentParser(prog="kohya-orch")
    sub = parser.add_subparsers()
    doctor.add_parser(sub)
    args = parser.parse_args(["doctor", "--sd-scripts", "/opt/kohya_ss", "--json"])
    assert args.func is doctor.run
    assert (args.sd_scripts, args.json, args.python, args.timeout) == (
        "/opt/kohya_ss",
        True,
        None,
        120.0,
    )
    help_text = sub.choices["doctor"].format_help()
    assert "python -m kohya_orchestrator doctor --sd-scripts ~/kohya_ss --json" in help_text


def _job_file(folder: Path, optimizer: str, precision: str = "no") -> Path:
    img = folder / "img" / "2_oilpaint style"
    img.mkdir(parents=True, exist_ok=True)
    path = folder / f"job-{optimizer.replace('.', '-')}-{precision}.toml"
    path.write_text(
        "[model]\npretrained_model_name_or_path = 'runwayml/stable-diffusion-v1-5'\n"
        f"[dataset]\nsubsets = [{{image_dir = '{img}'}}]\n"
        f"[optimizer]\ntype = '{optimizer}'\nlearning_rate = 1e-4\n"
        f"[training]\nmax_train_epochs = 1\noutput_dir = '{folder / 'out'}'\n"
        f"mixed_precision = '{precision}'\n",
        encoding="utf-8",
    )
    return path


def test_doctor_job_says_what_this_job_needs(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = isolated / "kohya_ss"
    sd, python = make_gui_install(root)
    monkeypatch.setattr(environment, "probe_environment", lambda i, timeout_s: lab_like(sd, python))

    fine = _job_file(isolated, "AdamW")
    assert doctor.run(namespace(sd_scripts=root, job=str(fine))) == 0
    out = capsys.readouterr().out
    assert "✓ job" in out
    assert "the install has what it needs (no extra package; train_network.py)" in out

    missing = _job_file(isolated, "no_such_module_q.Opt")
    assert doctor.run(namespace(sd_scripts=root, job=str(missing))) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "⨯ job optimizer.type: optimizer no_such_module_q.Opt needs the 'no_such_module_q'" in out
    )
    assert f"fix: {python} -m pip install no_such_module_q" in out

    gpu = _job_file(isolated, "AdamW", precision="fp16")
    assert doctor.run(namespace(sd_scripts=root, job=str(gpu))) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "needs a GPU (mixed_precision = fp16), and torch 2.13.0+cpu is a CPU-only build" in out

    broken = isolated / "broken.toml"
    broken.write_text("[training]\nmax_train_epochs = 'x'\n", encoding="utf-8")
    assert doctor.run(namespace(sd_scripts=root, job=str(broken))) == 1
    assert "validate" in capsys.readouterr().out
