"""Event sinks: every consumer (JSONL file, callbacks, rich progress) reads the same typed events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .events import Event

__all__ = ["CallbackSink", "EventSink", "SinkError"]


@runtime_checkable
class EventSink(Protocol):
    """Anything with ``handle(event)``; ``close()`` is called once when the run ends."""

    def handle(self, event: Event) -> None:
        """Consume one event."""

    def close(self) -> None:
        """The run has ended; flush and release resources."""


class SinkError(Exception):
    """A sink raised while handling an event. Recorded on the run, never raised into the child."""


class CallbackSink:
    """Calls a function with every event."""

    def __init__(self, fn: Callable[[Event], object]) -> None:
        """Wrap ``fn``."""
        self._fn = fn

    def handle(self, event: Event) -> None:
        """Call the function."""
        self._fn(event)

    def close(self) -> None:
        """Nothing to release."""
