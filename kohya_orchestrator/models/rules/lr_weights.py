"""Block learning-rate weights of ``networks.lora``: what sd-scripts reads them as.

Read from networks/lora.py (``parse_block_lr_kwargs`` / ``get_block_lr_weight``) at the pinned
commit: ``down_lr_weight`` / ``up_lr_weight`` with a comma are per-block floats (an empty item is
0.0), without one a curve name (``cosine``, ``sine``, ``linear``, ``reverse_linear``, ``zeros``,
optionally ``+base``); ``mid_lr_weight`` is always comma-split floats. A single number such as
``0.5`` is read as a curve name, and the unknown-curve message itself then fails with a
``TypeError``; a non-number item stops with ``ValueError``. Too many values are cut off and too few
padded with 1.0, each with only a log warning.
"""

from __future__ import annotations

from collections.abc import Iterator

from ...errors import Problem
from ..family import profile
from ..network import LoraNetwork
from .base import JobView

__all__ = ["CURVES", "check_lr_weights", "warn_lr_weights"]

CURVES = ("cosine", "sine", "linear", "reverse_linear", "zeros")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _values(text: str) -> list[str]:
    return [item.strip() for item in text.split(",")]


def _counts(job: JobView) -> dict[str, int]:
    p = profile(job.model.family)
    if p.lr_weight_blocks is None or p.lr_weight_mid_blocks is None:
        return {}  # the family's LoRA module has no block LR weights: check_family refuses them
    return {
        "down_lr_weight": p.lr_weight_blocks,
        "mid_lr_weight": p.lr_weight_mid_blocks,
        "up_lr_weight": p.lr_weight_blocks,
    }


def _curve_problem(key: str, value: str, count: int) -> Problem | None:
    name, plus, base = value.partition("+")
    if name.strip() in CURVES and (not plus or _number(base)):
        return None
    if name.strip() in CURVES:
        return Problem(
            f"network.{key}",
            f"'{value}': the part after '+' must be a number (the base added to the curve)",
            f"e.g. {name.strip()}+0.5",
        )
    what = (
        f"'{value}' is one number; without a comma sd-scripts reads it as a curve name and stops"
        if _number(value)
        else f"unknown curve '{name.strip()}'; sd-scripts stops on it"
    )
    return Problem(
        f"network.{key}",
        what,
        f"give {count} comma-separated weights (one per block), or a curve: "
        f"{', '.join(CURVES)} (optionally +base, e.g. sine+0.5)",
    )


def check_lr_weights(job: JobView) -> Iterator[Problem]:
    n = job.network
    if not isinstance(n, LoraNetwork):
        return
    for key, count in _counts(job).items():
        value = getattr(n, key)
        if value is None:
            continue
        if key != "mid_lr_weight" and "," not in value:
            if (problem := _curve_problem(key, value, count)) is not None:
                yield problem
            continue
        items = _values(value)
        bad = [item for item in items if item and not _number(item)]
        if bad:
            yield Problem(
                f"network.{key}",
                f"'{bad[0]}' is not a number",
                f"give {count} comma-separated numbers",
            )
        elif any(item and float(item) < 0 for item in items):
            yield Problem(
                f"network.{key}",
                "a negative weight is read as 0 by sd-scripts (the block does not train)",
                "use 0 to switch a block off, positive weights otherwise",
            )
        elif len(items) > count:
            yield Problem(
                f"network.{key}",
                f"{len(items)} values; {job.model.family} has {count} "
                f"{'mid ' if key == 'mid_lr_weight' else ''}blocks and sd-scripts drops the rest",
                f"give at most {count} values",
            )


def warn_lr_weights(job: JobView) -> Iterator[Problem]:
    n = job.network
    if not isinstance(n, LoraNetwork):
        return
    for key, count in _counts(job).items():
        value = getattr(n, key)
        if value is None or (key != "mid_lr_weight" and "," not in value):
            continue
        items = _values(value)
        if any(item and (not _number(item) or float(item) < 0) for item in items):
            continue  # an error already
        if len(items) > count:
            continue
        if "" in items:
            yield Problem(
                f"network.{key}",
                "an empty item is weight 0.0 to sd-scripts (that block does not train)",
                "write 0 where you mean it, or remove the extra comma",
            )
        if len(items) < count:
            yield Problem(
                f"network.{key}",
                f"{len(items)} of {count} values; sd-scripts trains the other blocks at weight 1.0",
                f"give {count} values to say each block's weight",
            )
