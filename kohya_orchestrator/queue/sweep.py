"""Sweeps: a job file times a grid of values -> named, validated jobs, ready to queue.

``--grid network.algo=loha,lokr,ia3 --grid optimizer.learning_rate=1.0,0.5`` gives six jobs named
``<output_name>-algo_loha-lr_1.0`` and so on. Values are TOML values (``1e-4``, ``true``,
``[768, 512]``; anything else is a string). Every combination is validated before anything is
queued, and a problem names the layer that caused it (``set by --grid network.algo``).

When a grid value picks another ``algo`` (or optimizer ``type``), keys of the job file that the new
one does not take are dropped, with a note: ``network_dim`` means nothing to IA3. Combinations
that become identical that way (IA3 at every ``network_dim``) are queued once.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel

from ..errors import ConfigError, Problem
from ..jobs.checks import check_outputs, check_paths
from ..jobs.layers import Layer, compose_layers, parse_set_overrides
from ..jobs.loading import read_toml, validate_job
from ..launch.rundir import slugify
from ..models import TrainingJob
from ..models import network as network_models
from ..models import optimizer as optimizer_models
from .records import NewJob, QueueJob
from .store import JobQueue

if TYPE_CHECKING:
    from ..outputs.compare import ComparisonRow

__all__ = [
    "GridAxis",
    "SweepJob",
    "SweepPlan",
    "compare_sweep",
    "expand_sweep",
    "parse_grid",
    "queue_sweep",
]

# Short labels for common keys in job names; any other key is labelled by its last part.
_LABELS = {
    "network.algo": "algo",
    "network.network_dim": "dim",
    "network.network_alpha": "alpha",
    "network.conv_dim": "conv_dim",
    "network.conv_alpha": "conv_alpha",
    "optimizer.type": "opt",
    "optimizer.learning_rate": "lr",
    "optimizer.unet_lr": "unet_lr",
    "optimizer.text_encoder_lr": "te_lr",
    "dataset.resolution": "res",
    "dataset.batch_size": "bs",
    "training.max_train_epochs": "ep",
    "training.max_train_steps": "steps",
}
# Keys the sweep itself sets for every job.
_RESERVED = ("name", "training.output_name")
# sd-scripts reuses a disk latent cache only while the image, resolution/bucket and VAE settings
# match; otherwise it encodes again and overwrites the .npz files (library/train_util.py).
_LATENT_PREFIXES = ("dataset.", "model.")


@dataclass(frozen=True)
class GridAxis:
    """One ``--grid key=v1,v2,...``."""

    key: str
    values: tuple[Any, ...]
    texts: tuple[str, ...]

    @property
    def label(self) -> str:
        """Short name used in job names (``lr`` for ``optimizer.learning_rate``)."""
        return _LABELS.get(self.key, self.key.rsplit(".", 1)[-1])


@dataclass(frozen=True)
class SweepJob:
    """One job of a sweep."""

    name: str
    labels: dict[str, str]
    job: TrainingJob


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep expands to: the jobs and the notes about them."""

    name: str
    source: Path
    jobs: list[SweepJob]
    notes: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)


