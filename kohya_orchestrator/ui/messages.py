"""The terminal vocabulary: one place decides how success, failure, hints and warnings look."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.markup import escape

from ..errors import Problem

__all__ = ["console", "fail", "hint", "ok", "print_problems", "warn"]

_consoles: dict[int, Console] = {}


def console(file: TextIO | None = None) -> Console:
    """A rich Console on the current stdout (looked up per call so tests can capture it)."""
    target = file or sys.stdout
    key = id(target)
    cached = _consoles.get(key)
    if cached is None or cached.file is not target:
        cached = Console(file=target, highlight=False, soft_wrap=True)
        _consoles[key] = cached
    return cached


def ok(message: str, *, file: TextIO | None = None) -> None:
    """A success line (stdout by default)."""
    console(file).print(f"[green]✓[/green] {escape(message)}")


def fail(message: str, *, file: TextIO | None = None) -> None:
    """A failure line (stderr by default)."""
    console(file or sys.stderr).print(f"[red]⨯[/red] {escape(message)}")


def warn(message: str) -> None:
    """A warning line."""
    console(sys.stderr).print(f"[yellow]![/yellow] {escape(message)}")


def hint(message: str, *, file: TextIO | None = None) -> None:
    """A dim hint line."""
    console(file).print(f"  [dim]hint: {escape(message)}[/dim]")


def print_problems(problems: list[Problem], *, file: TextIO | None = None) -> None:
    """Print problems as `path: message` with a hint line each."""
    out = console(file or sys.stderr)
    for p in problems:
        mark = "[yellow]![/yellow]" if p.severity == "warning" else "[red]⨯[/red]"
        text = escape(p.message)
        out.print(f"{mark} [bold]{escape(p.path)}[/bold]: {text}" if p.path else f"{mark} {text}")
        if p.hint:
            out.print(f"    [dim]hint: {escape(p.hint)}[/dim]")
