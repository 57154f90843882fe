"""Values read out of console text: tqdm's times, rates and postfix, lenient numbers, and the
events built from a tqdm bar or a saved file's name."""

from __future__ import annotations

import re

from .patterns import CHECKPOINT_EPOCH_SUFFIX_RE, CHECKPOINT_STEP_SUFFIX_RE
from .types import (
    CheckpointSaved,
    Phase,
    ProgressBar,
    StateSaved,
    StepProgress,
    TrainingPlan,
    trusted_constructor,
)

__all__ = [
    "bar_event",
    "checkpoint_event",
    "parse_postfix",
    "parse_rate",
    "parse_seconds",
    "state_saved_event",
    "step_event",
    "to_float",
    "to_int",
]

# Built from values computed here: no validation (types.trusted_constructor says why).
_CheckpointSaved = trusted_constructor(CheckpointSaved)
_ProgressBar = trusted_constructor(ProgressBar)
_StateSaved = trusted_constructor(StateSaved)
_StepProgress = trusted_constructor(StepProgress)


def parse_seconds(value: str | None) -> float | None:
    """tqdm's ``MM:SS`` / ``H:MM:SS`` to seconds; None for ``?`` or nothing."""
    if not value or value == "?":
        return None
    total = 0
    for part in value.split(":"):
        total = total * 60 + int(part)
    return float(total)


def parse_rate(rate: str | None, unit: str | None) -> float | None:
    """tqdm's rate (``2.50`` with unit ``it/s`` or ``s/it``) in iterations per second."""
    if not rate or rate == "?" or not unit:
        return None
    value = float(rate)
    if unit.startswith("s/"):
        return 1.0 / value if value > 0 else None
    return value


def parse_postfix(text: str | None) -> dict[str, str]:
    """tqdm's postfix ``avr_loss=1.09, lr=0.0001`` as ``{key: value}`` text."""
    items: dict[str, str] = {}
    if text:
        for item in text.split(", "):
            key, sep, value = item.partition("=")
            if sep:
                items[key.strip()] = value.strip()
    return items


def to_int(value: str) -> int | None:
    """``int(value)``, or None when it is not an integer."""
    try:
        return int(value)
    except ValueError:
        return None


def to_float(value: str) -> float | None:
    """``float(value)``, or None when it is not a number."""
    try:
        return float(value)
    except ValueError:
        return None


def bar_event(m: re.Match[str], seq: int, t: float, phase: Phase | None) -> ProgressBar:
    """The :class:`ProgressBar` of a tqdm bar other than ``steps`` (a ``TQDM_RE`` match)."""
    total_s = m["total"]
    postfix = parse_postfix(m["postfix"])
    return _ProgressBar(
        seq=seq,
        t=t,
        text=m.group(0),
        desc=m["desc"],
        n=int(m["n"] if total_s is not None else m["n_only"]),
        total=int(total_s) if total_s is not None else None,
        phase=phase,
        rate_it_s=parse_rate(m["rate"], m["rate_unit"]),
        elapsed_s=parse_seconds(m["elapsed"]),
        eta_s=parse_seconds(m["remaining"]),
        postfix=postfix or None,
    )


def step_event(
    m: re.Match[str],
    seq: int,
    t: float,
    postfix: dict[str, str],
    loss: float | None,
    epoch: int | None,
    plan: TrainingPlan | None,
) -> StepProgress:
    """The :class:`StepProgress` of a ``steps`` bar (a ``TQDM_RE`` match with a total).

    ``postfix`` holds the items other than the loss; ``epoch_step`` counts from the plan's steps
    per epoch (the bar counts from a resumed step, the plan's total from zero).
    """
    n = int(m["n"])
    total = int(m["total"])
    rate = parse_rate(m["rate"], m["rate_unit"])
    per_epoch = plan.steps_per_epoch if plan is not None else None
    epoch_step: int | None = None
    epoch_eta: float | None = None
    if epoch is not None and per_epoch:
        offset = 0
        if plan is not None and plan.total_steps is not None and plan.total_steps >= total:
            offset = plan.total_steps - total
        epoch_step = min(max(n + offset - (epoch - 1) * per_epoch, 0), per_epoch)
        if rate:
            epoch_eta = (per_epoch - epoch_step) / rate
    return _StepProgress(
        seq=seq,
        t=t,
        text=m.group(0),
        step=n,
        total_steps=total,
        epoch=epoch,
        avr_loss=loss,
        rate_it_s=rate,
        elapsed_s=parse_seconds(m["elapsed"]),
        eta_s=parse_seconds(m["remaining"]),
        epoch_step=epoch_step,
        epoch_total_steps=per_epoch,
        epoch_eta_s=epoch_eta,
        postfix=postfix or None,
    )


def checkpoint_event(seq: int, t: float, text: str, path: str) -> CheckpointSaved:
    """The :class:`CheckpointSaved` of a saved file: epoch or step from its name's suffix."""
    em = CHECKPOINT_EPOCH_SUFFIX_RE.search(path)
    sm = CHECKPOINT_STEP_SUFFIX_RE.search(path)
    return _CheckpointSaved(
        seq=seq,
        t=t,
        text=text,
        path=path,
        epoch=int(em["epoch"]) if em else None,
        step=int(sm["step"]) if sm else None,
        final=em is None and sm is None,
    )


def state_saved_event(seq: int, t: float, text: str, m: re.Match[str]) -> StateSaved:
    """The :class:`StateSaved` of a ``STATE_SAVED_RE`` match."""
    return _StateSaved(
        seq=seq, t=t, text=text, path=m["path"], epoch=int(m["epoch"]), step=int(m["step"])
    )
