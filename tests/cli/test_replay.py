"""`replay`: called through run(argparse.Namespace(...)) on real captures."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from kohya_orchestrator.cli.commands import replay
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.events import EventAdapter, parse_log

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "events"


def _log(captures_dir: Path, scenario: str) -> Path:
    return captures_dir / "sd-scripts-logs" / scenario / "combined"


def test_jsonl_prints_every_event(captures_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _log(captures_dir, "a_lora_accelerate")
    assert replay.run(argparse.Namespace(log=str(log), jsonl=True)) == 0
    lines = capsys.readouterr().out.splitlines()
    events = [EventAdapter.validate_json(line) for line in lines]
    assert events == parse_log(log.read_bytes().decode("utf-8"))
    # Same events as the golden file, which was made by replaying the reads with their times.
    golden = (GOLDEN / "a_lora_accelerate.events.jsonl").read_text(encoding="utf-8").splitlines()
    assert [{**json.loads(g), "t": 0.0} for g in golden] == [json.loads(x) for x in lines]


def test_summary_of_a_successful_run(
    captures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A run directory: RUN_DIR/console.log.
    shutil.copy(_log(captures_dir, "a_lora_accelerate"), tmp_path / "console.log")
    assert replay.run(argparse.Namespace(log=str(tmp_path), jsonl=False)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"log:         {tmp_path / 'console.log'} (105 events)"
    assert out[1:] == [
        "plan:        8 steps = 2 epochs x 4 steps/epoch (batch size 2, gradient accumulation 1);"
        " 8 images x repeats",
        "epochs:      2/2 started",
        "progress:    step 8/8, avr_loss 1.09",
        "last phase:  finished",
        "checkpoints: /srv/kohya/out/a_lora_accelerate/a_lora_accelerate-000001.safetensors"
        " (epoch 1)",
        "             /srv/kohya/out/a_lora_accelerate/a_lora_accelerate.safetensors (final)",
        "samples:     2 round(s), at step 4, 8",
        "warnings:    4",
        "errors:      none",
    ]


def test_summary_shows_errors_with_remedies(
    captures_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(captures_dir, "b_loha")
    assert replay.run(argparse.Namespace(log=str(log), jsonl=False)) == 0
    out = capsys.readouterr().out
    assert "plan:        none (training never started)\n" in out
    assert "checkpoints: none\n" in out
    assert (
        "errors:      1\n"
        "  [lycoris_duplicated_name] AssertionError: duplicated lora name: "
        "lora_unet_time_embedding_linear_1\n"
        "    hint: LyCORIS 4.x's default preset wraps some modules twice."
    ) in out


def test_summary_names_the_likely_cause(
    captures_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(captures_dir, "g_sigint_accelerate_group")
    replay.run(argparse.Namespace(log=str(log), jsonl=False))
    out = capsys.readouterr().out
    assert "progress:    step 2/8, avr_loss 1.14\n" in out
    assert "most likely cause: [interrupted] KeyboardInterrupt\n" in out


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.log"
    with pytest.raises(ConfigError) as info:
        replay.run(argparse.Namespace(log=str(missing), jsonl=False))
    (problem,) = info.value.problems
    assert problem.path == str(missing)
    assert problem.message == "no such file"
    assert problem.hint


def test_run_dir_without_console_log_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        replay.run(argparse.Namespace(log=str(tmp_path), jsonl=True))
    assert info.value.problems[0].message == "this directory holds no console.log"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (bytes(range(256)) * 64, "64 NUL bytes in its first 16384 bytes"),
        (b"\xff\xfe\x80" * 100, "300 of its first 300 bytes are not UTF-8 text"),
    ],
)
def test_binary_data_is_not_a_console_log(tmp_path: Path, data: bytes, why: str) -> None:
    path = tmp_path / "random.bin"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        replay.run(argparse.Namespace(log=str(path), jsonl=True))
    (problem,) = info.value.problems
    assert problem.message == f"this is not a console log: {why}" and problem.hint


def test_a_few_stray_bytes_are_still_a_log(tmp_path: Path, capsys) -> None:
    path = tmp_path / "console.log"
    path.write_bytes(b"epoch 1/2\n\xff steps: 50%\n" * 50)
    assert replay.run(argparse.Namespace(log=str(path), jsonl=False)) == 0
    assert "events)" in capsys.readouterr().out


def test_add_parser_registers_the_verb() -> None:
    parser = argparse.ArgumentParser()
    replay.add_parser(parser.add_subparsers())
    args = parser.parse_args(["replay", "runs/x", "--jsonl"])
    assert (args.log, args.jsonl, args.func) == ("runs/x", True, replay.run)
    sub = parser._subparsers._group_actions[0].choices["replay"]  # type: ignore[union-attr]
    assert sub.epilog.count("python -m kohya_orchestrator replay") == 3
