"""What an import did, grouped for the person who ran it: mapped, fixed, dropped, to fill in.

The importers report each note as a :class:`..errors.Problem`; their ``code`` says which group
it belongs to (``import-fixed``, ``import-dropped``, ``import-placeholder``). Notes without a
code (the GUI mapper's older ones) are grouped by what they say: "not imported"/"dropped"
is a drop, anything else a fix or a note. What is left to fill in is read from the job itself
(:func:`.checks.check_paths`), so it is exactly what ``validate`` will name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Problem
from ..models import TrainingJob
from .checks import check_paths

__all__ = ["ImportReport", "build_import_report"]

_SECTIONS = ("model", "dataset", "network", "optimizer", "scheduler", "training", "sampling")


@dataclass(frozen=True)
class ImportReport:
    """An import, summed up."""

    mapped: dict[str, int]
    """Section -> how many settings landed there (``extra_args`` included)."""
    fixed: list[Problem] = field(default_factory=list)
    """Values changed on the way, each with the reason."""
    dropped: list[Problem] = field(default_factory=list)
    """Settings not imported, each with the reason."""
    to_fill: list[Problem] = field(default_factory=list)
    """Placeholders still in the job (what ``validate`` names; ``train`` refuses them)."""
    notes: list[Problem] = field(default_factory=list)
    """The rest worth knowing (a path given with ``--data`` that is not there yet, ...)."""

    def lines(self, source: str, target: str | None, *, next_steps: bool = True) -> list[str]:
        """The report as plain lines; ``next_steps``: end with the commands to run next."""
        total = sum(self.mapped.values())
        where = ", ".join(f"{k} {v}" for k, v in self.mapped.items() if v)
        out = [f"imported {source}: {total} settings mapped ({where})"]
        for title, items in (
            ("fixed", self.fixed),
            ("dropped", self.dropped),
            ("to fill in", self.to_fill),
            ("notes", self.notes),
        ):
            if items:
                out.append(f"{title} ({len(items)}):")
                for p in items:
                    out.append(f"  {p.path}: {p.message}")
                    if p.hint and items is self.to_fill:
                        out.append(f"      {p.hint}")
        job = target or "job.toml"
        if not next_steps:
            return out
        if self.to_fill:
            out.append(f"next: fill those in, then python -m kohya_orchestrator validate {job}")
        else:
            out.append(f"next: python -m kohya_orchestrator validate {job}")
            out.append(f"      python -m kohya_orchestrator train {job}")
        return out


def _count(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_count(v) for v in value.values())
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return sum(_count(v) for v in value)
    return 1


def _group(p: Problem) -> str:
    if p.code in ("import-fixed", "import-dropped", "import-placeholder"):
        return p.code.removeprefix("import-")
    text = p.message.lower()
    if "not imported" in text or "dropped" in text or "ignored" in text:
        return "dropped"
    return "fixed"


def build_import_report(
    data: dict[str, Any], notes: list[Problem], job: TrainingJob
) -> ImportReport:
    """Group an importer's notes and read the placeholders left in ``job``.

    Args:
        data: The imported job data (what the job file holds).
        notes: The importer's notes (warnings; errors stop an import before this).
        job: The validated job.
    """
    mapped = {k: _count(data[k]) for k in (*_SECTIONS, "extra_args") if data.get(k)}
    mapped = {k: v - (1 if k == "model" and "family" in data[k] else 0) for k, v in mapped.items()}
    groups: dict[str, list[Problem]] = {"fixed": [], "dropped": [], "placeholder": []}
    for p in notes:
        groups[_group(p)].append(p)
    to_fill = [p for p in check_paths(job, placeholders="warning") if p.code == "placeholder"]
    said = {p.path: p for p in groups["placeholder"]}
    to_fill = [  # the importer's words (what the path was), the job check's hint
        Problem(p.path, said[p.path].message, p.hint, p.severity) if p.path in said else p
        for p in to_fill
    ]
    filling = {p.path for p in to_fill}
    return ImportReport(
        mapped=mapped,
        fixed=groups["fixed"],
        dropped=groups["dropped"],
        to_fill=to_fill,
        notes=[p for p in groups["placeholder"] if p.path not in filling],
    )
