"""`[dataset]`: general settings, datasets and subsets (sd-scripts' --dataset_config).

sd-scripts infers the subset kind from which keys are present (library/config_util.py); we make it
explicit with ``kind`` ("dreambooth" or "finetuning"; inferred from ``metadata_file`` when left out)
and drop it when rendering.
"""

from __future__ import annotations

import ntpath
import os
import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Strict, Tag, field_validator

from .base import StrictModel

__all__ = [
    "CaptionOptions",
    "DatasetBlock",
    "DatasetConfig",
    "DreamBoothSubset",
    "FineTuningSubset",
    "Subset",
    "parse_repeats_folder",
]

Resolution = int | Annotated[tuple[int, int], Strict(False)]
"""A square side or [width, height]; a TOML array becomes the tuple (its items stay strict)."""
ResizeInterpolation = Literal[
    "lanczos", "nearest", "bilinear", "linear", "bicubic", "cubic", "area", "box"
]
_REPEATS_FOLDER = re.compile(r"^(\d+)_(.*)$", re.S)


def parse_repeats_folder(name: str) -> tuple[int, str] | None:
    """Split a `<repeats>_<name>` folder name as sd-scripts does (config_util.py:607-644).

    Returns ``(repeats, class_tokens)``, or None when sd-scripts would skip the folder for lacking a
    numeric prefix. ``"20_zengxin oilpaint"`` gives ``(20, "zengxin oilpaint")``; underscores after
    the first are kept (``"10_sks_dog"`` gives ``"sks_dog"``); ``"10"`` alone gives ``(10, "")``.
    """
    head, sep, tail = name.partition("_")
    try:
        repeats = int(head)
    except ValueError:
        return None
    return repeats, tail if sep else ""


_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


class CaptionOptions(StrictModel):
    """Caption and augmentation options shared by general settings, datasets and subsets.

    ``None`` means "inherit": subset, then dataset, then general, then sd-scripts' default.
    """

    caption_extension: Annotated[
        str | None,
        Field(
            min_length=1,
            description="Caption file extension, e.g. .txt. sd-scripts' own default is .caption; "
            "we render .txt unless you say otherwise (sd-scripts: caption_extension).",
        ),
    ] = None
    shuffle_caption: Annotated[
        bool | None, Field(description="Shuffle comma-separated tags each step (shuffle_caption).")
    ] = None
    keep_tokens: Annotated[
        int | None,
        Field(ge=0, description="Keep the first N tags in place when shuffling (keep_tokens)."),
    ] = None
    keep_tokens_separator: Annotated[
        str | None, Field(min_length=1, description="Separator ending the kept part, e.g. '|||'.")
    ] = None
    secondary_separator: Annotated[
        str | None, Field(min_length=1, description="Separator for tags shuffled as one unit.")
    ] = None
    caption_separator: Annotated[
        str | None, Field(min_length=1, description="Tag separator (default ',').")
    ] = None
    caption_prefix: Annotated[str | None, Field(description="Text put before every caption.")] = (
        None
    )
    caption_suffix: Annotated[str | None, Field(description="Text put after every caption.")] = None
    enable_wildcard: Annotated[
        bool | None, Field(description="Expand {a|b} wildcards and multi-line captions.")
    ] = None
    flip_aug: Annotated[bool | None, Field(description="Random horizontal flips (flip_aug).")] = (
        None
    )
    color_aug: Annotated[
        bool | None, Field(description="Random hue shifts; not with cache_latents (color_aug).")
    ] = None
    random_crop: Annotated[
        bool | None, Field(description="Random crops; not with cache_latents (random_crop).")
    ] = None
    face_crop_aug_range: Annotated[
        Annotated[tuple[float, float], Strict(False)] | None,
        Field(description="Face crop zoom range [lo, hi]."),
    ] = None
    caption_dropout_rate: Annotated[
        float | None,
        Field(ge=0.0, le=1.0, description="Drop the whole caption with this probability."),
    ] = None
    caption_dropout_every_n_epochs: Annotated[
        int | None, Field(ge=0, description="Drop all captions every N epochs.")
    ] = None
    caption_tag_dropout_rate: Annotated[
        float | None, Field(ge=0.0, le=1.0, description="Drop each tag with this probability.")
    ] = None
    token_warmup_min: Annotated[int | None, Field(ge=1, description="Tokens used at step 0.")] = (
        None
    )
    token_warmup_step: Annotated[
        float | None, Field(ge=0, description="Steps (or fraction) to reach all tokens.")
    ] = None
    resize_interpolation: Annotated[
        ResizeInterpolation | None, Field(description="Resampling filter when resizing images.")
    ] = None


