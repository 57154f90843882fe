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
  source line, torch's ``ChildFailedError`` report (blocks.py) and a traceback (plain or rich's
  box) are collected and emitted as one event each.
* **Other versions and wrappers**: see docs/events.md, "Output of other versions and wrappers"
  (wrapper prefixes, other record layouts, 2023 builds, pasted tails, multi-GPU repeats).

What is folded (not emitted): a tqdm redraw that repeats the previous state of the same bar -
for the ``steps`` bar the same step, total and ``avr_loss`` (a redraw that only updates the rate
or times, such as the one tqdm prints when the bar closes, is folded); for other bars the same
description, position and total; a ``steps`` draw behind the furthest step (a second process).
Blank lines are skipped. Every other non-blank line ends up in exactly one event: in its ``text``
(``message`` and ``traceback`` for ``ChildWarning`` and ``ChildError``), or in a ``LogLine``.

Callers reading bytes decode them incrementally, e.g. with :class:`~.logs.Decoder`
(``codecs.getincrementaldecoder("utf-8")(errors="replace")``), so that a chunk boundary inside a
multi-byte character does not corrupt it; :func:`~.logs.parse_bytes_chunks` does both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from .blocks import DONE, PASS, TAKE, Banner, Block, ChildFailed, Prompt, PyWarning, Traceback
from .failures import GENERIC_REMEDIES, classify_known, classify_message, classify_traceback
from .fields import (
    bar_event,
    checkpoint_event,
    parse_postfix,
    state_saved_event,
    step_event,
    to_float,
)
from .patterns import (
    ANSI_RE,
    BANNER_START,
    CHECKPOINT_RE,
    CHILD_FAILED_RE,
    EPOCH_RE,
    EXCEPTION_LINE_RE,
    LYCORIS_RE,
    OVERRIDE_STEPS_RE,
    PHASE_PREFIXES,
    PYTHON_WARNING_RE,
    RICH_TRACEBACK_TOP,
    SAMPLING_RE,
    SAVE_TRAINED_RE,
    STATE_SAVED_RE,
    TQDM_RE,
    TRACEBACK_START,
)
from .records import RichRecord, level_prefix, open_record, wrapper_prefix_len
from .types import (
    ChildError,
    ChildWarning,
    EpochStarted,
    ErrorCategory,
    Event,
    LogLine,
    Phase,
    PhaseChanged,
    SamplingStarted,
    TrainingPlan,
    trusted_constructor,
)

