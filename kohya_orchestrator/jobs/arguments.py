"""Check a job against what the sd-scripts that will run it accepts (its argument manifest).

The job's own sections render to sd-scripts arguments (``render/toml.py``); an argument the
install lacks (an older sd-scripts) would be silently ignored by its ``--config_file`` reader, so
it is an error naming the install and the fix. ``extra_args`` are checked when the job is
validated (``models/rules/extra_args.py``, given the same :class:`~..models.arguments.Arguments`).
"""

from __future__ import annotations

from ..errors import Problem
from ..models import TrainingJob
from ..models.arguments import Arguments
from ..models.network import native_module
from ..render.toml import RenderPaths, training_config_dict

__all__ = ["check_job_arguments"]

_SECTIONS = ("model", "training", "network", "optimizer", "sampling", "dataset")


def check_job_arguments(job: TrainingJob, arguments: Arguments) -> list[Problem]:
    """Every argument the job renders that ``arguments`` lacks, named by the job key that set it.

    Empty when the install has no script for the family (``check_before_launch`` says that).
    """
    names = arguments.names(job.model.family)
    if names is None:
        return []
    paths = RenderPaths(dataset_config="dataset.toml", sample_prompts="sample_prompts.txt")
    problems: list[Problem] = []
    module = native_module(job.network)
    if module is not None and arguments.networks is not None and module not in arguments.networks:
        problems.append(
            Problem(
                "network.implementation",
                f"{arguments.label} has no {module} (sd-scripts' own LoHa and LoKr came after "
                "0.10.1)",
                arguments.fix.replace("drop the key", 'use implementation = "lycoris"'),
            )
        )
    for section, values in training_config_dict(job, paths).items():
        if section == "extra_arguments":
            continue  # checked at validation, with did-you-mean
        for key in values:
            if key in names:
                continue
            problems.append(
                Problem(
                    _job_key(job, key),
                    f"{arguments.label} has no argument '{key}' in {job.model.script}: it "
                    "would silently ignore it (the install is older, or newer, than this setting)",
                    arguments.fix.replace("drop the key", f"remove {_job_key(job, key)}"),
                )
            )
    return problems


def _job_key(job: TrainingJob, key: str) -> str:
    """``training.fp8_base`` for the rendered ``fp8_base``: the job key that set it."""
    for section in _SECTIONS:
        if key in type(getattr(job, section)).model_fields:
            return f"{section}.{key}"
    if key == "optimizer_type":
        return "optimizer.type"
    if key in ("network_module", "network_args"):
        return "network.algo"
    return key
