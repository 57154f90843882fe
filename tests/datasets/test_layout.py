"""`dataset create`: laying out a flat folder as `<repeats>_<name>` folders."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
from dsgen import make_image, make_subset

from kohya_orchestrator.datasets.layout import create_subsets, split_sizes
from kohya_orchestrator.datasets.tree import read_tree
from kohya_orchestrator.errors import ConfigError

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX globbing and links")


def _codes(findings: object) -> list[str]:
    return [f.code for f in findings]  # type: ignore[attr-defined]


def _digest(folder: Path) -> dict[str, tuple[str, float]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(folder.iterdir())
    }


class TestCreate:
    @pytest.fixture
    def src(self, tmp_path: Path) -> Path:
        src = tmp_path / "raw"
        sizes = [(64, 64)] * 7
        make_subset(tmp_path, "raw", sizes, captions=["a, b", None, "c", "d", None, "e", "f"])
        (src / "img0001.caption").write_text("caption style")
        make_image(src / "Mixed.Png", (10, 10))
        make_image(src / "anim.gif", (10, 10), fmt="GIF")
        return src

    def test_copy_with_captions_leaves_the_source_alone(self, src: Path, tmp_path: Path) -> None:
        before = _digest(src)
        result = create_subsets(src, tmp_path / "out", repeats=20, name="zengxin oilpaint")
        assert before == _digest(src)
        folder = tmp_path / "out" / "20_zengxin oilpaint"
        assert [f.path for f in result.folders] == [str(folder)]
        assert (result.folders[0].images, result.folders[0].captions) == (8, 6)
        assert (folder / "Mixed.png").exists()  # mixed-case extension written in lower case
        assert (folder / "img0001.caption").read_text() == "caption style"
        assert _codes(result.findings) == ["unsupported_format", "uncaptioned"]
        tree = read_tree(tmp_path / "out")
        assert [(s.repeats, s.class_tokens, len(s.images)) for s in tree.subsets] == [
            (20, "zengxin oilpaint", 8)
        ]

    def test_split_names_and_sizes(self, src: Path, tmp_path: Path) -> None:
        result = create_subsets(src, tmp_path / "out", repeats=5, name="x", max_per_subset=3)
        names = [os.path.basename(f.path) for f in result.folders]
        assert names == ["5_x", "5_x 2", "5_x 3"]
        assert [f.images for f in result.folders] == [3, 3, 2]
        assert "split_class_tokens" in _codes(result.findings)

    @posix_only
    @pytest.mark.parametrize("link", ["hard", "sym"])
    def test_links(self, src: Path, tmp_path: Path, link: str) -> None:
        create_subsets(src, tmp_path / "out", repeats=1, name="x", link=link)  # type: ignore[arg-type]
        made = tmp_path / "out" / "1_x" / "img0000.png"
        if link == "hard":
            assert made.stat().st_ino == (src / "img0000.png").stat().st_ino
        else:
            assert made.is_symlink() and made.resolve() == (src / "img0000.png").resolve()

    def test_refuses_to_overwrite_and_writes_nothing(self, src: Path, tmp_path: Path) -> None:
        out = tmp_path / "out" / "20_x"
        out.mkdir(parents=True)
        (out / "img0003.png").write_bytes(b"mine")
        with pytest.raises(ConfigError) as err:
            create_subsets(src, tmp_path / "out", repeats=20, name="x")
        assert "refusing to overwrite" in str(err.value)
        assert sorted(p.name for p in out.iterdir()) == ["img0003.png"]
        assert (out / "img0003.png").read_bytes() == b"mine"

    def test_dry_run_writes_nothing(self, src: Path, tmp_path: Path) -> None:
        result = create_subsets(src, tmp_path / "out", repeats=2, name="x", dry_run=True)
        assert len(result.files) == 8 + 6 and not (tmp_path / "out").exists()

    @pytest.mark.parametrize(
        ("kwargs", "fragment"),
        [
            ({"repeats": 0}, "must be 1 or more"),
            ({"name": "a/b"}, "cannot be a folder name"),
            ({"name": "  "}, "cannot be a folder name"),
            ({"max_per_subset": 0}, "must be 1 or more"),
        ],
    )
    def test_bad_arguments(self, src: Path, tmp_path: Path, kwargs: dict, fragment: str) -> None:
        args = {"repeats": 1, "name": "x", **kwargs}
        with pytest.raises(ConfigError, match=fragment):
            create_subsets(src, tmp_path / "out", **args)

    def test_source_without_images(self, tmp_path: Path) -> None:
        make_subset(tmp_path / "laid", "10_x", [(8, 8)])
        with pytest.raises(ConfigError) as err:
            create_subsets(tmp_path / "laid", tmp_path / "out", repeats=1, name="x")
        assert "laid out already" in str(err.value.problems[0].hint)


@pytest.mark.parametrize(
    ("n", "limit", "sizes"),
    [(150, 100, [75, 75]), (201, 100, [67, 67, 67]), (100, 100, [100]), (7, None, [7])],
)
def test_split_sizes(n: int, limit: int | None, sizes: list[int]) -> None:
    assert split_sizes(n, limit) == sizes
