"""What a run produced, in one view: checkpoints per epoch, sample images, and the loss.

``run_outputs(run_dir) -> RunOutputs`` joins three sources that no single tool shows together:

* ``events.jsonl`` (checkpoints with their epoch, the step and ``avr_loss`` at each point, the
  sample prompts, epoch boundaries, the run's duration);
* the output folder (checkpoint files and their sizes, ``sample/`` images, matched to epochs and
  prompts by sd-scripts' file names);
* the TensorBoard event files when the job logged to TensorBoard (``loss/current``,
  ``loss/average``, ``loss/epoch_average`` at full precision), read with the ``tensorboard``
  package's event accumulator, an optional extra (``pip install 'kohya-orchestrator[tensorboard]'``).
  Without it the loss comes from events.jsonl: the average only, rounded to 2 decimals by tqdm.

The seed recipe's advice: the lowest loss is not the best epoch; save every few epochs and judge the
samples by eye. :meth:`RunOutputs.contact_sheet` lays the samples out as prompts x epochs and
:meth:`RunOutputs.loss_curve` marks the checkpoints on the loss, both as pictures
(:mod:`kohya_orchestrator.ui.pictures`). ``compare_runs`` puts several runs side by side.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..events import (
    CheckpointSaved,
    EpochStarted,
    RunFinished,
    SampleImageSaved,
    SamplePrompt,
    SamplingStarted,
    StepProgress,
    TrainingPlan,
    parse_sample_filename,
)
from ..run import read_events
from ..ui.pictures import Picture, draw_contact_sheet, draw_loss_curve
from .lora import LoraInfo, inspect_lora

__all__ = [
    "CONTACT_SHEET_PNG",
    "LOSS_CURVE_PNG",
    "CheckpointEntry",
    "ComparisonRow",
    "EpochEntry",
    "LossPoint",
    "RunComparison",
    "RunOutputs",
    "SampleEntry",
    "TensorBoardMissing",
    "compare_runs",
    "find_tensorboard_dir",
    "read_tensorboard_scalars",
    "run_outputs",
]

CONTACT_SHEET_PNG = "contact_sheet.png"
LOSS_CURVE_PNG = "loss_curve.png"
TENSORBOARD_HINT = "pip install 'kohya-orchestrator[tensorboard]'"

_TB_STAMP = re.compile(r"(\d{14})$")  # {log_prefix}{YYYYmmddHHMMSS} (train_util.py:5437-5449)
_RUN_STAMP = re.compile(r"^(\d{8}-\d{6})")
_CKPT_NAME = re.compile(r"-(?:(?P<epoch>\d{6})|step(?P<step>\d{8}))$")
_MODEL_EXTS = (".safetensors", ".ckpt", ".pt")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class TensorBoardMissing(ImportError):
    """The optional ``tensorboard`` package is not installed."""


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


# --------------------------------------------------------------------------- TensorBoard
def _event_accumulator() -> ModuleType:
    try:
        with warnings.catch_warnings():
            # tensorboard's import chain may warn (protobuf, pkg_resources); not our business.
            warnings.simplefilter("ignore")
            return importlib.import_module("tensorboard.backend.event_processing.event_accumulator")
    except ImportError as exc:
        raise TensorBoardMissing(
            f"the tensorboard package is not installed ({TENSORBOARD_HINT})"
        ) from exc


def read_tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in a folder of TensorBoard event files.

    Args:
        folder: The folder holding ``events.out.tfevents.*`` (sd-scripts:
            ``<logging_dir>/<log_prefix><YYYYmmddHHMMSS>/network_train``).

    Returns:
        ``tag -> [(step, value), ...]`` sorted by step (the last value wins for a repeated step),
        e.g. ``loss/current``, ``loss/average``, ``loss/epoch_average`` (step = epoch), ``lr/unet``.

    Raises:
        TensorBoardMissing: the optional ``tensorboard`` package is not installed.
    """
    ea = _event_accumulator()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0})
        acc.Reload()
    out: dict[str, list[tuple[int, float]]] = {}
    for tag in acc.Tags().get("scalars", []):
        by_step = {int(e.step): float(e.value) for e in acc.Scalars(tag)}
        out[str(tag)] = sorted(by_step.items())
    return out


