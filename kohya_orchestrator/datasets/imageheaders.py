"""Image headers without decoding pixels: size, mode and completeness of PNG, JPEG, WebP and BMP.

Each reader looks only at the bytes that describe the image (PNG ``IHDR``, JPEG ``SOFn``, the WebP
``VP8``/``VP8L``/``VP8X`` chunk, the BMP info header), so a dataset of thousands of files is sized
in the time it takes to open them. Other formats fall back to Pillow's lazy ``Image.open``, which
also reads only the header.

Two sizes are kept per image: the real one, and ``sd_size``, the size sd-scripts itself reads. It
uses ``imagesize`` 1.4.1 (pinned in its requirements.txt) and falls back to Pillow only when that
returns -1 (``train_util.py: get_image_size``). imagesize differs from the truth for WebP: extended
(``VP8X``) files come out one pixel smaller in each direction (it forgets the "minus one" in the
canvas size), and lossy ``VP8`` sizes keep the two scale bits. Buckets are chosen from
``sd_size``, so the plan must use it too.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "HeaderError",
    "ImageHeader",
    "parse_header",
    "read_header",
    "read_size",
]

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_HEAD = 4096  # bytes read up front; enough for every header but JPEGs with big EXIF/ICC blocks
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT/JPG/DAC)


class HeaderError(ValueError):
    """The file is not an image whose header we can read, or its header is broken."""


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What an image's header says, without decoding any pixels.

    Attributes:
        format: ``PNG``, ``JPEG``, ``WEBP``, ``BMP``, or Pillow's format name for others.
        width: Width in pixels (as stored; EXIF rotation is not applied).
        height: Height in pixels (as stored).
        mode: Pillow-style mode the file decodes to: ``RGB``, ``RGBA``, ``L``, ``LA``, ``P``,
            ``1``, ``CMYK``, ``I;16``...
        bit_depth: Bits per channel (8 for most files; 16 for 16-bit PNGs, 12 for 12-bit JPEGs).
        has_alpha: An alpha channel or palette/colour-key transparency is present.
        sd_size: ``(width, height)`` as sd-scripts reads it (imagesize 1.4.1 quirks included).
        complete: True when the file holds all the data its header declares, False when it is
            truncated, None when not checked (only a prefix was read) or unknown for the format.
        incomplete_reason: Why ``complete`` is False.
        exif_orientation: The EXIF orientation tag of a JPEG (1 = upright), if present.
        animated: The file holds several frames (APNG, animated WebP); sd-scripts uses the first.
    """

    format: str
    width: int
    height: int
    mode: str
    bit_depth: int = 8
    has_alpha: bool = False
    sd_size: tuple[int, int] = (0, 0)
    complete: bool | None = None
    incomplete_reason: str | None = None
    exif_orientation: int | None = None
    animated: bool = False


class _Source:
    """Random access over the first bytes of a file, reading more only when a parser needs it."""

    __slots__ = ("buf", "full", "more")

    def __init__(self, buf: bytes, more: Callable[[int, int], bytes] | None) -> None:
        self.buf = buf
        self.more = more
        self.full = more is None

    def at(self, offset: int, n: int) -> bytes:
        end = offset + n
        if end <= len(self.buf) or self.more is None:
            return self.buf[offset:end]
        return self.more(offset, n)


def _u16be(b: bytes, o: int = 0) -> int:
    return int.from_bytes(b[o : o + 2], "big")


def _u16le(b: bytes, o: int = 0) -> int:
    return int.from_bytes(b[o : o + 2], "little")


def _u32le(b: bytes, o: int = 0) -> int:
    return int.from_bytes(b[o : o + 4], "little")


# ----------------------------------------------------------------------------- PNG
_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


