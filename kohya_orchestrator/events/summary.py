"""A run in brief: one fold of its events into a frozen :class:`RunSummary`, and the plan line.

Everything that reads a run back (the runner's result, ``replay``, ``runs show``, the outputs view)
folds the same events the same way: feed them in order to a :class:`SummaryFold` (``add``), then
take :meth:`SummaryFold.summary`; :func:`summarize` does both for a finished list. The fold keeps
the last plan, phase, epoch and step, every checkpoint (with the step and epoch it was saved at),
sampling round, sample image and error, the loss per step, the predicted plan and its mismatch
with the banner, and the suspect samples; it does nothing else (no I/O, no
clock). :func:`plan_line` is the one way the training plan is written as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .failures import classify_failure
from .types import (
    CheckpointSaved,
    ChildError,
    ChildWarning,
    EpochStarted,
    Event,
    Phase,
    PhaseChanged,
    PlanMismatch,
    PlanPredicted,
    RunFinished,
    RunStarted,
    RunStatus,
    SampleImageSaved,
    SamplePrompt,
    SampleSuspect,
    SamplingStarted,
    StepProgress,
    TrainingPlan,
)

__all__ = ["RunSummary", "SavedCheckpoint", "SummaryFold", "plan_line", "summarize"]


@dataclass(frozen=True)
class SavedCheckpoint:
    """A checkpoint, and where training stood when it was saved."""

    event: CheckpointSaved
    step: int | None
    """The step the training bar showed last before it (None: no step yet)."""
    epoch: int | None
    """The epoch training was in (from ``epoch N/M`` or the bar)."""


@dataclass(frozen=True)
class RunSummary:
    """What a run's events say, folded (build with :class:`SummaryFold` or :func:`summarize`)."""

    events: int = 0
    """How many events were folded."""
    started: RunStarted | None = None
    finished: RunFinished | None = None
    """The last ``run_finished`` event (None while the run goes on, or after a crash)."""
    plan: TrainingPlan | None = None
    """The last training banner."""
    phase: Phase | None = None
    """The last phase reported."""
    epoch_started: EpochStarted | None = None
    """The last ``epoch N/M`` line."""
    last_step: StepProgress | None = None
    losses: Mapping[int, float] = field(default_factory=lambda: MappingProxyType({}))
    """Global step -> ``avr_loss`` shown at it (steps after 0; the last value of a step wins)."""
    epoch_end_steps: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    """Epoch -> the highest step (after 0) the bar showed in it."""
    checkpoints: tuple[SavedCheckpoint, ...] = ()
    sampling: tuple[SamplingStarted, ...] = ()
    """Every sampling round, in order."""
    prompts: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    """Prompt index -> the first prompt text logged for it."""
    samples: tuple[SampleImageSaved, ...] = ()
    warnings: int = 0
    """How many ``child_warning`` events there were."""
    errors: tuple[ChildError, ...] = ()
    predicted_plan: PlanPredicted | None = None
    """The plan the runner predicted before launching (None for older runs)."""
    plan_mismatch: PlanMismatch | None = None
    """sd-scripts' banner against the prediction, when they disagree."""
    suspect_samples: tuple[SampleSuspect, ...] = ()
    """Sample images found black, one colour or drawn after a NaN."""

    @property
    def status(self) -> RunStatus | None:
        """How the run ended, or None when no ``run_finished`` event was folded."""
        return self.finished.status if self.finished is not None else None

    @property
    def duration_s(self) -> float | None:
        """The run's wall time, once it finished."""
        return self.finished.duration_s if self.finished is not None else None

    @property
    def reason(self) -> str | None:
        """Why the run ended as it did (None when it succeeded or did not finish)."""
        return self.finished.reason if self.finished is not None else None

    @property
    def failure(self) -> ChildError | None:
        """The error that best explains a failed run (:func:`classify_failure`)."""
        return classify_failure(self.errors)

    @property
    def checkpoint_events(self) -> tuple[CheckpointSaved, ...]:
        """The checkpoints' events, in order."""
        return tuple(c.event for c in self.checkpoints)

    @property
    def sampling_step_by_epoch(self) -> dict[int, int]:
        """Epoch -> step of its first sampling round (rounds with both known)."""
        out: dict[int, int] = {}
        for r in self.sampling:
            if r.step is not None and r.epoch is not None:
                out.setdefault(r.epoch, r.step)
        return out

    @property
    def sampling_epoch_by_step(self) -> dict[int, int]:
        """Step -> epoch of the sampling round at it (rounds with both known; the last wins)."""
        return {
            r.step: r.epoch for r in self.sampling if r.step is not None and r.epoch is not None
        }


