"""Rich log records: terminal cell widths, and wrapped rows joined back into one message.

rich prints a log record as ``time LEVEL message path:line`` at the console width; a message wider
than its column continues on rows indented to the message column (29 cells) and padded to the
width. :class:`RichRecord` collects those rows and rebuilds the message (see ``docs/events.md``).
"""

from __future__ import annotations

import re
from typing import Final

from .patterns import RICH_MESSAGE_COLUMN

__all__ = ["MESSAGE_INDENT", "RichRecord", "cell_len"]

MESSAGE_INDENT: Final = " " * RICH_MESSAGE_COLUMN
"""What a continuation row starts with."""


# Characters a terminal draws two cells wide (East Asian Wide/Fullwidth, and emoji), as in the
# width table rich uses; enough to measure sd-scripts' Japanese messages.
_WIDE_RE: Final = re.compile(
    "[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf"
    "\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6"
    "\U0001f300-\U0001f64f\U0001f900-\U0001f9ff\U00020000-\U0002fffd\U00030000-\U0003fffd]"
)


def cell_len(text: str) -> int:
    """Terminal cells taken by ``text`` (CJK wide characters count 2), as rich measures it."""
    if text.isascii():
        return len(text)
    return len(text) + len(_WIDE_RE.findall(text))


def _is_wide(ch: str) -> bool:
    return _WIDE_RE.match(ch) is not None


class RichRecord:
    """A rich log record whose continuation rows may still arrive."""

    __slots__ = ("chunks", "last", "level", "msg_width", "source", "width")

    def __init__(self, line: str, level: str) -> None:
        self.level = level
        self.width = cell_len(line)
        body = line[RICH_MESSAGE_COLUMN:].rstrip()
        cut = body.rfind(" ")
        candidate = body[cut + 1 :]
        name, colon, lineno = candidate.rpartition(":")
        if colon and name and lineno.isdigit():
            self.source: str | None = candidate
            message = body[:cut].rstrip() if cut >= 0 else ""
            # Columns: message | one space | path (right-aligned, as wide as the path).
            self.msg_width = self.width - RICH_MESSAGE_COLUMN - cell_len(candidate) - 1
        else:
            self.source = None
            message = body
            self.msg_width = self.width - RICH_MESSAGE_COLUMN
        self.chunks = [message]
        self.last = message

    def accepts(self, line: str) -> bool:
        """Whether ``line`` (already known to start with 29 spaces) continues this record."""
        if line.endswith(" "):
            return cell_len(line) == self.width
        return cell_len(line) <= self.width  # a console that strips the padding

    def add(self, line: str) -> None:
        part = line[RICH_MESSAGE_COLUMN:].rstrip()
        prev = self.last
        if not part or part[0] == " " or not prev:
            sep = "\n"  # a line break in the message itself (rich keeps its indentation)
        elif " " not in prev.lstrip() and self._folded(prev, part):
            sep = ""  # rich cut a word longer than the column (overflow="fold")
        else:
            sep = " "  # rich wrapped between words and dropped the space
        self.chunks.append(sep)
        self.chunks.append(part)
        self.last = part

    def _folded(self, prev: str, part: str) -> bool:
        # Called for a single-word line (possibly indented): rich folds only such words.
        used = cell_len(prev)
        if used == self.msg_width:
            return True
        # A wide character that did not fit leaves one cell empty.
        return used == self.msg_width - 1 and _is_wide(part[0])

    def message(self) -> str:
        return "".join(self.chunks).rstrip()
