"""The LyCORIS preset files kohya_orchestrator ships (``preset = "kohya_orchestrator:<name>"``).

A pure lookup in the package data folder ``kohya_orchestrator/lycoris_presets/``. LyCORIS reads a
preset from a file path, so the run directory (or the ``render --out`` folder) gets a copy and the
rendered ``network_args`` name that copy (``lycoris-<name>.toml``, :mod:`.files`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import ConfigError, Problem
from ..models import TrainingJob
from ..models.network import (
    SHIPPED_LYCORIS_PRESETS,
    SHIPPED_PRESET_PREFIX,
    shipped_preset_filename,
    shipped_preset_name,
)

__all__ = ["resolve_symbolic_preset", "shipped_preset_file"]


def resolve_symbolic_preset(preset: str | None) -> Path | None:
    """The packaged file of ``kohya_orchestrator:<name>``; None for any other preset.

    Raises:
        ConfigError: the name is not one kohya_orchestrator ships.
    """
    name = shipped_preset_name(preset)
    if name is None:
        return None
    if name not in SHIPPED_LYCORIS_PRESETS:
        raise ConfigError(
            [
                Problem(
                    "network.preset",
                    f"kohya_orchestrator ships no LyCORIS preset '{name}'",
                    "known: "
                    + ", ".join(SHIPPED_PRESET_PREFIX + n for n in SHIPPED_LYCORIS_PRESETS),
                )
            ]
        )
    return Path(str(resources.files("kohya_orchestrator") / "lycoris_presets" / f"{name}.toml"))


def shipped_preset_file(job: TrainingJob) -> tuple[str, str] | None:
    """(file name, text) of the preset file to copy beside the rendered config, if the job uses one.

    The file name is the one ``render_job`` refers to (``lycoris-<name>.toml``).
    """
    preset = getattr(job.network, "preset", None)
    path = resolve_symbolic_preset(preset)
    if path is None or preset is None:
        return None
    return shipped_preset_filename(preset), path.read_text(encoding="utf-8")
