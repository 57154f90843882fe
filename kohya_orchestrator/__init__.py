"""kohya_orchestrator: typed jobs, exact TOML rendering, launching and live progress for sd-scripts.

Attributes load lazily so that ``python -m kohya_orchestrator --help`` starts fast; importing the
package never imports torch, diffusers or lycoris.
"""

from __future__ import annotations

from ._version import __version__

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time

if TYPE_CHECKING:
    from .api import iter_events, start, train
    from .datasets.captions import edit_captions
    from .datasets.demo import ensure_demo_dataset
    from .datasets.layout import create_subsets
    from .datasets.plan import plan_dataset, plan_job
    from .datasets.plan_text import render_plan_text
    from .datasets.report import inspect_dataset
    from .datasets.tree import read_tree, subsets_from_tree
    from .environment.discovery import find_install
    from .errors import (
        ConfigError,
        LaunchError,
        OrchestratorError,
        PresetNotFound,
        Problem,
        SetupError,
        TrainingFailed,
    )
    from .jobs.loading import dump_job_toml, load_job, validate_job
    from .jobs.presets import list_presets, load_preset, preset_job
    from .models import TrainingJob
    from .outputs.collect import run_outputs
    from .outputs.compare import compare_runs
    from .outputs.lora import inspect_lora
    from .render.files import render_into
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
    "compare_runs",
    "create_subsets",
    "dump_job_toml",
    "edit_captions",
    "ensure_demo_dataset",
    "find_install",
    "inspect_dataset",
    "inspect_lora",
    "iter_events",
    "list_presets",
    "load_job",
    "load_preset",
    "plan_dataset",
    "plan_job",
    "preset_job",
    "read_tree",
    "render_into",
    "render_job",
    "render_plan_text",
    "run_outputs",
    "start",
    "subsets_from_tree",
    "train",
    "validate_job",
]

# name -> the module (relative to this package) that defines it; imported on first use.
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
    "dump_job_toml": "jobs.loading",
    "list_presets": "jobs.presets",
    "load_preset": "jobs.presets",
    "preset_job": "jobs.presets",
    "RenderPaths": "render.toml",
    "RenderedFiles": "render.toml",
    "render_job": "render.toml",
    "render_into": "render.files",
    "read_tree": "datasets.tree",
    "subsets_from_tree": "datasets.tree",
    "create_subsets": "datasets.layout",
    "edit_captions": "datasets.captions",
    "inspect_dataset": "datasets.report",
    "plan_job": "datasets.plan",
    "plan_dataset": "datasets.plan",
    "render_plan_text": "datasets.plan_text",
    "ensure_demo_dataset": "datasets.demo",
    "find_install": "environment.discovery",
    "run_outputs": "outputs.collect",
    "compare_runs": "outputs.compare",
    "inspect_lora": "outputs.lora",
    "train": "api",
    "start": "api",
    "iter_events": "api",
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
