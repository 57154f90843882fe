"""A run's outputs joined by epoch: :class:`RunOutputs`, its entries, and its pictures.

:func:`~kohya_orchestrator.outputs.collect.run_outputs` reads a run directory into a
:class:`RunOutputs`. The seed recipe's advice: the lowest loss is not the best epoch; save every few
epochs and judge the samples by eye. :meth:`RunOutputs.contact_sheet` lays the samples out as
prompts x epochs and :meth:`RunOutputs.loss_curve` marks the checkpoints on the loss, both as
pictures (:mod:`kohya_orchestrator.ui.pictures`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..ui.pictures import Picture, draw_contact_sheet, draw_loss_curve

__all__ = [
    "CONTACT_SHEET_PNG",
    "LOSS_CURVE_PNG",
    "CheckpointEntry",
    "EpochEntry",
    "LossPoint",
    "RunOutputs",
    "SampleEntry",
]

CONTACT_SHEET_PNG = "contact_sheet.png"
LOSS_CURVE_PNG = "loss_curve.png"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class LossPoint(_Frozen):
    """The loss after one optimizer step."""

    step: int = Field(description="Global step.")
    average: float | None = Field(default=None, description="Moving average (avr_loss).")
    current: float | None = Field(default=None, description="This step's loss (TensorBoard).")


class CheckpointEntry(_Frozen):
    """One saved LoRA file and the point of training it holds."""

    path: Path = Field(description="Where the file is (or was) in the output folder.")
    epoch: int | None = Field(default=None, description="Epoch it ends (final: the last epoch).")
    step: int | None = Field(default=None, description="Global step when it was saved.")
    final: bool = Field(default=False, description="The file saved at the end of training.")
    trigger: Literal["epoch", "step", "final"] = Field(
        default="epoch", description="Saved per epoch (-000001), per step (-step00000500), or last."
    )
    exists: bool = Field(default=False, description="Whether the file is there now.")
    size_bytes: int | None = Field(default=None, description="File size, when it exists.")
    loss: float | None = Field(default=None, description="Average loss at that step.")
    epoch_loss: float | None = Field(default=None, description="Average loss of its epoch.")

    @property
    def name(self) -> str:
        """The file name."""
        return self.path.name


class SampleEntry(_Frozen):
    """One sample image sd-scripts drew during training."""

    path: Path = Field(description="The image file.")
    epoch: int | None = Field(default=None, description="Epoch it was drawn after (0: before).")
    step: int | None = Field(default=None, description="Global step it was drawn at.")
    prompt_index: int | None = Field(default=None, description="0-based prompt number.")
    prompt: str | None = Field(default=None, description="The prompt text, when known.")
    trigger: Literal["epoch", "step"] = Field(
        default="epoch", description="Drawn per epoch (_e000001_) or per step (_000010_)."
    )
    exists: bool = Field(default=False, description="Whether the file is there now.")


class EpochEntry(_Frozen):
    """Everything about one epoch (or one sampling point): checkpoint, samples, loss."""

    epoch: int | None = Field(description="The epoch (None for step-only points).")
    step: int | None = Field(default=None, description="Step at its end / at the point.")
    loss: float | None = Field(default=None, description="Average loss there.")
    checkpoint: CheckpointEntry | None = Field(default=None, description="Its checkpoint.")
    samples: list[SampleEntry] = Field(default_factory=list, description="Its sample images.")


class RunOutputs(_Frozen):
    """A run's checkpoints, samples and loss, joined by epoch. Build with :func:`run_outputs`."""

    run_dir: Path = Field(description="The run directory.")
    run_id: str = Field(description="Its folder name.")
    job_name: str | None = Field(default=None, description="The job's name.")
    status: str | None = Field(default=None, description="The run's status file.")
    output_dir: Path | None = Field(default=None, description="training.output_dir.")
    output_name: str | None = Field(default=None, description="training.output_name.")
    epochs: int | None = Field(default=None, description="Epochs planned.")
    total_steps: int | None = Field(default=None, description="Steps planned.")
    duration_s: float | None = Field(default=None, description="Wall time of the run.")
    epoch_end_steps: dict[int, int] = Field(
        default_factory=dict, description="epoch -> its last global step."
    )
    epoch_loss: dict[int, float] = Field(
        default_factory=dict, description="epoch -> average loss of that epoch."
    )
    checkpoints: list[CheckpointEntry] = Field(default_factory=list)
    samples: list[SampleEntry] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list, description="Sample prompts by index.")
    loss: list[LossPoint] = Field(default_factory=list, description="Loss per step.")
    loss_source: Literal["tensorboard", "events", "none"] = Field(
        default="none", description="Where the loss came from."
    )
    tensorboard_dir: Path | None = Field(default=None, description="TensorBoard logs used.")
    notes: list[str] = Field(default_factory=list, description="What could not be read, and why.")

    # ------------------------------------------------------------------ derived views
    @property
    def final_loss(self) -> float | None:
        """The last average loss."""
        for point in reversed(self.loss):
            if point.average is not None and math.isfinite(point.average):
                return point.average
        return None

    @property
    def last_epoch_loss(self) -> float | None:
        """The average loss of the last epoch that has one."""
        return self.epoch_loss[max(self.epoch_loss)] if self.epoch_loss else None

    @property
    def final_checkpoint(self) -> CheckpointEntry | None:
        """The final file if it exists, else the latest existing checkpoint."""
        existing = [c for c in self.checkpoints if c.exists]
        finals = [c for c in existing if c.final]
        if finals:
            return finals[-1]
        return max(existing, key=lambda c: (c.step or 0, c.epoch or 0), default=None)

    def by_epoch(self) -> list[EpochEntry]:
        """One entry per epoch or sampling point, in training order.

        Epoch-triggered checkpoints and samples share their epoch's entry; step-triggered ones get
        an entry per step.
        """
        keys: dict[tuple[int, int], EpochEntry] = {}

        def key(epoch: int | None, step: int | None) -> tuple[int, int]:
            return (0, epoch) if epoch is not None else (1, step or 0)

        def entry(epoch: int | None, step: int | None) -> EpochEntry:
            k = key(epoch, step)
            if k not in keys:
                if epoch is not None:
                    step = self.epoch_end_steps.get(epoch, step)
                    loss = self.epoch_loss.get(epoch)
                else:
                    loss = self._average_at(step)
                keys[k] = EpochEntry(epoch=epoch, step=step, loss=loss)
            return keys[k]

        for epoch in sorted(set(self.epoch_end_steps) | set(self.epoch_loss)):
            entry(epoch, None)
        for c in self.checkpoints:
            e = entry(c.epoch if c.trigger != "step" else None, c.step)
            keys[key(e.epoch, e.step)] = e.model_copy(update={"checkpoint": c})
        for s in self.samples:
            e = entry(s.epoch if s.trigger == "epoch" else None, s.step)
            keys[key(e.epoch, e.step)] = e.model_copy(update={"samples": [*e.samples, s]})
        return sorted(keys.values(), key=lambda e: (e.step or 0, e.epoch or 0))

    def _average_at(self, step: int | None) -> float | None:
        if step is None:
            return None
        value = None
        for p in self.loss:
            if p.step > step:
                break
            if p.average is not None:
                value = p.average
        return value

    # ------------------------------------------------------------------ pictures
    def contact_sheet(self, *, cell_size: int = 256) -> Picture:
        """Samples as a grid: rows = prompts, columns = epochs (or steps), labelled.

        Each column says its epoch, step, loss and checkpoint file, so the painter can pick the
        file whose samples look best.

        Args:
            cell_size: Pixels of each cell's square.

        Returns:
            A :class:`~kohya_orchestrator.ui.pictures.Picture` (shows inline in Jupyter).
        """
        points = [e for e in self.by_epoch() if e.samples]
        indices = sorted({s.prompt_index or 0 for e in points for s in e.samples})
        rows = [self._prompt_label(i) for i in indices]
        columns: list[list[str]] = []
        cells: dict[tuple[int, int], Path | None] = {}
        for c, e in enumerate(points):
            head = f"epoch {e.epoch}" if e.epoch is not None else f"step {e.step}"
            lines = [head]
            lines.append(
                f"step {e.step}" if e.epoch is not None and e.step is not None else "step ?"
            )
            lines.append(f"loss {e.loss:.4f}" if e.loss is not None else "loss ?")
            ckpt = e.checkpoint
            if ckpt is None:
                lines.append("no checkpoint")
            else:
                lines.append(ckpt.name if ckpt.exists else f"{ckpt.name} (gone)")
            columns.append(lines)
            for s in e.samples:
                cells[(indices.index(s.prompt_index or 0), c)] = s.path if s.exists else None
        title = f"{self.job_name or self.run_id}: samples per epoch (rows: prompts)"
        return draw_contact_sheet(rows, columns, cells, title=title, cell_size=cell_size)

    def loss_curve(self, *, size: tuple[int, int] = (960, 480)) -> Picture:
        """Loss against step with epoch boundaries and checkpoint markers.

        Args:
            size: ``(width, height)`` in pixels.

        Returns:
            A :class:`~kohya_orchestrator.ui.pictures.Picture` (shows inline in Jupyter).
        """
        average = [(p.step, p.average) for p in self.loss if p.average is not None]
        current = [(p.step, p.current) for p in self.loss if p.current is not None]
        marks = [
            (c.step, "final" if c.final else (f"e{c.epoch}" if c.epoch else f"s{c.step}"))
            for c in self.checkpoints
            if c.step is not None
        ]
        source = {"tensorboard": "TensorBoard", "events": "console (avr_loss)", "none": "none"}
        title = f"{self.job_name or self.run_id}: loss (source: {source[self.loss_source]})"
        return draw_loss_curve(
            average, current, epoch_ends=self.epoch_end_steps, checkpoints=marks, title=title,
            size=size,
        )  # fmt: skip

    def write_pictures(
        self, *, sheet: bool = True, loss_curve: bool = True, folder: Path | None = None
    ) -> list[Path]:
        """Write ``contact_sheet.png`` and/or ``loss_curve.png`` (atomically).

        Args:
            sheet: Write the contact sheet (only when there are samples).
            loss_curve: Write the loss curve.
            folder: Where to write (default: the run directory).

        Returns:
            The files written.
        """
        where = Path(folder) if folder is not None else self.run_dir
        written: list[Path] = []
        if sheet and self.samples:
            written.append(self.contact_sheet().save(where / CONTACT_SHEET_PNG))
        if loss_curve:
            written.append(self.loss_curve().save(where / LOSS_CURVE_PNG))
        return written

    def _prompt_label(self, index: int) -> str:
        text = self.prompts[index] if index < len(self.prompts) else None
        return f"#{index}: {text}" if text else f"prompt #{index}"
