"""`train JOB --smoke [--then-train]` through ``main([...])`` with the stand-in trainer.

The stand-in replays the real a_lora_accelerate capture (8 steps, an epoch save and the final
save); it tests the flow (scratch folder, report, exit codes, the full run after it), never that
training works: tests/e2e/test_smoke_e2e.py runs the real trainer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_runs import add_image

from kohya_orchestrator.cli.commands import _smoke
from kohya_orchestrator.cli.main import main

from .test_train import _capture, _job_file, _replay, sd_scripts  # noqa: F401 (a fixture)

PROMPT = '[sampling]\nsample_every_n_epochs = 1\n[[sampling.prompts]]\nprompt = "a boat"\n'


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fixed scratch folder, so the stand-in can leave its files there."""
    folder = tmp_path / "runs" / "smoke-outputs" / "a_lora_accelerate-1"

    def fixed(runs: Path, name: str) -> Path:
        folder.mkdir(parents=True)
        return folder

    monkeypatch.setattr(_smoke, "scratch_folder", fixed)
    return folder


def _runs(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "runs").iterdir() if p.name != "smoke-outputs")


def test_smoke_reports_and_leaves_the_real_output_alone(
    sd_scripts: Path,  # noqa: F811
    scratch: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _replay(monkeypatch, _capture(captures_dir, "a_lora_accelerate"), out=scratch)
    job = _job_file(tmp_path, "a_lora_accelerate")
    add_image(tmp_path / "img" / "2_oilpaint style")  # planned: 1 x 2 repeats x 2 epochs
    argv = ["train", str(job), "--smoke", "--sd-scripts", str(sd_scripts)]
    rc = main([*argv, "--runs", str(tmp_path / "runs"), "--no-probe"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert not (tmp_path / "out").exists()  # the job's own output folder
    (run_dir,) = _runs(tmp_path)
    assert run_dir.name.endswith("-a_lora_accelerate-smoke")
    lines = out.splitlines()
    # the capture is an 8-step run: more steps than a smoke run asks for are still a pass
    assert "loads: yes   steps: 8/2   saves: yes   samples: n/a (no [sampling] prompts)" in lines
    assert any(line.startswith("speed: load and first step ") for line in lines)
    assert any(line.startswith("projected full run: about ") and "(4 steps, 2 epochs)" in line
               for line in lines)  # fmt: skip
    assert "✓ smoke run passed: a_lora_accelerate loads, steps, saves" in lines
    assert "  hint: train it: the same command without --smoke (or add --then-train next time)" in (
        lines
    )


def test_smoke_without_its_sample_fails_and_does_not_train(
    sd_scripts: Path,  # noqa: F811
    scratch: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the job has a prompt; the stand-in draws no image, so the smoke run did not sample
    _replay(monkeypatch, _capture(captures_dir, "a_lora_accelerate"), out=scratch)
    job = _job_file(tmp_path, "a_lora_accelerate", extra=PROMPT)
    argv = ["train", str(job), "--smoke", "--then-train", "--sd-scripts", str(sd_scripts)]
    rc = main([*argv, "--runs", str(tmp_path / "runs"), "--no-probe"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "loads: yes   steps: 8/2   saves: yes   samples: NO" in captured.out.splitlines()
    assert "⨯ smoke run did not pass: see the report above" in captured.err
    assert len(_runs(tmp_path)) == 1 and not (tmp_path / "out").exists()


def test_then_train_runs_the_full_job_after_a_passing_smoke(
    sd_scripts: Path,  # noqa: F811
    scratch: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _replay(monkeypatch, _capture(captures_dir, "a_lora_accelerate"), out=scratch)
    job = _job_file(tmp_path, "a_lora_accelerate")
    argv = ["train", str(job), "--smoke", "--then-train", "--sd-scripts", str(sd_scripts)]

    def full_run_files(*args: object, **kwargs: object) -> object:
        # the full run: the stand-in now leaves its files in the job's own folder
        monkeypatch.setenv("FAKE_SD_SCRIPTS_OUTPUT_DIR", str(tmp_path / "out"))
        return train_job(*args, **kwargs)

    from kohya_orchestrator.cli.commands import train

    train_job = train.train_job
    monkeypatch.setattr(train, "train_job", full_run_files)
    rc = main([*argv, "--runs", str(tmp_path / "runs"), "--no-probe"])
    out = capsys.readouterr().out
    assert rc == 0, out
    runs = _runs(tmp_path)
    assert len(runs) == 2
    (smoke_run,) = (p for p in runs if p.name.endswith("-a_lora_accelerate-smoke"))
    (full,) = (p for p in runs if p.name.endswith("-a_lora_accelerate"))
    assert (smoke_run / "status").read_text().strip() == "succeeded"
    assert (full / "status").read_text().strip() == "succeeded"
    lines = out.splitlines()
    passed = lines.index("✓ smoke run passed: a_lora_accelerate loads, steps, saves")
    assert lines.index("✓ starting training: a_lora_accelerate") > passed
    assert (tmp_path / "out" / "a_lora_accelerate.safetensors").is_file()


def test_then_train_refuses_an_output_that_exists_before_the_smoke_run(
    sd_scripts: Path,  # noqa: F811
    scratch: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = _job_file(tmp_path, "a_lora_accelerate")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_lora_accelerate.safetensors").write_bytes(b"earlier run")
    argv = ["train", str(job), "--smoke", "--then-train", "--sd-scripts", str(sd_scripts)]
    assert main([*argv, "--runs", str(tmp_path / "runs"), "--no-probe"]) == 2
    assert "already exists and would be overwritten" in capsys.readouterr().err
    assert not scratch.exists()  # nothing ran


def test_then_train_needs_smoke(
    sd_scripts: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = _job_file(tmp_path, "a_lora_accelerate")
    assert main(["train", str(job), "--then-train", "--sd-scripts", str(sd_scripts)]) == 2
    assert "--then-train: needs --smoke" in capsys.readouterr().err


def test_each_smoke_run_gets_a_new_scratch_folder(tmp_path: Path) -> None:
    first = _smoke.scratch_folder(tmp_path / "runs", "my style/v2")
    second = _smoke.scratch_folder(tmp_path / "runs", "my style/v2")
    assert first != second and first.parent == second.parent == tmp_path / "runs" / "smoke-outputs"
    assert first.name.startswith("my_style_v2-") and second.name.startswith("my_style_v2-")
    assert not any(first.iterdir()) and not any(second.iterdir())
