"""Epochs from data: pick ``max_train_epochs`` so a run's total steps land in a preset's range.

A preset's ``[epochs_from_data]`` table (``target_steps = [low, high]``, ``min_epochs``,
``max_epochs``) asks for it. The steps per epoch come from planning the actual data
(datasets/plan.py); :func:`choose_epochs` takes the whole number of epochs whose total lands in
the range, nearest its middle, and :class:`EpochChoice` keeps the arithmetic to show. A job file,
option or ``--set`` that sets ``max_train_epochs`` or ``max_train_steps`` wins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, OrchestratorError, Problem
from .layers import Layer, compose_layers
from .loading import validate_job

if TYPE_CHECKING:
    from ..datasets.plan_models import StepPlan

__all__ = [
    "EpochChoice",
    "StepTarget",
    "choose_epochs",
    "epochs_from_data",
    "length_setter",
    "step_target",
]


@dataclass(frozen=True)
class StepTarget:
    """A preset's wish for the length of a run: total steps in ``[low, high]``."""

    low: int
    high: int
    min_epochs: int = 1
    max_epochs: int = 100
    source: str = "preset"

    @property
    def middle(self) -> float:
        """The middle of the step range."""
        return (self.low + self.high) / 2


def step_target(tables: Sequence[tuple[str, Mapping[str, Any]]]) -> StepTarget | None:
    """The run length asked for by ``[epochs_from_data]`` tables, lowest layer first.

    Args:
        tables: ``(label, table)`` for each preset file that has the table; later keys win,
            and the label of the last one names the target's source in problems.

    Returns:
        The target, or None when no table was given.

    Raises:
        ConfigError: A key is unknown or a value out of range (each naming the file).
    """
    merged: dict[str, Any] = {}
    source = ""
    for label, table in tables:
        merged.update(table)
        source = label
    if not merged:
        return None
    problems: list[Problem] = []
    steps = merged.get("target_steps")
    lo_e, hi_e = merged.get("min_epochs", 1), merged.get("max_epochs", 100)
    ok_steps = (
        isinstance(steps, list)
        and len(steps) == 2
        and all(isinstance(s, int) and s >= 1 for s in steps)
        and steps[0] <= steps[1]
    )
    if not ok_steps:
        problems.append(
            Problem(
                "epochs_from_data.target_steps",
                f"expected [low, high] with 1 <= low <= high, got {steps!r} (set by {source})",
                "e.g. target_steps = [1500, 3000]",
            )
        )
    if not (isinstance(lo_e, int) and isinstance(hi_e, int) and 1 <= lo_e <= hi_e):
        problems.append(
            Problem(
                "epochs_from_data.min_epochs",
                f"expected 1 <= min_epochs <= max_epochs, got {lo_e!r} and {hi_e!r} "
                f"(set by {source})",
                "e.g. min_epochs = 2, max_epochs = 20",
            )
        )
    unknown = set(merged) - {"target_steps", "min_epochs", "max_epochs"}
    for key in sorted(unknown):
        problems.append(
            Problem(
                f"epochs_from_data.{key}",
                f"unknown key '{key}' (set by {source})",
                "allowed: target_steps, min_epochs, max_epochs",
            )
        )
    if problems or not isinstance(steps, list):
        raise ConfigError(problems, source=source)
    return StepTarget(int(steps[0]), int(steps[1]), int(lo_e), int(hi_e), source)


def choose_epochs(steps_per_epoch: int, target: StepTarget) -> int:
    """The number of epochs whose total steps lands in the target, nearest its middle.

    When no whole number of epochs within ``[min_epochs, max_epochs]`` lands in the range, the
    one closest to it is taken (a tiny dataset gets ``max_epochs``, a huge one ``min_epochs``).

    Args:
        steps_per_epoch: Optimizer steps of one epoch (from plan.py).
        target: The preset's step range and epoch bounds.

    Returns:
        The number of epochs.
    """

    def score(epochs: int) -> tuple[int, float, int]:
        total = epochs * steps_per_epoch
        outside = max(target.low - total, total - target.high, 0)
        return outside, abs(total - target.middle), epochs

    return min(range(target.min_epochs, target.max_epochs + 1), key=score)