class DreamBoothSubset(CaptionOptions):
    """A folder of images with caption files (or class tokens as the caption)."""

    kind: Literal["dreambooth"] = "dreambooth"
    image_dir: Annotated[
        str,
        Field(
            min_length=1,
            description="Folder of images (not recursive). A `<repeats>_<name>` folder name gives "
            "num_repeats and class_tokens when those are left out (image_dir).",
        ),
    ]
    num_repeats: Annotated[
        int | None,
        Field(ge=1, description="Times each image is seen per epoch (num_repeats)."),
    ] = None
    class_tokens: Annotated[
        str | None,
        Field(
            description="Caption for images without a caption file; the trigger word (class_tokens)."
        ),
    ] = None
    is_reg: Annotated[bool, Field(description="Regularisation images (is_reg).")] = False
    alpha_mask: Annotated[bool | None, Field(description="Use the alpha channel as loss mask.")] = (
        None
    )
    cache_info: Annotated[
        bool | None, Field(description="Write metadata_cache.json into image_dir (cache_info).")
    ] = None

    @field_validator("image_dir")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.rstrip("/\\") or v

    @property
    def folder_name(self) -> str:
        """The last component of image_dir, as sd-scripts takes it on this machine.

        sd-scripts reads the repeat count from ``os.path.basename`` of the folder: on Windows a
        backslash separates folders, on Linux and macOS it is a character of the name
        (``20_a\\b`` keeps its 20 repeats there). A Windows path (``D:\\...``, ``\\\\server\\...``)
        is read as one wherever the job is checked: it was written for a Windows machine.
        """
        if _WINDOWS_PATH.match(self.image_dir):
            return ntpath.basename(self.image_dir)
        return os.path.basename(self.image_dir)

    @property
    def effective_repeats(self) -> int | None:
        """num_repeats, else the `<repeats>_` prefix of the folder name."""
        if self.num_repeats is not None:
            return self.num_repeats
        parsed = parse_repeats_folder(self.folder_name)
        return parsed[0] if parsed else None

    @property
    def effective_class_tokens(self) -> str | None:
        """class_tokens, else the name after the `<repeats>_` prefix."""
        if self.class_tokens is not None:
            return self.class_tokens
        parsed = parse_repeats_folder(self.folder_name)
        return parsed[1] or None if parsed else None


class FineTuningSubset(CaptionOptions):
    """Images described by a metadata JSON/JSONL file (sd-scripts fine-tuning style)."""

    kind: Literal["finetuning"] = "finetuning"
    metadata_file: Annotated[
        str,
        Field(min_length=1, description="Metadata .json or .jsonl with captions (metadata_file)."),
    ]
    image_dir: Annotated[
        str | None, Field(min_length=1, description="Base folder for relative keys (image_dir).")
    ] = None
    num_repeats: Annotated[
        int | None,
        Field(
            ge=1,
            description="Times each image is seen per epoch; default: the dataset's num_repeats, "
            "else 1.",
        ),
    ] = None
    alpha_mask: Annotated[bool | None, Field(description="Use the alpha channel as loss mask.")] = (
        None
    )


