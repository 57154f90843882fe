"""What the `dataset` and `plan` verbs share: the resolution flag and how findings are printed.

Imports only argparse-level modules at import time, like the verb modules (``--help`` stays fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ...errors import Problem

__all__ = ["parse_resolution", "print_findings", "short_path"]


def parse_resolution(text: str | None) -> int | tuple[int, int]:
    """``--resolution W[,H]`` as one side or ``(width, height)`` (default 512).

    Raises:
        ConfigError: Not one or two whole numbers of 64 or more.
    """
    from ...errors import ConfigError, Problem

    if text is None:
        return 512
    parts = text.replace("x", ",").split(",")
    try:
        sides = [int(p) for p in parts]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2) or min(sides) < 64:
        raise ConfigError(
            [Problem("--resolution", f"expected 512 or 512,768, got {text!r}", None)],
            source="plan",
        )
    return sides[0] if len(sides) == 1 else (sides[0], sides[1])


def short_path(path: str, root: str | None) -> str:
    """``path`` relative to the folder ``root`` when it lies under it, else as given."""
    import os

    if root and os.path.isdir(root):
        try:
            rel = os.path.relpath(path, root)
        except ValueError:
            return path
        if not rel.startswith(".."):
            return rel if rel != "." else os.path.basename(os.path.normpath(root)) or path
    return path


def print_findings(findings: Sequence[Problem], *, root: str | None = None) -> None:
    """Print findings grouped by kind: errors, then warnings, then advice.

    Args:
        findings: What to print (Problems with a ``code``, from the dataset checks).
        root: Paths under this folder are shown relative to it.
    """
    from rich.markup import escape

    from ...ui.messages import console

    out = console()
    marks = {"error": "[red]⨯[/red]", "warning": "[yellow]![/yellow]", "info": "[blue]i[/blue]"}
    for severity in ("error", "warning", "info"):
        group: dict[str | None, list[Problem]] = {}
        for f in findings:
            if f.severity == severity:
                group.setdefault(f.code, []).append(f)
        for items in group.values():
            first = items[0]
            if len(items) == 1:
                where = escape(short_path(first.path, root))
                out.print(f"{marks[severity]} [bold]{where}[/bold]: {escape(first.message)}")
            elif all(f.message == first.message for f in items):
                out.print(f"{marks[severity]} {len(items)} × {escape(first.message)}")
                for f in items[:5]:
                    out.print(f"    [dim]{escape(short_path(f.path, root))}[/dim]")
                if len(items) > 5:
                    out.print(f"    [dim]... and {len(items) - 5} more[/dim]")
            else:  # one kind, each with its own numbers: never one item's message for all
                kind = (first.code or "findings").replace("_", " ")
                out.print(f"{marks[severity]} {len(items)} × {escape(kind)}:")
                for f in items[:5]:
                    where = escape(short_path(f.path, root))
                    out.print(f"    [bold]{where}[/bold]: {escape(f.message)}")
                if len(items) > 5:
                    out.print(f"    [dim]... and {len(items) - 5} more[/dim]")
            if first.hint:
                out.print(f"    [dim]hint: {escape(first.hint)}[/dim]")
