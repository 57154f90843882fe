"""A tiny bundled demo dataset, generated on demand: a few small 'paintings' with captions.

It lets `preset oilpaint` show a real plan on a fresh machine with no data of the user's own.
Images are drawn deterministically with Pillow, in the `<repeats>_<name>` layout.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

__all__ = ["DEMO_FOLDER", "default_demo_root", "ensure_demo_dataset"]

DEMO_FOLDER = "10_zengxin oilpaint"
_SIZES = [(96, 128), (128, 96), (112, 112), (128, 80), (80, 128), (96, 96)]
_SUBJECTS = [
    "a harbour at dusk",
    "sunflowers in a vase",
    "a village street in rain",
    "portrait of an old fisherman",
    "wheat field under clouds",
    "still life with lemons",
]


def default_demo_root() -> Path:
    """Where the demo lives: ~/.cache/kohya_orchestrator/demo."""
    return Path.home() / ".cache" / "kohya_orchestrator" / "demo"


def _painting(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = random.Random(seed)
    w, h = size
    base = tuple(rng.randrange(40, 200) for _ in range(3))
    img = Image.new("RGB", size, base)
    draw = ImageDraw.Draw(img)
    for _ in range(120):
        x, y = rng.randrange(w), rng.randrange(h)
        length, width = rng.randrange(4, 24), rng.randrange(2, 6)
        colour = tuple(max(0, min(255, c + rng.randrange(-70, 70))) for c in base)
        draw.line([(x, y), (x + length, y + rng.randrange(-6, 6))], fill=colour, width=width)
    return img


def ensure_demo_dataset(root: Path | None = None) -> Path:
    """Create the demo under ``root`` if missing; returns the parent `img` folder."""
    root = root or default_demo_root()
    folder = root / "img" / DEMO_FOLDER
    if folder.is_dir() and len(list(folder.glob("*.png"))) == len(_SIZES):
        return folder.parent
    folder.mkdir(parents=True, exist_ok=True)
    for i, (size, subject) in enumerate(zip(_SIZES, _SUBJECTS, strict=True)):
        image_path = folder / f"painting_{i:02d}.png"
        if not image_path.exists():
            _painting(1000 + i, size).save(image_path)
        caption = folder / f"painting_{i:02d}.txt"
        if not caption.exists():
            caption.write_text(
                f"zengxin oilpaint, {subject}, oil painting, brush strokes\n", encoding="utf-8"
            )
    return folder.parent