def _arithmetic(plan: StepPlan) -> str:
    if len(plan.datasets) == 1:
        d = plan.datasets[0]
        terms = [
            f"{s.image_count} images x {s.num_repeats} repeats"
            for s in d.subsets
            if s.used and not s.is_reg
        ]
        text = " + ".join(terms) or "0 images"
        if d.reg_samples_per_epoch:
            text += f" + {d.reg_samples_per_epoch} reg images"
        text += f" / batch {d.batch_size}"
        batch = d.batch_size
    else:
        text = f"{plan.samples_per_epoch} images x repeats in {len(plan.datasets)} datasets"
        batch = 0
    if plan.num_processes > 1:
        text += f" / {plan.num_processes} GPUs"
    if plan.gradient_accumulation_steps > 1:
        text += f" / {plan.gradient_accumulation_steps} accumulation steps"
    text += f" = {plan.steps_per_epoch} steps per epoch"
    if batch:
        naive = math.ceil(
            plan.samples_per_epoch / batch / plan.num_processes / plan.gradient_accumulation_steps
        )
        if naive != plan.steps_per_epoch:
            text += f" (not {naive}: each aspect-ratio bucket rounds up to whole batches)"
    return text


@dataclass(frozen=True)
class EpochChoice:
    """The epochs picked from the data, with the arithmetic behind them."""

    target: StepTarget
    steps_per_epoch: int
    epochs: int
    arithmetic: str
    """``"6 images x 10 repeats / batch 2 = 30 steps per epoch"``."""

    @property
    def total_steps(self) -> int:
        """Steps of the whole run."""
        return self.epochs * self.steps_per_epoch

    @property
    def in_target(self) -> bool:
        """True when the total lands in the target range."""
        return self.target.low <= self.total_steps <= self.target.high

    @property
    def advice(self) -> str | None:
        """What to change when the total misses the target."""
        t = self.target
        if self.total_steps < t.low and self.epochs == t.max_epochs:
            return (
                f"below the target even at the preset's {t.max_epochs} epochs: add images or "
                "raise the repeats (the number before _ in the folder name)"
            )
        if self.total_steps > t.high and self.epochs == t.min_epochs:
            return (
                f"above the target even at the preset's {t.min_epochs} epochs: lower the repeats "
                "(e.g. rename 30_name to 15_name)"
            )
        if not self.in_target:
            return "no whole number of epochs lands in the range; this is the closest"
        return None

    @property
    def summary(self) -> str:
        """One line: the arithmetic, the epochs, the total and the target."""
        t = self.target
        line = (
            f"{self.arithmetic}; {self.epochs} epochs -> {self.total_steps} steps "
            f"(target {t.low}-{t.high})"
        )
        return line + (f"; {self.advice}" if self.advice else "")


def length_setter(layers: Sequence[Layer]) -> str | None:
    """The name of the highest layer that sets the training length (None: none does)."""
    who = None
    for layer in layers:
        training = layer.data.get("training")
        if isinstance(training, Mapping) and (
            "max_train_epochs" in training or "max_train_steps" in training
        ):
            who = layer.name
    return who


def epochs_from_data(
    preset: Sequence[Layer], user: Sequence[Layer], target: StepTarget, num_processes: int
) -> tuple[EpochChoice | None, str | None]:
    """The epochs for the composed job's data, or None and why not (None: the job is invalid).

    The job is planned with one epoch; problems it has are left to the final validation.
    """
    from ..datasets.plan import plan_job

    probe = Layer("probe", {"training": {"max_train_epochs": 1}})
    composed = compose_layers([*preset, *user, probe])
    training = composed.data.get("training", {})
    if isinstance(training, Mapping) and "max_train_steps" in training:
        return None, "the preset sets max_train_steps; epochs from data not used"
    try:
        job = validate_job(composed.data)
        plan = plan_job(job, num_processes=num_processes)
    except (OrchestratorError, OSError, ValueError):
        return None, None  # the final validation reports the problems
    if plan.steps_per_epoch == 0:
        return None, "no images to plan from; max_train_epochs stays as the preset sets it"
    epochs = choose_epochs(plan.steps_per_epoch, target)
    return EpochChoice(target, plan.steps_per_epoch, epochs, _arithmetic(plan)), None
