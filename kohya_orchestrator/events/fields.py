"""Values read out of console text: tqdm's times, rates and postfix, and lenient numbers."""

from __future__ import annotations

__all__ = ["parse_postfix", "parse_rate", "parse_seconds", "to_float", "to_int"]


def parse_seconds(value: str | None) -> float | None:
    """tqdm's ``MM:SS`` / ``H:MM:SS`` to seconds; None for ``?`` or nothing."""
    if not value or value == "?":
        return None
    total = 0
    for part in value.split(":"):
        total = total * 60 + int(part)
    return float(total)


def parse_rate(rate: str | None, unit: str | None) -> float | None:
    """tqdm's rate (``2.50`` with unit ``it/s`` or ``s/it``) in iterations per second."""
    if not rate or rate == "?" or not unit:
        return None
    value = float(rate)
    if unit.startswith("s/"):
        return 1.0 / value if value > 0 else None
    return value


def parse_postfix(text: str | None) -> dict[str, str]:
    """tqdm's postfix ``avr_loss=1.09, lr=0.0001`` as ``{key: value}`` text."""
    items: dict[str, str] = {}
    if text:
        for item in text.split(", "):
            key, sep, value = item.partition("=")
            if sep:
                items[key.strip()] = value.strip()
    return items


def to_int(value: str) -> int | None:
    """``int(value)``, or None when it is not an integer."""
    try:
        return int(value)
    except ValueError:
        return None


def to_float(value: str) -> float | None:
    """``float(value)``, or None when it is not a number."""
    try:
        return float(value)
    except ValueError:
        return None