# Events the parser builds from values it computed itself skip validation (types.py says why).
_ChildError = trusted_constructor(ChildError)
_ChildWarning = trusted_constructor(ChildWarning)
_EpochStarted = trusted_constructor(EpochStarted)
_LogLine = trusted_constructor(LogLine)
_PhaseChanged = trusted_constructor(PhaseChanged)
_SamplingStarted = trusted_constructor(SamplingStarted)
_TrainingPlan = trusted_constructor(TrainingPlan)

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
        self._tb: Traceback | None = None
        self._phase: Phase | None = None
        self._plan: TrainingPlan | None = None
        self._epoch: int | None = None
        self._epoch_total: int | None = None
        self._step_key: tuple[int, int, str | None] | None = None
        self._step_high: tuple[int, int] = (-1, -1)  # (total, furthest step) of the steps bar
        self._bar_key: tuple[str | None, int, int | None] | None = None
        self._nan_reported = False
        self._sampling_step: int | None = None
        self._prompt_index = 0
        self._saved: set[str] = set()  # checkpoint paths announced (a second process repeats)
        self._override: tuple[int, int] | None = None  # (epochs, total) of `override steps`
        self._last_error = ""
        self._dispatch: dict[str, Callable[[str, str | None, str | None], bool]] = {
            "saving": self._on_saving,
            "epoch": self._on_epoch,
            "running": self._on_running,
            "generating": self._on_sampling,
            "prompt:": self._on_prompt,
            "save": self._on_save,
            "override": self._on_override,
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
        self._end_traceback()
        self._close_block()  # a ChildFailedError traceback opens the report's block
        if self._plan is None and self._override is not None:
            # No banner: older builds printed the total only as `override steps` (no own text).
            epochs, total = self._override
            self._plan = _TrainingPlan(
                seq=self._next(), t=self._t, text=None, epochs=epochs, total_steps=total
            )
            self._push(self._plan)
        self._closed = True
        return out

    # --- segments -----------------------------------------------------------------------------

    def _eager_bar(self) -> None:
        buf = self._buf
        if "%|" not in buf and "it [" not in buf and ("% " not in buf or "<" not in buf):
            return
        m = TQDM_RE.match(buf, wrapper_prefix_len(buf))
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
        if "%|" in seg or "it [" in seg or ("% " in seg and "<" in seg):
            m = TQDM_RE.match(seg)
            if m is None and (cut := wrapper_prefix_len(seg)):
                m = TQDM_RE.match(seg, cut)
            if m is not None:
                self._bar(m)
                rest = seg[m.end() :]
                if rest.strip():
                    self._line(rest)
                return
        first = seg[0]
        if first == "[" or (" | " in seg and first.isalnum()):
            seg = seg[wrapper_prefix_len(seg) :]
            if not seg:
                return
        self._line(seg)

    def _line(self, line: str) -> None:
        rich = self._rich
        if rich is not None:
            if line.startswith(rich.indent) and (
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
        if first in " DIWEC" or first.isdigit():
            record = open_record(line)
            if record is not None:
                if self._tb is not None and self._tb.settled:
                    self._end_traceback()
                self._rich = record
                return
            if first != " " and first not in "DIWEC":
                ly = LYCORIS_RE.match(line)
                if ly is not None:
                    self._message(ly["message"].rstrip(), ly["level"], ly["source"])
                    return
        line = line.rstrip()
        tb = self._tb
        if tb is not None:
            verdict = tb.feed(line)
            if verdict == TAKE:
                return
            if verdict != PASS:
                self._tb = None
                self._error_from_traceback(tb)
                if verdict == DONE:
                    return
        if self._tb is None and (
            line == TRACEBACK_START or (first == "╭" and RICH_TRACEBACK_TOP.match(line))
        ):
            self._close_block()
            self._tb = Traceback(line)
            return
        plain = level_prefix(line) if first in "DIWEC" else None
        if plain is not None:
            self._message(plain[2], plain[0], plain[1])
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
                elif "Error" in message or "FAILED" in message or "Root" in message:
                    # torch's failure report or an exception line without their traceback
                    if CHILD_FAILED_RE.match(message) or ChildFailed.starts(message):
                        self._block = ChildFailed([message])
                        return
                    if EXCEPTION_LINE_RE.match(message) and message != self._last_error:
                        found = classify_known(message)  # (the same again: a second process)
            elif level == "WARNING":
                self._push(
                    _ChildWarning(seq=self._next(), t=self._t, message=message, source=source)
                )
                return
            elif level == "ERROR" or level == "CRITICAL":
                found = classify_known(message) or ("logged_error", None)
            if found is None:
                seq = self._seq
                self._seq = seq + 1
                self._out.append(
                    _LogLine(seq=seq, t=self._t, text=message, level=level, source=source)
                )
                return
        self._error(message, *found, source=source)

    def _error(
        self,
        message: str,
        category: ErrorCategory,
        remedy: str | None,
        *,
        source: str | None = None,
        traceback: list[str] | None = None,
    ) -> None:
        self._last_error = message
        self._push(
            _ChildError(
                seq=self._next(),
                t=self._t,
                message=message,
                category=category,
                remedy=remedy,
                traceback=traceback or [],
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
        return self._saved_file(message, m["path"])

    def _saved_file(self, message: str, path: str) -> bool:
        if path in self._saved:
            return False  # a second process announcing the same file: a log line
        self._saved.add(path)
        self._set_phase(Phase.SAVING)
        self._push(checkpoint_event(self._next(), self._t, message, path))
        return True

    def _on_save(self, message: str, level: str | None, source: str | None) -> bool:
        m = STATE_SAVED_RE.match(message)
        if m is None:
            trained = SAVE_TRAINED_RE.match(message)
            return trained is not None and self._saved_file(message, trained["path"])
        self._push(state_saved_event(self._next(), self._t, message, m))
        return True

    def _on_override(self, message: str, level: str | None, source: str | None) -> bool:
        m = OVERRIDE_STEPS_RE.match(message)
        if m is not None:
            self._override = (int(m["epochs"]), int(m["total"]))
        return False  # the message itself still becomes a LogLine

    def _on_epoch(self, message: str, level: str | None, source: str | None) -> bool:
        m = EPOCH_RE.match(message)
        if m is None:
            return False
        epoch, total = int(m["epoch"]), int(m["total"])
        if (epoch, total) == (self._epoch, self._epoch_total):
            return False  # a second process printing the same epoch: a log line
        self._epoch, self._epoch_total = epoch, total
        self._set_phase(Phase.TRAINING)
        self._push(
            _EpochStarted(
                seq=self._next(),
                t=self._t,
                text=message,
                epoch=epoch,
                total_epochs=total,
            )
        )
        return True

    def _on_running(self, message: str, level: str | None, source: str | None) -> bool:
        if message != BANNER_START:
            return False
        # a new banner starts a new run: what a second process repeats is judged within it
        self._saved.clear()
        self._step_high, self._step_key, self._epoch_total = (-1, -1), None, None
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

    def _end_traceback(self) -> None:
        tb = self._tb
        if tb is not None:
            self._tb = None
            self._error_from_traceback(tb)

    def _error_from_traceback(self, tb: Traceback) -> None:
        last = tb.exception()
        if CHILD_FAILED_RE.match(last):
            self._close_block()
            self._block = ChildFailed(tb.lines)  # the report follows: rank, exitcode, cause
            return
        self._error(last, *classify_traceback(last, tb.lines), traceback=tb.lines)

    # --- tqdm ---------------------------------------------------------------------------------

    def _bar(self, m: re.Match[str]) -> None:
        if self._rich is not None:
            self._flush_rich()
        if self._block is not None:
            self._close_block()
        desc = m["desc"]
        total_s = m["total"]
        total = int(total_s) if total_s is not None else None
        n = int(m["n"] if total_s is not None else m["n_only"])
        if desc == "steps" and total is not None:
            self._step(m, n, total)
            return
        key = (desc, n, total)
        if key == self._bar_key:
            return
        self._bar_key = key
        self._push(bar_event(m, self._next(), self._t, self._phase))

    def _step(self, m: re.Match[str], n: int, total: int) -> None:
        self._bar_key = None
        high_total, high = self._step_high
        if total == high_total and n < high:
            return  # behind the furthest step: a second process's bar (multi-GPU)
        self._step_high = (total, n)
        postfix = parse_postfix(m["postfix"])
        key_name = "avr_loss" if "avr_loss" in postfix else "loss"
        loss_text = postfix.pop(key_name, None)
        key = (n, total, loss_text)
        if key == self._step_key:
            return  # a redraw of the same state (rate/time only)
        self._step_key = key
        self._set_phase(Phase.TRAINING)
        loss = to_float(loss_text) if loss_text is not None else None
        self._push(step_event(m, self._next(), self._t, postfix, loss, self._epoch, self._plan))
        if loss is not None and math.isnan(loss) and not self._nan_reported:
            self._nan_reported = True
            message = f"{key_name} is nan at step {n}/{total}"
            self._error(message, "nan_loss", GENERIC_REMEDIES["nan_loss"])

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
