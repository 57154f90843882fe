"""What a smoke run showed: it loads, steps, saves and samples; its speed, memory and projection.

:func:`smoke_report` folds a smoke run's events (``train JOB --smoke``, :mod:`..jobs.smoke`) into
a :class:`SmokeReport`; :meth:`SmokeReport.lines` is the text the CLI prints. Pure: events and
numbers in, a report out (the caller reads events.jsonl and plans the full job).

Timings come from the events' own clock (``t``: seconds since the run started, as received):

- **load**: start to the first finished step (model load, latent caching, the first step);
- **s/step**: between the first and the last step shown (one step of a 2-step run; the first step
  carries CUDA/warm-up costs, so it is not averaged in); without two steps, the trainer's own rate;
- **sample**: a sampling round's start to its last image, per image;
- **projection**: load + (steps - 1) x s/step + sampling rounds x prompts x s/sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..events import (
    CheckpointSaved,
    ChildError,
    ChildWarning,
    Event,
    ResourceSample,
    RunFinished,
    SampleImageSaved,
    SamplingStarted,
    StepProgress,
)

__all__ = ["FullRun", "SmokeReport", "format_duration", "smoke_report"]


@dataclass(frozen=True)
class FullRun:
    """What the full job will do, for the projection (from its step plan and its job)."""

    total_steps: int | None
    epochs: int | None = None
    prompts: int = 0
    sample_every_n_epochs: int | None = None
    sample_every_n_steps: int | None = None
    sample_at_first: bool = False

    @property
    def sampling_rounds(self) -> int:
        """How many sampling rounds the full run makes (sd-scripts' cadence)."""
        if not self.prompts:
            return 0
        rounds = 1 if self.sample_at_first else 0
        if self.sample_every_n_epochs and self.epochs:
            rounds += self.epochs // self.sample_every_n_epochs
        elif self.sample_every_n_steps and self.total_steps:
            rounds += self.total_steps // self.sample_every_n_steps
        return rounds


@dataclass(frozen=True)
class SmokeReport:
    """A smoke run, judged."""

    status: str | None
    steps_done: int
    steps_planned: int
    loaded: bool
    saved: bool
    sampled: bool | None
    """None: the job has no prompts, nothing to sample."""
    load_s: float | None
    s_per_step: float | None
    s_per_sample: float | None
    peak_rss_bytes: int | None
    peak_vram_mib: int | None
    """The highest total GPU memory seen (None: no nvidia-smi)."""
    full: FullRun
    projected_s: float | None
    flagged: tuple[str, ...] = field(default_factory=tuple)
    reason: str | None = None

    @property
    def passed(self) -> bool:
        """Loaded, stepped, saved and (with prompts) sampled, and the run succeeded."""
        return (
            self.status == "succeeded"
            and self.loaded
            and self.steps_done >= self.steps_planned
            and self.saved
            and self.sampled is not False
        )

    def lines(self, max_flagged: int = 10) -> list[str]:
        """The report as plain lines (no markup), with the first ``max_flagged`` flagged events."""

        def mark(ok: bool | None) -> str:
            return "n/a" if ok is None else ("yes" if ok else "NO")

        out = [
            f"loads: {mark(self.loaded)}   steps: {self.steps_done}/{self.steps_planned}   "
            f"saves: {mark(self.saved)}   samples: "
            + ("n/a (no [sampling] prompts)" if self.sampled is None else mark(self.sampled)),
        ]
        speed = []
        if self.load_s is not None:
            speed.append(f"load and first step {format_duration(self.load_s)}")
        if self.s_per_step is not None:
            speed.append(f"{self.s_per_step:.2f} s/step")
        if self.s_per_sample is not None:
            speed.append(f"{self.s_per_sample:.1f} s per sample image")
        out.append("speed: " + (", ".join(speed) if speed else "not measured (no steps)"))
        memory = [f"peak RAM {_gib(self.peak_rss_bytes)}" if self.peak_rss_bytes else "RAM ?"]
        if self.peak_vram_mib is not None:
            memory.append(f"peak VRAM {self.peak_vram_mib / 1024:.1f} GiB")
        out.append("memory: " + ", ".join(memory))
        full = self.full
        if self.projected_s is not None and full.total_steps:
            what = f"{full.total_steps} steps"
            if full.epochs:
                what += f", {full.epochs} epochs"
            if full.sampling_rounds:
                what += f", {full.sampling_rounds} x {full.prompts} samples"
            out.append(f"projected full run: about {format_duration(self.projected_s)} ({what})")
        else:
            out.append("projected full run: unknown (no step time or no plan)")
        out += [f"flagged: {f}" for f in self.flagged[:max_flagged]]
        if len(self.flagged) > max_flagged:
            out.append(f"flagged: ... and {len(self.flagged) - max_flagged} more (events.jsonl)")
        if self.reason:
            out.append(f"reason: {self.reason}")
        return out


def format_duration(seconds: float) -> str:
    """``1 h 05 min``, ``4 min 12 s`` or ``38 s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {(s % 3600) // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 1024**3:.1f} GiB"


def _first_step_times(steps: Sequence[StepProgress]) -> dict[int, float]:
    """Step -> when it was first shown (after 0)."""
    at: dict[int, float] = {}
    for e in steps:
        if e.step > 0 and e.step not in at:
            at[e.step] = e.t
    return at


def _step_time(steps: Sequence[StepProgress]) -> float | None:
    at = _first_step_times(steps)
    if len(at) >= 2:
        first, last = min(at), max(at)
        return (at[last] - at[first]) / (last - first)
    rates = [e.rate_it_s for e in steps if e.rate_it_s]
    return 1.0 / rates[-1] if rates else None


def _sample_time(events: Sequence[Event]) -> float | None:
    started: float | None = None
    images: list[float] = []
    for e in events:
        if isinstance(e, SamplingStarted) and started is None:
            started = e.t
        elif isinstance(e, SampleImageSaved) and started is not None:
            images.append(e.t)
    if started is None or not images:
        return None
    return max(images[-1] - started, 0.0) / len(images)


def _flagged(events: Iterable[Event]) -> tuple[str, ...]:
    seen: list[str] = []
    for e in events:
        if isinstance(e, ChildError):
            text = f"error ({e.category}): {e.message}"
        elif isinstance(e, ChildWarning):
            text = "warning: " + e.message.strip().splitlines()[0][:200]
        else:
            continue
        if text not in seen:
            seen.append(text)
    return tuple(seen)


def smoke_report(
    events: Sequence[Event],
    *,
    steps_planned: int,
    has_prompts: bool,
    full: FullRun,
    final_file: Path | None = None,
) -> SmokeReport:
    """Judge a smoke run from its events.

    Args:
        events: The smoke run's events, in order (events.jsonl).
        steps_planned: The smoke run's steps (2).
        has_prompts: The job samples (the smoke run then draws one image).
        full: The full job's length and sampling, for the projection.
        final_file: The smoke run's final model file; when given it must exist to count as saved.
    """
    steps = [e for e in events if isinstance(e, StepProgress)]
    done = max((e.step for e in steps), default=0)
    finished = next((e for e in reversed(events) if isinstance(e, RunFinished)), None)
    saved = any(isinstance(e, CheckpointSaved) and e.final for e in events)
    if final_file is not None:
        saved = saved and final_file.is_file()
    sampled = any(isinstance(e, SampleImageSaved) for e in events) if has_prompts else None
    resources = [e for e in events if isinstance(e, ResourceSample)]
    vram = [sum(e.gpu_memory_used_mb) for e in resources if e.gpu_memory_used_mb]
    at = _first_step_times(steps)
    load_s = at[min(at)] if at else None
    per_step = _step_time(steps)
    per_sample = _sample_time(events)
    projected: float | None = None
    if load_s is not None and per_step is not None and full.total_steps:
        projected = load_s + max(full.total_steps - 1, 0) * per_step
        if per_sample is not None:
            projected += full.sampling_rounds * full.prompts * per_sample
    return SmokeReport(
        status=None if finished is None else finished.status.value,
        steps_done=done,
        steps_planned=steps_planned,
        loaded=bool(steps),
        saved=saved,
        sampled=sampled,
        load_s=load_s,
        s_per_step=per_step,
        s_per_sample=per_sample,
        peak_rss_bytes=max((e.rss_bytes for e in resources), default=None),
        peak_vram_mib=max(vram, default=None),
        full=full,
        projected_s=projected,
        flagged=_flagged(events),
        reason=None if finished is None else finished.reason,
    )
