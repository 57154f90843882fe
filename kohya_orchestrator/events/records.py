"""Rich log records: terminal cell widths, and wrapped rows joined back into one message.

rich prints a log record as ``time LEVEL message path:line`` at the console width; a message wider
than its column continues on rows indented to the message column (29 cells) and padded to the
width. :class:`RichRecord` collects those rows and rebuilds the message (see ``docs/events.md``).
The same layout with another time column (the kohya_ss GUI's records: message column 25, no
path) or none (a wrapper stripped it: column 9) is read by the same class.
:func:`wrapper_prefix_len` finds the prefixes some wrappers put before every line.
"""

from __future__ import annotations

import re
from typing import Final

from .patterns import (
    GUI_HEAD_RE,
    LEVEL_PREFIX_RE,
    RICH_HEAD_RE,
    RICH_MESSAGE_COLUMN,
    WRAPPER_PREFIX_RE,
)

__all__ = [
    "MESSAGE_INDENT",
    "RichRecord",
    "cell_len",
    "level_prefix",
    "open_record",
    "wrapper_prefix_len",
]

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


def wrapper_prefix_len(segment: str) -> int:
    """Length of a known wrapper prefix at the start of ``segment`` (0: none).

    Only the exact shapes of ``patterns.WRAPPER_PREFIX_RE``: ``[08:03:35] [STDERR] ``,
    ``[stderr] ``, ``service-1  | `` (docker compose).
    """
    first = segment[:1]
    if first == "[" or (first.isalnum() and "| " in segment):
        m = WRAPPER_PREFIX_RE.match(segment)
        if m is not None:
            return m.end()
    return 0


class RichRecord:
    """A rich log record whose continuation rows may still arrive."""

    __slots__ = ("chunks", "column", "indent", "last", "level", "msg_width", "source", "width")

    def __init__(
        self,
        line: str,
        level: str,
        *,
        column: int = RICH_MESSAGE_COLUMN,
        has_path: bool = True,
    ) -> None:
        """Start a record at its head row.

        Args:
            line: The head row (time, level, message, path).
            level: The level shown.
            column: Where the message starts (29 for sd-scripts' records).
            has_path: Whether the row ends with rich's ``file.py:123`` column.
        """
        self.level = level
        self.column = column
        self.indent = MESSAGE_INDENT if column == RICH_MESSAGE_COLUMN else " " * column
        self.width = cell_len(line)
        body = line[column:].rstrip()
        cut = body.rfind(" ")
        candidate = body[cut + 1 :]
        name, colon, lineno = candidate.rpartition(":")
        if has_path and colon and name and lineno.isdigit():
            self.source: str | None = candidate
            message = body[:cut].rstrip() if cut >= 0 else ""
            # Columns: message | one space | path (right-aligned, as wide as the path).
            self.msg_width = self.width - column - cell_len(candidate) - 1
        else:
            self.source = None
            message = body
            self.msg_width = self.width - column
        self.chunks = [message]
        self.last = message

    def accepts(self, line: str) -> bool:
        """Whether ``line`` (already known to start with the indent) continues this record."""
        if line.endswith(" "):
            return cell_len(line) == self.width
        return cell_len(line) <= self.width  # a console that strips the padding

    def add(self, line: str) -> None:
        part = line[self.column :].rstrip()
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


def open_record(line: str) -> RichRecord | None:
    """The rich record ``line`` starts, if it is a record's head row.

    sd-scripts' rows (time, level, message, path), the kohya_ss GUI's (``14:06:40-973914 INFO``,
    no path) and rows whose time column a wrapper stripped (``ERROR    message   file.py:12``).
    """
    first = line[0]
    if first == " " or first.isdigit():
        m = RICH_HEAD_RE.match(line)
        if m is not None:
            return RichRecord(line, m["level"])
        if first != " ":
            m = GUI_HEAD_RE.match(line)
            if m is not None:
                return RichRecord(line, m["level"], column=m.end(), has_path=False)
    elif first in "DIWEC":
        m = LEVEL_PREFIX_RE.match(line)
        if m is not None and m["level"] is not None:
            return RichRecord(line, m["level"].rstrip(), column=m.end())
    return None


def level_prefix(line: str) -> tuple[str, str | None, str] | None:
    """``(level, logger, message)`` of a ``LEVEL:logger:message`` / ``ERROR: message`` line."""
    if line[0] in "DIWEC":
        m = LEVEL_PREFIX_RE.match(line)
        if m is not None and m["plain"] is not None:
            return m["plain"], m["logger"], line[m.end() :].rstrip()
    return None