def _png(src: _Source, detail: bool) -> ImageHeader:
    head = src.at(0, 33)
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise HeaderError("PNG without an IHDR header (file cut short or not a PNG)")
    width, height = struct.unpack(">II", head[16:24])
    depth = head[24] if len(head) > 24 else 8
    color = head[25] if len(head) > 25 else 2
    mode = _PNG_MODES.get(color)
    if mode is None:
        raise HeaderError(f"PNG with an unknown colour type {color}")
    if color == 0 and depth == 1:
        mode = "1"
    elif color == 0 and depth == 16:
        mode = "I;16"
    has_alpha = color in (4, 6)
    animated = False
    complete: bool | None = None
    reason: str | None = None
    if detail:
        # tRNS (transparency) and acTL (APNG) come before the first IDAT.
        pos = 33
        for _ in range(100_000):
            chunk = src.at(pos, 8)
            if len(chunk) < 8:
                break
            length = int.from_bytes(chunk[:4], "big")
            kind = chunk[4:8]
            if kind in (b"IDAT", b"IEND"):
                break
            if kind == b"tRNS":
                has_alpha = True
            elif kind == b"acTL":
                animated = True
            pos += 12 + length
        if src.full:
            complete = src.buf.find(_PNG_IEND, max(len(src.buf) - 1024, 0)) >= 0
            reason = None if complete else "PNG ends before its IEND chunk (file cut short)"
    return ImageHeader(
        format="PNG",
        width=width,
        height=height,
        mode=mode,
        bit_depth=depth,
        has_alpha=has_alpha,
        sd_size=(width, height),
        complete=complete,
        incomplete_reason=reason,
        animated=animated,
    )


# ----------------------------------------------------------------------------- JPEG
def _exif_orientation(seg: bytes) -> int | None:
    """The orientation tag from an APP1 'Exif' segment payload, if there is one."""
    if not seg.startswith(b"Exif\x00\x00") or len(seg) < 14:
        return None
    tiff = seg[6:]
    order = tiff[:2]
    if order not in (b"II", b"MM"):
        return None
    endian: Literal["little", "big"] = "little" if order == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], endian)
    if ifd + 2 > len(tiff):
        return None
    count = int.from_bytes(tiff[ifd : ifd + 2], endian)
    for i in range(min(count, 512)):
        entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        if len(entry) < 12:
            return None
        if int.from_bytes(entry[:2], endian) == 0x0112:
            return int.from_bytes(entry[8:10], endian)
    return None


def _jpeg(src: _Source, detail: bool) -> ImageHeader:
    pos = 2
    frame: bytes | None = None
    orientation: int | None = None
    sos = -1
    buf = src.buf
    for _ in range(100_000):
        if pos + 4 <= len(buf):  # index the bytes in hand directly (the common case)
            head = buf[pos : pos + 4]
        else:
            head = src.at(pos, 4)
        if len(head) < 2:
            break
        if head[0] != 0xFF:
            raise HeaderError(f"JPEG marker expected at byte {pos}, found 0x{head[0]:02x}")
        kind = head[1]
        if kind == 0xFF:  # fill byte
            pos += 1
            continue
        if kind == 0x01 or 0xD0 <= kind <= 0xD8:  # standalone markers
            pos += 2
            continue
        if kind == 0xD9 or len(head) < 4:
            break
        length = head[2] << 8 | head[3]
        if kind == 0xDA:
            sos = pos
            break
        if kind in _SOF and frame is None:
            frame = src.at(pos + 4, 6)
            if not detail:
                break
        elif detail and kind == 0xE1 and orientation is None:
            orientation = _exif_orientation(src.at(pos + 4, min(length - 2, 4096)))
        pos += 2 + length
    if frame is None or len(frame) < 6:
        raise HeaderError("JPEG without a frame header (SOF): file cut short or not a JPEG")
    precision, height, width, components = frame[0], _u16be(frame, 1), _u16be(frame, 3), frame[5]
    mode = {1: "L", 3: "RGB", 4: "CMYK"}.get(components)  # 4 = CMYK or YCCK: both decode to CMYK
    if mode is None:
        raise HeaderError(f"JPEG with {components} colour components")
    complete: bool | None = None
    reason: str | None = None
    if detail and src.full:
        if sos < 0:
            complete, reason = False, "JPEG ends before its image data (no SOS marker)"
        else:
            # Inside entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so
            # an FF D9 after the first scan is the end-of-image marker (data may follow it).
            complete = src.buf.rfind(b"\xff\xd9", sos) >= 0
            reason = None if complete else "JPEG ends without its end-of-image marker (cut short)"
    return ImageHeader(
        format="JPEG",
        width=width,
        height=height,
        mode=mode,
        bit_depth=precision,
        sd_size=(width, height),
        complete=complete,
        incomplete_reason=reason,
        exif_orientation=orientation,
    )


