"""The lab's tiny dataset: DIR/img/2_oilpaint style/ with 4 captioned images (2 PNG, 2 JPEG).

Run with any Python that has Pillow:  python make_dataset.py DIR [SIZE]
Shapes of distinct colours, so a sample or a latent of each is told apart by eye.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

SUBJECTS = [
    ("a red disc on blue", "ellipse", (210, 40, 40), (30, 60, 190)),
    ("a green square on brown", "rectangle", (40, 190, 70), (110, 70, 40)),
    ("a yellow bar on teal", "bar", (235, 215, 50), (20, 120, 120)),
    ("a violet triangle on orange", "triangle", (140, 50, 180), (230, 140, 40)),
]


def draw(size: int, shape: str, fg: tuple[int, int, int], bg: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (size, size), bg)
    pen = ImageDraw.Draw(image)
    lo, hi = size // 5, size - size // 5
    if shape == "ellipse":
        pen.ellipse((lo, lo, hi, hi), fill=fg)
    elif shape == "rectangle":
        pen.rectangle((lo, lo, hi, hi), fill=fg)
    elif shape == "bar":
        pen.rectangle((0, size // 3, size, 2 * size // 3), fill=fg)
    else:
        pen.polygon([(size // 2, lo), (lo, hi), (hi, hi)], fill=fg)
    return image


def main(root: Path, size: int) -> None:
    folder = root / "img" / "2_oilpaint style"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (words, shape, fg, bg) in enumerate(SUBJECTS):
        suffix = ".png" if i % 2 == 0 else ".jpg"
        draw(size, shape, fg, bg).save(folder / f"img{i}{suffix}")
        (folder / f"img{i}.txt").write_text(f"oilpaint style, {words}\n", encoding="utf-8")
    print(f"dataset: {len(SUBJECTS)} images at {size} px in {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 64)
