"""What a dataset report says: its result models, and the codes of the findings it carries.

report.py fills these in; ``dataset inspect --json`` prints :class:`DatasetReport`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ..errors import Problem
from .buckets import BucketCount
from .findings import FindingTable

__all__ = [
    "FEW_IMAGES",
    "INSPECT_FINDINGS",
    "MANY_IMAGES",
    "STYLE_REPEATS",
    "DatasetReport",
    "RatioCount",
    "SizeCount",
    "SubsetReport",
    "TagCount",
]

FEW_IMAGES = 15
"""Below this many images per subset the seed recipe warns (too few to generalise)."""
MANY_IMAGES = 100
"""Above this many images per subset the seed recipe splits the folder in two."""
STYLE_REPEATS = (10, 30)
"""The repeats range the seed recipe uses for a style."""

_STOPS = "sd-scripts stops on it"
INSPECT_FINDINGS: FindingTable = {
    "unreadable_file": ("error", f"cannot read the file ({{why}}): {_STOPS}", "check permissions"),
    "empty_file": ("error", f"0-byte file: {_STOPS}", "remove it or copy the image again"),
    "corrupt_image": (
        "error",
        f"unreadable image header ({{why}}): {_STOPS}",
        "re-export the image, or remove it",
    ),
    "truncated_image": (
        "error",
        "{why}: sd-scripts stops when it loads the pixels",
        "re-download or re-export the image",
    ),
    "undecodable_pixels": (
        "error",
        f"the pixels do not decode ({{why}}): {_STOPS}",
        "re-export the image",
    ),
    "tiny_image": (
        "warning",
        "{w}x{h} is smaller than the training resolution {rw}x{rh}: it is upscaled about {f}x "
        "and looks soft",
        "use a larger source, lower the resolution, or set bucket_no_upscale",
    ),
    "cmyk": (
        "warning",
        "CMYK image: sd-scripts converts it to RGB and colours may shift",
        "convert it to RGB (sRGB) first",
    ),
    "sixteen_bit": (
        "warning",
        "{depth}-bit {mode} image: sd-scripts converts it to 8-bit RGB{extra}",
        "save it as an 8-bit RGB image",
    ),
    "transparency": (
        "warning",
        "{mode} image with transparency: sd-scripts drops the alpha channel, and transparent areas "
        "train as whatever colour is stored under them (often black)",
        "flatten it onto a background, or set alpha_mask = true to mask the loss",
    ),
    "grayscale": ("info", "grayscale image ({mode}): it trains as grey RGB", None),
    "exif_rotated": (
        "warning",
        "EXIF orientation {orientation} ({what}): sd-scripts ignores EXIF rotation and trains on "
        "the stored pixels",
        "rotate the pixels and drop the EXIF orientation (e.g. PIL ImageOps.exif_transpose)",
    ),
    "animated": ("info", "animated {fmt}: sd-scripts uses the first frame only", None),
    "extension_mismatch": (
        "info",
        "the name says {ext} but the content is {fmt} (sd-scripts goes by the content)",
        None,
    ),
    "sd_size_differs": (
        "info",
        "sd-scripts reads this {fmt} as {sw}x{sh}, not {w}x{h} (imagesize 1.4.1 quirk); its bucket "
        "is chosen from that size",
        None,
    ),
    "duplicate_image": (
        "warning",
        "exact duplicate of {first}",
        "remove one copy (or keep it on purpose to weight it)",
    ),
    "missing_captions": (
        "warning",
        "{n} image(s) have no {ext} caption ({names}): {fallback}",
        "write captions, or tag the images (WD14 tagger)",
    ),
    "long_caption": (
        "warning",
        "{n} caption(s) are longer than CLIP's {limit} tokens (at least {most} in {name}): the "
        "words after the limit never train",
        "shorten them (the trigger word first), or set max_token_length = 150 or 225 in the "
        "job's [extra_args]",
    ),
    "other_caption_extension": (
        "warning",
        "{n} image(s) have a {other} caption but captions are read from {ext}",
        "pass --caption-extension {other} (and set caption_extension in the job), or rename them",
    ),
    "empty_caption_file": (
        "error",
        "empty caption file: sd-scripts stops ('caption file is empty')",
        "write a caption or delete the file",
    ),
    "empty_caption": (
        "warning",
        "the caption's first line is empty: the image trains with no caption",
        "write a caption on the first line",
    ),
    "caption_not_utf8": (
        "error",
        "caption is not UTF-8 (byte {pos}): sd-scripts stops reading it",
        "re-save the caption as UTF-8",
    ),
    "unreadable_caption": ("error", f"cannot read the caption ({{why}}): {_STOPS}", None),
    "caption_bom": (
        "warning",
        "caption starts with a UTF-8 byte-order mark: sd-scripts keeps it as part of the first tag",
        "re-save it as UTF-8 without BOM",
    ),
    "trigger_missing": (
        "warning",
        "{n} of {total} captions do not mention the trigger '{trigger}' ({names})",
        "python -m kohya_orchestrator dataset captions {qpath} add {qtrigger} --front",
    ),
    "few_images": (
        "warning",
        "only {n} images: the seed recipe uses at least " + str(FEW_IMAGES) + " per subset",
        "add more varied images",
    ),
    "many_images": (
        "warning",
        "{n} images in one subset: the seed recipe splits folders above "
        + str(MANY_IMAGES)
        + " images in two",
        "python -m kohya_orchestrator dataset create <flat folder> --repeats {repeats} "
        '--name "{name}" --into <new folder> --max-per-subset ' + str(MANY_IMAGES),
    ),
    "repeats_range": (
        "info",
        "{repeats} repeats: the seed recipe uses {lo}-{hi} for a style",
        "rename the folder, e.g. '{lo}_{name}'",
    ),
}


# ----------------------------------------------------------------------------- report models
class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class RatioCount(_Out):
    """How many images have an aspect ratio."""

    ratio: str
    count: int


class SizeCount(_Out):
    """How many images have a size."""

    size: tuple[int, int]
    count: int


class TagCount(_Out):
    """How many captions hold a tag (lower-cased, like sd-scripts' tag frequency)."""

    tag: str
    count: int


class SubsetReport(_Out):
    """One `<repeats>_<name>` folder."""

    path: str
    name: str
    is_reg: bool
    repeats: int
    class_tokens: str
    image_count: int
    images_with_repeats: int
    captioned: int
    missing_captions: int
    empty_captions: int
    formats: dict[str, int]
    modes: dict[str, int]
    min_size: tuple[int, int] | None
    max_size: tuple[int, int] | None
    orientations: dict[str, int]
    aspect_ratios: list[RatioCount]
    sizes: list[SizeCount]
    """The ten most common sizes."""
    buckets: list[BucketCount]
    """Bucket preview at the report's resolution (images, without repeats)."""
    tiny_images: int
    unreadable_images: int
    truncated_images: int
    unusual_modes: int
    duplicates: int
    tags: list[TagCount]
    trigger: str | None
    trigger_missing: int


class DatasetReport(_Out):
    """Everything ``dataset inspect`` found, as data (``--json`` prints this model)."""

    root: str
    reg_root: str | None
    resolution: tuple[int, int]
    caption_extension: str
    verified_pixels: bool
    subsets: list[SubsetReport]
    image_count: int
    images_with_repeats: int
    reg_image_count: int
    reg_images_with_repeats: int
    duplicate_groups: list[list[str]]
    findings: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        """Findings that would make sd-scripts fail."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Findings that are allowed but probably unintended."""
        return [f for f in self.findings if f.severity == "warning"]
