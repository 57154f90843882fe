"""kohya_orchestrator: typed jobs, exact TOML rendering, launching and live progress for sd-scripts.

Attributes load lazily so that ``python -m kohya_orchestrator --help`` starts fast; importing the
package never imports torch, diffusers or lycoris.
"""

from __future__ import annotations

from ._version import __version__

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time

if TYPE_CHECKING:
    from .errors import (
        ConfigError,
        LaunchError,
        OrchestratorError,
        PresetNotFound,
        Problem,
        SetupError,
        TrainingFailed,
    )
    from .jobs.loading import load_job, validate_job
    from .jobs.presets import list_presets, load_preset
    from .models import TrainingJob
    from .render.toml import RenderedFiles, RenderPaths, render_job

__all__ = [
    "ConfigError",
    "LaunchError",
    "OrchestratorError",
    "PresetNotFound",
    "Problem",
    "RenderPaths",
    "RenderedFiles",
    "SetupError",
    "TrainingFailed",
    "TrainingJob",
    "__version__",
    "list_presets",
    "load_job",
    "load_preset",
    "render_job",
    "validate_job",
]

_LAZY = {
    "ConfigError": "errors",
    "LaunchError": "errors",
    "OrchestratorError": "errors",
    "PresetNotFound": "errors",
    "Problem": "errors",
    "SetupError": "errors",
    "TrainingFailed": "errors",
    "TrainingJob": "models",
    "load_job": "jobs.loading",
    "validate_job": "jobs.loading",
    "list_presets": "jobs.presets",
    "load_preset": "jobs.presets",
    "RenderPaths": "render.toml",
    "RenderedFiles": "render.toml",
    "render_job": "render.toml",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kohya_orchestrator' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
