"""Errors raised by kohya_orchestrator.

Our exception hierarchy::

    OrchestratorError
    ├── ConfigError          user input is wrong; carries every Problem at once (exit 2)
    │   └── PresetNotFound
    ├── SetupError           sd-scripts or its Python missing or unusable (exit 2)
    ├── RenderError          a bug by definition: a valid job did not render (exit 3)
    ├── LaunchError          the trainer could not be started (exit 1)
    └── TrainingFailed       the trainer ran and failed (exit 1)

Every user-facing problem has three parts: where (a dotted key path as the user wrote it, or a
file), what went wrong, and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ConfigError",
    "LaunchError",
    "OrchestratorError",
    "PresetNotFound",
    "Problem",
    "RenderError",
    "SetupError",
    "TrainingFailed",
]


@dataclass(frozen=True)
class Problem:
    """One thing to tell the user about the input: where, what, and how to fix it.

    The one record for problems and findings alike (job checks, dataset scans, plans).

    Attributes:
        path: Where: a dotted key path as the user wrote it, a file, or a flag.
        message: What is wrong (or worth knowing).
        hint: How to fix it, when there is something to do.
        severity: ``"error"`` (it would fail), ``"warning"`` (allowed but probably unintended)
            or ``"info"`` (advice).
        code: A stable name for the kind of problem (the dataset checks' codes, listed in
            docs/datasets.md), or None.
    """

    path: str
    message: str
    hint: str | None = None
    severity: str = "error"  # "error" | "warning" | "info"
    code: str | None = None

    def format(self) -> str:
        """One or two lines for a terminal."""
        where = f"{self.path}: " if self.path else ""
        text = f"{where}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class OrchestratorError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code: int = 1


class ConfigError(OrchestratorError):
    """The job, preset or overrides are invalid. Carries all problems found."""

    exit_code = 2

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self.format())

    def format(self) -> str:
        """All problems, one block each."""
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in {self.source or 'the job'}:"
        return "\n".join([head, *("- " + p.format().replace("\n", "\n  ") for p in self.problems)])


class PresetNotFound(ConfigError):
    """No preset of that name."""


class SetupError(OrchestratorError):
    """sd-scripts, its Python or a required package is missing or unusable."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.hint = hint
        super().__init__(message + (f"\n  hint: {hint}" if hint else ""))


class RenderError(OrchestratorError):
    """A valid job could not be rendered: a bug in kohya_orchestrator."""

    exit_code = 3


class LaunchError(OrchestratorError):
    """The trainer process could not be started."""

    exit_code = 1


@dataclass
class _FailureContext:
    returncode: int | None
    run_dir: Path | None
    tail: list[str] = field(default_factory=list)


class TrainingFailed(OrchestratorError):
    """The trainer ran and did not succeed."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        returncode: int | None = None,
        run_dir: Path | None = None,
        tail: list[str] | None = None,
    ) -> None:
        self.returncode = returncode
        self.run_dir = run_dir
        self.tail = list(tail or [])
        super().__init__(message)