def find_tensorboard_dir(
    logging_dir: Path, log_prefix: str | None = None, started: datetime | None = None
) -> Path | None:
    """The TensorBoard folder of one run under sd-scripts' ``logging_dir``.

    sd-scripts writes to ``<logging_dir>/<log_prefix><YYYYmmddHHMMSS>/<tracker>/``; several runs
    may share ``logging_dir``. The folder chosen is the first one stamped at or after ``started``
    (less a minute of clock slack), else the newest.

    Args:
        logging_dir: The job's ``training.logging_dir``.
        log_prefix: The job's ``training.log_prefix``.
        started: When the run started (from its run directory name).

    Returns:
        The folder holding event files, or None.
    """
    if not logging_dir.is_dir():
        return None
    prefix = log_prefix or ""
    stamped: list[tuple[datetime, Path]] = []
    for child in logging_dir.iterdir():
        m = _TB_STAMP.search(child.name)
        if not (child.is_dir() and m and child.name[: m.start()] == prefix):
            continue
        with contextlib.suppress(ValueError):
            stamped.append((datetime.strptime(m[1], "%Y%m%d%H%M%S"), child))
    stamped.sort()
    chosen: Path | None = None
    if started is not None:
        after = [p for t, p in stamped if t >= started - timedelta(minutes=1)]
        chosen = after[0] if after else None
    if chosen is None and stamped:
        chosen = stamped[-1][1]
    if chosen is None:
        return None
    folders = sorted({f.parent for f in chosen.rglob("events.out.tfevents.*") if f.is_file()})
    if not folders:
        return None
    # the tracker folder is network_train unless --log_tracker_name changed it
    return next((f for f in folders if f.name == "network_train"), folders[0])


