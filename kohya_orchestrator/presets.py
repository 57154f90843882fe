"""Presets: partial jobs in the root `presets/` folder (or the copy inside an installed wheel).

A preset may say ``extends = ["other"]``; layers merge in order (base < preset < job file < --set)
and the merged result is validated once (jobfile.compose_layers / validate_job).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, PresetNotFound, Problem
from .jobfile import Layer, read_toml

__all__ = ["PresetInfo", "list_presets", "load_preset", "preset_layers", "presets_dir"]


def presets_dir() -> Path:
    """The folder holding preset files: the checkout's presets/, else the wheel's copy."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "presets", here / "_presets"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    return here / "_presets"


@dataclass(frozen=True)
class PresetInfo:
    """A preset's name, one-line summary and file."""

    name: str
    summary: str
    path: Path


def _summary(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if line.startswith("#") and text:
            return text
    return ""


def list_presets() -> list[PresetInfo]:
    """Every preset, sorted by name."""
    return [PresetInfo(p.stem, _summary(p), p) for p in sorted(presets_dir().glob("*.toml"))]


def _path_of(name: str) -> Path:
    path = presets_dir() / f"{name}.toml"
    if not path.is_file():
        names = [p.name for p in list_presets()]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise PresetNotFound(
            [
                Problem(
                    f"preset {name}",
                    "no such preset",
                    f"{hint}available: {', '.join(names)} (python -m kohya_orchestrator preset list)",
                )
            ],
            source="the preset name",
        )
    return path


def load_preset(name: str) -> dict[str, Any]:
    """The raw partial job of one preset (without resolving ``extends``)."""
    return read_toml(_path_of(name), what="preset")


def preset_layers(name: str, _seen: tuple[str, ...] = ()) -> list[Layer]:
    """The layers of a preset, its ``extends`` chain first."""
    if name in _seen:
        raise ConfigError(
            [
                Problem(
                    f"preset {name}", "extends itself in a cycle: " + " -> ".join((*_seen, name))
                )
            ],
            source="presets",
        )
    data = load_preset(name)
    parents = data.pop("extends", [])
    if isinstance(parents, str):
        parents = [parents]
    layers: list[Layer] = []
    for parent in parents:
        layers += preset_layers(str(parent), (*_seen, name))
    data.setdefault("preset", name)
    layers.append(Layer(f"preset '{name}'", data, None))
    return layers
