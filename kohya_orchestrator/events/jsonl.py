"""Events as JSON Lines: the one writer's format and the one reader of a run's ``events.jsonl``.

Every event is one line (``EventAdapter.dump_json``). :func:`load_events_jsonl` reads such text
strictly (a bad line raises); :func:`read_events` reads a run directory's ``events.jsonl``
leniently, skipping a line that does not validate: the runner appends and flushes line by line,
so a crash (or a run still writing) can leave the last line cut short.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .types import Event, EventAdapter

__all__ = ["EVENTS_JSONL", "dump_events_jsonl", "load_events_jsonl", "read_events"]

EVENTS_JSONL = "events.jsonl"
"""The file name of a run directory's events."""


def dump_events_jsonl(events: Iterable[Event]) -> str:
    """Serialise events as JSON Lines (one event per line, trailing newline).

    Args:
        events: Events in stream order.

    Returns:
        The JSONL text; empty string for no events.
    """
    return "".join(ev.model_dump_json() + "\n" for ev in events)


def load_events_jsonl(text: str, *, strict: bool = True) -> list[Event]:
    """Read events written by :func:`dump_events_jsonl` (blank lines are skipped).

    Args:
        text: JSONL text.
        strict: False to skip lines that are not a valid event (a line cut short by a crash)
            instead of raising.

    Returns:
        The events, in file order.

    Raises:
        ValueError: ``strict`` and a line is not a valid event (pydantic's ValidationError).
    """
    if strict:
        return [EventAdapter.validate_json(line) for line in text.splitlines() if line.strip()]
    events: list[Event] = []
    for line in text.splitlines():
        if line.strip():
            try:
                events.append(EventAdapter.validate_json(line))
            except ValueError:
                continue  # a line cut short by a crash
    return events


def read_events(run_dir: Path | str) -> list[Event]:
    """The events of a run directory (for runs that ended, or a snapshot of a running one).

    Args:
        run_dir: The run directory holding ``events.jsonl``.

    Returns:
        Its events in file order; empty when there is no ``events.jsonl``. Lines that are not a
        valid event (a line cut short by a crash) are skipped.
    """
    path = Path(run_dir) / EVENTS_JSONL
    if not path.is_file():
        return []
    # A crash can cut the last line inside a multi-byte character: decode leniently, and that
    # line (no longer valid JSON) is skipped like any other cut line.
    text = path.read_bytes().decode("utf-8", errors="replace")
    return load_events_jsonl(text, strict=False)
