"""Presets: partial jobs in the root `presets/` folder (or the copy inside an installed wheel).

A preset composes in layers, lowest first: its ``extends`` chain, the preset itself, overlays
(``--vram 8`` is the overlay ``vram-8gb``), the epochs picked from the data, then the caller's
layers (job file, command-line options, ``--set``). The merged dict is validated once
(layers.compose_layers / loading.validate_job), so every problem is reported together and names the
layer that set the bad value.

Preset files may use four keys the job format does not have; they are taken out before
validation, so the job model itself stays free of "auto" values:

- ``extends = ["other", ...]``: presets laid under this one (names, or paths of .toml files).
- ``[overlay]`` with ``standalone_base = "NAME"``: the file only adjusts another preset (the
  ``vram-*`` tiers). On its own (``preset vram-8gb``) it is shown over ``NAME``.
- ``[for_family.<family>.<section>]``: settings merged right over this file's own when the job's
  ``model.family`` is ``<family>`` (SDXL needs more memory switches than SD 1.5 on the same card).
- ``[epochs_from_data]`` with ``target_steps = [low, high]``, ``min_epochs``, ``max_epochs``:
  ``max_train_epochs`` is chosen from the planned steps per epoch of the actual data so the total
  lands in the range (:func:`.epochs.choose_epochs`), as a layer of its own above the presets. A
  job file, option or ``--set`` that sets ``max_train_epochs`` or ``max_train_steps`` wins.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PresetNotFound, Problem
from ..models.family import DEFAULT_FAMILY, FAMILIES, profile
from .epochs import EpochChoice, StepTarget, epochs_from_data, length_setter, step_target
from .layers import Layer, compose_layers, parse_set_overrides
from .loading import read_toml, validate_job

if TYPE_CHECKING:
    from ..models import TrainingJob

__all__ = [
    "PRESET_ONLY_KEYS",
    "PresetInfo",
    "PresetJob",
    "compose_preset",
    "list_presets",
    "load_preset",
    "preset_copy_text",
    "preset_job",
    "preset_layers",
    "preset_path",
    "presets_dir",
    "vram_overlay",
]

PRESET_ONLY_KEYS = ("extends", "overlay", "for_family", "epochs_from_data")
"""Top-level keys a preset file may have that are not part of the job format."""

VRAM_TIERS = (8, 12, 16, 24)


def presets_dir() -> Path:
    """The folder holding preset files: the checkout's presets/, else the wheel's copy."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "presets", package / "_presets"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    return package / "_presets"


def vram_overlay(gigabytes: int) -> str:
    """The overlay preset for a card with this much memory: ``vram_overlay(8) == "vram-8gb"``."""
    if gigabytes not in VRAM_TIERS:
        raise ConfigError(
            [
                Problem(
                    "--vram",
                    f"no overlay for {gigabytes} GB",
                    "choose " + ", ".join(str(t) for t in VRAM_TIERS) + " (the tier at or below "
                    "your card's memory)",
                )
            ],
            source="--vram",
        )
    return f"vram-{gigabytes}gb"


# ----------------------------------------------------------------------------- listing
@dataclass(frozen=True)
class PresetInfo:
    """A preset's name, one-line summary and file; ``overlay`` for files that adjust others."""

    name: str
    summary: str
    path: Path
    overlay: bool = False