# --------------------------------------------------------------------------- run outputs
def run_outputs(
    run_dir: Path | str,
    *,
    tensorboard_dir: Path | None = None,
    use_tensorboard: bool = True,
) -> RunOutputs:
    """Read a run directory back into checkpoints, samples and loss per epoch.

    Works on runs that crashed or are still running (whatever is there is shown).

    Args:
        run_dir: A run directory (``runs/<YYYYmmdd-HHMMSS>-<name>``).
        tensorboard_dir: The folder of TensorBoard event files to read the loss from (default:
            found from the job's ``logging_dir``).
        use_tensorboard: False to take the loss from events.jsonl only.

    Returns:
        The joined view. Missing pieces are None/empty; ``notes`` says what could not be read.
    """
    rd = Path(run_dir)
    job = _read_json(rd / "job.json")
    training, sampling = _section(job, "training"), _section(job, "sampling")
    output_dir = _path_or_none(training.get("output_dir"))
    output_name = (
        training.get("output_name") if isinstance(training.get("output_name"), str) else None
    )
    events = read_events(rd)
    notes: list[str] = []

    plan: TrainingPlan | None = None
    finished: RunFinished | None = None
    epoch_ends: dict[int, int] = {}
    averages: dict[int, float] = {}
    prompts: dict[int, str] = {}
    sampling_steps: dict[int, int] = {}  # epoch -> step of an epoch-triggered sampling round
    step_epochs: dict[int, int] = {}  # step -> epoch of a sampling round
    checkpoints: list[tuple[CheckpointSaved, int | None, int | None]] = []
    sample_events: list[SampleImageSaved] = []
    step: int | None = None
    epoch: int | None = None
    for ev in events:
        if isinstance(ev, TrainingPlan):
            plan = ev
        elif isinstance(ev, EpochStarted):
            epoch = ev.epoch
        elif isinstance(ev, StepProgress):
            step = ev.step
            if ev.epoch is not None:
                epoch = ev.epoch
                if ev.step > 0:
                    epoch_ends[ev.epoch] = max(epoch_ends.get(ev.epoch, 0), ev.step)
            if ev.avr_loss is not None and ev.step > 0:
                averages[ev.step] = ev.avr_loss
        elif isinstance(ev, CheckpointSaved):
            checkpoints.append((ev, step, epoch))
        elif isinstance(ev, SamplingStarted):
            if ev.step is not None and ev.epoch is not None:
                sampling_steps.setdefault(ev.epoch, ev.step)
                step_epochs[ev.step] = ev.epoch
        elif isinstance(ev, SamplePrompt):
            if ev.prompt_index is not None:
                prompts.setdefault(ev.prompt_index, ev.prompt)
        elif isinstance(ev, SampleImageSaved):
            sample_events.append(ev)
        elif isinstance(ev, RunFinished):
            finished = ev

    if not prompts:
        prompts = _job_prompts(sampling, rd)
    last_epoch = max(epoch_ends, default=None) or (plan.epochs if plan else None)

    # loss: TensorBoard (full precision, current + average + epoch average) or events.jsonl
    loss: list[LossPoint] = [LossPoint(step=s, average=v) for s, v in sorted(averages.items())]
    epoch_loss: dict[int, float] = {
        e: averages[s] for e, s in epoch_ends.items() if s in averages and _finite(averages[s])
    }
    source: Literal["tensorboard", "events", "none"] = "events" if loss else "none"
    tb_dir = tensorboard_dir
    logging_dir = _path_or_none(training.get("logging_dir"))
    if tb_dir is None and logging_dir is not None and use_tensorboard:
        tb_dir = find_tensorboard_dir(
            logging_dir, training.get("log_prefix") or None, _run_started(rd.name)
        )
    if tb_dir is not None and use_tensorboard:
        try:
            scalars = read_tensorboard_scalars(tb_dir)
        except TensorBoardMissing:
            notes.append(
                f"TensorBoard logs are in {tb_dir}, but the tensorboard package is not "
                f"installed ({TENSORBOARD_HINT}); the loss comes from events.jsonl (average "
                "only, 2 decimals)"
            )
            tb_dir = None
        else:
            tb_loss = _loss_from_scalars(scalars)
            if tb_loss:
                loss, source = tb_loss, "tensorboard"
                tb_epoch = {e: v for e, v in scalars.get("loss/epoch_average", []) if _finite(v)}
                epoch_loss.update(tb_epoch)
            else:
                notes.append(f"no loss scalars in the TensorBoard logs at {tb_dir}")
    elif logging_dir is not None and use_tensorboard:
        notes.append(f"no TensorBoard event files found under {logging_dir}")

    last_step = loss[-1].step if loss else None
    if plan is not None and plan.steps_per_epoch and plan.epochs and last_step is not None:
        # epochs the console did not show (a TensorBoard-only loss): from the plan
        for e in range(1, plan.epochs + 1):
            end = e * plan.steps_per_epoch
            if e not in epoch_ends and end <= last_step:
                epoch_ends[e] = end

    def average_at(s: int | None) -> float | None:
        value = None
        for p in loss:
            if s is None or p.step > s:
                break
            value = p.average if p.average is not None else value
        return value

    ckpt_entries: list[CheckpointEntry] = []
    seen_names: set[str] = set()
    for ev, at_step, at_epoch in checkpoints:
        path = _in_output_dir(Path(ev.path), output_dir)
        seen_names.add(path.name)
        ck_epoch = ev.epoch
        if ev.final:
            ck_epoch = last_epoch if last_epoch is not None else at_epoch
        elif ev.step is not None:
            ck_epoch = at_epoch
        ck_step = ev.step if ev.step is not None else at_step
        if ev.epoch is not None and ev.epoch in epoch_ends:
            ck_step = epoch_ends[ev.epoch]
        ckpt_entries.append(
            _checkpoint(path, ck_epoch, ck_step, ev.final, average_at(ck_step), epoch_loss)
        )
    # files in the output folder that no event announced (e.g. a run without events.jsonl)
    if output_dir is not None and output_name and output_dir.is_dir():
        for path in sorted(output_dir.iterdir()):
            if path.name in seen_names or path.suffix not in _MODEL_EXTS:
                continue
            stem = path.name[: -len(path.suffix)]
            if stem == output_name:
                ckpt_entries.append(
                    _checkpoint(path, last_epoch, last_step, True, None, epoch_loss)
                )
            elif stem.startswith(output_name):
                m = _CKPT_NAME.fullmatch(stem[len(output_name) :])
                if m:
                    ep = int(m["epoch"]) if m["epoch"] else None
                    at = int(m["step"]) if m["step"] else epoch_ends.get(ep or -1)
                    ckpt_entries.append(
                        _checkpoint(path, ep, at, False, average_at(at), epoch_loss)
                    )
    ckpt_entries.sort(key=lambda c: (c.final, c.step or 0, c.epoch or 0))

    samples = _samples(
        sample_events, output_dir, output_name, prompts, sampling_steps, step_epochs, epoch_ends
    )
    status = _read_text(rd / "status")
    return RunOutputs(
        run_dir=rd,
        run_id=rd.name,
        job_name=(job.get("name") if isinstance(job.get("name"), str) else None) or output_name,
        status=status,
        output_dir=output_dir,
        output_name=output_name,
        epochs=plan.epochs if plan else last_epoch,
        total_steps=plan.total_steps if plan else None,
        duration_s=finished.duration_s if finished else None,
        epoch_end_steps=dict(sorted(epoch_ends.items())),
        epoch_loss=dict(sorted(epoch_loss.items())),
        checkpoints=ckpt_entries,
        samples=samples,
        prompts=[prompts.get(i, "") for i in range(max(prompts, default=-1) + 1)],
        loss=loss,
        loss_source=source,
        tensorboard_dir=tb_dir if source == "tensorboard" else None,
        notes=notes,
    )