class SummaryFold:
    """Folds events, in order, into a :class:`RunSummary` (``add`` each; ``summary()`` any time).

    Example:
        >>> fold = SummaryFold()
        >>> fold.add(EpochStarted(seq=0, epoch=1, total_epochs=2))
        >>> fold.summary().epoch_started.epoch
        1
    """

    def __init__(self) -> None:
        """An empty fold."""
        self._count = 0
        self._started: RunStarted | None = None
        self._finished: RunFinished | None = None
        self._plan: TrainingPlan | None = None
        self._phase: Phase | None = None
        self._epoch_started: EpochStarted | None = None
        self._last_step: StepProgress | None = None
        self._step: int | None = None
        self._epoch: int | None = None
        self._losses: dict[int, float] = {}
        self._epoch_ends: dict[int, int] = {}
        self._checkpoints: list[SavedCheckpoint] = []
        self._sampling: list[SamplingStarted] = []
        self._prompts: dict[int, str] = {}
        self._samples: list[SampleImageSaved] = []
        self._warnings = 0
        self._errors: list[ChildError] = []
        self._predicted: PlanPredicted | None = None
        self._mismatch: PlanMismatch | None = None
        self._suspects: list[SampleSuspect] = []

    @property
    def sampling_started(self) -> bool:
        """Whether a sampling round was folded (sample images may appear from now on)."""
        return bool(self._sampling)

    def add(self, event: Event) -> None:
        """Fold one event (events must come in stream order)."""
        self._count += 1
        if isinstance(event, StepProgress):
            self._last_step = event
            self._step = event.step
            if event.epoch is not None:
                self._epoch = event.epoch
                if event.step > 0:
                    self._epoch_ends[event.epoch] = max(
                        self._epoch_ends.get(event.epoch, 0), event.step
                    )
            if event.avr_loss is not None and event.step > 0:
                self._losses[event.step] = event.avr_loss
        elif isinstance(event, PhaseChanged):
            self._phase = event.phase
        elif isinstance(event, TrainingPlan):
            self._plan = event
        elif isinstance(event, EpochStarted):
            self._epoch_started = event
            self._epoch = event.epoch
        elif isinstance(event, CheckpointSaved):
            self._checkpoints.append(SavedCheckpoint(event, self._step, self._epoch))
        elif isinstance(event, SamplingStarted):
            self._sampling.append(event)
        elif isinstance(event, SamplePrompt):
            if event.prompt_index is not None:
                self._prompts.setdefault(event.prompt_index, event.prompt)
        elif isinstance(event, SampleImageSaved):
            self._samples.append(event)
        elif isinstance(event, ChildWarning):
            self._warnings += 1
        elif isinstance(event, ChildError):
            self._errors.append(event)
        elif isinstance(event, RunStarted):
            self._started = event
        elif isinstance(event, RunFinished):
            self._finished = event
        elif isinstance(event, SampleSuspect):
            self._suspects.append(event)
        elif isinstance(event, PlanPredicted):
            self._predicted = event
        elif isinstance(event, PlanMismatch):
            self._mismatch = event

    def add_all(self, events: Iterable[Event]) -> SummaryFold:
        """Fold every event of ``events``, in order; returns the fold."""
        for event in events:
            self.add(event)
        return self

    def summary(self) -> RunSummary:
        """The summary of the events folded so far (a snapshot: later events do not change it)."""
        return RunSummary(
            events=self._count,
            started=self._started,
            finished=self._finished,
            plan=self._plan,
            phase=self._phase,
            epoch_started=self._epoch_started,
            last_step=self._last_step,
            losses=MappingProxyType(dict(self._losses)),
            epoch_end_steps=MappingProxyType(dict(self._epoch_ends)),
            checkpoints=tuple(self._checkpoints),
            sampling=tuple(self._sampling),
            prompts=MappingProxyType(dict(self._prompts)),
            samples=tuple(self._samples),
            warnings=self._warnings,
            errors=tuple(self._errors),
            predicted_plan=self._predicted,
            plan_mismatch=self._mismatch,
            suspect_samples=tuple(self._suspects),
        )


def summarize(events: Iterable[Event]) -> RunSummary:
    """Fold a run's events (in stream order) into its :class:`RunSummary`."""
    return SummaryFold().add_all(events).summary()


def plan_line(plan: TrainingPlan, *, detailed: bool = False) -> str:
    """The training plan in one line of text, without a label.

    Args:
        plan: The training banner's event.
        detailed: The long form ``replay`` prints (unknown values as ``?``) instead of the short
            one the live display and ``runs show`` print (unknown values as ``None``).

    Returns:
        Short: ``8 images x repeats, 4 batches/epoch, 2 epochs, 8 steps``. Detailed: ``8 steps =
        2 epochs x 4 steps/epoch (batch size 2, gradient accumulation 1); 8 images x repeats``.
    """
    if not detailed:
        return (
            f"{plan.train_images_with_repeats} images x repeats, {plan.batches_per_epoch} "
            f"batches/epoch, {plan.epochs} epochs, {plan.total_steps} steps"
        )
    sizes = ", ".join(str(b) for b in plan.batch_size_per_device or []) or "?"
    return (
        f"{_n(plan.total_steps)} steps = {_n(plan.epochs)} epochs x "
        f"{_n(plan.steps_per_epoch)} steps/epoch (batch size {sizes}, "
        f"gradient accumulation {_n(plan.gradient_accumulation_steps)}); "
        f"{_n(plan.train_images_with_repeats)} images x repeats"
    )


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)
