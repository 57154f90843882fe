"""Header readers on the less common shapes: APNG, EXIF without orientation, OS/2 and V5 BMPs,
JPEG fill bytes and standalone markers, broken WebP/BMP/JPEG headers, Pillow's fallback errors.

Every file is a real image Pillow writes, or one byte-patched the way a broken file really is.
"""

from __future__ import annotations

import io
import struct
import zlib
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


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload).to_bytes(4, "big")
    return len(payload).to_bytes(4, "big") + kind + payload + crc


def _png(width: int, height: int, *, depth: int = 8, color: int = 2) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)


def _with_segment(jpeg: bytes, segment: bytes) -> bytes:
    """A JPEG with one more segment right after its SOI marker."""
    return jpeg[:2] + segment + jpeg[2:]


def _app1(payload: bytes) -> bytes:
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


# ----------------------------------------------------------------------------- PNG
def test_png_with_an_unknown_colour_type_is_refused() -> None:
    with pytest.raises(HeaderError, match="PNG with an unknown colour type 5"):
        parse_header(_png(8, 8, color=5))


def test_png_cut_right_after_its_header_is_incomplete() -> None:
    header = parse_header(_png(640, 480))
    assert (header.width, header.height, header.mode) == (640, 480, "RGB")
    assert header.complete is False
    assert header.incomplete_reason == "PNG ends before its IEND chunk (file cut short)"


def test_apng_is_animated(tmp_path: Path) -> None:
    frames = [Image.new("RGBA", (12, 7), (i * 60, 0, 0, 255)) for i in range(3)]
    path = tmp_path / "anim.png"
    frames[0].save(path, "PNG", save_all=True, append_images=frames[1:])
    header = read_header(path)
    assert (header.format, header.width, header.height) == ("PNG", 12, 7)
    assert header.animated is True and header.has_alpha is True
    assert parse_header(path.read_bytes()).complete is True


def test_png_with_very_many_chunks_before_its_data_is_still_sized() -> None:
    """The chunk walk is bounded (100 000 chunks), so a hostile file cannot make it spin."""
    text = _chunk(b"tEXt", b"")
    data = _png(33, 44) + text * 100_000 + _chunk(b"tRNS", b"\0\0") + _chunk(b"IEND", b"")
    header = parse_header(data)
    assert (header.width, header.height) == (33, 44)
    assert header.has_alpha is False  # the tRNS chunk lies past the walk's limit
    assert header.complete is True


# ----------------------------------------------------------------------------- JPEG / EXIF
def test_exif_without_an_orientation_tag() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make, and no Orientation
    header = parse_header(image_bytes((40, 20), fmt="JPEG", exif=exif.tobytes()))
    assert header.exif_orientation is None
    assert (header.width, header.height, header.complete) == (40, 20, True)


@pytest.mark.parametrize(
    "payload",
    [
        b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>",  # an XMP packet, also APP1
        b"Exif\x00\x00XX\x00*\x00\x00\x00\x08\x00\x00",  # no II/MM byte order
        b"Exif\x00\x00II*\x00\xff\xff\x00\x00\x00\x00",  # first IFD beyond the segment
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00\x12\x01",  # 5 entries declared, 0 present
    ],
    ids=["xmp", "bad-byte-order", "ifd-out-of-range", "entries-cut-short"],
)
def test_app1_segments_without_a_readable_orientation(payload: bytes) -> None:
    """Broken or foreign APP1 payloads leave the orientation unknown, never fail the header."""
    data = _with_segment(image_bytes((30, 10), fmt="JPEG"), _app1(payload))
    header = parse_header(data)
    assert (header.width, header.height) == (30, 10)
    assert header.exif_orientation is None


def test_jpeg_fill_bytes_and_standalone_markers_are_skipped() -> None:
    base = image_bytes((50, 25), fmt="JPEG")
    data = base[:2] + b"\xff\xff\xff" + b"\xff\x01" + b"\xff\xd0" + base[2:]
    header = parse_header(data)
    assert (header.format, header.width, header.height, header.complete) == ("JPEG", 50, 25, True)


def test_jpeg_made_only_of_fill_bytes_gives_up() -> None:
    with pytest.raises(HeaderError, match="JPEG without a frame header"):
        parse_header(b"\xff\xd8" + b"\xff" * 100_001)


@pytest.mark.parametrize(
    "data",
    [b"\xff\xd8\xff\xd9", b"\xff\xd8\xff\xe0"],
    ids=["soi-then-eoi", "cut-inside-a-marker"],
)
def test_jpeg_ending_before_its_frame(data: bytes) -> None:
    with pytest.raises(HeaderError, match=r"JPEG without a frame header \(SOF\)"):
        parse_header(data)