def _loss_from_scalars(scalars: dict[str, list[tuple[int, float]]]) -> list[LossPoint]:
    current = dict(scalars.get("loss/current", []))
    average = dict(scalars.get("loss/average", []))
    steps = sorted(set(current) | set(average))
    return [LossPoint(step=s, current=current.get(s), average=average.get(s)) for s in steps]


def _checkpoint(
    path: Path,
    epoch: int | None,
    step: int | None,
    final: bool,
    loss: float | None,
    epoch_loss: dict[int, float],
) -> CheckpointEntry:
    trigger: Literal["epoch", "step", "final"] = "final" if final else "epoch"
    if not final and _CKPT_NAME.search(path.stem) and "-step" in path.stem:
        trigger = "step"
    size: int | None = None
    with contextlib.suppress(OSError):
        size = path.stat().st_size if path.is_file() else None
    return CheckpointEntry(
        path=path,
        epoch=epoch,
        step=step,
        final=final,
        trigger=trigger,
        exists=size is not None,
        size_bytes=size,
        loss=loss,
        epoch_loss=epoch_loss.get(epoch) if epoch is not None else None,
    )


def _samples(
    events: Iterable[SampleImageSaved],
    output_dir: Path | None,
    output_name: str | None,
    prompts: dict[int, str],
    sampling_steps: dict[int, int],
    step_epochs: dict[int, int],
    epoch_ends: dict[int, int],
) -> list[SampleEntry]:
    paths: dict[str, Path] = {}
    for ev in events:
        p = _in_output_dir(Path(ev.path), output_dir / "sample" if output_dir else None)
        paths.setdefault(p.name, p)
    folder = output_dir / "sample" if output_dir is not None else None
    if folder is not None and folder.is_dir() and output_name:
        for p in sorted(folder.iterdir()):
            if p.name.startswith(f"{output_name}_") and p.name not in paths:
                epoch, step, index = parse_sample_filename(p.name)
                if index is not None:
                    paths[p.name] = p
    out: list[SampleEntry] = []
    for name, path in paths.items():
        epoch, step, index = parse_sample_filename(name)
        if epoch is not None and step is None:
            step = sampling_steps.get(epoch, epoch_ends.get(epoch, 0 if epoch == 0 else None))
        elif step is not None and epoch is None:
            epoch = step_epochs.get(step)
        out.append(
            SampleEntry(
                path=path,
                epoch=epoch,
                step=step,
                prompt_index=index,
                prompt=prompts.get(index) if index is not None else None,
                trigger="epoch" if parse_sample_filename(name)[0] is not None else "step",
                exists=path.is_file(),
            )
        )
    out.sort(key=lambda s: (s.step or 0, s.epoch or 0, s.prompt_index or 0, s.path.name))
    return out


def _job_prompts(sampling: dict[str, Any], rd: Path) -> dict[int, str]:
    items = sampling.get("prompts")
    if isinstance(items, list):
        found = {
            i: str(p["prompt"])
            for i, p in enumerate(items)
            if isinstance(p, dict) and isinstance(p.get("prompt"), str)
        }
        if found:
            return found
    text = _read_text(rd / "sample_prompts.txt", strip=False) or ""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    # sd-scripts splits options at " --" (train_util.py:6254)
    return {i: ln.split(" --", 1)[0].strip() for i, ln in enumerate(lines)}


def _in_output_dir(path: Path, folder: Path | None) -> Path:
    # sd-scripts logs the path it wrote; read it by name in the output folder we know (the run
    # may have been moved, or a stand-in trainer logged another folder).
    if folder is not None and (folder / path.name).exists():
        return folder / path.name
    if path.exists() or folder is None:
        return path
    return folder / path.name


def _run_started(name: str) -> datetime | None:
    m = _RUN_STAMP.match(name)
    if not m:
        return None
    try:
        return datetime.strptime(m[1], "%Y%m%d-%H%M%S")
    except ValueError:
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_text(path: Path, *, strip: bool = True) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return (text.strip() or None) if strip else text


def _section(job: dict[str, Any], name: str) -> dict[str, Any]:
    value = job.get(name)
    return value if isinstance(value, dict) else {}