# ----------------------------------------------------------------------------- WebP
def _webp(src: _Source, detail: bool) -> ImageHeader:
    head = src.at(0, 30)
    if len(head) < 30:
        raise HeaderError("WebP header cut short")
    chunk = head[12:16]
    has_alpha = False
    animated = False
    if chunk == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a":
            raise HeaderError("WebP (lossy) without the VP8 frame start code")
        raw_w, raw_h = _u16le(head, 26), _u16le(head, 28)
        width, height = raw_w & 0x3FFF, raw_h & 0x3FFF
        sd_size = (raw_w, raw_h)  # imagesize 1.4.1 keeps the 2 scale bits
    elif chunk == b"VP8L":
        if head[20] != 0x2F:
            raise HeaderError("WebP (lossless) without the VP8L signature")
        bits = _u32le(head, 21)
        width = (bits & 0x3FFF) + 1
        height = ((bits >> 14) & 0x3FFF) + 1
        has_alpha = bool(bits >> 28 & 1)
        sd_size = (width, height)
    elif chunk == b"VP8X":
        flags = head[20]
        has_alpha = bool(flags & 0x10)
        animated = bool(flags & 0x02)
        raw_w = int.from_bytes(head[24:27], "little")
        raw_h = int.from_bytes(head[27:30], "little")
        width, height = raw_w + 1, raw_h + 1
        sd_size = (raw_w, raw_h)  # imagesize 1.4.1 forgets the "+1" of the canvas size
    else:
        raise HeaderError(f"WebP with an unknown first chunk {chunk!r}")
    complete: bool | None = None
    reason: str | None = None
    if detail and src.full:
        declared = 8 + _u32le(head, 4)
        complete = len(src.buf) >= declared
        if not complete:
            reason = f"WebP is {len(src.buf)} bytes but declares {declared} (file cut short)"
    mode = "RGBA" if has_alpha else "RGB"
    return ImageHeader(
        "WEBP", width, height, mode, 8, has_alpha, sd_size, complete, reason, animated=animated
    )


# ----------------------------------------------------------------------------- BMP
def _bmp(src: _Source, detail: bool) -> ImageHeader:
    head = src.at(0, 70)
    if len(head) < 26:
        raise HeaderError("BMP header cut short")
    offset = _u32le(head, 10)
    dib = _u32le(head, 14)
    compression = 0
    alpha_mask = 0
    if dib == 12:  # OS/2 BITMAPCOREHEADER
        width, height, bpp = _u16le(head, 18), _u16le(head, 20), _u16le(head, 24)
    elif dib >= 40 and len(head) >= 34:
        width, height = struct.unpack("<ii", head[18:26])
        bpp = _u16le(head, 28)
        compression = _u32le(head, 30)
        if dib >= 56 and len(head) >= 58:
            alpha_mask = _u32le(head, 54)
    else:
        raise HeaderError(f"BMP with an unknown info header size {dib}")
    height = abs(height)  # negative height means rows stored top-down
    if width <= 0 or bpp not in (1, 2, 4, 8, 16, 24, 32):
        raise HeaderError(f"BMP with width {width} and {bpp} bits per pixel")
    has_alpha = bpp == 32 and compression in (3, 6) and alpha_mask != 0
    mode = "P" if bpp <= 8 else ("RGBA" if has_alpha else "RGB")
    complete: bool | None = None
    reason: str | None = None
    if detail and src.full and compression in (0, 3, 6):
        stride = (width * bpp + 31) // 32 * 4
        declared = offset + stride * height
        complete = len(src.buf) >= declared
        if not complete:
            reason = f"BMP is {len(src.buf)} bytes but its pixels need {declared} (file cut short)"
    return ImageHeader("BMP", width, height, mode, 8, has_alpha, (width, height), complete, reason)


