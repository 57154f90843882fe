"""What a run produced, in one view: checkpoints per epoch, sample images, and the loss.

``run_outputs(run_dir) -> RunOutputs`` joins three sources that no single tool shows together:

* ``events.jsonl`` (checkpoints with their epoch, the step and ``avr_loss`` at each point, the
  sample prompts, epoch boundaries, the run's duration), folded by
  :func:`kohya_orchestrator.events.summarize`;
* the output folder (checkpoint files and their sizes, ``sample/`` images, matched to epochs and
  prompts by sd-scripts' file names);
* the TensorBoard event files when the job logged to TensorBoard (``loss/current``,
  ``loss/average``, ``loss/epoch_average`` at full precision; :mod:`.tensorboard`), read with the
  ``tensorboard`` package, an optional extra (``pip install 'kohya-orchestrator[tensorboard]'``).
  Without it the loss comes from events.jsonl: the average only, rounded to 2 decimals by tqdm.

:class:`RunOutputs` and its pictures are in :mod:`.view`; ``compare_runs`` (:mod:`.compare`) puts
several runs side by side.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from ..events import SampleImageSaved, parse_sample_filename, read_events, summarize
from ..launch.rundir import INTERRUPTED, RunDir
from .tensorboard import (
    TENSORBOARD_HINT,
    TensorBoardMissing,
    find_tensorboard_dir,
    read_tensorboard_scalars,
)
from .view import (
    CONTACT_SHEET_PNG,
    LOSS_CURVE_PNG,
    CheckpointEntry,
    EpochEntry,
    LossPoint,
    RunOutputs,
    SampleEntry,
)

__all__ = [
    "CONTACT_SHEET_PNG",
    "LOSS_CURVE_PNG",
    "CheckpointEntry",
    "EpochEntry",
    "LossPoint",
    "RunOutputs",
    "SampleEntry",
    "run_outputs",
]

_RUN_STAMP = re.compile(r"^(\d{8}-\d{6})")
_CKPT_NAME = re.compile(r"-(?:(?P<epoch>\d{6})|step(?P<step>\d{8}))$")
_MODEL_EXTS = (".safetensors", ".ckpt", ".pt")


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
    seen = summarize(read_events(rd))
    notes: list[str] = []

    plan, finished = seen.plan, seen.finished
    epoch_ends = dict(seen.epoch_end_steps)
    averages = dict(seen.losses)
    prompts = dict(seen.prompts)
    sampling_steps = seen.sampling_step_by_epoch  # epoch -> step of an epoch-triggered round
    step_epochs = seen.sampling_epoch_by_step  # step -> epoch of a sampling round

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
    for saved in seen.checkpoints:
        ev, at_step, at_epoch = saved.event, saved.step, saved.epoch
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
        seen.samples, output_dir, output_name, prompts, sampling_steps, step_epochs, epoch_ends
    )
    # an open run whose orchestrator is gone is reported as such (launch/rundir.py)
    status = INTERRUPTED if RunDir(rd).interruption() else _read_text(rd / "status")
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
