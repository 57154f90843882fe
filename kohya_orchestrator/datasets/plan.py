"""Exact step plan: the buckets, batches, epochs and steps sd-scripts will run, without torch.

The arithmetic follows sd-scripts (see docs/sd-scripts-reference.md section 2.8), re-derived here
from reading its code rather than importing it:

1. Images per subset come from globbing ``image_dir`` (tree.scan_folder). With
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

Modules around this one: plan_inputs.py reads the dataset specs from a job, buckets.py chooses
buckets, plan_models.py holds the result models and finding codes, plan_text.py renders a plan.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import Problem
from .buckets import BucketCount, BucketError, BucketSelector
from .findings import make_finding
from .imageheaders import HeaderError, read_size
from .plan_inputs import DatasetSpec, SubsetSpec, job_specs, resolution_pair
from .plan_models import PLAN_FINDINGS, DatasetPlan, PlanNote, StepPlan, SubsetPlan
from .tree import read_tree, scan_folder

if TYPE_CHECKING:
    from ..models import TrainingJob

__all__ = ["DEFAULT_MAX_TRAIN_STEPS", "plan_dataset", "plan_job"]

DEFAULT_MAX_TRAIN_STEPS = 1600
"""sd-scripts' --max_train_steps default, used when neither epochs nor steps are given."""


def _note(code: str, path: str, **values: object) -> Problem:
    return make_finding(PLAN_FINDINGS, code, path, values)


# ----------------------------------------------------------------------------- arithmetic
@dataclass
class _Context:
    seed: int | None
    size_of: Callable[[str], tuple[int, int]]
    findings: list[Problem] = field(default_factory=list)
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


def _adjust_bucket_reso(spec: DatasetSpec, ctx: _Context) -> tuple[int, int]:
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


def _split(images: list[str], spec: DatasetSpec, ctx: _Context) -> list[str]:
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


def _plan_dataset_spec(index: int, spec: DatasetSpec, ctx: _Context) -> DatasetPlan:
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
    rows: list[tuple[SubsetSpec, list[str], list[list[int]], int]] = []
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
    specs: Sequence[DatasetSpec],
    *,
    source: str,
    max_train_epochs: int | None,
    max_train_steps: int | None,
    gradient_accumulation_steps: int,
    num_processes: int,
    seed: int | None,
    findings: Sequence[Problem] = (),
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
        SubsetSpec(s.path, s.repeats, s.is_reg, s.path, images=s.images) for s in tree.subsets
    ]
    spec = DatasetSpec(
        resolution=resolution_pair(resolution),
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
    findings: list[Problem] = []
    specs = job_specs(job, findings)
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
