"""A small, deterministic TOML writer whose output the old `toml` 0.10.2 package reads exactly.

sd-scripts parses --config_file and --dataset_config with toml 0.10.2, which predates TOML 1.0 and
mishandles some constructs (inline tables inside arrays, mixed-type arrays). This writer emits only
the safe subset: scalars, one-line homogeneous arrays of scalars, tables, and arrays of tables.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dumps", "format_value"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _string(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value!r}: sd-scripts' TOML reader has no inf/nan")
    text = repr(value)
    if "e" in text or "E" in text:
        mantissa, _, exponent = text.lower().partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        sign = "-" if exponent.startswith("-") else ""
        text = f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
    return text


def format_value(value: Any) -> str:
    """One TOML value (no tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Sequence):
        items = list(value)
        kinds = {type(v) for v in items}
        if len(kinds) > 1:
            raise ValueError(f"mixed-type array {items!r}: toml 0.10.2 rejects it")
        return "[" + ", ".join(format_value(v) for v in items) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and bool(value)
        and all(isinstance(v, Mapping) for v in value)
    )


def _emit_table(lines: list[str], name: str, table: Mapping[str, Any], indent: str) -> None:
    scalars = [
        (k, v) for k, v in table.items() if not isinstance(v, Mapping) and not _is_table_array(v)
    ]
    for key, value in scalars:
        lines.append(f"{indent}{_key(key)} = {format_value(value)}")
    for key, value in table.items():
        child = f"{name}.{_key(key)}" if name else _key(key)
        if isinstance(value, Mapping):
            if lines:
                lines.append("")
            lines.append(f"{indent}[{child}]")
            _emit_table(lines, child, value, indent)
        elif _is_table_array(value):
            for item in value:
                if lines:
                    lines.append("")
                lines.append(f"{indent}[[{child}]]")
                _emit_table(lines, child, item, indent + "  " if name else indent)


def dumps(data: Mapping[str, Any], *, header: Sequence[str] = ()) -> str:
    """Serialise nested dicts to TOML text with LF endings and a trailing newline."""
    lines = [f"# {h}".rstrip() for h in header]
    body: list[str] = []
    _emit_table(body, "", data, "")
    if lines and body:
        lines.append("")
    lines += body
    return "\n".join(lines).rstrip("\n") + "\n"
