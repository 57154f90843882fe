"""Reading kohya folder trees like sd-scripts, and subsets for jobs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from dsgen import make_image, make_subset

from kohya_orchestrator.datasets.tree import (
    find_caption,
    read_tree,
    scan_folder,
    subsets_from_tree,
)
from kohya_orchestrator.errors import ConfigError

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX globbing and links")


def _codes(findings: object) -> list[str]:
    return [f.code for f in findings]  # type: ignore[attr-defined]


class TestFolders:
    def test_repeats_and_class_tokens(self, tmp_path: Path) -> None:
        for name in ("20_zengxin oilpaint", "10_sks_dog", "5_日本語 スタイル", "3", "05_padded"):
            make_subset(tmp_path, name, [(64, 64)])
        tree = read_tree(tmp_path)
        got = sorted((s.name, s.repeats, s.class_tokens, s.is_reg) for s in tree.subsets)
        assert got == [
            ("05_padded", 5, "padded", False),
            ("10_sks_dog", 10, "sks_dog", False),
            ("20_zengxin oilpaint", 20, "zengxin oilpaint", False),
            ("3", 3, "", False),
            ("5_日本語 スタイル", 5, "日本語 スタイル", False),
        ]
        assert tree.findings == () and not tree.single

    @posix_only
    def test_skipped_folders_say_why(self, tmp_path: Path) -> None:
        make_subset(tmp_path, "10_ok", [(64, 64)])
        for name in ("abc_name", "0_zero", "-2_negative", ".ipynb_checkpoints", "5.5_float"):
            make_subset(tmp_path, name, [(64, 64)])
        (tmp_path / "7_empty").mkdir()
        (tmp_path / "notes.md").write_text("hi")
        make_image(tmp_path / "stray.png", (8, 8))
        os.symlink("missing", tmp_path / "3_broken")
        os.symlink("4_loop", tmp_path / "4_loop")
        tree = read_tree(tmp_path)
        by_path = {os.path.basename(f.path): (f.code, f.severity) for f in tree.findings}
        assert by_path == {
            "abc_name": ("no_repeats_prefix", "warning"),
            "5.5_float": ("no_repeats_prefix", "warning"),
            "0_zero": ("zero_repeats", "warning"),
            "-2_negative": ("zero_repeats", "warning"),
            ".ipynb_checkpoints": ("hidden_folder", "info"),
            "7_empty": ("no_images", "warning"),
            "3_broken": ("bad_link_folder", "warning"),
            "4_loop": ("bad_link_folder", "warning"),
            tmp_path.name: by_path[tmp_path.name],
        }
        parent = [f for f in tree.findings if f.path == str(tmp_path)]
        assert sorted(_codes(parent)) == ["files_in_parent", "images_in_parent"]
        assert "symbolic link loop" in next(f.message for f in tree.findings if "4_loop" in f.path)
        assert [s.name for s in tree.subsets] == ["10_ok"]

    def test_a_single_subset_folder_is_accepted(self, tmp_path: Path) -> None:
        folder = make_subset(tmp_path, "20_zengxin oilpaint", [(64, 64)] * 2)
        tree = read_tree(folder)
        assert tree.single and [s.repeats for s in tree.subsets] == [20]

    def test_a_flat_folder_is_an_error_with_the_fix(self, tmp_path: Path) -> None:
        make_subset(tmp_path, "flat", [(64, 64)] * 3)
        tree = read_tree(tmp_path / "flat")
        assert _codes(tree.findings) == ["images_in_parent"]
        assert tree.findings[0].severity == "error"
        assert "dataset create" in (tree.findings[0].hint or "")

    def test_empty_parent(self, tmp_path: Path) -> None:
        assert _codes(read_tree(tmp_path).findings) == ["no_subsets"]

    @pytest.mark.parametrize("kind", ["missing", "file"])
    def test_bad_root_raises_config_error(self, tmp_path: Path, kind: str) -> None:
        path = tmp_path / "x"
        if kind == "file":
            path.write_text("")
        with pytest.raises(ConfigError) as err:
            read_tree(path)
        assert ("does not exist" if kind == "missing" else "is a file") in str(err.value)


class TestImagesInAFolder:
    @posix_only
    def test_what_sd_scripts_globs(self, tmp_path: Path) -> None:
        for name in ("a.png", "b.PNG", "c.jpg", "d.JPEG", "e.webp", "f.bmp", "g.Png", "h.avif"):
            make_image(tmp_path / name, (8, 8), fmt="PNG")
        make_image(tmp_path / ".hidden.png", (8, 8))
        make_image(tmp_path / "i.gif", (8, 8), fmt="GIF")
        (tmp_path / "dir.png").mkdir()
        (tmp_path / "sub").mkdir()
        os.symlink("nowhere.png", tmp_path / "link.png")
        for name in ("a.txt", "a.caption", "x.npz", "metadata_cache.json", "readme.md", "z.doc"):
            (tmp_path / name).write_text("x")
        images, names, findings = scan_folder(str(tmp_path))
        assert [os.path.basename(p) for p in images] == [
            "a.png", "b.PNG", "c.jpg", "d.JPEG", "e.webp", "f.bmp",
        ]  # fmt: skip
        by_name = {os.path.basename(f.path): f.code for f in findings}
        assert by_name == {
            "g.Png": "mixed_case_extension",
            "h.avif": "needs_plugin",
            ".hidden.png": "hidden_image",
            "i.gif": "unsupported_format",
            "dir.png": "folder_named_like_image",
            "sub": "nested_folder",
            "link.png": "broken_link",
            tmp_path.name: "ignored_file",
        }
        assert "2 other file(s) ignored: readme.md, z.doc" in findings[-1].message
        assert "a.txt" in names and "sub" not in names
        images, _, _ = scan_folder(str(tmp_path), extra_extensions=[".avif"])
        assert len(images) == 7

    def test_caption_lookup_like_sd_scripts(self, tmp_path: Path) -> None:
        folder = tmp_path / "10_a"
        folder.mkdir()
        (folder / "plain.txt").write_text("x")
        (folder / "face_1_2_3_4_5.txt").write_text("x")  # face-crop name: 5+ '_' tokens
        (folder / "face.txt").write_text("x")
        names = frozenset(os.listdir(folder))
        f = str(folder)
        assert find_caption(f + "/plain.png", ".txt", f, names) == f + "/plain.txt"
        assert find_caption(f + "/plain.png", "txt") == f + "/plain.txt"  # dot added
        assert find_caption(f + "/plain.png", ".caption", f, names) is None
        # "face_a_b_c_d" has no caption of its own; sd-scripts falls back to "face"
        assert find_caption(f + "/face_a_b_c_d.png", ".txt", f, names) == f + "/face.txt"


class TestSubsetsFromTree:
    def test_train_and_reg(self, tmp_path: Path) -> None:
        make_subset(tmp_path / "train", "20_zengxin oilpaint", [(64, 64)])
        make_subset(tmp_path / "train", "abc", [(64, 64)])
        make_subset(tmp_path / "reg", "1_person", [(64, 64)], captions=False)
        subsets, problems = subsets_from_tree(tmp_path / "train", tmp_path / "reg")
        assert subsets == [
            {
                "image_dir": str(tmp_path / "train" / "20_zengxin oilpaint"),
                "num_repeats": 20,
                "class_tokens": "zengxin oilpaint",
            },
            {"image_dir": str(tmp_path / "reg" / "1_person"), "num_repeats": 1,
             "class_tokens": "person", "is_reg": True},
        ]  # fmt: skip
        assert [(p.path, p.severity) for p in problems] == [
            (str(tmp_path / "train" / "abc"), "warning")
        ]

    def test_single_folder_and_missing_folder(self, tmp_path: Path) -> None:
        folder = make_subset(tmp_path, "3", [(64, 64)])
        assert subsets_from_tree(folder) == ([{"image_dir": str(folder), "num_repeats": 3}], [])
        subsets, problems = subsets_from_tree(tmp_path / "nope")
        assert subsets == [] and "does not exist" in problems[0].message
