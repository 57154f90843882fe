"""The pure parts of the GPU benchmark (run.py): the jobs, their scaling, the overrides each job
gets, the figures read from the product's events, the time budget and the side-by-side table.

No process, file or clock here (run.py does those), and no import of the product: events are read
as the JSON objects ``train --jsonl`` prints (the format of a run folder's ``events.jsonl``,
docs/events.md), so run.py can load this module before the wheels it carries are installed.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# SD 1.5's second tokenizer folder is not needed; SDXL's is OpenCLIP bigG's, the same vocabulary.
CLIP_L = "openai_clip-vit-large-patch14"
CLIP_BIGG = "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"


@dataclass(frozen=True)
class Job:
    """One training the benchmark runs: a family, an arm (the product's preset or the GUI's
    defaults) and the preset it starts from (a shipped name or a preset file)."""

    key: str
    family: str
    arm: str
    title: str
    preset: str

    @property
    def preset_file(self) -> Path:
        """The TOML file of the preset (shipped presets live in the repository's presets/)."""
        path = Path(self.preset)
        return path if path.suffix == ".toml" else REPO / "presets" / f"{self.preset}.toml"


JOBS: tuple[Job, ...] = (
    Job("sd15-oilpaint", "sd15", "product", "SD1.5 oilpaint", "oilpaint"),
    Job("sd15-gui", "sd15", "gui", "SD1.5 GUI default", str(HERE / "kohya_ss_gui_sd15.toml")),
    Job("sdxl-style", "sdxl", "product", "SDXL sdxl-style", "sdxl-style"),
    Job("sdxl-gui", "sdxl", "gui", "SDXL GUI default", str(HERE / "kohya_ss_gui_sdxl.toml")),
)
# The resolution every job of a family trains at: the product preset's (the GUI's default is
# 512x512 for both families; both arms of a family train the same pixels).
FAMILY_RESOLUTION = {"sd15": 512, "sdxl": 1024}


@dataclass(frozen=True)
class Scale:
    """How a job is cut to a length: ``images`` pictures x ``repeats`` in one epoch."""

    images: int
    repeats: int
    batch_size: int
    grad_accum: int
    steps: int


def scale_job(target_steps: int, batch_size: int, available: int, grad_accum: int = 1) -> Scale:
    """Pick images and repeats so that one epoch is ``target_steps`` optimizer steps (or just over).

    The dataset is one folder of equal-size square images (one bucket), so sd-scripts runs
    ceil(images x repeats / batch) batches, and one optimizer step per ``grad_accum`` batches.
    Fewer images than a batch-step needs are used when the target is tiny (2 steps at batch 1:
    2 images, 1 repeat).
    """
    if min(target_steps, batch_size, available, grad_accum) < 1:
        raise ValueError("steps, batch size, images and accumulation must be >= 1")
    samples = target_steps * batch_size * grad_accum
    images = min(available, samples)
    repeats = math.ceil(samples / images)
    batches = math.ceil(images * repeats / batch_size)
    return Scale(images, repeats, batch_size, grad_accum, math.ceil(batches / grad_accum))


def _toml(value: object) -> str:
    """A value for ``--set key=value`` (TOML; a JSON string is a TOML basic string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def _get(settings: Mapping[str, Any], dotted: str) -> Any:
    node: Any = settings
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def job_overrides(
    settings: Mapping[str, Any],
    *,
    model: Path,
    tokenizer_cache: Path,
    image_dir: Path,
    output_dir: Path,
    resolution: int,
    cpu: bool,
) -> tuple[list[str], list[str]]:
    """The ``--set`` overrides that put a preset copy on the benchmark's data and length.

    Every job: the model, the offline tokenizers, the one image folder, one epoch (the folder's
    repeats set the steps), the output folder, the resolution. On the CPU (``cpu``) the dry run
    also turns off what a CPU cannot do or what only costs time there: mixed precision (fp32
    trains: a CPU without bf16 instructions emulates bf16, SDXL's first step took 400 s that way
    against 13 s in fp32), buckets, data-loader workers, long sampling, and AdamW8bit
    (bitsandbytes is GPU-only) becomes AdamW.

    Returns:
        (overrides, notes): the ``key=value`` strings, and a line for each substitution.
    """
    sets = {
        "model.pretrained_model_name_or_path": _toml(model),
        "model.tokenizer_cache_dir": _toml(tokenizer_cache),
        "dataset.subsets": "[{image_dir=" + _toml(image_dir) + "}]",
        "dataset.resolution": _toml(resolution),
        "training.max_train_epochs": "1",
        "training.output_dir": _toml(output_dir),
    }
    if _get(settings, "training.logging_dir") is not None:
        sets["training.logging_dir"] = _toml(output_dir / "logs")
    notes: list[str] = []
    if cpu:
        sets["dataset.enable_bucket"] = "false"
        sets["training.mixed_precision"] = _toml("no")
        sets["training.max_data_loader_n_workers"] = "0"
        if _get(settings, "sampling.prompts"):
            sets["sampling.sample_steps"] = "2"
        optimizer = str(_get(settings, "optimizer.type") or "")
        if optimizer.lower().endswith("8bit"):
            sets["optimizer.type"] = _toml("AdamW")
            notes.append(f"{optimizer} -> AdamW (no bitsandbytes on a CPU)")
        notes.append("CPU: fp32, no buckets, 0 loader workers, 2 sampling steps")
    return [f"{k}={v}" for k, v in sets.items()], notes


def apply_overrides(settings: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """The settings with ``key=value`` overrides laid over them (a deep copy; TOML values)."""
    merged: dict[str, Any] = json.loads(json.dumps(settings))
    for override in overrides:
        dotted, _, text = override.partition("=")
        *parents, last = dotted.split(".")
        node = merged
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = tomllib.loads(f"v = {text}")["v"]
    return merged


def settings_summary(settings: Mapping[str, Any]) -> str:
    """A short line for the table: network, optimizer, batch, precision, memory switches."""
    net = _get(settings, "network") or {}
    precision = str(_get(settings, "training.mixed_precision") or "no")
    parts = [
        f"{net.get('algo', 'lora')} {net.get('network_dim', '?')}/{_num(net.get('network_alpha'))}",
        f"{_get(settings, 'optimizer.type')} {_num(_get(settings, 'optimizer.learning_rate'))}",
        f"bs{_get(settings, 'dataset.batch_size') or 1}",
        "fp32" if precision == "no" else precision,
    ]
    if _get(settings, "training.gradient_checkpointing"):
        parts.append("gc")
    if net.get("network_train_unet_only"):
        parts.append("unet")
    return " ".join(parts)


def _num(value: object) -> str:
    return "?" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


# --- figures from the event stream --------------------------------------------------------------


@dataclass
class Figures:
    """What one run measured. Times in seconds; ``None`` where the run never got there."""

    steps_done: int = 0
    total_steps: int | None = None
    it_per_s: float | None = None
    tqdm_it_per_s: float | None = None
    first_step_s: float | None = None
    first_step_trainer_s: float | None = None
    product_vram_mib: int | None = None
    status: str | None = None
    run_id: str | None = None
    reason: str | None = None
    steps_timed: int = 0
    notes: list[str] = field(default_factory=list)


def read_events(lines: Iterable[tuple[float, str]]) -> list[tuple[float, dict[str, Any]]]:
    """(arrival time, event) for each JSON event line; other lines are skipped."""
    events = []
    for arrival, line in lines:
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            event = json.loads(text)
        except ValueError:
            continue
        if isinstance(event, dict) and "kind" in event:
            events.append((arrival, event))
    return events


def measure(events: Sequence[tuple[float, Mapping[str, Any]]], warmup: float = 0.1) -> Figures:
    """Read speed, time to first step and the product's memory samples from ``train``'s events.

    * ``it_per_s``: optimizer steps per second of the trainer's own clock as the runner stamped
      the training bar's updates (each event's ``t``), from the first update at or past
      ``warmup`` of the run (at least step 1: the first step carries CUDA warm-up and
      compilation) to the last; with a single update, the bar's own rate.
    * ``first_step_s``: from starting the ``train`` command to the arrival of the first update
      at step >= 1 (validation, the environment probe, model loading, latent caching included);
      ``first_step_trainer_s`` the same from the trainer's start (the ``run_started`` event).
    * ``product_vram_mib``: the largest GPU memory figure of the product's resource samples
      (nvidia-smi every 5 s; run.py's own 0.2 s poll is the figure the table shows).
    """
    fig = Figures()
    started: float | None = None
    points: list[tuple[int, float]] = []
    for arrival, ev in events:
        kind = ev.get("kind")
        if kind == "run_started":
            started = float(ev.get("t", 0.0))
            fig.run_id = ev.get("run_id")
        elif kind == "step_progress":
            step = int(ev.get("step", 0))
            fig.total_steps = ev.get("total_steps", fig.total_steps)
            if ev.get("rate_it_s") is not None:
                fig.tqdm_it_per_s = float(ev["rate_it_s"])
            if step >= 1 and (not points or step > points[-1][0]):
                points.append((step, float(ev.get("t", 0.0))))
                if fig.first_step_s is None:
                    fig.first_step_s = arrival
                    fig.first_step_trainer_s = float(ev.get("t", 0.0)) - (started or 0.0)
            fig.steps_done = max(fig.steps_done, step)
        elif kind == "resource_sample":
            used = ev.get("gpu_memory_used_mb") or []
            if used:
                fig.product_vram_mib = max(fig.product_vram_mib or 0, *used)
        elif kind == "run_finished":
            fig.status = ev.get("status")
            fig.reason = ev.get("reason")
    if points:
        total = fig.total_steps or points[-1][0]
        floor = max(1, math.ceil(warmup * total))
        timed = [p for p in points if p[0] >= floor] or points[-1:]
        (s0, t0), (s1, t1) = timed[0], timed[-1]
        if s1 > s0 and t1 > t0:
            fig.it_per_s = (s1 - s0) / (t1 - t0)
            fig.steps_timed = s1 - s0
        else:
            fig.it_per_s = fig.tqdm_it_per_s
            fig.notes.append("one bar update: it/s is the bar's own rate")
    return fig


def parse_smi_memory(text: str) -> list[int]:
    """MiB values from ``nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits``."""
    values = []
    for line in text.splitlines():
        line = line.strip()
        if line.isdigit():
            values.append(int(line))
    return values


# --- the time budget ----------------------------------------------------------------------------


def budget_check(elapsed_s: float, budget_s: float, need_s: float) -> str | None:
    """None when a job expected to take ``need_s`` still fits, else why it is skipped."""
    left = budget_s - elapsed_s
    if left < need_s:
        return f"skipped: {left:.0f} s of the {budget_s:.0f} s budget left, the job needs ~{need_s:.0f} s"
    return None


# --- the side-by-side table ---------------------------------------------------------------------

ROWS: tuple[tuple[str, str], ...] = (
    ("arm", "arm"),
    ("settings", "settings"),
    ("steps", "steps"),
    ("it/s", "it_per_s"),
    ("images/s", "images_per_s"),
    ("first step (s)", "first_step_s"),
    ("peak VRAM (MiB)", "peak_vram_mib"),
    ("wall (s)", "wall_s"),
    ("status", "status"),
)


def cell(result: Mapping[str, Any], key: str) -> str:
    """One table cell of a job's result."""
    value = result.get(key)
    if key == "steps":
        done, planned = result.get("steps_done"), result.get("planned_steps")
        return "-" if planned is None else f"{done or 0}/{planned}"
    if key == "arm":
        return {"product": "product preset", "gui": "kohya_ss GUI"}.get(str(value), str(value))
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if key in ("it_per_s", "images_per_s") else f"{value:.1f}"
    return str(value)


def format_table(results: Sequence[Mapping[str, Any]], header: str = "") -> str:
    """Metrics as rows, one column per job (the two arms of a family side by side)."""
    columns = [[str(r.get("title", r.get("key", "?")))] for r in results]
    for col, result in zip(columns, results, strict=True):
        col.extend(cell(result, key) for _, key in ROWS)
    labels = ["", *(label for label, _ in ROWS)]
    width0 = max(len(x) for x in labels)
    widths = [max(len(x) for x in col) for col in columns]
    lines = [header] if header else []
    for i, label in enumerate(labels):
        row = [
            label.ljust(width0),
            *(col[i].ljust(w) for col, w in zip(columns, widths, strict=True)),
        ]
        lines.append("  ".join(row).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in [width0, *widths]))
    return "\n".join(lines)
