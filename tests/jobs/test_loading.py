"""Reading and validating job files: TOML errors say where, and a job must be a table."""

from __future__ import annotations

from pathlib import Path

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import read_toml, validate_job


def test_malformed_toml(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text("[model\nx = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        read_toml(path)
    assert "malformed TOML" in info.value.problems[0].message


def test_a_byte_order_mark_is_read_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"  # as Windows Notepad saves UTF-8
    path.write_bytes(b"\xef\xbb\xbfname = 'oil'\n")
    assert read_toml(path) == {"name": "oil"}


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_bytes(b"name = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_toml(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_toml(tmp_path / "nope.toml")


@pytest.mark.parametrize("data", [None, ["model"], "job.toml"])
def test_validate_job_of_something_that_is_not_a_table(data: object) -> None:
    with pytest.raises(ConfigError) as info:
        validate_job(data)  # type: ignore[arg-type]
    (problem,) = info.value.problems
    assert problem.message.startswith("a job is a table of sections") and problem.hint
