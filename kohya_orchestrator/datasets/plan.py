"""Exact step plan: the buckets, batches, epochs and steps sd-scripts will run, without torch.

The arithmetic follows sd-scripts (see docs/sd-scripts-reference.md section 2.8), re-derived here
from reading its code rather than importing it:

1. Images per subset come from globbing ``image_dir`` (dataset_tree.scan_folder). With
   ``validation_split`` each non-reg subset keeps ``ceil(n * (1 - split))`` images after a seeded
   shuffle (``train_util.split_train_val``).
2. Reg images are balanced against the train images (``DreamBoothDataset.__init__``): a first
   round-robin pass registers each reg image with its own repeats and stops as soon as the count
   reaches the train count; later passes add one repeat per image.
3. Each image (sized from its header as sd-scripts sizes it) goes to one bucket
   (``BucketManager.select_bucket``); a bucket holds images x repeats and rounds up to whole
   batches on its own, so ``batches = sum(ceil(count / batch_size))`` over buckets and datasets.
4. ``max_train_epochs`` wins over ``max_train_steps`` (default 1600): steps =
   ``epochs * ceil(batches / num_processes / gradient_accumulation_steps)``
   (``train_network.py: 799-805, 978-979``).
"""

from __future__ import annotations

import bisect
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from .imageheaders import HeaderError, read_size
from .tree import Finding, Severity, make_finding, read_tree, scan_folder

if TYPE_CHECKING:
    from ..models import TrainingJob

__all__ = [
    "DEFAULT_MAX_TRAIN_STEPS",
    "BucketCount",
    "BucketSelector",
    "DatasetPlan",
    "PlanNote",
    "StepPlan",
    "SubsetPlan",
    "make_bucket_resolutions",
    "plan_dataset",
    "plan_job",
    "render_plan_text",
]

DEFAULT_MAX_TRAIN_STEPS = 1600
"""sd-scripts' --max_train_steps default, used when neither epochs nor steps are given."""

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