def _path_or_none(value: Any) -> Path | None:
    return Path(value) if isinstance(value, str) and value else None


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


# --------------------------------------------------------------------------- compare
class ComparisonRow(_Frozen):
    """One run (or one LoRA file) in a comparison."""

    source: Path = Field(description="The run directory or LoRA file compared.")
    name: str = Field(description="Job name, or the file name.")
    status: str | None = Field(default=None, description="Run status.")
    algo: str | None = Field(default=None, description="Network algorithm.")
    network_dim: int | None = Field(default=None, description="Rank (None: unused by the algo).")
    network_alpha: float | None = Field(default=None, description="Alpha (None: unused).")
    optimizer: str | None = Field(default=None, description="Optimizer class name.")
    learning_rate: float | None = Field(default=None, description="Learning rate.")
    steps: int | None = Field(default=None, description="Steps trained.")
    epochs: int | None = Field(default=None, description="Epochs trained.")
    time_s: float | None = Field(default=None, description="Training wall time.")
    final_loss: float | None = Field(default=None, description="Last average loss.")
    epoch_loss: float | None = Field(default=None, description="Last epoch's average loss.")
    file: Path | None = Field(default=None, description="The final (or latest) LoRA file.")
    file_size_bytes: int | None = Field(default=None, description="Its size.")


class RunComparison(_Frozen):
    """Several runs side by side (e.g. the seed's iA3 vs LoHa vs LoKr comparison)."""

    rows: list[ComparisonRow]


def compare_runs(sources: Sequence[Path | str]) -> RunComparison:
    """Compare runs: algorithm, dim/alpha, optimizer, LR, steps, time, loss and file size.

    Each source is a run directory (its final checkpoint's metadata is read when the file is
    there, else its job.json) or a LoRA ``.safetensors`` file (metadata only, no loss).

    Args:
        sources: Run directories and/or LoRA files.

    Returns:
        One row per source, in the given order.
    """
    rows: list[ComparisonRow] = []
    for src in sources:
        path = Path(src)
        if path.is_file():
            file_info = inspect_lora(path)
            rows.append(_row_from_info(path, file_info.output_name or path.stem, file_info))
            continue
        out = run_outputs(path)
        final = out.final_checkpoint
        info: LoraInfo | None = None
        if final is not None and final.path.suffix == ".safetensors":
            with contextlib.suppress(Exception):
                info = inspect_lora(final.path)
        row = _row_from_info(path, out.job_name or out.run_id, info)
        if info is None:
            row = row.model_copy(update=_from_job(_read_json(path / "job.json")))
        last_step = out.loss[-1].step if out.loss else None
        update: dict[str, Any] = {
            "status": out.status,
            "final_loss": out.final_loss,
            "epoch_loss": out.last_epoch_loss,
            "time_s": out.duration_s if out.duration_s is not None else row.time_s,
            "steps": row.steps if row.steps is not None else last_step,
            "epochs": row.epochs if row.epochs is not None else out.epochs,
        }
        if final is not None:
            update["file"], update["file_size_bytes"] = final.path, final.size_bytes
        rows.append(row.model_copy(update=update))
    return RunComparison(rows=rows)


def _row_from_info(source: Path, name: str, info: LoraInfo | None) -> ComparisonRow:
    if info is None:
        return ComparisonRow(source=source, name=name)
    uses = info.uses_dim_alpha
    return ComparisonRow(
        source=source,
        name=name,
        algo=info.algo,
        network_dim=info.network_dim if uses else None,
        network_alpha=info.network_alpha if uses else None,
        optimizer=info.optimizer_name,
        learning_rate=info.unet_lr or info.learning_rate,
        steps=info.steps,
        epochs=info.epoch,
        time_s=info.training_time_s,
        file=info.path,
        file_size_bytes=info.file_size_bytes,
    )


def _from_job(job: dict[str, Any]) -> dict[str, Any]:
    network, optimizer = _section(job, "network"), _section(job, "optimizer")
    algo = network.get("algo") if isinstance(network.get("algo"), str) else None
    uses = algo not in ("ia3", "full")
    return {
        "algo": algo,
        "network_dim": network.get("network_dim") if uses else None,
        "network_alpha": network.get("network_alpha") if uses else None,
        "optimizer": optimizer.get("type") if isinstance(optimizer.get("type"), str) else None,
        "learning_rate": optimizer.get("unet_lr") or optimizer.get("learning_rate"),
    }
