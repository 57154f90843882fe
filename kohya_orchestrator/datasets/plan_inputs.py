"""What a step plan starts from: dataset specs, read from a job with sd-scripts' fallbacks.

A job's values fall back like sd-scripts' dataset config: subset, then dataset, then
``[dataset]`` (general), then ``extra_args`` (its command line), then sd-scripts' argparse
defaults. plan.py turns the specs into a :class:`~.plan_models.StepPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Problem
from .findings import make_finding
from .plan_models import PLAN_FINDINGS

if TYPE_CHECKING:
    from ..models import TrainingJob

__all__ = ["DatasetSpec", "SubsetSpec", "job_specs", "resolution_pair"]

# sd-scripts' argparse defaults (train_util.add_dataset_arguments) for keys a job may leave out.
_SD_DEFAULTS: dict[str, Any] = {
    "batch_size": 1,
    "enable_bucket": False,
    "min_bucket_reso": 256,
    "max_bucket_reso": 1024,
    "bucket_reso_steps": 64,
    "bucket_no_upscale": False,
    "validation_split": 0.0,
    "validation_seed": None,
    "num_repeats": 1,
}
# argparse names that the dataset config knows under another name (config_util.py)
_ARG_NAMES = {"batch_size": "train_batch_size", "num_repeats": "dataset_repeats"}


@dataclass(frozen=True)
class SubsetSpec:
    """One subset to plan: its folder, repeats, and where it was given (for messages)."""

    image_dir: str
    num_repeats: int
    is_reg: bool
    where: str
    images: tuple[str, ...] | None = None  # pre-scanned (plan_dataset); None = glob it


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset to plan: its settings (already resolved) and subsets."""

    resolution: tuple[int, int]
    batch_size: int
    enable_bucket: bool
    min_bucket_reso: int
    max_bucket_reso: int
    bucket_reso_steps: int
    bucket_no_upscale: bool
    validation_split: float
    validation_seed: int | None
    subsets: list[SubsetSpec]
    where: str = "dataset"


def resolution_pair(value: object) -> tuple[int, int]:
    """``(width, height)`` from ``512``, ``"512,768"`` or ``(512, 768)``."""
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, str):
        parts = [int(p) for p in value.split(",")]
        return (parts[0], parts[-1])
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    raise ValueError(f"resolution {value!r}")


def job_specs(job: TrainingJob, findings: list[Problem]) -> list[DatasetSpec]:
    """The dataset specs of a job; fine-tuning subsets are left out with a finding.

    Args:
        job: The job.
        findings: Where findings about the job's datasets are appended.
    """
    from ..models.dataset import DatasetBlock, DatasetConfig, FineTuningSubset

    ds = job.dataset
    extra = job.extra_args
    specs: list[DatasetSpec] = []
    blocks: list[tuple[str, DatasetConfig | DatasetBlock]] = [
        (f"dataset.datasets[{i}]", b) for i, b in enumerate(ds.datasets)
    ] or [("dataset", ds)]
    for where, block in blocks:

        def pick(key: str, block: Any = block) -> Any:
            for layer in (block, ds):
                value = getattr(layer, key, None)
                if value is not None:
                    return value
            value = extra.get(_ARG_NAMES.get(key, key))
            return _SD_DEFAULTS.get(key) if value is None else value

        subsets = []
        for i, sub in enumerate(block.subsets):
            sub_where = f"{where}.subsets[{i}]"
            if isinstance(sub, FineTuningSubset):
                findings.append(make_finding(PLAN_FINDINGS, "finetuning_subset", sub_where))
                continue
            repeats = sub.effective_repeats
            if repeats is None:
                repeats = pick("num_repeats")
            subsets.append(SubsetSpec(sub.image_dir, int(repeats), sub.is_reg, sub_where))
        specs.append(
            DatasetSpec(
                resolution=resolution_pair(pick("resolution")),
                batch_size=int(pick("batch_size")),
                enable_bucket=bool(pick("enable_bucket")),
                min_bucket_reso=int(pick("min_bucket_reso")),
                max_bucket_reso=int(pick("max_bucket_reso")),
                bucket_reso_steps=int(pick("bucket_reso_steps")),
                bucket_no_upscale=bool(pick("bucket_no_upscale")),
                validation_split=float(pick("validation_split")),
                validation_seed=pick("validation_seed"),
                subsets=subsets,
                where=where,
            )
        )
    return specs
