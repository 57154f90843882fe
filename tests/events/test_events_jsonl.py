"""events.jsonl (events/jsonl.py): the strict text reader and the lenient run-directory reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kohya_orchestrator.events import (
    ChildWarning,
    EventAdapter,
    RunFinished,
    RunStarted,
    RunStatus,
    dump_events_jsonl,
    load_events_jsonl,
    read_events,
)
from kohya_orchestrator.events.jsonl import EVENTS_JSONL

STARTED = RunStarted(seq=0, run_id="r", argv=["x"], cwd="/")
FINISHED = RunFinished(seq=1, t=2.0, status=RunStatus.SUCCEEDED, returncode=0, duration_s=2.0)
CUT = '{"kind": "run_fin'


def test_dump_and_load_round_trip() -> None:
    text = dump_events_jsonl([STARTED, FINISHED])
    assert text.count("\n") == 2 and text.endswith("\n")
    assert load_events_jsonl(text) == [STARTED, FINISHED]
    assert dump_events_jsonl([]) == "" and load_events_jsonl("") == []


def test_load_is_strict_unless_told() -> None:
    text = dump_events_jsonl([STARTED]) + "\n  \n" + CUT
    with pytest.raises(ValidationError):
        load_events_jsonl(text)
    assert load_events_jsonl(text, strict=False) == [STARTED]


def test_read_events_skips_blank_and_cut_lines(tmp_path: Path) -> None:
    # Moved from tests/test_api.py: the runner's reader of a run directory.
    started = RunStarted(seq=0, run_id="r", argv=["x"], cwd="/")
    (tmp_path / "events.jsonl").write_text(
        EventAdapter.dump_json(started).decode() + "\n\n   \n" + '{"kind": "run_fin',
        encoding="utf-8",
    )
    assert read_events(tmp_path) == [started]


def test_read_events_skips_a_bad_line_anywhere(tmp_path: Path) -> None:
    (tmp_path / EVENTS_JSONL).write_text(
        dump_events_jsonl([STARTED]) + CUT + "\n" + dump_events_jsonl([FINISHED]), encoding="utf-8"
    )
    assert read_events(str(tmp_path)) == [STARTED, FINISHED]


def test_read_events_of_a_folder_without_events(tmp_path: Path) -> None:
    assert read_events(tmp_path) == []
    assert read_events(tmp_path / "missing") == []


def test_read_events_skips_a_line_cut_inside_a_multibyte_character(tmp_path: Path) -> None:
    # A Japanese log line, cut by a crash in the middle of a 3-byte character.
    line = ChildWarning(seq=1, t=1.0, message="学習を開始します").model_dump_json().encode("utf-8")
    assert "学".encode() in line  # written as raw UTF-8, so a cut can split a character
    cut = line[: line.index("学".encode()) + 1]
    (tmp_path / EVENTS_JSONL).write_bytes(dump_events_jsonl([STARTED]).encode() + cut)
    assert read_events(tmp_path) == [STARTED]
