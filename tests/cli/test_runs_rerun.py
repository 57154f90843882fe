"""`runs rerun RUN` and `train runs/<id>`: the same job again, in a new run directory, with the
overwrite check (the first run's outputs exist) still in force. Stand-in trainer (the real
a_lora_accelerate capture)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main

from .test_train import _capture, _job_file, _replay, sd_scripts  # noqa: F401 (a fixture)


def _first_run(
    sd: Path, tmp_path: Path, captures_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    _replay(monkeypatch, _capture(captures_dir, "a_lora_accelerate"), out=tmp_path / "out")
    job = _job_file(tmp_path, "a_lora_accelerate")
    argv = ["train", str(job), "--sd-scripts", str(sd), "--runs", str(tmp_path / "runs")]
    assert main([*argv, "--no-probe"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def test_rerun_refuses_to_overwrite_then_trains_under_a_new_output(
    sd_scripts: Path,  # noqa: F811
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = _first_run(sd_scripts, tmp_path, captures_dir, monkeypatch)
    capsys.readouterr()
    final = tmp_path / "out" / "a_lora_accelerate.safetensors"
    before = final.stat().st_mtime_ns
    # the same job again: its final file exists, so it is refused (exit 2), nothing started
    assert main(["runs", "rerun", str(first), "--sd-scripts", str(sd_scripts)]) == 2
    err = capsys.readouterr().err
    assert f"{final} already exists and would be overwritten" in err
    assert "--set training.output_name=" in err
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [first.name]
    assert final.stat().st_mtime_ns == before
    # with a new output folder it trains: a new run directory beside the first, the same job
    out2 = tmp_path / "out2"
    monkeypatch.setenv("FAKE_SD_SCRIPTS_OUTPUT_DIR", str(out2))
    argv = ["runs", "rerun", "latest", "--runs", str(tmp_path / "runs"), "--sd-scripts"]
    argv += [str(sd_scripts), "--set", f"training.output_dir={json.dumps(str(out2))}"]
    assert main(argv) == 0, capsys.readouterr().err
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and (out2 / "a_lora_accelerate.safetensors").is_file()
    second = next(p for p in runs if p != first)
    old, new = (json.loads((p / "job.json").read_text()) for p in (first, second))
    assert new["training"].pop("output_dir") == str(out2)
    old["training"].pop("output_dir")
    assert new == old


def test_train_takes_a_run_directory_or_its_job_json(
    sd_scripts: Path,  # noqa: F811
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = _first_run(sd_scripts, tmp_path, captures_dir, monkeypatch)
    capsys.readouterr()
    for given in (first, first / "job.json"):
        # read as a job (not "malformed TOML"): refused only for the outputs it would overwrite
        assert main(["train", str(given), "--sd-scripts", str(sd_scripts), "--no-probe"]) == 2
        err = capsys.readouterr().err
        assert "already exists and would be overwritten" in err and "TOML" not in err