def _subset_kind(v: Any) -> str:
    if isinstance(v, dict):
        if "kind" in v:
            return str(v["kind"])
        return "finetuning" if "metadata_file" in v else "dreambooth"
    return str(getattr(v, "kind", "dreambooth"))


Subset = Annotated[
    Annotated[DreamBoothSubset, Tag("dreambooth")] | Annotated[FineTuningSubset, Tag("finetuning")],
    Discriminator(_subset_kind),
]


class BucketOptions(StrictModel):
    """Resolution, batch and aspect-ratio bucket settings (general or per dataset)."""

    resolution: Annotated[
        Resolution | None,
        Field(description="Training resolution: 512 or [width, height] (resolution)."),
    ] = None
    batch_size: Annotated[
        int | None, Field(ge=1, description="Images per batch per device (--train_batch_size).")
    ] = None
    enable_bucket: Annotated[
        bool | None, Field(description="Group images by aspect ratio (enable_bucket).")
    ] = None
    min_bucket_reso: Annotated[int | None, Field(ge=64, description="Smallest bucket side.")] = None
    max_bucket_reso: Annotated[int | None, Field(ge=64, description="Largest bucket side.")] = None
    bucket_reso_steps: Annotated[
        int | None, Field(ge=8, description="Bucket side step: 64 for SD1/2, 32 for SDXL.")
    ] = None
    bucket_no_upscale: Annotated[
        bool | None, Field(description="Never upscale small images into a bucket.")
    ] = None
    network_multiplier: Annotated[float | None, Field(description="Network strength.")] = None
    validation_split: Annotated[
        float | None, Field(ge=0.0, lt=1.0, description="Fraction held out for validation loss.")
    ] = None
    validation_seed: Annotated[int | None, Field(description="Seed of the validation split.")] = (
        None
    )
    num_repeats: Annotated[
        int | None, Field(ge=1, description="Default repeats for subsets that set none.")
    ] = None

    @field_validator("resolution")
    @classmethod
    def _check_resolution(cls, v: Resolution | None) -> Resolution | None:
        sides = (v,) if isinstance(v, int) else (v or ())
        for side in sides:
            if side < 64:
                raise ValueError(f"resolution side {side} is below 64 pixels")
        return v


class DatasetBlock(BucketOptions, CaptionOptions):
    """One `[[dataset.datasets]]` entry: its own resolution/batch settings and subsets."""

    subsets: Annotated[list[Subset], Field(min_length=1, description="The image folders.")]


class DatasetConfig(BucketOptions, CaptionOptions):
    """`[dataset]`: general settings plus subsets (one dataset) or several datasets."""

    resolution: Annotated[
        Resolution,
        Field(description="Training resolution: 512 or [width, height] (resolution)."),
    ] = 512
    batch_size: Annotated[
        int, Field(ge=1, description="Images per batch per device (--train_batch_size).")
    ] = 1
    enable_bucket: Annotated[
        bool, Field(description="Group images by aspect ratio (enable_bucket).")
    ] = True
    caption_extension: Annotated[
        str,
        Field(
            min_length=1,
            description="Caption file extension. Rendered as .txt unless set; sd-scripts' own "
            "default would be .caption (caption_extension).",
        ),
    ] = ".txt"
    subsets: Annotated[
        list[Subset],
        Field(description="Image folders of the (single) dataset: [[dataset.subsets]]."),
    ] = []
    datasets: Annotated[
        list[DatasetBlock],
        Field(
            description="Several datasets with their own resolution/batch: [[dataset.datasets]]."
        ),
    ] = []

    def all_subsets(self) -> list[tuple[str, Subset]]:
        """Every subset with its dotted path as the user wrote it."""
        out: list[tuple[str, Subset]] = [
            (f"dataset.subsets[{i}]", s) for i, s in enumerate(self.subsets)
        ]
        for d, block in enumerate(self.datasets):
            out += [(f"dataset.datasets[{d}].subsets[{i}]", s) for i, s in enumerate(block.subsets)]
        return out
