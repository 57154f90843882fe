"""Multi-line blocks the parser collects into one event each.

The training banner (``running training / 学習開始`` and its indented lines), the settings of one
sample prompt (one record per key), a Python warning with its source line, and torch's
``ChildFailedError`` report (``Root Cause (first observed failure):`` …). The parser offers each
following message to the open block; ``consume`` answers :data:`REJECT` (not mine: the block
is complete and the message is parsed on its own), :data:`TAKE` or :data:`DONE` (mine, and the
block is complete). ``event(seq, t)`` then builds the block's one event.

:class:`Traceback` collects a Python traceback, plain or in rich's box, from the raw lines (it
sees them before any log-record parsing); it may also answer :data:`PASS` (not mine, but I stay
open: other output interleaved inside a rich box).
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Final

from .failures import classify_exception, describe_exit_status
from .fields import to_float, to_int
from .patterns import (
    BANNER_FIELDS,
    BANNER_LINE_RE,
    BANNER_START,
    EXCEPTION_LINE_RE,
    PYTHON_WARNING_SOURCE_RE,
    RICH_TRACEBACK_TOP,
    SAMPLE_KEY_RE,
    TRACEBACK_START,
)
from .records import cell_len
from .types import (
    ChildError,
    ChildWarning,
    LogLine,
    SamplePrompt,
    TrainingPlan,
    trusted_constructor,
)

# Built from values computed here: no validation (types.trusted_constructor says why).
_ChildError = trusted_constructor(ChildError)
_ChildWarning = trusted_constructor(ChildWarning)
_LogLine = trusted_constructor(LogLine)
_SamplePrompt = trusted_constructor(SamplePrompt)
_TrainingPlan = trusted_constructor(TrainingPlan)

__all__ = [
    "DONE",
    "PASS",
    "REJECT",
    "TAKE",
    "Banner",
    "Block",
    "ChildFailed",
    "Prompt",
    "PyWarning",
    "Traceback",
]

REJECT: Final = 0
TAKE: Final = 1
DONE: Final = 2
PASS: Final = 3

WARNING_BLOCK_MAX_LINES: Final = 64


class Banner:
    """``running training / 学習開始`` and its indented lines."""

    __slots__ = ("lines", "plan", "values")

    def __init__(self, first: str) -> None:
        self.lines = [first]
        self.values: dict[str, str] = {}
        self.plan: TrainingPlan | None = None

    def consume(self, message: str, level: str | None) -> int:
        if level is None and message == BANNER_START and len(self.lines) == 1:
            self.lines.append(message)  # a second process printing the same banner
            return TAKE
        if level is not None or not message.startswith("  "):
            return REJECT
        m = BANNER_LINE_RE.match(message)
        if m is None:
            return REJECT
        self.lines.append(message)
        field = BANNER_FIELDS.get(m["label"].strip())
        if field is not None:
            self.values[field] = m["value"]
        return DONE if field == "total_steps" else TAKE

    def event(self, seq: int, t: float) -> TrainingPlan:
        """The :class:`TrainingPlan` the banner shows (also kept as :attr:`plan`)."""
        v = self.values

        def num(key: str) -> int | None:
            return int(v[key]) if key in v else None

        sizes = v.get("batch_size_per_device")
        self.plan = _TrainingPlan(
            seq=seq,
            t=t,
            text="\n".join(self.lines),
            train_images_with_repeats=num("train_images_with_repeats"),
            validation_images_with_repeats=num("validation_images_with_repeats"),
            reg_images=num("reg_images"),
            batches_per_epoch=num("batches_per_epoch"),
            epochs=num("epochs"),
            batch_size_per_device=[int(s) for s in sizes.split(",")] if sizes else None,
            gradient_accumulation_steps=num("gradient_accumulation_steps"),
            total_steps=num("total_steps"),
        )
        return self.plan


class Prompt:
    """The settings sd-scripts logs for one sample prompt, one record per key."""

    __slots__ = ("epoch", "index", "lines", "step", "values")

    def __init__(self, first: str, prompt: str, index: int, step: int | None, epoch: int | None):
        self.lines = [first]
        self.values = {"prompt": prompt}
        self.index = index
        self.step = step
        self.epoch = epoch

    def consume(self, message: str, level: str | None) -> int:
        m = SAMPLE_KEY_RE.match(message)
        if m is None or m["key"] in self.values:
            return REJECT
        self.values[m["key"]] = m["value"]
        self.lines.append(message)
        return TAKE

    def event(self, seq: int, t: float) -> SamplePrompt:
        """The :class:`SamplePrompt` with the settings collected."""
        v = self.values
        steps = v.get("sample_steps")
        scale = v.get("scale")
        seed = v.get("seed")
        width = v.get("width")
        height = v.get("height")
        return _SamplePrompt(
            seq=seq,
            t=t,
            text="\n".join(self.lines),
            prompt=v["prompt"],
            negative_prompt=v.get("negative_prompt"),
            width=to_int(width) if width is not None else None,
            height=to_int(height) if height is not None else None,
            sample_steps=to_int(steps) if steps is not None else None,
            scale=to_float(scale) if scale is not None else None,
            sampler=v.get("sample_sampler"),
            seed=to_int(seed) if seed is not None else None,
            prompt_index=self.index,
            step=self.step,
            epoch=self.epoch,
        )


class PyWarning:
    """``file.py:12: XWarning: message`` up to its indented source line."""

    __slots__ = ("lines", "source")

    def __init__(self, first: str, source: str) -> None:
        self.lines = [first]
        self.source = source

    def consume(self, message: str, level: str | None) -> int:
        if level is not None or len(self.lines) >= WARNING_BLOCK_MAX_LINES:
            return REJECT
        self.lines.append(message)
        return DONE if PYTHON_WARNING_SOURCE_RE.match(message) else TAKE

    def event(self, seq: int, t: float) -> ChildWarning:
        """The :class:`ChildWarning` holding the whole block."""
        return _ChildWarning(seq=seq, t=t, message="\n".join(self.lines), source=self.source)


# torch.distributed.elastic's report (CHILD_FAILED_RE in patterns.py says where it comes from).
_BORDER_RE: Final = re.compile(r"=+$")
_SECTION_RE: Final = re.compile(r"-+$|Failures:$|\[\d+\]:$|  <NO_OTHER_FAILURES>$")
_TITLE_RE: Final = re.compile(r"(?P<name>\S+) FAILED$")
_FIELD_RE: Final = re.compile(
    r"  (?P<key>time|host|rank|exitcode|error_file|traceback)\s*: ?(?P<value>.*)$"
)
_RANK_RE: Final = re.compile(r"(?P<rank>\d+)(?: \(local_rank: (?P<local>\d+)\))?")
_EXITCODE_RE: Final = re.compile(r"(?P<code>-?\d+)(?: \(pid: (?P<pid>\d+)\))?")
ROOT_CAUSE: Final = "Root Cause (first observed failure):"


class ChildFailed:
    """torch's ``ChildFailedError`` report, up to the ``====`` border after its root cause.

    Starts at the ``…ChildFailedError:`` line (after its traceback, or bare), at the
    ``<script> FAILED`` title, or at ``Root Cause (first observed failure):`` (a pasted tail).
    """

    __slots__ = ("embedded", "exception", "fields", "lines", "section", "title")

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        first = lines[-1].strip()
        title = _TITLE_RE.match(first)
        self.title: str | None = title["name"] if title else None
        self.exception = "" if title or first == ROOT_CAUSE else first
        self.section = "root" if first == ROOT_CAUSE else ""
        self.fields: dict[str, str] = {}
        self.embedded: str | None = None  # the root cause's own exception line, when recorded

    @staticmethod
    def starts(message: str) -> bool:
        """Whether a line without the ``ChildFailedError`` line before it may start a report."""
        return message == ROOT_CAUSE or _TITLE_RE.match(message) is not None

    def consume(self, message: str, level: str | None) -> int:
        if level is not None:
            return REJECT
        if _BORDER_RE.match(message):
            self.lines.append(message)
            return DONE if self.section == "root" else TAKE
        if message.startswith(" "):
            if self.section == "root":
                self._root_row(message)
        elif message == ROOT_CAUSE:
            self.section = "root"
        elif _SECTION_RE.match(message) is None:
            if not message.endswith(" FAILED") or self.title is not None:
                return REJECT
            self.title = message[: -len(" FAILED")]  # the entry point (a path may hold spaces)
        self.lines.append(message)
        return TAKE

    def _root_row(self, row: str) -> None:
        m = _FIELD_RE.match(row)
        if m is not None:
            self.fields.setdefault(m["key"], m["value"].strip())
        elif row.startswith("  ") and not row.startswith("   "):
            # the recorded traceback (error_file) is indented 2 more; its exception line is not
            if EXCEPTION_LINE_RE.match(row.strip()) is not None:
                self.embedded = row.strip()

    def event(self, seq: int, t: float) -> ChildError | LogLine:
        """One ``ChildError``: classified by the root cause's exception when it was recorded.

        A ``<script> FAILED`` line that no root cause followed is a ``LogLine`` of its lines.
        """
        if not self.exception and self.section != "root":
            return _LogLine(seq=seq, t=t, text="\n".join(self.lines), level=None, source=None)
        f = self.fields
        rank = _RANK_RE.match(f.get("rank", ""))
        code = _EXITCODE_RE.match(f.get("exitcode", ""))
        head = self.exception or "ChildFailedError:"
        parts = [f"{self.title} FAILED" if self.title else "a worker FAILED"]
        if rank is not None:
            local = f" (local_rank: {rank['local']})" if rank["local"] else ""
            parts.append(f"root cause rank {rank['rank']}{local}")
        if code is not None:
            parts.append(f"exitcode {code['code']}")
        message = f"{head} {', '.join(parts)}"
        category, remedy = "launcher_failed", None
        if self.embedded is not None:
            message = f"{message}: {self.embedded}"
            found, found_remedy = classify_exception(self.embedded)
            if found != "exception":
                category, remedy = found, found_remedy
        if category == "launcher_failed":
            who = f"rank {rank['rank']}" if rank is not None else "a worker"
            status = describe_exit_status(int(code["code"])) if code is not None else "an error"
            remedy = (
                f"torchrun / accelerate report that {who} exited with {status}. That rank's own "
                "error, if it printed one, is earlier in the log (error_file <N/A>: the worker "
                "recorded none)."
            )
        return _ChildError(
            seq=seq,
            t=t,
            message=message,
            category=category,
            remedy=remedy,
            traceback=self.lines,
        )


Block = Banner | Prompt | PyWarning | ChildFailed

# A rich box's state: frames; closed (the exception follows); the exception's wrapped rows.
_FRAMES, _CLOSED, _EXCEPTION = 0, 1, 2
_RICH_EXCEPTION_RE: Final = re.compile(r"[A-Za-z_][\w.]*: ")


class Traceback:
    """A Python traceback: header, frames, exception line. Plain, or rich's box.

    Plain: indented lines are frames; the first unindented line is the exception line
    (a second ``Traceback …`` header, from a second process printing at the same time, is kept).
    Rich: ``│`` rows up to ``╰``, then the exception, word-wrapped at the box's width (a row
    continues the exception when its first word would not have fitted on the row before).
    A box followed by no exception line takes the last exception-shaped row inside it.
    """

    __slots__ = ("boxed", "exc_rows", "lines", "state", "width")

    def __init__(self, first: str) -> None:
        self.lines = [first]
        self.boxed = first != TRACEBACK_START
        self.width = cell_len(first)
        self.exc_rows: list[str] = []
        self.state = _FRAMES

    def feed(self, line: str) -> int:
        """Offer the next line (right-stripped, not blank); see the module docstring."""
        first = line[0]
        if not self.boxed:
            # another header inside: a second process's traceback, interleaved line by line
            if first in " \t" or line == TRACEBACK_START:
                self.lines.append(line)
                return TAKE
            self.lines.append(line)
            return DONE
        if self.state == _FRAMES:
            if first == "│" or (first == "╭" and len(self.lines) == 1):
                if first == "╭" and RICH_TRACEBACK_TOP.match(line) is None:
                    return PASS
                self.lines.append(line)
                return TAKE
            if first == "╰":
                self.state = _CLOSED
                self.width = cell_len(line)
                self.lines.append(line)
                return TAKE
            return PASS
        if self.state == _CLOSED:
            if first == "╰":
                self.lines.append(line)  # a second process's box closing
                return TAKE
            if EXCEPTION_LINE_RE.match(line) is None and _RICH_EXCEPTION_RE.match(line) is None:
                return REJECT
            self.state = _EXCEPTION
        else:
            prev = cell_len(self.exc_rows[-1].rstrip())
            if first in "╭│╰" or prev + 1 + cell_len(line.split(" ", 1)[0]) <= self.width:
                return REJECT
        self.exc_rows.append(line)
        self.lines.append(line)
        return TAKE

    def exception(self) -> str:
        """The exception line (a rich one with its wrapped rows joined)."""
        if not self.boxed:
            return self.lines[-1].strip()
        if self.exc_rows:
            rows = [row.rstrip() for row in self.exc_rows]
            text = rows[0]
            for prev, row in pairwise(rows):
                # a row as wide as the box is a word rich folded: no space was lost there
                text += ("" if cell_len(prev) >= self.width else " ") + row
            return text
        inner = [row.strip().strip("│").strip() for row in self.lines[1:]]
        inner = [row for row in inner if row and row[0] not in "╭╰"]
        for i in range(len(inner) - 1, -1, -1):
            if EXCEPTION_LINE_RE.match(inner[i]) is not None:
                return " ".join(inner[i:])  # with the rows it wrapped onto inside the box
        return inner[-1] if inner else ""

    @property
    def settled(self) -> bool:
        """A rich box that closed: a log record after it ends it (the exception is complete)."""
        return self.boxed and self.state != _FRAMES
