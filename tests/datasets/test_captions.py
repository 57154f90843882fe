"""Caption tools: the pure text edit, then files, backups, dry runs and safety."""

from __future__ import annotations

import hashlib
import os
import sys
from datetime import datetime
from pathlib import Path

import pytest
from dsgen import make_subset

from kohya_orchestrator.datasets.captions import BACKUP_DIR, edit_caption_text, edit_captions
from kohya_orchestrator.errors import ConfigError


def fixed() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5)


@pytest.mark.parametrize(
    ("text", "args", "want"),
    [
        ("a, b", ("add", "zx", None, False), "a, b, zx"),
        ("a, b", ("add", "zx", None, True), "zx, a, b"),
        ("a, ZX ,b", ("add", "zx", None, True), "a, ZX ,b"),  # present (any case): unchanged
        ("a,  zx ,b,zx", ("remove", "ZX", None, False), "a, b"),
        ("a, b", ("remove", "zx", None, False), "a, b"),
        ("a, old, b", ("replace", "old", "new", False), "a, new, b"),
        ("a, old, new", ("replace", "old", "new", False), "a, new"),  # no duplicate
        ("a, old", ("replace", "old", "new", True), "new, a"),
        ("a, b\nc, d\n", ("add", "zx", None, True), "zx, a, b\nzx, c, d\n"),
        ("a\r\n\r\nb", ("add", "zx", None, False), "a, zx\r\n\r\nb, zx"),
        ("\ufeffa, b", ("add", "zx", None, True), "\ufeffzx, a, b"),
        ("\n", ("add", "zx", None, False), "zx\n"),
        ("", ("add", "zx", None, False), "zx"),
    ],
)
def test_edit_caption_text(text: str, args: tuple, want: str) -> None:
    action, tag, new, front = args
    assert edit_caption_text(text, action, tag, new, front=front) == want


def _hashes(folder: Path, suffix: str) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob(f"*{suffix}")}


@pytest.fixture
def subset(tmp_path: Path) -> Path:
    captions = ["zengxin, oil", "oil, canvas", None, "zengxin", "caf\xe9"]
    folder = make_subset(tmp_path, "20_zengxin oilpaint", [(32, 32)] * 5, captions=captions)
    (folder / "img0004.txt").write_bytes("café, latin".encode("latin-1"))
    return folder


class TestEditCaptions:
    def test_add_front_with_backup_and_images_untouched(self, subset: Path) -> None:
        images = _hashes(subset, ".png")
        before = (subset / "img0001.txt").read_text()
        result = edit_captions(subset, "add", "zengxin", front=True, clock=fixed)
        assert [os.path.basename(c.path) for c in result.changes] == ["img0001.txt"]
        assert (subset / "img0001.txt").read_text() == "zengxin, oil, canvas"
        assert result.unchanged == 2  # img0000 and img0003 already have it
        assert [f.code for f in result.findings] == ["caption_skipped"]  # latin-1 file
        (backup,) = result.backups
        assert backup == str(subset / BACKUP_DIR / "20260102-030405")
        assert Path(backup, "img0001.txt").read_text() == before
        assert _hashes(subset, ".png") == images

    def test_a_second_run_never_overwrites_the_first_backup(self, subset: Path) -> None:
        first = edit_captions(subset, "add", "x", clock=fixed)
        second = edit_captions(subset, "remove", "x", clock=fixed)
        assert second.backups[0] == first.backups[0] + "-2"
        assert Path(first.backups[0], "img0000.txt").read_text() == "zengxin, oil"
        assert Path(second.backups[0], "img0000.txt").read_text() == "zengxin, oil, x"
        assert (subset / "img0000.txt").read_text() == "zengxin, oil"

    def test_dry_run_writes_nothing(self, subset: Path) -> None:
        captions = _hashes(subset, ".txt")
        result = edit_captions(subset, "replace", "oil", "oil painting", dry_run=True)
        assert [c.after for c in result.changes] == [
            "zengxin, oil painting",
            "oil painting, canvas",
        ]
        assert result.backups == () and _hashes(subset, ".txt") == captions
        assert not (subset / BACKUP_DIR).exists()

    def test_create_missing(self, subset: Path) -> None:
        result = edit_captions(subset, "add", "zengxin", create_missing=True, clock=fixed)
        assert (subset / "img0002.txt").read_text() == "zengxin\n"
        created = Path(result.backups[0], "created-files.txt").read_text()
        assert created == "img0002.txt\n"

    def test_a_parent_folder_edits_every_subset(self, tmp_path: Path) -> None:
        make_subset(tmp_path / "train", "10_a", [(8, 8)] * 2)
        make_subset(tmp_path / "train", "5_b", [(8, 8)])
        result = edit_captions(tmp_path / "train", "add", "new", clock=fixed)
        assert len(result.changes) == 3 and len(result.backups) == 2

    @pytest.mark.skipif(sys.platform == "win32", reason="POSIX links")
    def test_a_linked_caption_keeps_its_source(self, tmp_path: Path) -> None:
        src = make_subset(tmp_path, "raw", [(8, 8)], captions=["a, b"])
        folder = tmp_path / "10_x"
        folder.mkdir()
        os.link(src / "img0000.png", folder / "img0000.png")
        os.link(src / "img0000.txt", folder / "img0000.txt")
        edit_captions(folder, "add", "zx", clock=fixed)
        assert (folder / "img0000.txt").read_text() == "a, b, zx"
        assert (src / "img0000.txt").read_text() == "a, b"

    @pytest.mark.parametrize(
        ("args", "fragment"),
        [
            (("replace", "a", None), "needs the new tag"),
            (("add", "a", "b"), "takes one tag"),
            (("add", "a, b", None), "comma"),
            (("add", " ", None), "must not be empty"),
        ],
    )
    def test_bad_arguments(self, subset: Path, args: tuple, fragment: str) -> None:
        with pytest.raises(ConfigError, match=fragment):
            edit_captions(subset, *args)

    def test_no_images(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="no images"):
            edit_captions(tmp_path, "add", "x")
        with pytest.raises(ConfigError, match="does not exist"):
            edit_captions(tmp_path / "nope", "add", "x")
