"""One atomic file writer: a reader sees the old file or the new one, never half of either.

The bytes go to a temporary file in the target's folder (same file system, so the rename is
atomic), are flushed to disk, and the temporary file is renamed over the target. On any failure
(a full disk, an interrupt) the temporary file is removed and the target is untouched. A file
that already exists keeps its permission bits; a new one gets the usual ones (umask applies).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

__all__ = ["write_atomic"]


def _open_temp(target: Path) -> tuple[int, Path]:
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")  # pragma: no cover


def write_atomic(path: Path | str, data: str | bytes, *, mkdir: bool = False) -> Path:
    """Replace ``path`` with ``data`` (text is written as UTF-8, line endings as given).

    Args:
        path: The file to write.
        data: Its new content.
        mkdir: Create missing parent folders first.

    Returns:
        The file's path.
    """
    target = Path(path)
    if mkdir:
        target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = _open_temp(target)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
