"""The shared reader of sd-scripts' .txt prompt lines (import-config and import-preset use it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.jobs.prompt_lines import parse_prompt_line


def test_comments_and_blank_lines_as_sd_scripts_reads_them() -> None:
    assert parse_prompt_line("# a comment") is None
    assert parse_prompt_line("   ") is None
    parsed = parse_prompt_line(" # leading space defeats the comment")
    assert parsed is not None and parsed[0]["prompt"] == "# leading space defeats the comment"


def test_options_and_notes() -> None:
    parsed = parse_prompt_line("a harbour --n blurry, ugly --w 512 --h x --l 7.5 --zz 1")
    assert parsed is not None
    prompt, notes = parsed
    assert prompt == {
        "prompt": "a harbour",
        "negative_prompt": "blurry, ugly",
        "width": 512,
        "scale": 7.5,
    }
    assert notes == [("--h 'x' is not a number", True), ("prompt option --zz not imported", False)]


def test_import_config_reports_a_bad_prompt_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat --w abc\n", encoding="utf-8")
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'pretrained_model_name_or_path = "/m.safetensors"\nmax_train_epochs = 1\n'
        f'resolution = "512"\nsample_prompts = "{prompts}"\nsample_every_n_epochs = 1\n',
        encoding="utf-8",
    )
    assert main(["import-config", str(cfg)]) == 2  # a user error, never a traceback (exit 3)
    assert "--w 'abc' is not a number" in capsys.readouterr().err
