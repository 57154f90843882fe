"""Sample sanity: is a sample image all black, one colour, or unreadable? (Pillow; no torch)

A LoRA (or a VAE in half precision) that produced NaN draws an all-black image: diffusers turns the
NaN pixels into 0 when it converts them (its ``invalid value encountered in cast`` warning comes
right before the file is written). Nothing in sd-scripts says so; these checks do.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ..events import SampleProblem

__all__ = ["BLACK_MAX", "FLAT_SPREAD", "check_sample_image", "is_nan_cast_warning"]

BLACK_MAX = 4
"""An image whose every channel stays at or below this value is black."""

FLAT_SPREAD = 2
"""An image whose every channel varies by at most this much is one colour."""

NAN_CAST_WARNING = "invalid value encountered in cast"
"""numpy's RuntimeWarning when diffusers converts NaN pixels to 8 bits."""


def check_sample_image(path: str | Path) -> tuple[SampleProblem | None, str]:
    """Check one sample image.

    Args:
        path: The image file.

    Returns:
        ``(problem, detail)``: problem is ``"black"``, ``"one_colour"``, ``"unreadable"`` or None
        (it looks like a picture); detail says what was seen (the colour, or the error).
    """
    try:
        with Image.open(path) as image:
            image.load()
            extrema = image.convert("RGB").getextrema()
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow raises these on broken files
        return "unreadable", str(exc) or type(exc).__name__
    lows = [lo for lo, _ in extrema]
    highs = [hi for _, hi in extrema]
    if max(highs) <= BLACK_MAX:
        return "black", "every pixel is black"
    if all(hi - lo <= FLAT_SPREAD for lo, hi in zip(lows, highs, strict=True)):
        colour = "#" + "".join(f"{(lo + hi) // 2:02x}" for lo, hi in zip(lows, highs, strict=True))
        return "one_colour", f"every pixel is {colour}"
    return None, ""


def is_nan_cast_warning(message: str) -> bool:
    """Whether a warning is numpy's NaN-to-integer cast warning (diffusers' image conversion)."""
    return NAN_CAST_WARNING in message
