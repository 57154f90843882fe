"""What a step plan says: its result models, and the codes of the findings it carries.

plan.py computes these; plan_text.py renders them as text; ``plan --json`` prints
:class:`StepPlan`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ..errors import Problem
from .buckets import BucketCount
from .findings import FindingTable

__all__ = ["PLAN_FINDINGS", "DatasetPlan", "PlanNote", "StepPlan", "SubsetPlan"]

# code -> (severity, message, hint); "{...}" fields are filled per finding. docs/datasets.md lists them.
PLAN_FINDINGS: FindingTable = {
    "min_reso_rounded": (
        "warning",
        "min_bucket_reso {old} is not a multiple of bucket_reso_steps {steps}: sd-scripts uses {new}",
        "set min_bucket_reso = {new}",
    ),
    "max_reso_rounded": (
        "warning",
        "max_bucket_reso {old} is not a multiple of bucket_reso_steps {steps}: sd-scripts uses {new}",
        "set max_bucket_reso = {new}",
    ),
    "min_reso_too_big": (
        "error",
        "min_bucket_reso {lo} is above the resolution's short side {side}: sd-scripts stops with "
        "an AssertionError",
        "set min_bucket_reso to {side} or less",
    ),
    "max_reso_too_small": (
        "error",
        "max_bucket_reso {hi} is below the resolution's long side {side}: sd-scripts stops with "
        "an AssertionError",
        "set max_bucket_reso to {side} or more",
    ),
    "zero_repeats": (
        "warning",
        "num_repeats {repeats} is less than 1: sd-scripts ignores this subset",
        "set num_repeats to 1 or more",
    ),
    "duplicate_subset": (
        "warning",
        "the same image_dir is listed twice in one dataset: sd-scripts ignores the later one",
        "remove the duplicate subset",
    ),
    "not_a_directory": (
        "warning",
        "not a folder: sd-scripts logs 'not directory' and ignores this subset",
        "check image_dir",
    ),
    "no_images": (
        "warning",
        "no images found: sd-scripts ignores this subset",
        "add .png/.jpg/.webp/.bmp images to the folder",
    ),
    "unreadable_image": (
        "error",
        "cannot read the image size ({why}): sd-scripts stops while loading image sizes",
        "run 'python -m kohya_orchestrator dataset inspect {folder}', then fix or remove the file",
    ),
    "zero_bucket": (
        "error",
        "a {w}x{h} image gives bucket {bw}x{bh} with bucket_no_upscale: sd-scripts fails on it",
        "remove the image, upscale it, or turn bucket_no_upscale off",
    ),
    "reg_unused": (
        "info",
        "{unused} of {total} reg images are not used: reg images are only balanced up to the "
        "{train} train images with repeats",
        None,
    ),
    "split_unseeded": (
        "warning",
        "validation_split without validation_seed: sd-scripts picks the held-out images with a "
        "random state its own log output also draws from, so these bucket counts (and maybe "
        "the batches per epoch) are one likely outcome; the image counts are exact",
        "set validation_seed",
    ),
    "finetuning_subset": (
        "warning",
        "fine-tuning (metadata_file) subsets are not planned; the plan leaves this subset out",
        None,
    ),
    "no_data": (
        "error",
        "no images to train on: sd-scripts would log 'No data found' and exit 0 without training",
        "check the image folders ('python -m kohya_orchestrator dataset inspect DIR')",
    ),
    "partial_epoch": (
        "info",
        "max_train_steps {steps} is not a whole number of epochs ({per_epoch} steps each): the "
        "last epoch stops after {last} steps",
        "use max_train_epochs to train whole epochs",
    ),
    "default_steps": (
        "warning",
        "neither max_train_epochs nor max_train_steps is set: sd-scripts trains its default "
        "1600 steps",
        "set max_train_epochs",
    ),
}


# ----------------------------------------------------------------------------- result models
class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class SubsetPlan(_Out):
    """One subset as sd-scripts builds it."""

    image_dir: str
    is_reg: bool
    num_repeats: int
    image_count: int
    """Images globbed in image_dir, less those held out for validation."""
    held_out: int = 0
    """Images held out for validation (train subsets with validation_split)."""
    images_with_repeats: int
    samples_per_epoch: int
    """Images x repeats actually drawn per epoch (reg subsets: after balancing)."""
    used: bool = True


class DatasetPlan(_Out):
    """One dataset: its settings, subsets and buckets."""

    index: int
    resolution: tuple[int, int]
    batch_size: int
    enable_bucket: bool
    min_bucket_reso: int | None
    max_bucket_reso: int | None
    bucket_reso_steps: int | None
    bucket_no_upscale: bool
    validation_split: float
    subsets: list[SubsetPlan]
    train_images_with_repeats: int
    reg_images_with_repeats: int
    reg_samples_per_epoch: int
    samples_per_epoch: int
    validation_images: int
    buckets: list[BucketCount]
    batches: int


class PlanNote(_Out):
    """One reason the real count differs from the seed formula."""

    cause: str
    message: str


class StepPlan(_Out):
    """Everything sd-scripts will compute about the length of a run.

    The fields named like sd-scripts' banner (``train_images_with_repeats``,
    ``reg_images_with_repeats``, ``batches_per_epoch``, ``epochs``, ``total_steps``) hold the
    numbers it prints.
    """

    source: str
    datasets: list[DatasetPlan]
    train_images_with_repeats: int
    reg_images_with_repeats: int
    """The raw sum of reg images x repeats (the banner's 'num reg images'), not the balanced count."""
    reg_samples_per_epoch: int
    samples_per_epoch: int
    validation_images: int
    dataset_batches: int
    """Sum of the datasets' batches (len(train_dataloader) before accelerate shards it)."""
    batches_per_epoch: int
    """ceil(dataset_batches / num_processes): the banner's 'num batches per epoch'."""
    num_processes: int
    gradient_accumulation_steps: int
    steps_per_epoch: int
    max_train_epochs: int | None
    max_train_steps: int | None
    epochs: int
    total_steps: int
    buckets: list[BucketCount]
    seed_formula: str
    seed_steps: float | None
    differences: list[PlanNote]
    warnings: list[Problem]
    exact: bool

    @property
    def errors(self) -> list[Problem]:
        """Findings that would make sd-scripts fail."""
        return [w for w in self.warnings if w.severity == "error"]
