"""Rules on ``[dataset]``: its shape, repeat counts and buckets."""

from __future__ import annotations

from collections.abc import Iterator

from ...errors import Problem
from ..dataset import DreamBoothSubset, FineTuningSubset, parse_repeats_folder
from ..family import profile
from ..model import DATA_PLACEHOLDER
from .base import JobView, blocks

__all__ = ["check_buckets", "check_dataset_shape", "warn_dataset"]


def _finetuning_captions(job: JobView) -> Iterator[Problem]:
    """sd-scripts' fine-tuning schema has no caption_extension (captions come from the metadata
    file): on a fine-tuning subset or its [[dataset.datasets]] entry it refuses the whole config."""
    for where, block in blocks(job.dataset):
        subsets = list(block.subsets)
        finetuning = [i for i, s in enumerate(subsets) if isinstance(s, FineTuningSubset)]
        # [dataset]'s own caption_extension goes to [general], which sd-scripts accepts.
        if finetuning and where != "dataset" and "caption_extension" in block.model_fields_set:
            yield Problem(
                f"{where}.caption_extension",
                "a dataset of fine-tuning subsets takes no caption_extension (captions come from "
                "the metadata file); sd-scripts refuses the whole dataset config",
                "remove it, or set it on [dataset] for the DreamBooth subsets",
            )
        for i in finetuning:
            if "caption_extension" in subsets[i].model_fields_set:
                yield Problem(
                    f"{where}.subsets[{i}].caption_extension",
                    "a fine-tuning subset takes no caption_extension (captions come from the "
                    "metadata file); sd-scripts refuses the whole dataset config",
                    "remove it",
                )


def check_dataset_shape(job: JobView) -> Iterator[Problem]:
    yield from _finetuning_captions(job)
    ds = job.dataset
    if not ds.subsets and not ds.datasets:
        yield Problem(
            "dataset.subsets",
            "no images: the dataset has no subsets",
            'add [[dataset.subsets]] with image_dir = "img/20_my style" (a <repeats>_<name> folder)',
        )
    if ds.subsets and ds.datasets:
        yield Problem(
            "dataset.datasets",
            "both dataset.subsets and dataset.datasets are set",
            "put the subsets inside one of the [[dataset.datasets]] entries",
        )
    groups = [("dataset.subsets", ds.subsets)] + [
        (f"dataset.datasets[{i}].subsets", b.subsets) for i, b in enumerate(ds.datasets)
    ]
    for where, subsets in groups:
        kinds = {s.kind for s in subsets}
        if len(kinds) > 1:
            yield Problem(
                where,
                "DreamBooth (image_dir) and fine-tuning (metadata_file) subsets are mixed in one "
                "dataset; sd-scripts refuses that",
                "move the fine-tuning subsets into their own [[dataset.datasets]] entry",
            )
        if subsets and all(isinstance(s, DreamBoothSubset) and s.is_reg for s in subsets):
            yield Problem(
                where,
                "every subset is a regularisation set (is_reg = true): nothing to learn from",
                "add a subset of training images",
            )
    # Subsets without their own repeat count take their [[dataset.datasets]] entry's, then
    # [dataset]'s (sd-scripts' subset > dataset > general defaults).
    with_defaults = [("dataset", ds.num_repeats, ds.subsets)] + [
        (
            f"dataset.datasets[{d}]",
            ds.num_repeats if b.num_repeats is None else b.num_repeats,
            b.subsets,
        )
        for d, b in enumerate(ds.datasets)
    ]
    for prefix, default_repeats, subsets in with_defaults:
        for i, s in enumerate(subsets):
            if not isinstance(s, DreamBoothSubset) or s.num_repeats is not None:
                continue
            if s.image_dir == DATA_PLACEHOLDER:  # an import's folder of repeat folders, to give
                continue
            where = f"{prefix}.subsets[{i}]"
            if s.effective_repeats is None and default_repeats is None:
                yield Problem(
                    f"{where}.num_repeats",
                    f"no repeat count: '{s.folder_name}' has no '<repeats>_' prefix",
                    f"set num_repeats (e.g. 10) or rename the folder to '10_{s.folder_name}'",
                )
            if s.effective_repeats == 0:
                yield Problem(
                    f"{where}.image_dir",
                    f"folder '{s.folder_name}' means 0 repeats: sd-scripts skips it silently",
                    "rename it with a repeat count of 1 or more, e.g. '10_name'",
                )


def check_buckets(job: JobView) -> Iterator[Problem]:
    family = job.model.family
    step_multiple = profile(family).bucket_step
    ds = job.dataset
    for where, block in blocks(ds):
        steps = block.bucket_reso_steps
        if steps is not None and steps % step_multiple:
            yield Problem(
                f"{where}.bucket_reso_steps",
                f"{steps} is not a multiple of {step_multiple}, which {family} requires",
                f"use {step_multiple} or another multiple of {step_multiple}",
            )
        res = block.resolution if block.resolution is not None else ds.resolution
        sides = (res, res) if isinstance(res, int) else res
        lo = block.min_bucket_reso if block.min_bucket_reso is not None else ds.min_bucket_reso
        hi = block.max_bucket_reso if block.max_bucket_reso is not None else ds.max_bucket_reso
        bucketing = block.enable_bucket if block.enable_bucket is not None else ds.enable_bucket
        if not bucketing:
            continue  # sd-scripts reads the bucket sizes only with enable_bucket
        if lo is not None and lo > min(sides):
            yield Problem(
                f"{where}.min_bucket_reso",
                f"min_bucket_reso {lo} is above the resolution's short side {min(sides)}",
                f"set min_bucket_reso to {min(sides)} or less",
            )
        if hi is not None and hi < max(sides):
            yield Problem(
                f"{where}.max_bucket_reso",
                f"max_bucket_reso {hi} is below the resolution's long side {max(sides)}",
                f"set max_bucket_reso to {max(sides)} or more",
            )


def warn_dataset(job: JobView) -> Iterator[Problem]:
    for where, s in job.dataset.all_subsets():
        if isinstance(s, FineTuningSubset):
            continue
        if s.class_tokens is None and s.effective_class_tokens and s.num_repeats is None:
            continue
        if s.num_repeats is not None and s.effective_repeats is not None:
            parsed = parse_repeats_folder(s.folder_name)
            if parsed and parsed[0] != s.num_repeats:
                yield Problem(
                    f"{where}.num_repeats",
                    f"num_repeats = {s.num_repeats} but the folder says {parsed[0]} "
                    f"('{s.folder_name}'); num_repeats wins",
                    "make them agree to avoid confusion",
                )
