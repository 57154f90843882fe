"""Header readers against Pillow: sizes, modes, transparency, EXIF, truncation, corruption."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dsgen import image_bytes
from PIL import Image

from kohya_orchestrator.datasets.imageheaders import (
    HeaderError,
    parse_header,
    read_header,
    read_size,
)

SIZES = [(1, 1), (64, 48), (300, 517), (1000, 250), (4000, 3)]
CASES = [
    ("PNG", "RGB", {}),
    ("PNG", "RGBA", {}),
    ("PNG", "L", {}),
    ("PNG", "LA", {}),
    ("PNG", "I;16", {}),
    ("PNG", "1", {}),
    ("PNG", "P", {}),
    ("JPEG", "RGB", {}),
    ("JPEG", "L", {}),
    ("JPEG", "CMYK", {}),
    ("JPEG", "RGB", {"progressive": True}),
    ("WEBP", "RGB", {}),
    ("WEBP", "RGBA", {}),
    ("WEBP", "RGB", {"lossless": True}),
    ("BMP", "RGB", {}),
    ("BMP", "L", {}),
]


@pytest.mark.parametrize(("fmt", "mode", "save"), CASES)
@pytest.mark.parametrize("size", SIZES)
def test_size_and_mode_match_pillow(
    fmt: str, mode: str, save: dict[str, object], size: tuple[int, int], tmp_path: Path
) -> None:
    data = image_bytes(size, fmt=fmt, mode=mode, seed=7, **save)
    with Image.open(io.BytesIO(data)) as img:
        want_size, want_mode = img.size, img.mode
    header = parse_header(data)
    assert (header.format, (header.width, header.height)) == (fmt, want_size)
    assert header.complete is True
    if fmt != "BMP":  # Pillow maps BMP palettes to "1"/"L"/"P" by content; we say "P"
        assert header.mode == want_mode
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    assert read_header(path).width == want_size[0]
    assert read_header(path, detail=False).height == want_size[1]


def test_webp_extended_size_as_sd_scripts_reads_it() -> None:
    """imagesize 1.4.1 (sd-scripts' pin) returns VP8X canvas sizes one pixel short."""
    data = image_bytes((600, 300), fmt="WEBP", mode="RGBA")
    header = parse_header(data)
    assert (header.width, header.height, header.has_alpha) == (600, 300, True)
    assert header.sd_size == (599, 299)
    plain = parse_header(image_bytes((600, 300), fmt="WEBP"))
    assert plain.sd_size == (600, 300)


def test_transparency_and_depth() -> None:
    palette = Image.new("P", (8, 8))
    buf = io.BytesIO()
    palette.save(buf, "PNG", transparency=0)
    assert parse_header(buf.getvalue()).has_alpha
    rgb_key = image_bytes((8, 8), fmt="PNG", transparency=(0, 0, 0))
    assert parse_header(rgb_key).has_alpha
    deep = parse_header(image_bytes((8, 8), fmt="PNG", mode="I;16"))
    assert (deep.mode, deep.bit_depth) == ("I;16", 16)
    assert not parse_header(image_bytes((8, 8), fmt="PNG")).has_alpha


def test_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = image_bytes((40, 20), fmt="JPEG", exif=exif.tobytes())
    header = parse_header(data)
    assert header.exif_orientation == 6
    assert (header.width, header.height) == (40, 20)  # stored size; rotation not applied


def test_jpeg_with_big_segments_before_the_frame(tmp_path: Path) -> None:
    """The frame header may sit far beyond the first 4 KiB: the reader seeks to it."""
    data = image_bytes((123, 45), fmt="JPEG", icc_profile=b"\0" * 200_000)
    path = tmp_path / "big.jpg"
    path.write_bytes(data)
    assert read_size(str(path)) == (123, 45)
    assert read_header(path).sd_size == (123, 45)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_truncated_files_are_incomplete(fmt: str) -> None:
    data = image_bytes((200, 100), fmt=fmt, seed=3)
    header = parse_header(data[: len(data) - max(20, len(data) // 4)])
    assert header.complete is False
    assert header.incomplete_reason


def test_jpeg_with_data_after_the_end_marker_is_complete() -> None:
    data = image_bytes((64, 64), fmt="JPEG") + b"\0" * 5000 + b"appended video"
    assert parse_header(data).complete is True


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "0 bytes"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDX", "IHDR"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "SOF"),
        (b"\xff\xd8\x00\x00", "marker"),
        (b"RIFF\0\0\0\0WEBPVP9 ", "cut short"),
        (b"RIFF\x20\0\0\0WEBPVP9 " + b"\0" * 20, "unknown first chunk"),
        (b"BM" + b"\0" * 12 + b"\x07\0\0\0" + b"\0" * 20, "info header"),
    ],
)
def test_corrupt_headers(data: bytes, fragment: str) -> None:
    with pytest.raises(HeaderError, match=fragment):
        parse_header(data)


def test_other_formats_fall_back_to_pillow(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (30, 20), (i * 80, 0, 0)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    header = read_header(path)
    assert (header.format, header.width, header.height, header.animated) == ("GIF", 30, 20, True)
    with pytest.raises(HeaderError, match="not a PNG"):
        parse_header(b"GIF89a")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"hello, world")
    with pytest.raises(HeaderError, match="identify"):
        read_header(junk)
