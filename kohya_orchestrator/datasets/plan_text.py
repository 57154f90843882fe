"""A step plan as plain text: subsets, buckets, the seed formula, sd-scripts' count and why."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .plan_models import StepPlan

__all__ = ["render_plan_text"]


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
