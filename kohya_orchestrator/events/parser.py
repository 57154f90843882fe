"""Turn sd-scripts console output into typed events: a pure, incremental state machine.

:class:`LogParser` takes text in arbitrary pieces (``feed``) and returns the events each piece
completed. It never reads a clock, a file or the environment, so the same text gives the same
events however it is chunked (``t`` aside, which the caller supplies).

How the text is cut up:

* **Segments.** The stream is split at ``\\n`` *and* ``\\r``: tqdm redraws a bar by writing
  ``\\r`` + the new bar, so every redraw is a segment of its own. A segment is parsed once its
  terminator arrives, with one exception that keeps progress live: a tqdm bar is parsed as soon
  as its closing ``]`` arrives (tqdm writes the ``\\r`` of a redraw *before* the bar, so waiting for
  the terminator would report every step one redraw late). ANSI escape codes are removed.
* **Glued text.** stdout and stderr share one pipe, so a print or a log record can start right
  after a bar on the same physical line (``…avr_loss=1.09]2026-11-24 21:53:38 INFO …``). The text
  after the bar's ``]`` is parsed as a line of its own.
* **Rich log records** (the default console mode) span several physical lines when the message
  is wrapped at the console width; continuation rows are indented 29 columns and padded to the
  width. They are joined back into one message (with ``\\n`` where the message had a line break,
  nothing where rich folded a long word, a space where it wrapped between words; records.py). A
  record is complete when the next non-continuation segment arrives (or at
  :meth:`LogParser.close`).
* **Blocks.** The training banner, the settings of one sample prompt, a Python warning with its
  source line (blocks.py) and a traceback are collected and emitted as one event each.

What is folded (not emitted): a tqdm redraw that repeats the previous state of the same bar -
for the ``steps`` bar the same step, total and ``avr_loss`` (a redraw that only updates the rate
or times, such as the one tqdm prints when the bar closes, is folded); for other bars the same
description, position and total. Blank lines are skipped. Every other non-blank line ends up in
exactly one event: in its ``text`` (``message`` and ``traceback`` for ``ChildWarning`` and
``ChildError``), or in a ``LogLine``.

Callers reading bytes decode them incrementally, e.g. with :class:`~.logs.Decoder`
(``codecs.getincrementaldecoder("utf-8")(errors="replace")``), so that a chunk boundary inside a
multi-byte character does not corrupt it; :func:`~.logs.parse_bytes_chunks` does both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from .blocks import DONE, TAKE, Banner, Block, Prompt, PyWarning
from .failures import GENERIC_REMEDIES, classify_exception, classify_message
from .fields import parse_postfix, parse_rate, parse_seconds, to_float
from .patterns import (
    ANSI_RE,
    BANNER_START,
    CHECKPOINT_EPOCH_SUFFIX_RE,
    CHECKPOINT_RE,
    CHECKPOINT_STEP_SUFFIX_RE,
    EPOCH_RE,
    LYCORIS_RE,
    PHASE_PREFIXES,
    PYTHON_WARNING_RE,
    RICH_HEAD_RE,
    SAMPLING_RE,
    STATE_SAVED_RE,
    TQDM_RE,
    TRACEBACK_START,
)
from .records import MESSAGE_INDENT, RichRecord
from .types import (
    CheckpointSaved,
    ChildError,
    ChildWarning,
    EpochStarted,
    Event,
    LogLine,
    Phase,
    PhaseChanged,
    ProgressBar,
    SamplingStarted,
    StateSaved,
    StepProgress,
    TrainingPlan,
    trusted_constructor,
)

# Events the parser builds from values it computed itself skip validation (types.py says why).
_CheckpointSaved = trusted_constructor(CheckpointSaved)
_ChildError = trusted_constructor(ChildError)
_ChildWarning = trusted_constructor(ChildWarning)
_EpochStarted = trusted_constructor(EpochStarted)
_LogLine = trusted_constructor(LogLine)
_PhaseChanged = trusted_constructor(PhaseChanged)
_ProgressBar = trusted_constructor(ProgressBar)
_SamplingStarted = trusted_constructor(SamplingStarted)
_StateSaved = trusted_constructor(StateSaved)
_StepProgress = trusted_constructor(StepProgress)

__all__ = ["LogParser"]

# First word of a phase marker -> (marker, phase), e.g. "loading" -> both "loading …" markers.
_PHASES_BY_WORD: dict[str, list[tuple[str, Phase]]] = {}
for _prefix, _phase in PHASE_PREFIXES:
    _PHASES_BY_WORD.setdefault(_prefix.split(" ", 1)[0], []).append((_prefix, _phase))


class LogParser:
    """Incremental parser of ``train_network.py`` console output (stdout and stderr merged).

    Feed it text as it arrives; each call returns the events that text completed. Events get
    ``seq`` numbers from ``start_seq`` on and the ``t`` most recently passed in.

    Example:
        >>> parser = LogParser()
        >>> events = parser.feed("epoch 1/2\\n", t=3.5)
        >>> [e.kind for e in events]
        ['phase_changed', 'epoch_started']
        >>> parser.close()
        []
    """

    def __init__(self, *, start_seq: int = 0) -> None:
        """Create a parser.

        Args:
            start_seq: ``seq`` of the first event this parser emits.
        """
        self._seq = start_seq
        self._t = 0.0
        self._out: list[Event] = []
        self._buf = ""
        self._skip = 0  # leading chars of _buf already parsed as a tqdm bar
        self._closed = False
        self._rich: RichRecord | None = None
        self._block: Block | None = None
        self._tb: list[str] | None = None
        self._phase: Phase | None = None
        self._plan: TrainingPlan | None = None
        self._epoch: int | None = None
        self._step_key: tuple[int, int, str | None] | None = None
        self._bar_key: tuple[str | None, int, int | None] | None = None
        self._nan_reported = False
        self._sampling_step: int | None = None
        self._prompt_index = 0
        self._dispatch: dict[str, Callable[[str, str | None, str | None], bool]] = {
            "saving": self._on_saving,
            "epoch": self._on_epoch,
            "running": self._on_running,
            "generating": self._on_sampling,
            "prompt:": self._on_prompt,
            "save": self._on_state_saved,
        }
        for word in _PHASES_BY_WORD:
            self._dispatch.setdefault(word, self._on_phase_prefix)

    # --- public API ---------------------------------------------------------------------------

    @property
    def phase(self) -> Phase | None:
        """The phase reported last, or None before the first one."""
        return self._phase

    @property
    def plan(self) -> TrainingPlan | None:
        """The training banner, once it was printed."""
        return self._plan

    @property
    def next_seq(self) -> int:
        """``seq`` the next event will get."""
        return self._seq

    def feed(self, text: str, t: float | None = None) -> list[Event]:
        """Parse the next piece of console text.

        Args:
            text: Decoded text, cut anywhere (inside a line, between ``\\r`` and ``\\n``).
            t: Seconds since the run started; kept for later calls when None.

        Returns:
            The events completed by this text, in order.

        Raises:
            ValueError: The parser was closed.
        """
        if self._closed:
            raise ValueError("feed() after close()")
        if t is not None:
            self._t = float(t)  # events are built unvalidated: keep the declared type
        out: list[Event] = []
        self._out = out
        if not text:
            return out
        data = self._buf + text if self._buf else text
        if "\n" in text or "\r" in text:
            # Where a segment ends (\r or \n) does not matter to the parser: split at both.
            segs = data.replace("\r", "\n").split("\n") if "\r" in data else data.split("\n")
            self._buf = segs.pop()
            if self._skip:
                self._rest(segs[0], self._skip)
                self._skip = 0
                segs = segs[1:]
            segment = self._segment
            for seg in segs:
                if seg:
                    segment(seg)
        else:
            self._buf = data
        if not self._skip and "]" in text and self._buf:
            self._eager_bar()
        return out

    def close(self, t: float | None = None) -> list[Event]:
        """Finish: parse what is left (an unterminated line, an open record or traceback).

        Args:
            t: Seconds since the run started; kept from the last call when None.

        Returns:
            The remaining events. Closing twice returns nothing the second time.
        """
        if self._closed:
            return []
        if t is not None:
            self._t = float(t)  # events are built unvalidated: keep the declared type
        out: list[Event] = []
        self._out = out
        if self._skip:
            self._rest(self._buf, self._skip)
        elif self._buf:
            self._segment(self._buf)
        self._buf = ""
        self._skip = 0
        self._flush_rich()
        self._close_block()
        if self._tb is not None:
            lines, self._tb = self._tb, None
            self._error_from_traceback(lines)
        self._closed = True
        return out

    # --- segments -----------------------------------------------------------------------------

    def _eager_bar(self) -> None:
        buf = self._buf
        if "%|" not in buf and "it [" not in buf:
            return
        m = TQDM_RE.match(buf)
        if m is not None and "\x1b" not in buf[: m.end()]:
            self._bar(m)
            self._skip = m.end()

    def _rest(self, seg: str, skip: int) -> None:
        """The part of a segment after a tqdm bar that was parsed early (see _eager_bar)."""
        rest = seg[skip:]
        if "\x1b" in rest:
            rest = ANSI_RE.sub("", rest)
        if rest.strip():
            self._line(rest)

    def _segment(self, seg: str) -> None:
        if "\x1b" in seg:
            seg = ANSI_RE.sub("", seg)
            if not seg:
                return
        if "%|" in seg or "it [" in seg:
            m = TQDM_RE.match(seg)
            if m is not None:
                self._bar(m)
                rest = seg[m.end() :]
                if rest.strip():
                    self._line(rest)
                return
        self._line(seg)

    def _line(self, line: str) -> None:
        rich = self._rich
        if rich is not None:
            if line.startswith(MESSAGE_INDENT) and (
                len(line) == rich.width if line.isascii() else rich.accepts(line)
            ):
                rich.add(line)
                return
            self._rich = None
            self._message(rich.message(), rich.level, rich.source)
        if not line or line.isspace():
            return
        self._bar_key = None
        first = line[0]
        if first == " " or first.isdigit():
            m = RICH_HEAD_RE.match(line)
            if m is not None:
                self._rich = RichRecord(line, m["level"])
                return
            if first != " ":
                ly = LYCORIS_RE.match(line)
                if ly is not None:
                    self._message(ly["message"].rstrip(), ly["level"], ly["source"])
                    return
        line = line.rstrip()
        if self._tb is not None:
            if first in " \t":
                self._tb.append(line)
            else:
                lines, self._tb = self._tb, None
                lines.append(line)
                self._error_from_traceback(lines)
            return
        if line == TRACEBACK_START:
            self._close_block()
            self._tb = [line]
            return
        self._message(line, None, None)

    # --- messages -----------------------------------------------------------------------------

    def _message(self, message: str, level: str | None, source: str | None) -> None:
        block = self._block
        if block is not None:
            verdict = block.consume(message, level)
            if verdict == TAKE:
                return
            self._block = None
            self._finish_block(block)
            if verdict == DONE:
                return
        cut = message.find(" ")
        handler = self._dispatch.get(message[:cut] if cut > 0 else message)
        if handler is not None and handler(message, level, source):
            return
        found = classify_message(message)
        if found is None:
            if level is None:
                if "Warning: " in message:
                    m = PYTHON_WARNING_RE.match(message)
                    if m is not None:
                        filename = m["file"].replace("\\", "/").rsplit("/", 1)[-1]
                        self._block = PyWarning(message, f"{filename}:{m['line']}")
                        return
            elif level == "WARNING":
                self._push(
                    _ChildWarning(seq=self._next(), t=self._t, message=message, source=source)
                )
                return
            elif level == "ERROR" or level == "CRITICAL":
                found = ("logged_error", None)
            if found is None:
                seq = self._seq
                self._seq = seq + 1
                self._out.append(
                    _LogLine(seq=seq, t=self._t, text=message, level=level, source=source)
                )
                return
        category, remedy = found
        self._push(
            _ChildError(
                seq=self._next(),
                t=self._t,
                message=message,
                category=category,
                remedy=remedy,
                source=source,
            )
        )

    def _on_phase_prefix(self, message: str, level: str | None, source: str | None) -> bool:
        for prefix, phase in _PHASES_BY_WORD[message.split(" ", 1)[0]]:
            if message.startswith(prefix):
                self._set_phase(phase)
                break
        return False  # the message itself still becomes a LogLine

    def _on_saving(self, message: str, level: str | None, source: str | None) -> bool:
        m = CHECKPOINT_RE.match(message)
        if m is None:
            return self._on_phase_prefix(message, level, source)
        path = m["path"]
        em = CHECKPOINT_EPOCH_SUFFIX_RE.search(path)
        sm = CHECKPOINT_STEP_SUFFIX_RE.search(path)
        self._set_phase(Phase.SAVING)
        self._push(
            _CheckpointSaved(
                seq=self._next(),
                t=self._t,
                text=message,
                path=path,
                epoch=int(em["epoch"]) if em else None,
                step=int(sm["step"]) if sm else None,
                final=em is None and sm is None,
            )
        )
        return True

    def _on_state_saved(self, message: str, level: str | None, source: str | None) -> bool:
        m = STATE_SAVED_RE.match(message)
        if m is None:
            return False
        self._push(
            _StateSaved(
                seq=self._next(),
                t=self._t,
                text=message,
                path=m["path"],
                epoch=int(m["epoch"]),
                step=int(m["step"]),
            )
        )
        return True

    def _on_epoch(self, message: str, level: str | None, source: str | None) -> bool:
        m = EPOCH_RE.match(message)
        if m is None:
            return False
        self._epoch = int(m["epoch"])
        self._set_phase(Phase.TRAINING)
        self._push(
            _EpochStarted(
                seq=self._next(),
                t=self._t,
                text=message,
                epoch=self._epoch,
                total_epochs=int(m["total"]),
            )
        )
        return True

    def _on_running(self, message: str, level: str | None, source: str | None) -> bool:
        if message != BANNER_START:
            return False
        self._set_phase(Phase.TRAINING)
        self._block = Banner(message)
        return True

    def _on_sampling(self, message: str, level: str | None, source: str | None) -> bool:
        m = SAMPLING_RE.match(message)
        if m is None:
            return False
        self._set_phase(Phase.SAMPLING)
        self._sampling_step = int(m["step"])
        self._prompt_index = 0
        self._push(
            _SamplingStarted(
                seq=self._next(),
                t=self._t,
                text=message,
                step=self._sampling_step,
                epoch=self._epoch,
            )
        )
        return True

    def _on_prompt(self, message: str, level: str | None, source: str | None) -> bool:
        if self._phase is not Phase.SAMPLING:
            return False
        self._block = Prompt(
            message,
            message[len("prompt: ") :],
            self._prompt_index,
            self._sampling_step,
            self._epoch,
        )
        self._prompt_index += 1
        return True

    # --- blocks -------------------------------------------------------------------------------

    def _close_block(self) -> None:
        block = self._block
        if block is not None:
            self._block = None
            self._finish_block(block)

    def _finish_block(self, block: Block) -> None:
        event = block.event(self._next(), self._t)
        if isinstance(block, Banner):
            self._plan = block.plan
        self._push(event)

    def _flush_rich(self) -> None:
        rich = self._rich
        if rich is not None:
            self._rich = None
            self._message(rich.message(), rich.level, rich.source)

    def _error_from_traceback(self, lines: list[str]) -> None:
        last = lines[-1].strip()
        category, remedy = classify_exception(last)
        self._push(
            _ChildError(
                seq=self._next(),
                t=self._t,
                message=last,
                category=category,
                remedy=remedy,
                traceback=lines,
            )
        )

    # --- tqdm ---------------------------------------------------------------------------------

    def _bar(self, m: re.Match[str]) -> None:
        if self._rich is not None:
            self._flush_rich()
        if self._block is not None:
            self._close_block()
        desc = m["desc"]
        total_s = m["total"]
        n = int(m["n"] if total_s is not None else m["n_only"])
        total = int(total_s) if total_s is not None else None
        postfix = parse_postfix(m["postfix"])
        if desc == "steps" and total is not None:
            self._step(m, n, total, postfix)
            return
        key = (desc, n, total)
        if key == self._bar_key:
            return
        self._bar_key = key
        self._push(
            _ProgressBar(
                seq=self._next(),
                t=self._t,
                text=m.group(0),
                desc=desc,
                n=n,
                total=total,
                phase=self._phase,
                rate_it_s=parse_rate(m["rate"], m["rate_unit"]),
                elapsed_s=parse_seconds(m["elapsed"]),
                eta_s=parse_seconds(m["remaining"]),
                postfix=postfix or None,
            )
        )

    def _step(self, m: re.Match[str], n: int, total: int, postfix: dict[str, str]) -> None:
        self._bar_key = None
        loss_text = postfix.pop("avr_loss", None)
        key = (n, total, loss_text)
        if key == self._step_key:
            return  # a redraw of the same state (rate/time only)
        self._step_key = key
        self._set_phase(Phase.TRAINING)
        loss = to_float(loss_text) if loss_text is not None else None
        rate = parse_rate(m["rate"], m["rate_unit"])
        epoch = self._epoch
        plan = self._plan
        per_epoch = plan.steps_per_epoch if plan is not None else None
        epoch_step: int | None = None
        epoch_eta: float | None = None
        if epoch is not None and per_epoch:
            # The bar counts from the resumed step; the plan's total counts from zero.
            offset = 0
            if plan is not None and plan.total_steps is not None and plan.total_steps >= total:
                offset = plan.total_steps - total
            epoch_step = min(max(n + offset - (epoch - 1) * per_epoch, 0), per_epoch)
            if rate:
                epoch_eta = (per_epoch - epoch_step) / rate
        self._push(
            _StepProgress(
                seq=self._next(),
                t=self._t,
                text=m.group(0),
                step=n,
                total_steps=total,
                epoch=epoch,
                avr_loss=loss,
                rate_it_s=rate,
                elapsed_s=parse_seconds(m["elapsed"]),
                eta_s=parse_seconds(m["remaining"]),
                epoch_step=epoch_step,
                epoch_total_steps=per_epoch,
                epoch_eta_s=epoch_eta,
                postfix=postfix or None,
            )
        )
        if loss is not None and math.isnan(loss) and not self._nan_reported:
            self._nan_reported = True
            self._push(
                _ChildError(
                    seq=self._next(),
                    t=self._t,
                    message=f"avr_loss is nan at step {n}/{total}",
                    category="nan_loss",
                    remedy=GENERIC_REMEDIES["nan_loss"],
                )
            )

    # --- emitting -----------------------------------------------------------------------------

    def _set_phase(self, phase: Phase) -> None:
        if phase is not self._phase:
            self._phase = phase
            self._push(_PhaseChanged(seq=self._next(), t=self._t, phase=phase))

    def _next(self) -> int:
        seq = self._seq
        self._seq = seq + 1
        return seq

    def _push(self, event: Event) -> None:
        self._out.append(event)
