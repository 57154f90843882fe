"""The findings vocabulary: what the dataset checks tell the user, as :class:`errors.Problem` records.

A finding is a :class:`~kohya_orchestrator.errors.Problem` with a ``code``: each module keeps a
table ``code -> (severity, message, hint)`` (tree.py, layout.py, report_models.py,
plan_models.py; docs/datasets.md lists the codes) and builds its findings with
:func:`make_finding`. ``severity`` is ``error`` (sd-scripts would fail), ``warning`` (allowed but
probably unintended) or ``info`` (advice).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Literal, TypeAlias

from ..errors import Problem

__all__ = ["FindingTable", "Severity", "make_finding"]

Severity = Literal["error", "warning", "info"]

FindingTable: TypeAlias = Mapping[str, tuple[Severity, str, str | None]]
"""``code -> (severity, message, hint)``; ``{field}`` placeholders are filled per finding."""


def make_finding(
    table: FindingTable,
    code: str,
    path: str,
    values: Mapping[str, object] | None = None,
    *,
    severity: Severity | None = None,
) -> Problem:
    """Build a finding from a code table, filling the ``{field}`` placeholders from ``values``.

    Args:
        table: ``code -> (severity, message, hint)``.
        code: The finding's code.
        path: Where it is.
        values: Values for the placeholders; ``{path}`` and ``{qpath}`` (shell-quoted) are given.
        severity: Overrides the table's severity.

    Returns:
        A Problem carrying ``code``.
    """
    default, message, hint = table[code]
    fields = {"path": path, "qpath": shlex.quote(path), **(values or {})}
    return Problem(
        path,
        message.format(**fields),
        hint.format(**fields) if hint else None,
        severity=severity or default,
        code=code,
    )