def _summary(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if line.startswith("#") and text:
            return text.removeprefix(f"{path.stem}:").strip()
    return ""


def list_presets() -> list[PresetInfo]:
    """Every preset, sorted by name."""
    return [
        PresetInfo(p.stem, _summary(p), p, "overlay" in read_toml(p, what="preset"))
        for p in sorted(presets_dir().glob("*.toml"))
    ]


def _is_path(name: str) -> bool:
    return name.endswith(".toml") or "/" in name or "\\" in name


def _path_of(name: str, relative_to: Path | None = None) -> Path:
    if _is_path(name):
        path = Path(name).expanduser()
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        if not path.is_file():
            raise PresetNotFound(
                [Problem(name, "preset file not found", "check the path")], source="presets"
            )
        return path
    path = presets_dir() / f"{name}.toml"
    if not path.is_file():
        names = [p.stem for p in sorted(presets_dir().glob("*.toml"))]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise PresetNotFound(
            [
                Problem(
                    f"preset {name}",
                    "no such preset",
                    f"{hint}available: {', '.join(names)} (python -m kohya_orchestrator preset list)",
                )
            ],
            source="the preset name",
        )
    return path


def preset_path(name: str) -> Path:
    """The file of a preset name (or the path itself, for a preset file of your own)."""
    return _path_of(name)


def load_preset(name: str) -> dict[str, Any]:
    """The raw contents of one preset file (``extends`` and other preset-only keys included)."""
    return read_toml(_path_of(name), what="preset")


# ----------------------------------------------------------------------------- reading files
@dataclass(frozen=True)
class _PresetFile:
    name: str
    label: str
    path: Path
    job: dict[str, Any]
    extends: tuple[str, ...]
    overlay: bool
    standalone_base: str | None
    for_family: dict[str, dict[str, Any]]
    epochs_from_data: dict[str, Any] | None
    base_dir: Path | None


def _read(name: str, relative_to: Path | None) -> _PresetFile:
    path = _path_of(name, relative_to)
    shipped = not _is_path(name)
    label = f"preset '{name}'" if shipped else f"preset file {path.name}"
    data = read_toml(path, what="preset")
    problems: list[Problem] = []

    def bad(key: str, message: str, hint: str) -> None:
        problems.append(Problem(key, f"{message} (set by {label})", hint))

    extends = data.pop("extends", [])
    if isinstance(extends, str):
        extends = [extends]
    if not isinstance(extends, list) or not all(isinstance(e, str) for e in extends):
        bad("extends", "expected a preset name or a list of names", 'e.g. extends = ["oilpaint"]')
        extends = []
    overlay = data.pop("overlay", None)
    base: str | None = None
    if overlay is not None:
        if not isinstance(overlay, Mapping) or not isinstance(
            overlay.get("standalone_base", ""), str
        ):
            bad(
                "overlay",
                "expected a table with standalone_base = NAME",
                '[overlay] standalone_base = "lora-character"',
            )
        else:
            base = overlay.get("standalone_base") or None
            for key in overlay:
                if key != "standalone_base":
                    bad(f"overlay.{key}", f"unknown key '{key}'", "allowed: standalone_base")
    for_family = data.pop("for_family", {})
    if not isinstance(for_family, Mapping):
        bad("for_family", "expected tables per family", "[for_family.sdxl.training] ...")
        for_family = {}
    for fam, part in for_family.items():
        if fam not in FAMILIES or not isinstance(part, Mapping):
            close = difflib.get_close_matches(str(fam), list(FAMILIES), n=1)
            bad(
                f"for_family.{fam}",
                f"unknown family '{fam}'" if fam not in FAMILIES else "expected a table",
                (f"did you mean '{close[0]}'? " if close else "")
                + "allowed: "
                + ", ".join(FAMILIES),
            )
    target = data.pop("epochs_from_data", None)
    if target is not None and not isinstance(target, Mapping):
        bad(
            "epochs_from_data", "expected a table", "[epochs_from_data] target_steps = [1500, 3000]"
        )
        target = None
    if problems:
        raise ConfigError(problems, source=str(path))
    return _PresetFile(
        name=name if shipped else path.name,
        label=label,
        path=path,
        job=data,
        extends=tuple(extends),
        overlay=overlay is not None,
        standalone_base=base,
        for_family={k: dict(v) for k, v in for_family.items() if isinstance(v, Mapping)},
        epochs_from_data=dict(target) if target is not None else None,
        base_dir=None if shipped else path.parent.resolve(),
    )


def _chain(
    name: str, relative_to: Path | None = None, seen: tuple[tuple[str, Path], ...] = ()
) -> list[_PresetFile]:
    """The file and its ``extends`` parents, parents first."""
    path = _path_of(name, relative_to).resolve()
    if path in {p for _, p in seen}:
        names = [n for n, _ in seen]
        raise ConfigError(
            [
                Problem(
                    f"preset {name}", "extends itself in a cycle: " + " -> ".join((*names, name))
                )
            ],
            source="presets",
        )
    top = _read(name, relative_to)
    out: list[_PresetFile] = []
    for parent in top.extends:
        for f in _chain(parent, top.path.parent, (*seen, (name, path))):
            if f.path not in {g.path for g in out}:
                out.append(f)
    out.append(top)
    return out


def _stack(name: str, overlays: Sequence[str]) -> tuple[list[_PresetFile], _PresetFile]:
    """Every file of a preset with its overlays, lowest first, and the named preset's file."""
    files = _chain(name)
    top = files[-1]
    if top.overlay and top.standalone_base and len(files) == 1:
        files = [*_chain(top.standalone_base, top.path.parent), top]
    for overlay in overlays:
        for f in _chain(overlay):
            if f.path not in {g.path for g in files}:
                files.append(f)
    return files, top


def _family(layers: Sequence[Layer]) -> str:
    model = compose_layers(layers).data.get("model")
    family = model.get("family") if isinstance(model, Mapping) else None
    return family if isinstance(family, str) else DEFAULT_FAMILY


def _layers(files: Sequence[_PresetFile], family: str, display: str, top: Path) -> list[Layer]:
    out: list[Layer] = []
    for f in files:
        data = dict(f.job)
        if f.path == top:  # provenance: the preset and its overlays, e.g. "oilpaint+vram-8gb"
            data.setdefault("preset", display)
        out.append(Layer(f.label, data, f.base_dir))
        part = f.for_family.get(family)
        if part:
            out.append(Layer(f"{f.label} ({family} part)", part, f.base_dir))
    return out


def _display(top: _PresetFile, overlays: Sequence[str]) -> str:
    names = [top.name, *(Path(o).name if _is_path(o) else o for o in overlays)]
    return "+".join(dict.fromkeys(names))


def _plain(files: Sequence[_PresetFile]) -> list[Layer]:
    return [Layer(f.label, f.job, f.base_dir) for f in files]


def preset_layers(name: str) -> list[Layer]:
    """The layers of a preset on its own: its ``extends`` chain first (no epochs from data)."""
    files, top = _stack(name, ())
    return _layers(files, _family(_plain(files)), _display(top, ()), top.path)


def _target(files: Sequence[_PresetFile]) -> StepTarget | None:
    tables = [(f.label, f.epochs_from_data) for f in files if f.epochs_from_data is not None]
    return step_target(tables)


# ----------------------------------------------------------------------------- composing
@dataclass(frozen=True)
class PresetJob:
    """A job built from a preset, with how it was built."""

    job: TrainingJob
    layers: tuple[Layer, ...]
    """Every layer, lowest first (presets, the epochs layer, the caller's layers)."""
    presets: tuple[str, ...]
    """The preset files used, lowest first (``extends`` parents, the preset, overlays)."""
    epochs: EpochChoice | None = None
    """The epochs picked from the data, when the preset asks for it and nothing overrides it."""
    epochs_note: str | None = None
    """Why the epochs were not picked from the data (None when they were, or not asked for)."""
    data_problems: tuple[Problem, ...] = field(default=())
    """Warnings about the data folder (skipped subfolders and the like)."""


def compose_preset(
    name: str,
    *,
    overlays: Sequence[str] = (),
    layers: Sequence[Layer] = (),
    num_processes: int = 1,
) -> PresetJob:
    """Compose a preset, its overlays and the caller's layers into one validated job.

    Args:
        name: A preset name (``oilpaint``) or the path of a preset file (``my.toml``).
        overlays: Presets laid over it, in order (``["vram-8gb"]``).
        layers: The caller's layers, above every preset (job file, options, ``--set``).
        num_processes: Processes (GPUs) the run will use, for the epochs from data.

    Returns:
        The job and how it was built.

    Raises:
        ConfigError: Every problem of the merged result, each naming the layer that set it.
        PresetNotFound: No such preset.
    """
    files, top = _stack(name, overlays)
    user = list(layers)
    display = _display(top, overlays)
    preset = _layers(files, _family([*_plain(files), *user]), display, top.path)
    target = _target(files)
    choice: EpochChoice | None = None
    note: str | None = None
    if target is not None:
        setter = length_setter(user)
        if setter is not None:
            note = f"the training length comes from {setter}; epochs from data not used"
        else:
            choice, note = epochs_from_data(preset, user, target, num_processes)
    extra: list[Layer] = []
    if choice is not None:
        t = choice.target
        extra.append(
            Layer(
                f"epochs from data (target {t.low}-{t.high} steps, {t.source})",
                {"training": {"max_train_epochs": choice.epochs}},
            )
        )
    all_layers = [*preset, *extra, *user]
    composed = compose_layers(all_layers)
    job = validate_job(composed.data, source=f"preset '{display}'", provenance=composed.provenance)
    return PresetJob(
        job=job,
        layers=tuple(all_layers),
        presets=tuple(f.name for f in files),
        epochs=choice,
        epochs_note=note,
    )


def _family_of_file(name: str, model: Path) -> str | None:
    """The family a U-Net preset switches to for this model file (an SDXL checkpoint given to
    an SD 1.5 preset); None to keep the preset's. The DiT presets name their families' own
    files, so a file of another family is left to the path check, which says so."""
    from .model_file import detect_family

    if not model.exists():
        return None
    found = detect_family(model).family
    own = _family(preset_layers(name))
    if found is None or found == own:
        return None
    return found if profile(found).hub_ids and profile(own).hub_ids else None


def preset_job(
    name: str,
    *,
    data: str | Path | None = None,
    reg_data: str | Path | None = None,
    model: str | Path | None = None,
    output: str | Path | None = None,
    overlays: Sequence[str] = (),
    overrides: Sequence[str] = (),
    layers: Sequence[Layer] = (),
    options_label: str = "preset_job arguments",
    num_processes: int = 1,
) -> PresetJob:
    """A job from a preset, your data folder, model and output folder (the notebook entry point).

    Args:
        name: A preset name (``oilpaint``) or the path of a preset file.
        data: A parent of `<repeats>_<name>` image folders (or one such folder).
        reg_data: Regularisation images in the same layout.
        model: The base model checkpoint, diffusers folder or Hugging Face id.
        output: Where the LoRA files go.
        overlays: Presets laid over it, e.g. ``["vram-8gb"]`` (see :func:`vram_overlay`).
        overrides: ``--set`` style ``key.path=value`` strings (the top layer).
        layers: More layers between the options and the overrides (e.g. a job file's).
        options_label: How the options layer is named in error messages.
        num_processes: Processes (GPUs) the run will use, for the epochs from data.

    Returns:
        The job and how it was built; ``data_problems`` holds warnings about the data folder.

    Raises:
        ConfigError: The data folder has no usable subfolders, or the merged job is invalid.
    """
    from ..datasets.tree import subsets_from_tree

    cwd = Path.cwd()
    options: dict[str, Any] = {}
    warnings: list[Problem] = []
    if data is not None:
        subsets, problems = subsets_from_tree(Path(data), Path(reg_data) if reg_data else None)
        errors = [p for p in problems if p.severity == "error"]
        if errors or not subsets:
            raise ConfigError(errors or problems, source=f"data folder {data}")
        options["dataset"] = {"subsets": subsets}
        warnings = problems
    if model is not None:
        options["model"] = {"pretrained_model_name_or_path": str(model)}
        found = _family_of_file(name, Path(model))
        if found is not None:
            options["model"]["family"] = found
    if output is not None:
        options["training"] = {"output_dir": str(output)}
    user = [Layer(options_label, options, cwd)] if options else []
    user += list(layers)
    if overrides:
        user.append(Layer("--set", parse_set_overrides(overrides), cwd))
    result = compose_preset(name, overlays=overlays, layers=user, num_processes=num_processes)
    said = [dict(layer.data).get("training", {}) for layer in user[1 if options else 0 :]]
    if output is not None and result.job.training.logging_dir:
        if not any(isinstance(t, dict) and "logging_dir" in t for t in said):
            # the preset's TensorBoard folder sits in its own output folder: follow `output`
            options["training"]["logging_dir"] = str(Path(output) / "logs")
            user[0] = Layer(options_label, options, cwd)
            result = compose_preset(
                name, overlays=overlays, layers=user, num_processes=num_processes
            )
    return PresetJob(
        job=result.job,
        layers=result.layers,
        presets=result.presets,
        epochs=result.epochs,
        epochs_note=result.epochs_note,
        data_problems=tuple(warnings),
    )


# ----------------------------------------------------------------------------- copying
def _strip_table(text: str, table: str) -> str:
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped == f"[{table}]"
        if not skipping:
            out.append(line)
    return "\n".join(out).rstrip("\n") + "\n"


def preset_copy_text(name: str) -> str:
    """The text ``preset copy`` writes: a job file you own, with no preset-only keys.

    A plain preset is copied with its comments; ``[epochs_from_data]`` becomes a comment (the copy
    keeps the preset's fixed ``max_train_epochs``). A preset that extends others, or an overlay,
    is written resolved: every layer merged into one job file.
    """
    from ..render._writer import dumps

    files, top = _stack(name, ())
    if len(files) == 1:
        text = top.path.read_text(encoding="utf-8")
        if "preset" not in top.job:  # provenance, before the first table
            lines = text.splitlines()
            at = next((i for i, line in enumerate(lines) if line.startswith("[")), len(lines))
            lines.insert(
                at, f'preset = "{top.name}"\n' if at < len(lines) else f'preset = "{top.name}"'
            )
            text = "\n".join(lines) + "\n"
        if top.epochs_from_data is not None:
            text = _strip_table(text, "epochs_from_data")
            t = _target(files)
            assert t is not None
            text += (
                f"\n# `preset {name}` picks max_train_epochs from your data so the run lands at "
                f"{t.low}-{t.high} steps;\n"
                "# this copy keeps the fixed value above. Check the steps with:\n"
                "#   python -m kohya_orchestrator plan THIS_FILE.toml\n"
            )
        return text
    layers = _layers(files, _family(_plain(files)), _display(top, ()), top.path)
    data = compose_layers(layers).data
    order = ["version", "name", "description", "preset", "model", "dataset", "network"]
    order += ["optimizer", "scheduler", "training", "sampling", "extra_args"]
    ordered = {k: data[k] for k in order if k in data}
    ordered.update({k: v for k, v in data.items() if k not in ordered})
    header: list[str] = []
    for line in top.path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line.removeprefix("#").removeprefix(" "))
    lineage = " < ".join(f.name for f in files)
    header += ["", f"Resolved by `preset copy {name}` from: {lineage}."]
    return dumps(ordered, header=header)
