"""The runner's own checks while a run goes on: new sample images, their sanity, plan vs banner.

:class:`RunWatch` sees every batch of parsed events (``merge``) and adds the runner's own events to
it: ``sample_image_saved`` for each new image in ``<output_dir>/sample`` (sd-scripts
does not print sample paths), ``sample_suspect`` for an image that is black, one colour or came right
after diffusers' NaN cast warning, and ``plan_mismatch`` when sd-scripts' banner disagrees with
the ``plan_predicted`` the run recorded before launching.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..events import (
    ChildWarning,
    Event,
    PlanPredicted,
    SampleImageSaved,
    SampleProblem,
    SamplePrompt,
    SampleSuspect,
    SamplingStarted,
    TrainingPlan,
    compare_plan,
    parse_sample_filename,
)
from .samplecheck import check_sample_image, is_nan_cast_warning

if TYPE_CHECKING:
    from ..models import TrainingJob

__all__ = ["RunWatch", "suspect_event"]

_WHAT = {
    "black": "is all black",
    "one_colour": "is one flat colour",
    "unreadable": "cannot be read",
    "nan": "was drawn from NaN values (diffusers warned 'invalid value encountered in cast' "
    "right before it)",
}
_HINT = {
    "black": "the LoRA (or a half-precision VAE) may have produced NaN",
    "one_colour": "the LoRA may have collapsed; compare the other epochs",
    "nan": "training diverged or the VAE overflowed in half precision (try a lower learning "
    "rate, or `model.no_half_vae = true`)",
    "unreadable": "the file is broken",
}


def suspect_event(
    sample: SampleImageSaved, problem: SampleProblem, detail: str, prompt: str | None
) -> SampleSuspect:
    """The ``sample_suspect`` warning for a sample image, naming its epoch (or step) and prompt."""
    if sample.epoch is not None:
        when = f"epoch {sample.epoch}"
    elif sample.step is not None:
        when = f"step {sample.step}"
    else:
        when = Path(sample.path).name
    which = f"prompt {sample.prompt_index}" if sample.prompt_index is not None else "a prompt"
    if prompt:
        which += f" ({prompt!r})"
    text = f"sample of {when}, {which} {_WHAT[problem]}"
    if detail and problem != "nan":
        text += f": {detail}"
    text += f"; {_HINT[problem]}"
    return SampleSuspect(
        seq=0,
        path=sample.path,
        problem=problem,
        epoch=sample.epoch,
        step=sample.step,
        prompt_index=sample.prompt_index,
        prompt=prompt,
        message=text,
    )


class RunWatch:
    """Finds new sample images and checks them and the plan, batch by batch of events."""

    def __init__(self, job: TrainingJob) -> None:
        """Watch ``<output_dir>/sample`` for images named ``<output_name>_*.png``."""
        self._folder = Path(job.training.output_dir) / "sample"
        self._prefix = f"{job.training.output_name}_"
        self._seen: set[str] = set()
        self._pending: list[tuple[SampleImageSaved, bool]] = []  # not readable yet (being written)
        self._sampling = False
        self._nan_warned = False
        self._prompts: dict[int, str] = {}
        self._predicted: PlanPredicted | None = None

    def expect(self, predicted: Sequence[PlanPredicted]) -> list[Event]:
        """Record the predicted plan the banner will be compared with; returns it as events."""
        self._predicted = predicted[-1] if predicted else None
        return list(predicted)

    def merge(self, events: Sequence[Event], *, final: bool = False) -> list[Event]:
        """``events`` (one batch of parsed events, in order) with the runner's own events added.

        A ``plan_mismatch`` follows its banner; new sample images and their checks come last.

        Args:
            events: What the parser just emitted.
            final: The trainer has exited: scan the folder even without a sampling round, and
                report images that still cannot be read.
        """
        out: list[Event] = []
        for event in events:
            out.append(event)
            if isinstance(event, SamplingStarted):
                self._sampling = True
            elif isinstance(event, SamplePrompt):
                if event.prompt_index is not None:
                    self._prompts[event.prompt_index] = event.prompt
            elif isinstance(event, ChildWarning):
                if self._sampling and is_nan_cast_warning(event.message):
                    self._nan_warned = True
            elif isinstance(event, TrainingPlan) and self._predicted is not None:
                mismatch = compare_plan(self._predicted, event)
                if mismatch is not None:
                    out.append(mismatch)
        if (self._sampling and events) or final:
            out += self._scan()
            out += self._check(final=final)
        return out

    def _scan(self) -> list[Event]:
        if not self._folder.is_dir():
            return []
        found: list[Event] = []
        for path in sorted(self._folder.glob("*.png")):
            if path.name in self._seen or not path.name.startswith(self._prefix):
                continue
            self._seen.add(path.name)
            epoch, step, index = parse_sample_filename(path.name)
            sample = SampleImageSaved(
                seq=0, path=str(path), epoch=epoch, step=step, prompt_index=index
            )
            found.append(sample)
            self._pending.append((sample, self._nan_warned))
            self._nan_warned = False  # the warning belongs to the first image after it
        return found

    def _check(self, *, final: bool) -> list[Event]:
        out: list[Event] = []
        waiting: list[tuple[SampleImageSaved, bool]] = []
        for sample, after_nan in self._pending:
            problem, detail = check_sample_image(sample.path)
            if problem == "unreadable" and not final:
                waiting.append((sample, after_nan))  # still being written: look again later
                continue
            if after_nan:
                problem = "nan"
            if problem is not None:
                prompt = (
                    self._prompts.get(sample.prompt_index)
                    if sample.prompt_index is not None
                    else None
                )
                out.append(suspect_event(sample, problem, detail, prompt))
        self._pending = waiting
        return out
