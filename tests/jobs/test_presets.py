"""Every shipped preset loads, validates and renders; presets load from a built wheel too."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.errors import PresetNotFound
from kohya_orchestrator.jobs.checks import check_paths
from kohya_orchestrator.jobs.layers import Layer, compose_layers
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.jobs.presets import (
    VRAM_TIERS,
    list_presets,
    preset_job,
    preset_layers,
    presets_dir,
    vram_overlay,
)
from kohya_orchestrator.render.toml import RenderPaths, render_job

REPO = Path(__file__).resolve().parents[2]
NAMES = [p.name for p in list_presets()]
DATA = {
    "model": {"pretrained_model_name_or_path": "/models/sd15.safetensors"},
    "dataset": {"subsets": [{"image_dir": "/data/img/20_zengxin oilpaint"}]},
}


def test_presets_come_from_the_checkout() -> None:
    assert presets_dir() == REPO / "presets"
    assert "oilpaint" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_preset_validates_and_renders(name: str) -> None:
    layers = [*preset_layers(name), Layer("test data", DATA)]
    job = validate_job(compose_layers(layers).data)
    assert job.preset == name
    files = render_job(job, RenderPaths("/run/dataset.toml", "/run/sample_prompts.txt"))
    assert "[network_arguments]" in files.config_toml


@pytest.mark.parametrize("name", NAMES)
def test_preset_has_a_header(name: str) -> None:
    text = (presets_dir() / f"{name}.toml").read_text(encoding="utf-8")
    assert text.startswith("# ")
    assert f"preset {name}" in text  # the exact command to run it
    assert "--set" in text  # one override example


def test_unknown_preset_did_you_mean() -> None:
    with pytest.raises(PresetNotFound) as info:
        preset_layers("oilpant")
    assert "did you mean 'oilpaint'" in (info.value.problems[0].hint or "")


def test_preset_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preset", "list"]) == 0
    assert "oilpaint" in capsys.readouterr().out
    assert main(["preset", "show", "oilpaint"]) == 0
    assert 'algo = "loha"' in capsys.readouterr().out


def test_preset_copy_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "mine.toml"
    assert main(["preset", "copy", "oilpaint", str(target)]) == 0
    target.write_text("# edited\n", encoding="utf-8")
    assert main(["preset", "copy", "oilpaint", str(target)]) == 2
    assert target.read_text() == "# edited\n"


def test_preset_oilpaint_without_data_shows_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KOHYA_SD_SCRIPTS", str(tmp_path / "no-install"))
    monkeypatch.chdir(tmp_path)
    assert main(["preset", "oilpaint", "--sd-scripts", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "resolved job" in out and "config.toml" in out and "dataset.toml" in out
    assert "10_zengxin oilpaint" in out  # the bundled demo dataset
    assert "What is missing" in out
    assert not (tmp_path / "runs").exists()


def test_presets_load_from_an_installed_wheel(tmp_path: Path, built_wheel: Path) -> None:
    wheel = built_wheel
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "kohya_orchestrator/_presets/oilpaint.toml" in names
        zf.extractall(site)
    code = (
        "import kohya_orchestrator.jobs.presets as p\n"
        "print(p.presets_dir())\n"
        "print(sorted(i.name for i in p.list_presets()))\n"
        "p.preset_layers('oilpaint')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r})\n{code}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    first, second = proc.stdout.splitlines()[:2]
    assert first == str(site / "kohya_orchestrator" / "_presets")
    assert "oilpaint" in second


@pytest.mark.parametrize("gb", [None, *VRAM_TIERS])
@pytest.mark.parametrize("name", [n for n in NAMES if not n.startswith("vram-")])
def test_every_shipped_preset_validates_as_shipped(name: str, gb: int | None) -> None:
    # Hub ids pass; a placeholder (<flux1-dev.safetensors>) is a warning for validate, never an
    # error, and an error before a launch.
    overlays = [vram_overlay(gb)] if gb else []
    job = preset_job(name, data=REPO / "docs" / "examples" / "img", overlays=overlays).job
    found = check_paths(job, placeholders="warning")
    assert [p for p in found if p.severity == "error"] == []
    placeholders = [p for p in found if "placeholder" in p.message]
    assert all(p.severity == "warning" for p in found)
    if not job.model.profile.hub_ids:
        assert placeholders, "a DiT preset names its files as placeholders"
        assert all(p.severity == "error" for p in check_paths(job))
