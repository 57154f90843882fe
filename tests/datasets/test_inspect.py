"""The dataset report: counts, sizes, captions, tags, trigger, and every kind of bad input."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from dsgen import image_bytes, make_image, make_subset

from kohya_orchestrator.datasets.report import inspect_dataset, ratio_label
from kohya_orchestrator.datasets.report_models import DatasetReport
from kohya_orchestrator.errors import ConfigError


def _codes(report: DatasetReport, name: str | None = None) -> list[str]:
    return [f.code for f in report.findings if name is None or os.path.basename(f.path) == name]


@pytest.fixture
def good(tmp_path: Path) -> Path:
    root = tmp_path / "train"
    sizes = [(512, 768)] * 10 + [(768, 512)] * 5 + [(1024, 1024)] * 5
    make_subset(root, "20_zengxin oilpaint", sizes, seed=1)
    make_subset(tmp_path / "reg", "1_painting", [(512, 512)] * 4, seed=2, captions=False)
    return tmp_path


class TestHealthyDataset:
    def test_counts_sizes_ratios_buckets(self, good: Path) -> None:
        report = inspect_dataset(good / "train", good / "reg", resolution=512)
        train, _reg = report.subsets
        assert (train.image_count, train.repeats, train.images_with_repeats) == (20, 20, 400)
        assert (report.image_count, report.images_with_repeats) == (20, 400)
        assert (report.reg_image_count, report.reg_images_with_repeats) == (4, 4)
        assert (train.min_size, train.max_size) == ((512, 768), (1024, 1024))
        assert train.orientations == {"portrait": 10, "landscape": 5, "square": 5}
        assert [(r.ratio, r.count) for r in train.aspect_ratios] == [
            ("2:3", 10), ("3:2", 5), ("1:1", 5),
        ]  # fmt: skip
        assert {b.resolution: b.count for b in train.buckets} == {
            (384, 640): 10, (640, 384): 5, (512, 512): 5,
        }  # fmt: skip
        assert train.formats == {"PNG": 20} and train.modes == {"RGB": 20}

    def test_captions_tags_and_trigger(self, good: Path) -> None:
        report = inspect_dataset(good / "train")
        (train,) = report.subsets
        assert (train.captioned, train.missing_captions, train.empty_captions) == (20, 0, 0)
        tags = {t.tag: t.count for t in train.tags}
        assert tags == {"zengxin oilpaint": 20, "common": 20, "tag0": 7, "tag1": 7, "tag2": 6}
        assert (train.trigger, train.trigger_missing) == ("zengxin oilpaint", 0)
        other = inspect_dataset(good / "train", trigger="Common")
        assert other.subsets[0].trigger_missing == 0
        missing = inspect_dataset(good / "train", trigger="sks")
        assert missing.subsets[0].trigger_missing == 20
        assert "trigger_missing" in _codes(missing)
        assert "'sks' --front" not in (missing.findings[-1].hint or "")  # quoted for the shell

    def test_json_round_trip(self, good: Path) -> None:
        report = inspect_dataset(good / "train", good / "reg")
        again = DatasetReport.model_validate(json.loads(report.model_dump_json()))
        assert again == report
        assert report.errors == [] and report.warnings == []

    def test_seed_advice(self, tmp_path: Path) -> None:
        make_subset(tmp_path, "5_few", [(600, 600)] * 3)
        make_subset(tmp_path, "12_many", [(600, 600)] * 101, captions=False)
        report = inspect_dataset(tmp_path)
        assert sorted(_codes(report, "5_few")) == ["few_images", "repeats_range"]
        assert sorted(_codes(report, "12_many")) == ["many_images", "missing_captions"]
        many = next(f for f in report.findings if f.code == "many_images")
        assert "--max-per-subset 100" in (many.hint or "")


class TestBadInput:
    def test_each_bad_file_is_reported_and_the_scan_goes_on(self, tmp_path: Path) -> None:
        folder = make_subset(tmp_path, "15_x", [(600, 600)] * 3, seed=3)
        (folder / "zero.png").write_bytes(b"")
        full = image_bytes((600, 600), seed=9)
        (folder / "cut.png").write_bytes(full[:-30])
        (folder / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        (folder / "copy.png").write_bytes((folder / "img0000.png").read_bytes())
        make_image(folder / "small.png", (100, 80))
        make_image(folder / "ink.jpg", (600, 600), mode="CMYK")
        make_image(folder / "deep.png", (600, 600), mode="I;16")
        make_image(folder / "clear.png", (600, 600), mode="RGBA")
        make_image(folder / "clear.webp", (600, 600), mode="RGBA")
        make_image(folder / "grey.png", (600, 600), mode="L")
        make_image(folder / "named.png", (600, 600), fmt="JPEG")
        (folder / "img0001.txt").write_bytes(b"caf\xe9, latin-1")
        (folder / "img0002.txt").write_bytes(b"")
        (folder / "ink.txt").write_text("\ufeffzengxin, bom")
        (folder / "grey.txt").write_text("\n\nsecond line only")
        report = inspect_dataset(tmp_path, resolution=512)
        assert report.subsets[0].image_count == 14
        by_file = {(os.path.basename(f.path), f.code) for f in report.findings}
        expected = {
            ("zero.png", "empty_file"),
            ("cut.png", "truncated_image"),
            ("junk.jpg", "corrupt_image"),
            ("img0000.png", "duplicate_image"),
            ("small.png", "tiny_image"),
            ("ink.jpg", "cmyk"),
            ("deep.png", "sixteen_bit"),
            ("clear.png", "transparency"),
            ("clear.webp", "transparency"),
            ("clear.webp", "sd_size_differs"),
            ("grey.png", "grayscale"),
            ("named.png", "extension_mismatch"),
            ("img0001.txt", "caption_not_utf8"),
            ("img0002.txt", "empty_caption_file"),
            ("ink.txt", "caption_bom"),
            ("grey.txt", "empty_caption"),
            ("15_x", "missing_captions"),
        }
        assert expected <= by_file
        assert {f.code for f in report.errors} == {
            "empty_file",
            "truncated_image",
            "corrupt_image",
            "caption_not_utf8",
            "empty_caption_file",
        }
        (group,) = report.duplicate_groups
        assert sorted(os.path.basename(p) for p in group) == ["copy.png", "img0000.png"]
        sub = report.subsets[0]
        assert (sub.unreadable_images, sub.truncated_images, sub.duplicates) == (2, 1, 1)

    def test_verify_pixels_finds_damage_inside_the_data(self, tmp_path: Path) -> None:
        folder = make_subset(tmp_path, "15_x", [(64, 64)])
        data = bytearray(image_bytes((64, 64), fmt="JPEG", seed=5))
        sos = data.index(b"\xff\xda")
        data[sos + 20 : sos + 60] = b"\xff" * 40  # garbage in the scan, end marker kept
        (folder / "bad.jpg").write_bytes(bytes(data))
        data = bytearray(image_bytes((64, 64), seed=6))
        idat = data.index(b"IDAT")
        data[idat + 6 : idat + 12] = b"\x00" * 6  # zlib stream broken, IEND kept
        (folder / "bad.png").write_bytes(bytes(data))
        quick = inspect_dataset(tmp_path, resolution=64)
        assert "undecodable_pixels" not in _codes(quick)
        full = inspect_dataset(tmp_path, resolution=64, verify_pixels=True)
        assert "undecodable_pixels" in _codes(full, "bad.png")
        assert full.verified_pixels

    @pytest.mark.skipif(sys.platform == "win32", reason="POSIX links")
    def test_symlink_loops_and_broken_links(self, tmp_path: Path) -> None:
        folder = make_subset(tmp_path, "15_x", [(64, 64)])
        os.symlink("loop.png", folder / "loop.png")
        os.symlink("missing.png", folder / "gone.png")
        os.symlink(".", folder / "self")
        report = inspect_dataset(tmp_path, resolution=64)
        assert set(_codes(report, "loop.png")) == {"symlink_loop"}
        assert set(_codes(report, "gone.png")) == {"broken_link"}
        assert set(_codes(report, "self")) == {"nested_folder"}

    def test_unreadable_files(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        make_subset(tmp_path, "15_x", [(64, 64)] * 2)
        real_os_open = os.open
        denied = ("img0000.png", "img0001.txt")

        def fake_os_open(path: str, *args: object, **kwargs: object) -> int:
            if os.path.basename(path) in denied:
                raise PermissionError(13, "Permission denied", path)
            return real_os_open(path, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", fake_os_open)
        report = inspect_dataset(tmp_path, resolution=64)
        assert _codes(report, "img0000.png") == ["unreadable_file"]
        assert _codes(report, "img0001.txt") == ["unreadable_caption"]
        assert "Permission denied" in report.findings[0].message

    def test_other_caption_extension(self, tmp_path: Path) -> None:
        make_subset(tmp_path, "15_x", [(64, 64)] * 2, caption_ext=".caption")
        report = inspect_dataset(tmp_path, resolution=64)
        assert "other_caption_extension" in _codes(report, "15_x")
        fine = inspect_dataset(tmp_path, resolution=64, caption_extension="caption")
        assert fine.subsets[0].captioned == 2

    @pytest.mark.parametrize("kind", ["missing", "file"])
    def test_bad_root(self, tmp_path: Path, kind: str) -> None:
        path = tmp_path / "x.png"
        if kind == "file":
            make_image(path, (8, 8))
        with pytest.raises(ConfigError):
            inspect_dataset(path)


@pytest.mark.parametrize(
    ("size", "label"),
    [((512, 512), "1:1"), ((512, 768), "2:3"), ((1920, 1080), "16:9"), ((1000, 370), "2.70:1")],
)
def test_ratio_label(size: tuple[int, int], label: str) -> None:
    assert ratio_label(*size) == label


def test_captions_longer_than_clip_reads_are_flagged(tmp_path: Path) -> None:
    from kohya_orchestrator.datasets.report import clip_token_floor

    long = ", ".join(["zengxin oilpaint, a boat on the river at dusk"] * 8)
    assert clip_token_floor(long) > 75
    assert clip_token_floor("zengxin oilpaint, (best quality:1.2), 8k") == 13  # "),": one piece
    make_subset(tmp_path / "train", "10_oil", [(512, 512)] * 3, captions=[long, "short", long])
    report = inspect_dataset(tmp_path / "train")
    (finding,) = [f for f in report.findings if f.code == "long_caption"]
    assert finding.severity == "warning"
    assert finding.message.startswith("2 caption(s) are longer than CLIP's 75 tokens (at least ")
    assert "max_token_length = 150 or 225" in (finding.hint or "")


def test_inspect_never_prints_one_subsets_numbers_for_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kohya_orchestrator.cli.main import main

    for name, n in (("3_a", 1), ("3_b", 8), ("3_c", 7)):
        make_subset(tmp_path / "img", name, [(512, 512)] * n, seed=n)
    main(["dataset", "inspect", str(tmp_path / "img")])
    out = " ".join(capsys.readouterr().out.split())
    assert "3 × few images:" in out
    for name, n in (("3_a", 1), ("3_b", 8), ("3_c", 7)):
        assert f"{name}: only {n} images" in out