# ----------------------------------------------------------------------------- dispatch
def _parse(src: _Source, detail: bool) -> ImageHeader | None:
    head = src.at(0, 16)
    if not head:
        raise HeaderError("empty file (0 bytes)")
    if head.startswith(_PNG_SIG):
        return _png(src, detail)
    if head.startswith(b"\xff\xd8"):
        return _jpeg(src, detail)
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _webp(src, detail)
    if head.startswith(b"BM"):
        return _bmp(src, detail)
    return None


def _pillow(path: Path | str) -> ImageHeader:
    from PIL import Image, UnidentifiedImageError  # lazy: Pillow costs ~50 ms to import

    try:
        with Image.open(path) as img:
            width, height = img.size
            mode = img.mode
            fmt = img.format or "unknown"
            has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
            animated = bool(getattr(img, "is_animated", False))
    except UnidentifiedImageError:
        raise HeaderError("not an image Pillow can identify") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise HeaderError(f"unreadable image header: {exc}") from None
    depth = 16 if mode.startswith("I;16") else 8
    return ImageHeader(
        format=fmt,
        width=width,
        height=height,
        mode=mode,
        bit_depth=depth,
        has_alpha=has_alpha,
        sd_size=(width, height),
        animated=animated,
    )


def parse_header(data: bytes, *, path: Path | str | None = None) -> ImageHeader:
    """Parse a header from a whole file's bytes, including the truncation check.

    Args:
        data: The complete file contents.
        path: Where the bytes came from; needed only for the Pillow fallback on other formats.

    Returns:
        The header, with ``complete`` set for PNG, JPEG, WebP and uncompressed BMP.

    Raises:
        HeaderError: The header is missing, cut short or malformed.
    """
    header = _parse(_Source(data, None), True)
    if header is not None:
        return header
    if path is None:
        raise HeaderError("not a PNG, JPEG, WebP or BMP file")
    return _pillow(path)


_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def _read(path: Path | str, detail: bool) -> ImageHeader | None:
    fd = os.open(path, _FLAGS)  # os-level I/O: no buffer objects for a 4 KiB read
    try:
        buf = os.read(fd, _HEAD)

        def more(offset: int, n: int) -> bytes:
            os.lseek(fd, offset, os.SEEK_SET)
            return os.read(fd, n)

        if not detail and buf[:8] == _PNG_SIG and buf[12:16] == b"IHDR":
            # the plan's fast path: a PNG's size is all sd-scripts (imagesize) reads of it
            w, h = int.from_bytes(buf[16:20], "big"), int.from_bytes(buf[20:24], "big")
            return ImageHeader(format="PNG", width=w, height=h, mode="?", sd_size=(w, h))
        return _parse(_Source(buf, more), detail)
    finally:
        os.close(fd)


def read_header(path: Path | str, *, detail: bool = True) -> ImageHeader:
    """Read a header from the start of a file (seeking further only for JPEG segments).

    Args:
        path: The image file.
        detail: Also look for transparency, EXIF orientation and animation (a few more reads);
            without it a PNG's mode is not read (``"?"``).

    Returns:
        The header; ``complete`` is None since the end of the file was not read.

    Raises:
        HeaderError: The header is missing, cut short or malformed.
        OSError: The file cannot be opened or read.
    """
    header = _read(path, detail)
    return header if header is not None else _pillow(path)


def read_size(path: str) -> tuple[int, int]:
    """The ``(width, height)`` sd-scripts reads for a file: the fast path used by the step plan.

    Args:
        path: The image file.

    Returns:
        ``sd_size``: the size sd-scripts' imagesize/Pillow reading gives (see the module docstring).

    Raises:
        HeaderError: The header is missing, cut short or malformed.
        OSError: The file cannot be opened or read.
    """
    header = _read(path, False)
    return (header if header is not None else _pillow(path)).sd_size