PLAN_FINDINGS: dict[str, tuple[Severity, str, str | None]] = {
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


def _note(code: str, path: str, **values: object) -> Finding:
    return make_finding(PLAN_FINDINGS, code, path, values)


# ----------------------------------------------------------------------------- result models
class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class BucketCount(_Out):
    """One aspect-ratio bucket: its resolution and how many images x repeats it holds."""

    resolution: tuple[int, int]
    count: int
    batches: int = 0


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
    warnings: list[Finding]
    exact: bool

    @property
    def errors(self) -> list[Finding]:
        """Findings that would make sd-scripts fail."""
        return [w for w in self.warnings if w.severity == "error"]


# ----------------------------------------------------------------------------- buckets
def make_bucket_resolutions(
    max_reso: tuple[int, int], min_size: int = 256, max_size: int = 1024, divisible: int = 64
) -> list[tuple[int, int]]:
    """The predefined bucket resolutions for a training resolution (sd-scripts' set, sorted).

    One square bucket of the resolution's area, then for each width from ``min_size`` to
    ``max_size`` in steps of ``divisible`` the tallest height (a multiple of ``divisible``, at
    most ``max_size``) whose area fits, plus its transpose.
    """
    width, height = max_reso
    area = width * height
    resos = {(int(math.sqrt(area) // divisible) * divisible,) * 2}
    side = min_size
    while side <= max_size:
        other = min(max_size, int((area // side) // divisible) * divisible)
        if other >= min_size:
            resos.add((side, other))
            resos.add((other, side))
        side += divisible
    return sorted(resos)


class BucketError(ValueError):
    """The image cannot be put in a bucket (sd-scripts would fail on it)."""


class BucketSelector:
    """Chooses an image's bucket the way sd-scripts' BucketManager does.

    Without ``no_upscale`` the image goes to the predefined bucket with the nearest aspect ratio
    (the first one on ties; an exact resolution match wins). With ``no_upscale`` an image larger
    than the resolution's area is scaled down to that area, and the bucket is the (scaled) size
    rounded down to multiples of ``steps``. Without bucketing there is one bucket.
    """

    def __init__(
        self,
        resolution: tuple[int, int],
        *,
        enable_bucket: bool = True,
        no_upscale: bool = False,
        min_size: int = 256,
        max_size: int = 1024,
        steps: int = 64,
    ) -> None:
        """Prepare the bucket set.

        Args:
            resolution: ``(width, height)`` of training.
            enable_bucket: Aspect-ratio bucketing on; off means one bucket of ``resolution``.
            no_upscale: sd-scripts' bucket_no_upscale.
            min_size: min_bucket_reso (already rounded to ``steps``).
            max_size: max_bucket_reso (already rounded to ``steps``).
            steps: bucket_reso_steps.
        """
        self.no_upscale = enable_bucket and no_upscale
        self.max_area = resolution[0] * resolution[1]
        self.steps = steps
        if not enable_bucket:
            predefined = [resolution]
        elif not self.no_upscale:
            predefined = make_bucket_resolutions(resolution, min_size, max_size, steps)
        else:
            predefined = []
        self.predefined = predefined
        self._predefined_set = set(predefined)
        ratios = [w / h for w, h in predefined]
        # nearest ratio by bisection; each distinct ratio keeps its first index (argmin's pick)
        self._first: dict[float, int] = {}
        for i, r in enumerate(ratios):
            self._first.setdefault(r, i)
        self._sorted = sorted(self._first)
        self._cache: dict[tuple[int, int], tuple[int, int]] = {}

    def select(self, width: int, height: int) -> tuple[int, int]:
        """The bucket ``(width, height)`` for an image of this size.

        Raises:
            BucketError: sd-scripts would divide by zero (a zero side, or a bucket side rounded
                down to 0 with no_upscale).
        """
        key = (width, height)
        hit = self._cache.get(key)
        if hit is None:
            try:
                hit = self._select(width, height)
            except ZeroDivisionError:
                raise BucketError(f"{width}x{height}") from None
            if hit[0] <= 0 or hit[1] <= 0:
                raise BucketError(f"{width}x{height} -> {hit[0]}x{hit[1]}")
            self._cache[key] = hit
        return hit

    def _round(self, x: float) -> int:
        x = int(x + 0.5)
        return x - x % self.steps

    def _select(self, width: int, height: int) -> tuple[int, int]:
        aspect = width / height
        if not self.no_upscale:
            if (width, height) in self._predefined_set:
                return width, height
            # sd-scripts: np.abs(ratios - aspect).argmin(), i.e. the smallest error, and on a tie
            # the first bucket. The smallest error is at one of the two neighbours of aspect.
            ratios, first = self._sorted, self._first
            k = bisect.bisect_left(ratios, aspect)
            if k == 0:
                best = ratios[0]
            elif k == len(ratios):
                best = ratios[-1]
            else:
                lo, hi = ratios[k - 1], ratios[k]
                err_lo, err_hi = abs(lo - aspect), abs(hi - aspect)
                tie = err_lo == err_hi and first[lo] < first[hi]
                best = lo if err_lo < err_hi or tie else hi
            return self.predefined[first[best]]
        if width * height > self.max_area:
            # scale down to the area, then round the side whose rounding keeps the ratio best
            scaled_w = math.sqrt(self.max_area * aspect)
            scaled_h = self.max_area / scaled_w
            w_rounded = self._round(scaled_w)
            h_in_wr = self._round(w_rounded / aspect)
            ar_w = w_rounded / h_in_wr
            h_rounded = self._round(scaled_h)
            w_in_hr = self._round(h_rounded * aspect)
            ar_h = w_in_hr / h_rounded
            if abs(ar_w - aspect) < abs(ar_h - aspect):
                resized = (w_rounded, int(w_rounded / aspect + 0.5))
            else:
                resized = (int(h_rounded * aspect + 0.5), h_rounded)
        else:
            resized = (width, height)
        bucket = (resized[0] - resized[0] % self.steps, resized[1] - resized[1] % self.steps)
        _ = bucket[0] / bucket[1]  # sd-scripts computes the ratio error here (and may divide by 0)
        return bucket


# ----------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class _SubsetSpec:
    image_dir: str
    num_repeats: int
    is_reg: bool
    where: str
    images: tuple[str, ...] | None = None  # pre-scanned (plan_dataset); None = glob it


@dataclass(frozen=True)
class _DatasetSpec:
    resolution: tuple[int, int]
    batch_size: int
    enable_bucket: bool
    min_bucket_reso: int
    max_bucket_reso: int
    bucket_reso_steps: int
    bucket_no_upscale: bool
    validation_split: float
    validation_seed: int | None
    subsets: list[_SubsetSpec]
    where: str = "dataset"


@dataclass
class _Context:
    seed: int | None
    size_of: Callable[[str], tuple[int, int]]
    findings: list[Finding] = field(default_factory=list)
    sizes: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    global_rng: random.Random | None = None
    exact: bool = True

    def size(self, path: str) -> tuple[int, int] | None:
        if path in self.sizes:
            return self.sizes[path]
        try:
            size: tuple[int, int] | None = self.size_of(path)
        except (HeaderError, OSError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            folder = os.path.dirname(path)
            self.findings.append(_note("unreadable_image", path, why=why, folder=folder))
            size = None
        self.sizes[path] = size
        return size


def _adjust_bucket_reso(spec: _DatasetSpec, ctx: _Context) -> tuple[int, int]:
    lo, hi, steps = spec.min_bucket_reso, spec.max_bucket_reso, spec.bucket_reso_steps
    if lo % steps:
        new = lo - lo % steps
        ctx.findings.append(_note("min_reso_rounded", spec.where, old=lo, new=new, steps=steps))
        lo = new
    if hi % steps:
        new = hi + steps - hi % steps
        ctx.findings.append(_note("max_reso_rounded", spec.where, old=hi, new=new, steps=steps))
        hi = new
    if min(spec.resolution) < lo:
        ctx.findings.append(_note("min_reso_too_big", spec.where, lo=lo, side=min(spec.resolution)))
    if max(spec.resolution) > hi:
        ctx.findings.append(
            _note("max_reso_too_small", spec.where, hi=hi, side=max(spec.resolution))
        )
    return lo, hi


def _split(images: list[str], spec: _DatasetSpec, ctx: _Context) -> list[str]:
    """The training part of a validation split (train_util.split_train_val)."""
    if spec.validation_seed is not None:
        rng = random.Random(spec.validation_seed)  # random.seed(validation_seed) per subset
    else:
        # sd-scripts shuffles with the global random state, which its rich log output also
        # draws from (rich's Style() calls randint for every link it renders): the held-out
        # images cannot be predicted. Counts stay exact; buckets are one plausible split.
        if ctx.global_rng is None:
            ctx.exact = False
            ctx.findings.append(_note("split_unseeded", spec.where))
            ctx.global_rng = random.Random(ctx.seed)
        rng = ctx.global_rng
    pairs: list[tuple[str, None]] = [(p, None) for p in images]
    rng.shuffle(pairs)
    keep = math.ceil(len(pairs) * (1 - spec.validation_split))
    return [p for p, _ in pairs[:keep]]


def _plan_dataset_spec(index: int, spec: _DatasetSpec, ctx: _Context) -> DatasetPlan:
    lo: int | None = None
    hi: int | None = None
    if spec.enable_bucket:
        lo, hi = _adjust_bucket_reso(spec, ctx)
    # sd-scripts keys images by path (ImageInfo in image_data); a later registration of the same
    # path replaces the earlier one. Each image's repeats live in a one-item list, so that reg
    # balancing can raise them and identity tells which registration won.
    image_data: dict[str, list[int]] = {}
    reg_infos: list[tuple[str, list[int]]] = []
    seen_dirs: list[str] = []
    rows: list[tuple[_SubsetSpec, list[str], list[list[int]], int]] = []
    train_total = reg_total = 0
    for sub in spec.subsets:
        if sub.num_repeats < 1:
            ctx.findings.append(_note("zero_repeats", sub.where, repeats=sub.num_repeats))
            rows.append((sub, [], [], 0))
            continue
        if sub.image_dir in seen_dirs:
            ctx.findings.append(_note("duplicate_subset", sub.where))
            rows.append((sub, [], [], 0))
            continue
        if sub.images is not None:
            images = list(sub.images)
        elif not os.path.isdir(sub.image_dir):
            ctx.findings.append(_note("not_a_directory", sub.image_dir))
            images = []
        else:
            images, _, found = scan_folder(sub.image_dir)
            ctx.findings.extend(f for f in found if f.severity != "info")
        held_out = 0
        if spec.validation_split > 0.0 and not sub.is_reg and images:
            held_out = round(len(images) * spec.validation_split)  # the validation dataset's share
            images = _split(images, spec, ctx)
        if not images:
            ctx.findings.append(_note("no_images", sub.image_dir))
            rows.append((sub, [], [], held_out))
            continue
        repeats = sub.num_repeats
        cells = [[repeats] for _ in images]
        if sub.is_reg:
            reg_infos += zip(images, cells, strict=True)
            reg_total += repeats * len(images)
        else:
            image_data.update(zip(images, cells, strict=True))
            train_total += repeats * len(images)
        seen_dirs.append(sub.image_dir)
        rows.append((sub, images, cells, held_out))

    # reg balancing: first pass with own repeats until the train count is reached, then +1 each
    if reg_total:
        n = 0
        first = True
        while n < train_total:
            for path, cell in reg_infos:
                if first:
                    image_data[path] = cell
                    n += cell[0]
                else:
                    cell[0] += 1
                    n += 1
                if n >= train_total:
                    break
            first = False
        unused = sum(1 for path, cell in reg_infos if image_data.get(path) is not cell)
        if unused:
            ctx.findings.append(
                _note(
                    "reg_unused", spec.where, unused=unused, total=len(reg_infos), train=train_total
                )
            )

    selector = BucketSelector(
        spec.resolution,
        enable_bucket=spec.enable_bucket,
        no_upscale=spec.bucket_no_upscale,
        min_size=lo or 0,
        max_size=hi or 0,
        steps=spec.bucket_reso_steps,
    )
    counts: dict[tuple[int, int], int] = {}
    sizes, size_of, select = ctx.sizes, ctx.size, selector.select
    for path, cell in image_data.items():
        size = sizes[path] if path in sizes else size_of(path)
        if size is None:
            continue
        try:
            bucket = select(*size)
        except BucketError:
            bw = size[0] - size[0] % spec.bucket_reso_steps
            bh = size[1] - size[1] % spec.bucket_reso_steps
            ctx.findings.append(_note("zero_bucket", path, w=size[0], h=size[1], bw=bw, bh=bh))
            continue
        counts[bucket] = counts.get(bucket, 0) + cell[0]
    buckets = [
        BucketCount(resolution=r, count=c, batches=math.ceil(c / spec.batch_size))
        for r, c in sorted(counts.items())
    ]
    subsets = [
        SubsetPlan(
            image_dir=sub.image_dir,
            is_reg=sub.is_reg,
            num_repeats=sub.num_repeats,
            image_count=len(images),
            held_out=held_out,
            images_with_repeats=len(images) * sub.num_repeats,
            # what is drawn per epoch: later registrations of the same path replace earlier ones
            samples_per_epoch=sum(
                c[0] for p, c in zip(images, cells, strict=True) if image_data.get(p) is c
            ),
            used=bool(images),
        )
        for sub, images, cells, held_out in rows
    ]
    reg_samples = sum(s.samples_per_epoch for s in subsets if s.is_reg)
    validation = sum(s.held_out for s in subsets)
    return DatasetPlan(
        index=index,
        resolution=spec.resolution,
        batch_size=spec.batch_size,
        enable_bucket=spec.enable_bucket,
        min_bucket_reso=lo,
        max_bucket_reso=hi,
        bucket_reso_steps=spec.bucket_reso_steps if spec.enable_bucket else None,
        bucket_no_upscale=spec.enable_bucket and spec.bucket_no_upscale,
        validation_split=spec.validation_split,
        subsets=subsets,
        train_images_with_repeats=train_total,
        reg_images_with_repeats=reg_total,
        reg_samples_per_epoch=reg_samples,
        samples_per_epoch=sum(b.count for b in buckets),
        validation_images=validation,
        buckets=buckets,
        batches=sum(b.batches for b in buckets),
    )


# ----------------------------------------------------------------------------- steps
def _fmt(x: float) -> str:
    return f"{x:g}" if x != int(x) else str(int(x))


def _seed_formula(datasets: Sequence[DatasetPlan], epochs: int) -> tuple[str, float | None]:
    """The seed's `steps = (image_nums * repeat) * epochs / batch_size` with the user's numbers."""
    terms = [
        (p.image_count + p.held_out, p.num_repeats)
        for d in datasets
        for p in d.subsets
        if not p.is_reg and p.used
    ]
    if not terms or not datasets:
        return "steps = (image_nums * repeat) * epochs / batch_size", None
    batch = datasets[0].batch_size
    total = sum(n * r for n, r in terms)
    inner = " + ".join(f"{n} × {r}" for n, r in terms)
    value = total * epochs / batch
    text = (
        f"steps = (image_nums * repeat) * epochs / batch_size = ({inner}) × {epochs} / {batch} "
        f"= {_fmt(value)}"
    )
    return text, value


def _differences(plan: dict[str, Any], datasets: Sequence[DatasetPlan]) -> list[PlanNote]:
    notes: list[PlanNote] = []
    val = sum(d.validation_images for d in datasets)
    if val:
        notes.append(
            PlanNote(
                cause="validation_split",
                message=f"{val} image(s) are held out for validation; the train images x repeats "
                f"drop to {plan['train_images_with_repeats']}",
            )
        )
    reg = sum(d.reg_samples_per_epoch for d in datasets)
    if reg:
        notes.append(
            PlanNote(
                cause="reg_balancing",
                message=f"reg images are balanced against the train images: {reg} reg samples "
                f"join the {plan['train_images_with_repeats']} train samples each epoch "
                f"(the banner's 'num reg images' is the raw {plan['reg_images_with_repeats']})",
            )
        )
    plain = sum(math.ceil(d.samples_per_epoch / d.batch_size) for d in datasets)
    extra = plan["dataset_batches"] - plain
    if extra:
        n_buckets = sum(len(d.buckets) for d in datasets)
        notes.append(
            PlanNote(
                cause="bucket_rounding",
                message=f"each of the {n_buckets} buckets rounds up to whole batches on its own: "
                f"{plan['dataset_batches']} batches per epoch instead of {plain} (+{extra})",
            )
        )
    n_proc = plan["num_processes"]
    if n_proc > 1:
        notes.append(
            PlanNote(
                cause="num_processes",
                message=f"{n_proc} processes share each epoch's {plan['dataset_batches']} batches: "
                f"{plan['batches_per_epoch']} per process",
            )
        )
    ga = plan["gradient_accumulation_steps"]
    if ga > 1:
        notes.append(
            PlanNote(
                cause="gradient_accumulation",
                message=f"one optimizer step takes {ga} batches: {plan['steps_per_epoch']} steps "
                f"per epoch",
            )
        )
    if plan["max_train_epochs"] is None:
        given = plan["max_train_steps"]
        what = f"max_train_steps = {given}" if given else "sd-scripts' default 1600 steps"
        notes.append(
            PlanNote(
                cause="max_train_steps",
                message=f"no max_train_epochs: the run is {what}, i.e. {plan['epochs']} epoch(s) "
                f"of {plan['steps_per_epoch']} steps",
            )
        )
    return notes


def _plan(
    specs: Sequence[_DatasetSpec],
    *,
    source: str,
    max_train_epochs: int | None,
    max_train_steps: int | None,
    gradient_accumulation_steps: int,
    num_processes: int,
    seed: int | None,
    findings: Sequence[Finding] = (),
    size_of: Callable[[str], tuple[int, int]] = read_size,
) -> StepPlan:
    ctx = _Context(seed=seed, size_of=size_of, findings=list(findings))
    datasets = [_plan_dataset_spec(i, spec, ctx) for i, spec in enumerate(specs)]
    batches = sum(d.batches for d in datasets)
    banner = math.ceil(batches / num_processes)
    per_epoch = math.ceil(banner / gradient_accumulation_steps)
    if max_train_epochs is not None:
        # sd-scripts: max_train_epochs * ceil(len(dataloader) / num_processes / grad_accum)
        total = max_train_epochs * math.ceil(batches / num_processes / gradient_accumulation_steps)
    else:
        total = max_train_steps or DEFAULT_MAX_TRAIN_STEPS
        if max_train_steps is None:
            ctx.findings.append(_note("default_steps", source))
    epochs = math.ceil(total / per_epoch) if per_epoch else 0
    if not batches:
        ctx.findings.append(_note("no_data", source))
        total = epochs = 0
    elif max_train_epochs is None and total % per_epoch:
        last = total % per_epoch
        ctx.findings.append(
            _note("partial_epoch", source, steps=total, per_epoch=per_epoch, last=last)
        )
    merged: dict[tuple[int, int], list[int]] = {}
    for d in datasets:
        for b in d.buckets:
            slot = merged.setdefault(b.resolution, [0, 0])
            slot[0] += b.count
            slot[1] += b.batches
    values: dict[str, Any] = {
        "source": source,
        "datasets": datasets,
        "train_images_with_repeats": sum(d.train_images_with_repeats for d in datasets),
        "reg_images_with_repeats": sum(d.reg_images_with_repeats for d in datasets),
        "reg_samples_per_epoch": sum(d.reg_samples_per_epoch for d in datasets),
        "samples_per_epoch": sum(d.samples_per_epoch for d in datasets),
        "validation_images": sum(d.validation_images for d in datasets),
        "dataset_batches": batches,
        "batches_per_epoch": banner,
        "num_processes": num_processes,
        "gradient_accumulation_steps": gradient_accumulation_steps,
        "steps_per_epoch": per_epoch,
        "max_train_epochs": max_train_epochs,
        "max_train_steps": max_train_steps,
        "epochs": epochs,
        "total_steps": total,
        "buckets": [
            BucketCount(resolution=r, count=c, batches=b) for r, (c, b) in sorted(merged.items())
        ],
    }
    formula, seed_steps = _seed_formula(datasets, max_train_epochs or epochs)
    values["seed_formula"] = formula
    values["seed_steps"] = seed_steps
    values["differences"] = _differences(values, datasets)
    values["warnings"] = ctx.findings
    values["exact"] = ctx.exact and not any(f.severity == "error" for f in ctx.findings)
    return StepPlan(**values)


# ----------------------------------------------------------------------------- entry points
def _resolution(value: object) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, str):
        parts = [int(p) for p in value.split(",")]
        return (parts[0], parts[-1])
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    raise ValueError(f"resolution {value!r}")


def plan_dataset(
    train_dir: str | os.PathLike[str],
    reg_dir: str | os.PathLike[str] | None = None,
    *,
    resolution: int | tuple[int, int] = 512,
    batch_size: int = 1,
    max_train_epochs: int | None = None,
    max_train_steps: int | None = None,
    enable_bucket: bool = True,
    min_bucket_reso: int = 256,
    max_bucket_reso: int = 1024,
    bucket_reso_steps: int = 64,
    bucket_no_upscale: bool = False,
    gradient_accumulation_steps: int = 1,
    num_processes: int = 1,
    validation_split: float = 0.0,
    validation_seed: int | None = None,
    seed: int | None = None,
) -> StepPlan:
    """Plan a run over a kohya folder tree (what ``--train_data_dir``/``--reg_data_dir`` give).

    Subsets are taken in the order the file system lists them, as sd-scripts' own
    ``--train_data_dir`` does (and as ``subsets_from_tree`` writes them into a job); the order
    decides which reg images get an extra repeat when reg images are balanced.

    Args:
        train_dir: The parent of `<repeats>_<name>` folders, or one such folder.
        reg_dir: The same for regularisation images.
        resolution: Training resolution: one side or ``(width, height)``.
        batch_size: Images per batch (--train_batch_size).
        max_train_epochs: Train this many epochs (wins over ``max_train_steps``).
        max_train_steps: Train this many steps (sd-scripts' default 1600 when neither is set).
        enable_bucket: Aspect-ratio bucketing (our jobs' default: on).
        min_bucket_reso: Smallest bucket side.
        max_bucket_reso: Largest bucket side.
        bucket_reso_steps: Bucket side step.
        bucket_no_upscale: Never upscale small images into a bucket.
        gradient_accumulation_steps: Batches per optimizer step.
        num_processes: Processes (GPUs) sharing each epoch.
        validation_split: Fraction of each train subset held out.
        validation_seed: Seed of that split.
        seed: Training seed (shuffles the split when validation_seed is not set).

    Returns:
        The plan.

    Raises:
        ConfigError: A folder is missing or is a file.
    """
    tree = read_tree(train_dir, reg_dir)
    subsets = [
        _SubsetSpec(s.path, s.repeats, s.is_reg, s.path, images=s.images) for s in tree.subsets
    ]
    spec = _DatasetSpec(
        resolution=_resolution(resolution),
        batch_size=batch_size,
        enable_bucket=enable_bucket,
        min_bucket_reso=min_bucket_reso,
        max_bucket_reso=max_bucket_reso,
        bucket_reso_steps=bucket_reso_steps,
        bucket_no_upscale=bucket_no_upscale,
        validation_split=validation_split,
        validation_seed=validation_seed,
        subsets=subsets,
        where=tree.train_dir,
    )
    findings = [f for f in tree.findings if f.severity != "info"]
    return _plan(
        [spec],
        source=tree.train_dir,
        max_train_epochs=max_train_epochs,
        max_train_steps=max_train_steps,
        gradient_accumulation_steps=gradient_accumulation_steps,
        num_processes=num_processes,
        seed=seed,
        findings=findings,
    )


def _job_specs(job: TrainingJob, findings: list[Finding]) -> list[_DatasetSpec]:
    from ..models.dataset import DatasetBlock, DatasetConfig, FineTuningSubset

    ds = job.dataset
    extra = job.extra_args
    specs: list[_DatasetSpec] = []
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
                findings.append(_note("finetuning_subset", sub_where))
                continue
            repeats = sub.effective_repeats
            if repeats is None:
                repeats = pick("num_repeats")
            subsets.append(_SubsetSpec(sub.image_dir, int(repeats), sub.is_reg, sub_where))
        specs.append(
            _DatasetSpec(
                resolution=_resolution(pick("resolution")),
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


def plan_job(job: TrainingJob, *, num_processes: int = 1, source: str = "job") -> StepPlan:
    """Plan a validated job: the numbers sd-scripts will print for it.

    Values fall back like sd-scripts' dataset config: subset, then dataset, then ``[dataset]``
    (general), then ``extra_args`` (its command line), then sd-scripts' defaults.

    Args:
        job: The job.
        num_processes: Processes (GPUs) the launch uses.
        source: A label for messages (e.g. the job file name).

    Returns:
        The plan.
    """
    findings: list[Finding] = []
    specs = _job_specs(job, findings)
    t = job.training
    return _plan(
        specs,
        source=source,
        max_train_epochs=t.max_train_epochs,
        max_train_steps=t.max_train_steps,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_processes=num_processes,
        seed=t.seed,
        findings=findings,
    )


# ----------------------------------------------------------------------------- text view
def _table(
    header: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  "
) -> list[str]:
    cells = [list(map(str, header)), *[list(map(str, r)) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        return (indent + "  ".join([first, *rest])).rstrip()

    return [line(row) for row in cells]


def render_plan_text(plan: StepPlan) -> str:
    """The plan as plain text: subsets, buckets, the seed formula, sd-scripts' count and why.

    Args:
        plan: A plan from plan_job or plan_dataset.

    Returns:
        Lines joined with newlines (no markup; findings are not included).
    """
    out = [f"Plan for {plan.source}"]
    for d in plan.datasets:
        w, h = d.resolution
        if d.enable_bucket:
            how = f"buckets {d.min_bucket_reso}-{d.max_bucket_reso} step {d.bucket_reso_steps}"
            how += ", no upscale" if d.bucket_no_upscale else ""
        else:
            how = "no bucketing"
        out.append(f"dataset {d.index}: {w}x{h}, batch {d.batch_size}, {how}")
        rows = []
        for s in d.subsets:
            name = os.path.basename(s.image_dir.rstrip("/\\")) + (" (reg)" if s.is_reg else "")
            name += "" if s.used else " (not used)"
            rows.append(
                [name, s.image_count, s.num_repeats, s.images_with_repeats, s.samples_per_epoch]
            )
        out += _table(["subset", "images", "repeats", "images×repeats", "per epoch"], rows)
        rows = [[f"{b.resolution[0]}x{b.resolution[1]}", b.count, b.batches] for b in d.buckets]
        rows.append(["total", d.samples_per_epoch, d.batches])
        out += _table(["bucket", "images×repeats", "batches"], rows)
    out += ["", f"seed formula: {plan.seed_formula}", f"sd-scripts: {plan.total_steps} steps"]
    out += [f"  - {note.message}" for note in plan.differences]
    tail = "" if plan.max_train_epochs is not None else f", stopping at step {plan.total_steps}"
    out.append(f"  = {plan.epochs} epoch(s) × {plan.steps_per_epoch} steps per epoch{tail}")
    if not plan.exact:
        out.append("  (not exact: see the warnings)")
    out += [
        "",
        "banner (what sd-scripts prints):",
        f"  num train images * repeats: {plan.train_images_with_repeats}",
        f"  num reg images: {plan.reg_images_with_repeats}",
        f"  num batches per epoch: {plan.batches_per_epoch}",
        f"  num epochs: {plan.epochs}",
        f"  gradient accumulation steps = {plan.gradient_accumulation_steps}",
        f"  total optimization steps: {plan.total_steps}",
    ]
    return "\n".join(out)
