"""Writing the file a command was told to write (``--out``, ``preset copy``): never over another.

``import-config``, ``import-preset`` and ``preset copy`` all write through :func:`write_new_file`:
an existing file is refused unless ``--force`` is given, and missing parent folders are made.
"""

from __future__ import annotations

from pathlib import Path

from .._fs import write_atomic
from ..errors import ConfigError, Problem

__all__ = ["write_new_file"]


def write_new_file(path: Path, text: str, *, force: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically, creating the folders it needs.

    Args:
        path: The file to write.
        text: Its content.
        force: Replace the file when it exists.

    Returns:
        The file's path.

    Raises:
        ConfigError: The file exists and ``force`` is false; nothing was written.
    """
    if path.exists() and not force:
        raise ConfigError(
            [
                Problem(
                    str(path),
                    "already exists; nothing was written",
                    "choose another path or pass --force",
                )
            ]
        )
    return write_atomic(path, text, mkdir=True)
