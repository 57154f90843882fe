"""`preset NAME` as a new user meets it: --output takes the TensorBoard logs along, the plan's
warnings are shown, nothing says "starting training" before a refusal, and --smoke."""

from __future__ import annotations

from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.environment.discovery import Install

from .test_preset_recipes import fake_install  # noqa: F401 (a fixture)


def test_output_takes_the_tensorboard_logs_along(
    paintings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    argv = ["preset", "oilpaint", "--data", str(paintings), "--dry-run"]
    assert main([*argv, "--output", "elsewhere"]) == 0
    out = capsys.readouterr().out
    assert f'logging_dir = "{tmp_path / "elsewhere" / "logs"}"' in out.splitlines()
    assert "output/logs" not in out
    # a logging_dir set on the command line wins
    assert main([*argv, "--output", "elsewhere", "--set", 'training.logging_dir="tb"']) == 0
    assert f'logging_dir = "{tmp_path / "tb"}"' in capsys.readouterr().out.splitlines()
    # without --output the preset's own folder stays
    assert main(argv) == 0
    assert f'logging_dir = "{tmp_path / "output" / "logs"}"' in capsys.readouterr().out.splitlines()


def test_not_exact_comes_with_the_warnings_it_refers_to(
    paintings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = paintings / "20_zengxin oilpaint" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert main(["preset", "oilpaint", "--data", str(paintings), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("  (not exact: see the warnings)")
    warning = next(i for i, line in enumerate(lines) if line.startswith(f"⨯ {broken}: "))
    assert warning > at and "cannot read the image size" in lines[warning]


def test_no_starting_training_line_before_a_refusal(
    paintings: Path,
    tmp_path: Path,
    fake_install: Install,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import kohya_orchestrator.environment.discovery as environment

    monkeypatch.setattr(environment, "find_install", lambda *a, **k: fake_install)
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "sd15.safetensors"
    model.write_bytes(b"")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "zengxin_oilpaint.safetensors").write_bytes(b"an earlier run's LoRA")
    argv = ["preset", "oilpaint", "--data", str(paintings), "--model", str(model)]
    assert main([*argv, "--output", "out"]) == 2  # start() refuses: the output exists
    captured = capsys.readouterr()
    assert "already exists and would be overwritten" in captured.err
    assert "starting training" not in captured.out + captured.err
    assert not (tmp_path / "runs").exists()


def test_smoke_and_then_train_reach_the_smoke_run(
    paintings: Path,
    tmp_path: Path,
    fake_install: Install,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import kohya_orchestrator.cli.commands._smoke as smoke
    import kohya_orchestrator.environment.discovery as environment

    monkeypatch.setattr(environment, "find_install", lambda *a, **k: fake_install)
    calls: list[tuple[object, dict[str, object]]] = []
    monkeypatch.setattr(smoke, "smoke_then_train", lambda job, **kw: calls.append((job, kw)) or 0)
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "sd15.safetensors"
    model.write_bytes(b"")
    argv = ["preset", "oilpaint", "--data", str(paintings), "--model", str(model), "--smoke"]
    assert main([*argv, "--then-train"]) == 0
    ((job, kw),) = calls
    assert kw["then_train"] is True and kw["install"] is fake_install
    assert job.training.max_train_epochs == 6  # the full job: the smoke run cuts it itself
    assert main([*argv[:-1], "--then-train"]) == 2  # --then-train alone
    assert "--then-train: needs --smoke" in capsys.readouterr().err


def test_a_jpeg_cut_short_stops_the_preset_before_launching(
    paintings: Path,
    tmp_path: Path,
    fake_install: Install,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # its header (the plan's view) is fine; its pixels end early: sd-scripts stops loading it
    import io

    from PIL import Image

    import kohya_orchestrator.cli.commands.train as train_verb
    import kohya_orchestrator.environment.discovery as environment

    buf = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buf, "JPEG")
    cut = paintings / "20_zengxin oilpaint" / "cut.jpg"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    monkeypatch.setattr(environment, "find_install", lambda *a, **k: fake_install)
    monkeypatch.setattr(train_verb, "train_job", lambda *a, **k: pytest.fail("launched"))
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "sd15.safetensors"
    model.write_bytes(b"")
    argv = ["preset", "oilpaint", "--data", str(paintings), "--model", str(model)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "(not exact" not in captured.out  # the plan, reading headers, cannot see it
    assert f"⨯ {cut}: JPEG ends without its end-of-image marker (cut short)" in captured.err
    assert "starting training" not in captured.out + captured.err


def test_preset_job_output_moves_the_logs_too(
    tmp_path: Path, paintings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notebook API (``preset_job(output=...)``) does what ``preset --output`` does."""
    from kohya_orchestrator.jobs.presets import preset_job

    monkeypatch.chdir(tmp_path)
    job = preset_job("oilpaint", data=paintings, output="elsewhere").job
    assert job.training.output_dir == str(tmp_path / "elsewhere")
    assert job.training.logging_dir == str(tmp_path / "elsewhere" / "logs")
    kept = preset_job(
        "oilpaint", data=paintings, output="elsewhere", overrides=['training.logging_dir="tb"']
    ).job
    assert kept.training.logging_dir == str(tmp_path / "tb")
    plain = preset_job("oilpaint", data=paintings).job
    assert plain.training.logging_dir == "output/logs"  # the preset's own, unmoved
