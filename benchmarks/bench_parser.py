"""Throughput of the sd-scripts log parser on a ~200k-line log built from the real captures.

Run: ``python benchmarks/bench_parser.py [--lines N] [--repeat R]``.

The log is every capture in ``tests/fixtures/sd-scripts/sd-scripts-logs/*/combined`` repeated until
it has N physical lines (``\\n``). Three timings, best of R:

* ``baseline``: read the file and split it into lines (``read_bytes().decode().splitlines()``;
  also shown: iterating the file line by line, ``for line in open(...)``).
* ``parser``: what a live run costs: read in 64 KiB chunks, decode incrementally, ``feed`` each
  chunk to ``LogParser``, ``close``; events are built (pydantic models, through
  ``trusted_constructor``: no validation) but not serialised.
* ``parser+jsonl``: the same, plus ``model_dump_json`` for every event (what ``events.jsonl``
  costs).

Also shown: ``events alone``, the cost of building the same pydantic events from ready-made
field values (no parsing at all), validated and ``trusted`` (as the parser builds them), and
``floor``: reading, splitting at ``\r``/``\n`` and one empty Python call per segment, plus the
trusted events. That is what any pure-Python parser emitting these typed events pays before it
looks at a single character.

Target: parser / baseline <= 4.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kohya_orchestrator.events import Decoder, LogParser  # noqa: E402
from kohya_orchestrator.events.types import trusted_constructor  # noqa: E402

LOGS = REPO / "tests" / "fixtures" / "sd-scripts" / "sd-scripts-logs"
CHUNK = 1 << 16
TARGET_RATIO = 4.0


def build_log(lines: int) -> bytes:
    """Concatenate the real captures until the text has ``lines`` newlines."""
    captures = [p / "combined" for p in sorted(LOGS.iterdir()) if (p / "combined").is_file()]
    if not captures:
        raise SystemExit(f"no captures under {LOGS}")
    blobs = [p.read_bytes() for p in captures]
    out: list[bytes] = []
    count = 0
    while count < lines:
        for blob in blobs:
            out.append(blob)
            count += blob.count(b"\n")
    return b"".join(out)


def baseline(path: Path) -> int:
    return len(path.read_bytes().decode("utf-8", "replace").splitlines())


def iterate_lines(path: Path) -> int:
    with path.open(encoding="utf-8", errors="replace") as f:
        return sum(1 for _ in f)


def collect(path: Path) -> list[Any]:
    decoder = Decoder()
    parser = LogParser()
    events: list[Any] = []
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            events += parser.feed(decoder.decode(chunk))
    return events + parser.feed(decoder.decode(b"", final=True)) + parser.close()


def _look(segment: str) -> None:
    """The least a parser does with a segment: one Python call."""


def visit_segments(path: Path) -> int:
    """Read, decode, split at \\r and \\n, and make one Python call per segment."""
    text = path.read_bytes().decode("utf-8", "replace")
    segments = text.replace("\r", "\n").split("\n")
    look = _look
    for segment in segments:
        look(segment)
    return len(segments)


def rebuild(fields: list[tuple[Callable[..., Any], dict[str, Any]]]) -> int:
    for make, values in fields:
        make(**values)
    return len(fields)


def parse(path: Path, serialise: bool = False) -> int:
    decoder = Decoder()
    parser = LogParser()
    n = 0
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            events = parser.feed(decoder.decode(chunk))
            n += len(events)
            if serialise:
                size += sum(len(e.model_dump_json()) for e in events)
    events = parser.feed(decoder.decode(b"", final=True)) + parser.close()
    if serialise:
        size += sum(len(e.model_dump_json()) for e in events)
    return n + len(events)


def best_of(repeat: int, fn: Callable[[], int]) -> tuple[float, int]:
    best = float("inf")
    result = 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200_000, help="physical lines in the log")
    ap.add_argument("--repeat", type=int, default=3, help="timings per variant (best is kept)")
    args = ap.parse_args(argv)

    data = build_log(args.lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "console.log"
        path.write_bytes(data)
        newlines = data.count(b"\n")
        t_base, n_lines = best_of(args.repeat, lambda: baseline(path))
        t_parse, n_events = best_of(args.repeat, lambda: parse(path))
        t_json, _ = best_of(args.repeat, lambda: parse(path, serialise=True))
        t_iter, _ = best_of(args.repeat, lambda: iterate_lines(path))
        events = collect(path)
        validated = [(type(e), dict(e)) for e in events]
        makers = {cls: trusted_constructor(cls) for cls, _ in validated}
        trusted = [(makers[cls], values) for cls, values in validated]
        t_events, _ = best_of(args.repeat, lambda: rebuild(validated))
        t_trusted, _ = best_of(args.repeat, lambda: rebuild(trusted))
        t_visit, _ = best_of(args.repeat, lambda: visit_segments(path))

    mb = len(data) / 1e6
    print(f"log:          {newlines} lines, {n_lines} with \\r redraws split off, {mb:.1f} MB")
    print(f"events:       {n_events}")
    print(f"baseline:     {t_base * 1e3:8.1f} ms  ({n_lines / t_base / 1e6:.2f} M lines/s)")
    print(f"for-line:     {t_iter * 1e3:8.1f} ms  ratio {t_iter / t_base:.1f}x")
    print(
        f"events alone: {t_events * 1e3:8.1f} ms  ({t_events / n_events * 1e6:.2f} us/event)  "
        f"ratio {t_events / t_base:.1f}x  (building validated events, no parsing)"
    )
    print(
        f"trusted:      {t_trusted * 1e3:8.1f} ms  ({t_trusted / n_events * 1e6:.2f} us/event)  "
        f"ratio {t_trusted / t_base:.1f}x  (the same without validation, as the parser does)"
    )
    floor = t_visit + t_trusted
    print(
        f"floor:        {floor * 1e3:8.1f} ms  ratio {floor / t_base:.1f}x  (read, split, one call "
        f"per segment: {t_visit * 1e3:.1f} ms; plus building the events: no parsing at all)"
    )
    for label, t in (("parser", t_parse), ("parser+jsonl", t_json)):
        print(
            f"{label + ':':<13} {t * 1e3:8.1f} ms  ({n_lines / t / 1e3:.0f} k lines/s, "
            f"{mb / t:.1f} MB/s, {t / n_events * 1e6:.2f} us/event)  ratio {t / t_base:.1f}x"
        )
    ratio = t_parse / t_base
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"target:       parser/baseline <= {TARGET_RATIO:g}x: {verdict} ({ratio:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