def test_jpeg_with_two_components_is_refused() -> None:
    data = bytearray(image_bytes((16, 16), fmt="JPEG", mode="L"))
    sof = data.index(b"\xff\xc0")
    assert data[sof + 9] == 1
    data[sof + 9] = 2
    with pytest.raises(HeaderError, match="JPEG with 2 colour components"):
        parse_header(bytes(data))


def test_jpeg_cut_before_its_scan_is_incomplete() -> None:
    data = image_bytes((64, 32), fmt="JPEG")
    header = parse_header(data[: data.index(b"\xff\xda")])
    assert (header.width, header.height) == (64, 32)
    assert header.complete is False
    assert header.incomplete_reason == "JPEG ends before its image data (no SOS marker)"


# ----------------------------------------------------------------------------- WebP
def test_lossy_webp_without_its_start_code() -> None:
    data = bytearray(image_bytes((20, 20), fmt="WEBP"))
    assert data[12:16] == b"VP8 "
    data[23:26] = b"\0\0\0"
    with pytest.raises(HeaderError, match="WebP \\(lossy\\) without the VP8 frame start code"):
        parse_header(bytes(data))


def test_lossless_webp_without_its_signature() -> None:
    data = bytearray(image_bytes((20, 20), fmt="WEBP", lossless=True))
    assert data[12:16] == b"VP8L"
    data[20] = 0
    with pytest.raises(HeaderError, match="WebP \\(lossless\\) without the VP8L signature"):
        parse_header(bytes(data))


# ----------------------------------------------------------------------------- BMP
def test_bmp_cut_short() -> None:
    with pytest.raises(HeaderError, match="BMP header cut short"):
        parse_header(image_bytes((4, 4), fmt="BMP")[:20])


def test_os2_bmp(tmp_path: Path) -> None:
    """The 12-byte BITMAPCOREHEADER of OS/2 bitmaps (16-bit width and height)."""
    width, height, stride = 5, 3, 16  # 5 px x 24 bit = 15 bytes, padded to 16
    pixels = b"\x10\x20\x30" * width + b"\0"
    core = struct.pack("<IHHHH", 12, width, height, 1, 24)
    offset = 14 + len(core)
    body = core + pixels * height
    data = b"BM" + struct.pack("<IHHI", 14 + len(body), 0, 0, offset) + body
    path = tmp_path / "os2.bmp"
    path.write_bytes(data)
    with Image.open(path) as img:
        assert img.size == (width, height)
    header = parse_header(data)
    assert (header.format, header.width, header.height, header.mode) == ("BMP", 5, 3, "RGB")
    assert header.complete is True
    assert stride * height + offset == len(data)
    assert read_size(str(path)) == (5, 3)


def test_v5_bmp_with_an_alpha_mask() -> None:
    """A BITMAPV5HEADER with BI_BITFIELDS and an alpha mask is RGBA."""
    width, height = 3, 2
    v5 = struct.pack(
        "<IiiHHIIiiII4I",
        124,
        width,
        -height,  # top-down rows
        1,
        32,
        3,  # BI_BITFIELDS
        width * height * 4,
        2835,
        2835,
        0,
        0,
        0x00FF0000,
        0x0000FF00,
        0x000000FF,
        0xFF000000,
    )
    v5 += b"BGRs" + b"\0" * (124 - len(v5) - 4)
    assert len(v5) == 124
    offset = 14 + len(v5)
    pixels = b"\x01\x02\x03\x80" * width * height
    data = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + v5 + pixels
    with Image.open(io.BytesIO(data)) as img:
        assert (img.size, img.mode) == ((3, 2), "RGBA")
    header = parse_header(data)
    assert (header.width, header.height, header.mode, header.has_alpha) == (3, 2, "RGBA", True)
    assert header.complete is True


@pytest.mark.parametrize(("offset", "value"), [(18, 0), (28, 3)], ids=["zero-width", "3-bit"])
def test_bmp_with_an_impossible_size_or_depth(offset: int, value: int) -> None:
    data = bytearray(image_bytes((4, 4), fmt="BMP"))
    data[offset : offset + 2] = value.to_bytes(2, "little")
    with pytest.raises(HeaderError, match="BMP with width"):
        parse_header(bytes(data))


# ----------------------------------------------------------------------------- Pillow fallback
def test_parse_header_falls_back_to_pillow_when_given_the_path(tmp_path: Path) -> None:
    path = tmp_path / "x.gif"
    Image.new("P", (9, 5)).save(path)
    header = parse_header(path.read_bytes(), path=path)
    assert (header.format, header.width, header.height, header.sd_size) == ("GIF", 9, 5, (9, 5))


@pytest.mark.parametrize("data", [b"P6\n3 2\n0\n", b"P6\n3\n"], ids=["maxval-0", "cut-short"])
def test_a_broken_header_pillow_recognises_is_a_header_error(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "x.ppm"
    path.write_bytes(data)
    with pytest.raises(HeaderError, match="unreadable image header: "):
        read_header(path)
