"""Generate small kohya datasets with Pillow for the dataset, plan and caption tests.

Every image gets its own colour (so no two files are identical unless a test copies one), a
chosen size and format, and optionally a caption. Sizes cycle through ``VARIED`` (square, portrait,
landscape, very wide, tiny) so bucket tests see several aspect ratios.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image

# (width, height) pairs spanning ratios 1:4 .. 4:1 and both sides of a 256 px resolution.
VARIED: tuple[tuple[int, int], ...] = (
    (256, 256),
    (300, 200),
    (200, 300),
    (512, 384),
    (384, 512),
    (640, 360),
    (360, 640),
    (1000, 250),
    (250, 1000),
    (120, 90),
    (257, 255),
    (448, 448),
    (700, 500),
    (333, 777),
)


def _color(seed: int) -> tuple[int, int, int]:
    rnd = random.Random(seed)
    return (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))


def image_bytes(
    size: tuple[int, int], *, fmt: str = "PNG", mode: str = "RGB", seed: int = 0, **save: object
) -> bytes:
    """Encode one solid-colour image."""
    color: object = _color(seed)
    if mode in ("L", "I;16", "1", "P"):
        color = seed % 256
    elif mode in ("RGBA", "LA"):
        color = (*_color(seed), 128) if mode == "RGBA" else (seed % 256, 128)
    elif mode == "CMYK":
        color = (*_color(seed), 10)
    img = Image.new(mode, size, color)  # type: ignore[arg-type]
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def make_image(path: Path, size: tuple[int, int], **kw: object) -> Path:
    """Write one image; the format follows the file extension unless ``fmt`` is given."""
    fmt = str(kw.pop("fmt", None) or _FORMATS[path.suffix.lower()])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(size, fmt=fmt, **kw))  # type: ignore[arg-type]
    return path


_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def make_subset(
    parent: Path,
    name: str,
    sizes: Sequence[tuple[int, int]],
    *,
    ext: str = ".png",
    captions: bool | Sequence[str | None] = True,
    caption_ext: str = ".txt",
    stem: str = "img",
    seed: int = 0,
) -> Path:
    """A folder ``parent/name`` of ``len(sizes)`` images, with captions.

    ``captions=True`` writes ``"<class tokens>, tag<i>, common"``; a sequence gives each image's
    caption text (None = no caption file); False writes none.
    """
    folder = parent / name
    folder.mkdir(parents=True, exist_ok=True)
    tokens = name.partition("_")[2] or "thing"
    for i, size in enumerate(sizes):
        img = make_image(folder / f"{stem}{i:04d}{ext}", size, seed=seed * 10_000 + i)
        if captions is True:
            text: str | None = f"{tokens}, tag{i % 3}, common\n"
        elif captions is False:
            text = None
        else:
            text = captions[i]
        if text is not None:
            img.with_suffix(caption_ext).write_text(text, encoding="utf-8")
    return folder


def cycle_sizes(n: int, sizes: Iterable[tuple[int, int]] = VARIED) -> list[tuple[int, int]]:
    """``n`` sizes taken round-robin from ``sizes``."""
    pool = list(sizes)
    return [pool[i % len(pool)] for i in range(n)]


def make_tree(root: Path, subsets: dict[str, int], *, seed: int = 0, **kw: object) -> Path:
    """A parent folder with one subset per ``{folder name: image count}`` (varied sizes)."""
    root.mkdir(parents=True, exist_ok=True)
    for i, (name, n) in enumerate(subsets.items()):
        offset = [VARIED[(j + i * 3) % len(VARIED)] for j in range(n)]
        make_subset(root, name, offset, seed=seed * 100 + i, **kw)  # type: ignore[arg-type]
    return root
