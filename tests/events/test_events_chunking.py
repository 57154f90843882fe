"""Chunking invariance: the same capture gives the same events however it is cut.

Every mode is compared with parsing the whole text at once (``t`` ignored: it says *when* an event
completed, which depends on the cuts).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

import pytest

from kohya_orchestrator.events import (
    LogParser,
    StepProgress,
    parse_bytes_chunks,
    parse_log,
)


def comparable(events: list[Any]) -> list[dict[str, Any]]:
    """Events as JSON-able dicts without ``t`` (which depends on how the text was chunked)."""
    return [e.model_dump(mode="json", exclude={"t"}) for e in events]


def _feed(pieces: Iterator[str] | list[str]) -> list[object]:
    parser = LogParser()
    events: list[object] = []
    for piece in pieces:
        events += parser.feed(piece)
    events += parser.close()
    return events


def _random_pieces(text: str, seed: int, max_size: int) -> Iterator[str]:
    rng = random.Random(seed)
    i = 0
    while i < len(text):
        n = rng.randint(1, max_size)
        yield text[i : i + n]
        i += n


def _control_pieces(text: str) -> Iterator[str]:
    """Cut right before and right after every \\r, \\n and ESC (so \\r, \\n, ESC stand alone)."""
    for piece in re.split(r"([\r\n\x1b])", text):
        if piece:
            yield piece


def _random_bytes(raw: bytes, seed: int, max_size: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    i = 0
    while i < len(raw):
        n = rng.randint(1, max_size)
        yield raw[i : i + n]
        i += n


MODES = [
    "lines",
    "reads",
    "control_chars",
    "random_1_to_7",
    "random_1_to_97",
    "single_chars",
    "bytes_random",
    "bytes_single",
    "crlf",
]


@pytest.mark.parametrize("mode", MODES)
def test_events_do_not_depend_on_chunking(capture: Any, mode: str) -> None:
    cap = capture
    expected = comparable(parse_log(cap.text))
    text = cap.text
    if mode == "lines":
        got = _feed(text.splitlines(keepends=True))
    elif mode == "reads":
        got = _feed([piece for _, piece in cap.reads])
    elif mode == "control_chars":
        got = _feed(_control_pieces(text))
    elif mode == "random_1_to_7":
        got = _feed(_random_pieces(text, seed=7, max_size=7))
    elif mode == "random_1_to_97":
        got = _feed(_random_pieces(text, seed=97, max_size=97))
    elif mode == "single_chars":
        got = _feed(list(text))
    elif mode == "bytes_random":
        # Cuts land inside the 3-byte UTF-8 of the Japanese text and of tqdm's block characters.
        got = parse_bytes_chunks(_random_bytes(cap.raw, seed=3, max_size=5))
    elif mode == "bytes_single":
        got = parse_bytes_chunks(cap.raw[i : i + 1] for i in range(len(cap.raw)))
    else:
        # The same capture with Windows line ends: `\r\n` must read like `\n`.
        got = _feed(_random_pieces(text.replace("\n", "\r\n"), seed=5, max_size=11))
    assert comparable(got) == expected


def test_reads_with_times_match_whole_text(capture: Any) -> None:
    cap = capture
    got = parse_bytes_chunks((t, piece.encode()) for t, piece in cap.reads)
    assert comparable(got) == comparable(parse_log(cap.text))
    times = [e.t for e in got]
    assert times == sorted(times)
    assert [e.seq for e in got] == list(range(len(got)))


def test_a_step_is_reported_when_its_bar_is_drawn_not_at_the_next_redraw(
    load_capture: Any,
) -> None:
    # tqdm writes the `\r` of a redraw before the bar, so a bar's segment only ends when the
    # *next* redraw starts (seconds later). The parser reports it once the bar's `]` arrived.
    text = load_capture("a_lora_accelerate").text
    end = text.index("avr_loss=1.23]") + len("avr_loss=1.23]")
    parser = LogParser()
    events = parser.feed(text[:end])
    last = events[-1]
    assert isinstance(last, StepProgress)
    assert (last.step, last.avr_loss) == (1, 1.23)
    # The rest of the log does not report that state again.
    rest = parser.feed(text[end:]) + parser.close()
    assert not any(isinstance(e, StepProgress) and (e.step, e.avr_loss) == (1, 1.23) for e in rest)


def test_feed_after_close_is_an_error() -> None:
    parser = LogParser()
    assert parser.close() == []
    assert parser.close() == []
    with pytest.raises(ValueError, match="after close"):
        parser.feed("x")


def test_truncated_and_shuffled_captures_never_crash(capture: Any) -> None:
    # A run can die anywhere, and multi-process runs interleave lines: any prefix of a capture,
    # and its lines in any order, must parse (into LogLines at worst) without raising.
    rng = random.Random(capture.name)
    text = capture.text
    for cut in rng.sample(range(len(text)), 40):
        events = parse_log(text[:cut])
        assert [e.seq for e in events] == list(range(len(events)))
    lines = text.splitlines(keepends=True)
    for _ in range(5):
        rng.shuffle(lines)
        parse_log("".join(lines))
    garbage = bytes(rng.randrange(256) for _ in range(4000))
    parse_bytes_chunks([garbage, capture.raw[: len(capture.raw) // 2], garbage])
