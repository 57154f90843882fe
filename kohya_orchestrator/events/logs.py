"""Console logs to events in one call: incremental bytes decoding and whole-log parsing."""

from __future__ import annotations

import codecs
from collections.abc import Iterable

from .parser import LogParser
from .types import Event

__all__ = ["Decoder", "parse_bytes_chunks", "parse_log"]


class Decoder:
    """Incremental bytes-to-text decoding that survives chunk boundaries inside a character.

    Example:
        >>> d = Decoder()
        >>> d.decode("学".encode()[:2]) + d.decode("学".encode()[2:])
        '学'
    """

    def __init__(self, encoding: str = "utf-8") -> None:
        """Create a decoder.

        Args:
            encoding: Codec name; undecodable bytes become U+FFFD.
        """
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")

    def decode(self, data: bytes, final: bool = False) -> str:
        """Decode the next chunk; an incomplete trailing character waits for the next one.

        Args:
            data: The next bytes.
            final: True for the last chunk (flushes an incomplete character as U+FFFD).

        Returns:
            The text decodable so far.
        """
        return self._decoder.decode(data, final)


def parse_log(text: str, *, start_seq: int = 0) -> list[Event]:
    """Parse a whole console log.

    Args:
        text: The decoded log (``\\r`` and ANSI codes kept).
        start_seq: ``seq`` of the first event.

    Returns:
        All events (``t`` is 0.0 throughout).
    """
    parser = LogParser(start_seq=start_seq)
    return parser.feed(text) + parser.close()


def parse_bytes_chunks(
    chunks: Iterable[bytes | tuple[float, bytes]], *, encoding: str = "utf-8", start_seq: int = 0
) -> list[Event]:
    """Decode and parse raw chunks as they were read from the child's pipe.

    Args:
        chunks: Byte strings, or ``(t, bytes)`` pairs to stamp events with ``t``.
        encoding: Codec of the stream.
        start_seq: ``seq`` of the first event.

    Returns:
        All events.
    """
    decoder = Decoder(encoding)
    parser = LogParser(start_seq=start_seq)
    events: list[Event] = []
    for chunk in chunks:
        if isinstance(chunk, tuple):
            t, data = chunk
            events += parser.feed(decoder.decode(data), t)
        else:
            events += parser.feed(decoder.decode(chunk))
    events += parser.feed(decoder.decode(b"", final=True))
    events += parser.close()
    return events
