"""Shared fixtures of the jobs tests: captioned paintings in kohya folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

MakeImages = Callable[..., Path]


def make_images(folder: Path, count: int, size: tuple[int, int] = (64, 64)) -> Path:
    """``count`` captioned PNGs in ``folder`` (a ``<repeats>_<name>`` folder); returns its parent."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", size, (i * 5 % 255, 90, 140)).save(folder / f"p{i:03d}.png")
        (folder / f"p{i:03d}.txt").write_text("zengxin oilpaint, a painting\n", encoding="utf-8")
    return folder.parent


@pytest.fixture
def images() -> MakeImages:
    """The :func:`make_images` helper, for tests that lay out their own folders."""
    return make_images


@pytest.fixture
def paintings(tmp_path: Path) -> Path:
    """40 captioned images in img/20_zengxin oilpaint."""
    return make_images(tmp_path / "img" / "20_zengxin oilpaint", 40)