def _split_values(text: str) -> list[str]:
    """Split on commas outside brackets and quotes: ``[768,512],1024`` -> two values."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    current = ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += ch
    parts.append(current.strip())
    return parts


def parse_grid(items: Sequence[str]) -> list[GridAxis]:
    """Parse ``--grid`` options; raises ConfigError listing every malformed one."""
    axes: list[GridAxis] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for item in items:
        key, sep, rest = item.partition("=")
        key = key.strip()
        where = f"--grid {item}"
        if not sep or not key or any(not p for p in key.split(".")):
            problems.append(
                Problem(where, "expected key.path=v1,v2,...", "e.g. --grid network.algo=lora,loha")
            )
            continue
        if key in _RESERVED:
            problems.append(
                Problem(where, f"'{key}' is set by the sweep (one per job)", "grid another key")
            )
            continue
        if key in seen:
            problems.append(Problem(where, f"'{key}' has two --grid options", "merge them"))
            continue
        texts = _split_values(rest)
        if any(not t for t in texts):
            problems.append(Problem(where, "an empty value", "e.g. --grid network.algo=lora,loha"))
            continue
        if len(set(texts)) != len(texts):
            problems.append(Problem(where, "a value is listed twice", None))
            continue
        values = []
        for text in texts:
            node: Any = parse_set_overrides([f"{key}={text}"])
            for part in key.split("."):
                node = node[part]
            values.append(node)
        seen.add(key)
        axes.append(GridAxis(key, tuple(values), tuple(texts)))
    if not axes and not problems:
        problems.append(Problem("--grid", "no grid given", "e.g. --grid network.algo=lora,loha"))
    if problems:
        raise ConfigError(problems, source="--grid options")
    return axes


def _value_label(text: str) -> str:
    text = text.strip().strip("\"'")
    text = re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")
    return text or "x"


def _nest(key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _network_model(algo: Any) -> type[BaseModel] | None:
    for name in network_models.__all__:
        model = getattr(network_models, name)
        if (
            isinstance(model, type)
            and issubclass(model, BaseModel)
            and "algo" in model.model_fields
        ):
            if str(algo).lower() in get_args(model.model_fields["algo"].annotation):
                return model
    return None


def _optimizer_model(section: Mapping[str, Any]) -> type[BaseModel] | None:
    model = getattr(optimizer_models, optimizer_models.optimizer_tag(dict(section)), None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _drop_inapplicable(
    data: dict[str, Any], provenance: Mapping[str, str]
) -> tuple[list[tuple[str, str, str]], set[str]]:
    """Drop keys that a grid-chosen algo / optimizer type does not take.

    Returns (dropped keys set by the job file or --set: (key, who set it, what does not take it)),
    and the grid keys dropped (those axes do not apply to this combination).
    """
    dropped: list[tuple[str, str, str]] = []
    grid_dropped: set[str] = set()
    pickers: list[tuple[str, str, type[BaseModel] | None, str]] = []
    net = data.get("network")
    if isinstance(net, dict) and provenance.get("network.algo", "").startswith("--grid"):
        algo = net.get("algo", "lora")
        pickers.append(("network", "algo", _network_model(algo), f"algo '{algo}'"))
    opt = data.get("optimizer")
    if isinstance(opt, dict) and provenance.get("optimizer.type", "").startswith("--grid"):
        pickers.append(("optimizer", "type", _optimizer_model(opt), f"optimizer '{opt['type']}'"))
    for section, _tag, model, what in pickers:
        if model is None:
            continue  # an unknown algo/type: validation reports it
        table = data[section]
        for key in list(table):
            if key in model.model_fields:
                continue
            dotted = f"{section}.{key}"
            origin = provenance.get(dotted, "the job file")
            del table[key]
            if origin.startswith("--grid"):
                grid_dropped.add(dotted)
            else:
                dropped.append((dotted, origin, what))
    return dropped, grid_dropped


def expand_sweep(
    path: Path,
    grid: Sequence[str],
    overrides: Sequence[str] = (),
    *,
    share_latent_cache: bool = False,
    name: str | None = None,
    now: datetime | None = None,
) -> SweepPlan:
    """Expand a job file and ``--grid`` options into validated, distinctly named jobs.

    Args:
        path: The job file.
        grid: ``key=v1,v2,...`` items; their product is the sweep.
        overrides: ``--set`` items applied to every job (before the grid).
        share_latent_cache: Turn on ``cache_latents`` and ``cache_latents_to_disk`` so the jobs
            share one latent cache beside the images.
        name: The sweep's name (default ``<job name>-<YYYYmmdd-HHMMSS>``).
        now: The time used in the default name.

    Raises:
        ConfigError: a malformed grid, or any combination that is invalid (every problem, with
            the layer or ``--grid`` that caused it), or would overwrite existing outputs.
    """
    path = Path(path)
    axes = parse_grid(grid)
    layers = [Layer(f"job file {path.name}", read_toml(path), path.parent.resolve())]
    if overrides:
        layers.append(Layer("--set", parse_set_overrides(overrides), Path.cwd()))
    if share_latent_cache:
        layers.append(
            Layer(
                "--share-latent-cache",
                {"training": {"cache_latents": True, "cache_latents_to_disk": True}},
            )
        )
    base = compose_layers(layers).data
    base_training = base.get("training") if isinstance(base.get("training"), dict) else {}
    base_output = str((base_training or {}).get("output_name", "lora"))
    base_name = base.get("name") if isinstance(base.get("name"), str) else None
    sweep_name = (
        name or f"{slugify(base_name or base_output)}-{(now or datetime.now()):%Y%m%d-%H%M%S}"
    )

    jobs: list[SweepJob] = []
    by_name: dict[str, SweepJob] = {}
    merged: dict[str, int] = {}
    drop_notes: dict[str, int] = {}
    problems: dict[tuple[str, str, str | None], list[str]] = {}
    for combo in itertools.product(*(range(len(a.values)) for a in axes)):
        grid_layers = [
            Layer(f"--grid {a.key}", _nest(a.key, a.values[i]), Path.cwd())
            for a, i in zip(axes, combo, strict=True)
        ]
        composed = compose_layers([*layers, *grid_layers])
        dropped, grid_dropped = _drop_inapplicable(composed.data, composed.provenance)
        for key, origin, what in dropped:
            note = f"{key} (set by {origin}) is dropped for {what}, which does not take it"
            drop_notes[note] = drop_notes.get(note, 0) + 1
        labels = {
            a.key: a.texts[i] for a, i in zip(axes, combo, strict=True) if a.key not in grid_dropped
        }
        suffix = "-".join(
            f"{a.label}_{_value_label(a.texts[i])}"
            for a, i in zip(axes, combo, strict=True)
            if a.key not in grid_dropped
        )
        output_name = f"{base_output}-{suffix}"
        if output_name in by_name:
            key = f"{output_name} ({', '.join(sorted(grid_dropped))} does not apply)"
            merged[key] = merged.get(key, 1) + 1
            continue
        data = composed.data
        data.setdefault("training", {})["output_name"] = output_name
        if base_name is not None:
            data["name"] = f"{base_name}-{suffix}"
        try:
            job = validate_job(data, source=str(path), provenance=composed.provenance)
        except ConfigError as exc:
            for p in exc.problems:
                problems.setdefault((p.path, p.message, p.hint), []).append(suffix)
            continue
        for p in check_paths(job) + check_outputs(job):
            problems.setdefault((p.path, p.message, p.hint), []).append(suffix)
        sweep_job = SweepJob(output_name, labels, job)
        by_name[output_name] = sweep_job
        jobs.append(sweep_job)
    if problems:
        total = len(list(itertools.product(*(a.values for a in axes))))
        raise ConfigError(
            [
                Problem(
                    where,
                    f"{message} (in {_which(combos, total)})",
                    hint,
                )
                for (where, message, hint), combos in problems.items()
            ],
            source=f"sweep of {path}: nothing was queued",
        )
    notes = [f"{note} ({n} job{'s' if n != 1 else ''})" for note, n in drop_notes.items()]
    notes += [f"{n} combinations are the same job {key}: queued once" for key, n in merged.items()]
    notes += _latent_notes([j.job for j in jobs], axes, share_latent_cache)
    arguments = [*(f"--set {o}" for o in overrides), *(f"--grid {g}" for g in grid)]
    return SweepPlan(sweep_name, path, jobs, notes, arguments)


def _which(combos: list[str], total: int) -> str:
    if len(combos) == total and total > 1:
        return "every combination"
    shown = ", ".join(combos[:4])
    return shown + (f" and {len(combos) - 4} more" if len(combos) > 4 else "")


def _latent_notes(jobs: list[TrainingJob], axes: list[GridAxis], shared_flag: bool) -> list[str]:
    if not jobs:
        return []
    varying = [a.key for a in axes if a.key.startswith(_LATENT_PREFIXES)]
    on_disk = [j for j in jobs if j.training.cache_latents and j.training.cache_latents_to_disk]
    notes: list[str] = []
    if on_disk:
        text = (
            "latent cache shared: the first job writes <image>.npz files beside the images "
            "(cache_latents_to_disk) and the others reuse them"
        )
        if varying:
            text += (
                f"; not across values of {', '.join(varying)}: sd-scripts encodes again (and "
                "overwrites the .npz files) when the images, resolution, buckets or VAE change"
            )
        notes.append(text)
    elif any(j.training.cache_latents for j in jobs):
        notes.append(
            "latent cache not shared: cache_latents keeps latents in memory, so every job "
            "encodes them again; only disk caches are shared between sd-scripts runs "
            "(--share-latent-cache turns on cache_latents_to_disk)"
        )
    elif not shared_flag:
        notes.append(
            "latents are not cached, so every step encodes images again; --share-latent-cache "
            "caches them on disk once for the whole sweep"
        )
    return notes


def queue_sweep(queue: JobQueue, plan: SweepPlan) -> list[QueueJob]:
    """Add a sweep's jobs to the queue (all or none), tagged with the sweep's name."""
    return queue.add(
        [
            NewJob(j.job, source=str(plan.source), overrides=plan.arguments, labels=j.labels)
            for j in plan.jobs
        ],
        sweep=plan.name,
    )


def compare_sweep(queue: JobQueue, name: str) -> list[tuple[QueueJob, ComparisonRow | None]]:
    """Each job of a sweep with the comparison row of its latest run (None: it never ran)."""
    from ..outputs.compare import compare_runs

    jobs = queue.jobs(sweep=name)
    ran = [j for j in jobs if j.run_dir is not None and j.run_dir.is_dir()]
    rows = compare_runs([j.run_dir for j in ran if j.run_dir is not None]).rows
    by_id = {j.id: row for j, row in zip(ran, rows, strict=True)}
    return [(j, by_id.get(j.id)) for j in jobs]
