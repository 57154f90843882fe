"""The file names sd-scripts gives sample images."""

from __future__ import annotations

from .patterns import SAMPLE_FILENAME_RE

__all__ = ["parse_sample_filename"]


def parse_sample_filename(name: str) -> tuple[int | None, int | None, int | None]:
    """Read epoch, step and prompt index from the name of a sample image sd-scripts wrote.

    sd-scripts names samples ``[<output_name>_]<e000001|000010>_<prompt:02d>_<YYYYmmddHHMMSS>
    [_<seed>].png``: ``e`` + epoch when sampling per epoch, the step otherwise.

    Args:
        name: File name or path.

    Returns:
        ``(epoch, step, prompt_index)``; all None when the name does not follow the pattern.

    Example:
        >>> parse_sample_filename("style_e000001_00_20261124215422_1.png")
        (1, None, 0)
        >>> parse_sample_filename("style_000010_02_20261124215422.png")
        (None, 10, 2)
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    m = SAMPLE_FILENAME_RE.search(base)
    if m is None:
        return None, None, None
    epoch = m["epoch"]
    step = m["step"]
    return (
        int(epoch) if epoch is not None else None,
        int(step) if step is not None else None,
        int(m["index"]),
    )
