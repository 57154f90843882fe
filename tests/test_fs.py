"""The one atomic writer (kohya_orchestrator/_fs.py): replace, keep permissions, clean up on failure."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kohya_orchestrator._fs import write_atomic


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_text_as_utf8_with_line_endings_as_given(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    assert write_atomic(target, "é\r\nb\n") == target
    assert target.read_bytes() == "é\r\nb\n".encode()
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == []


def test_an_existing_file_keeps_its_permission_bits(tmp_path: Path) -> None:
    target = tmp_path / "caption.txt"
    target.write_text("old", encoding="utf-8")
    os.chmod(target, 0o640)
    write_atomic(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_text(encoding="utf-8") == "new"


def test_a_new_file_gets_the_usual_permissions_not_private_ones(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.toml", "x = 1\n")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.toml").stat().st_mode) == 0o644


def test_a_failed_rename_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # a folder where the file should go: the rename fails for real
    (target / "inside").write_text("keep", encoding="utf-8")
    with pytest.raises(IsADirectoryError):
        write_atomic(target, "data")
    assert (target / "inside").read_text(encoding="utf-8") == "keep"
    assert _leftovers(tmp_path) == []


def test_missing_parent_folders_are_made_only_when_asked(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c.png"
    with pytest.raises(FileNotFoundError):
        write_atomic(deep, b"png")
    write_atomic(deep, b"png", mkdir=True)
    assert deep.read_bytes() == b"png"
