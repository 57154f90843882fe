"""Paths in an imported config that point at another machine: placeholders, or the user's own.

A config made elsewhere names ``D:\\lora\\img\\20_style``, ``/content/drive/...`` or a model
file that is not here. None of that stops an import. Each such path becomes a placeholder the
job format knows (:func:`..models.model.is_placeholder_path`): ``<data>/20_style`` for an image
folder (the repeat folder's name kept, so its repeats and class tokens stay), ``<output>`` for
the output folder, ``<file.safetensors>`` for a model or component file. ``validate`` lists
each one; ``train`` refuses until it is filled. ``--data DIR``, ``--model PATH`` and
``--output DIR`` fill them at import time: an image folder becomes ``DIR/<its folder name>``.

Pure but for ``exists`` (a callable, :meth:`pathlib.Path.exists` by default) and, for ``--data``,
listing that folder's names: a dataset config's subset with its own ``num_repeats`` (a Colab
notebook's ``.../dataset``) takes ``--data`` as its image folder when no folder of its name is in
it.
"""

from __future__ import annotations

import ntpath
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Problem
from ..models.dataset import parse_repeats_folder
from ..models.model import (
    DATA_PLACEHOLDER,
    OUTPUT_PLACEHOLDER,
    PATH_FIELDS,
    is_placeholder_path,
    looks_like_hub_id,
)

__all__ = ["LocalPaths", "foreign_basename", "localize_paths"]

_BASE = "pretrained_model_name_or_path"


@dataclass(frozen=True)
class LocalPaths:
    """What the user gave for this machine (``None``: not given)."""

    data: Path | None = None
    """A folder holding the config's repeat folders (or one of them)."""
    model: str | None = None
    """The base model (a file, a diffusers folder or a Hugging Face id)."""
    output: Path | None = None
    """Where checkpoints and samples go."""


def foreign_basename(path: str) -> str:
    """The last component of a path written on any machine (``D:\\lora\\img`` -> ``img``)."""
    trimmed = path.rstrip("/\\")
    if "\\" in trimmed and not Path(trimmed).exists():
        return ntpath.basename(trimmed) or trimmed
    return posixpath.basename(trimmed) or trimmed


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _holds_images(folder: Path) -> bool:
    """True when ``folder`` has image files directly in it (reads the folder's names only)."""
    try:
        return any(p.suffix.lower() in _IMAGE_SUFFIXES for p in folder.iterdir())
    except OSError:
        return False


def _usable_output(path: str, exists: Callable[[Path], bool]) -> bool:
    """An output folder can be used here when its parent exists (sd-scripts makes the rest)."""
    if "\\" in path and ntpath.splitdrive(path)[0]:
        return False  # D:\... on a machine that is not Windows
    return exists(Path(path)) or exists(Path(path).parent)


def localize_paths(
    data: dict[str, Any],
    local: LocalPaths,
    *,
    origin: str,
    exists: Callable[[Path], bool] = Path.exists,
) -> tuple[dict[str, Any], list[Problem]]:
    """Fill or mark every path of an imported job that is not on this machine.

    Args:
        data: The job data an importer made (changed copies are returned; it is not touched).
        local: What the user gave for this machine.
        origin: The imported file's name, for the notes.
        exists: How a path is checked (tests pass their own).

    Returns:
        ``(data, notes)``: each note says what was filled or marked, and how to fill the rest.
    """
    notes: list[Problem] = []
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    model = out.get("model")
    if isinstance(model, dict):
        _model_paths(model, local, origin, exists, notes)
    training = out.get("training")
    if isinstance(training, dict):
        _output_paths(training, local, exists, notes)
    network = out.get("network")
    if isinstance(network, dict):
        weights = network.get("network_weights")
        if isinstance(weights, str) and not is_placeholder_path(weights):
            if not exists(Path(weights)):
                network["network_weights"] = f"<{foreign_basename(weights)}>"
                notes.append(_marked("network.network_weights", weights, origin))
    dataset = out.get("dataset")
    if isinstance(dataset, dict):
        out["dataset"] = _dataset_paths(dataset, local, origin, exists, notes)
    return out, notes


def _marked(key: str, was: str, origin: str, hint: str | None = None) -> Problem:
    return Problem(
        key,
        f"{was} (from {origin}) is not on this machine; imported as a placeholder",
        hint or f"give it: --set {key}=/path/to/{foreign_basename(was)}",
        "warning",
        "import-placeholder",
    )


def _model_paths(
    model: dict[str, Any],
    local: LocalPaths,
    origin: str,
    exists: Callable[[Path], bool],
    notes: list[Problem],
) -> None:
    if local.model is not None:
        model[_BASE] = local.model
    for key in sorted(PATH_FIELDS):
        value = model.get(key)
        if not isinstance(value, str) or is_placeholder_path(value) or exists(Path(value)):
            continue
        if key == _BASE and (looks_like_hub_id(value) or local.model is not None):
            continue
        model[key] = f"<{foreign_basename(value)}>"
        hint = "give it with --model PATH" if key == _BASE else None
        notes.append(_marked(f"model.{key}", value, origin, hint))


def _output_paths(
    training: dict[str, Any],
    local: LocalPaths,
    exists: Callable[[Path], bool],
    notes: list[Problem],
) -> None:
    if local.output is not None:
        training["output_dir"] = str(local.output)
    else:
        value = training.get("output_dir")
        if isinstance(value, str) and not is_placeholder_path(value):
            if not _usable_output(value, exists):
                training["output_dir"] = OUTPUT_PLACEHOLDER
                notes.append(
                    Problem(
                        "training.output_dir",
                        f"{value} cannot be made on this machine; imported as {OUTPUT_PLACEHOLDER}",
                        "give it with --output DIR",
                        "warning",
                        "import-placeholder",
                    )
                )
    logs = training.get("logging_dir")
    if isinstance(logs, str) and not is_placeholder_path(logs):
        if not _usable_output(logs, exists):
            base = str(local.output) if local.output is not None else OUTPUT_PLACEHOLDER
            training["logging_dir"] = f"{base}/{foreign_basename(logs)}"
            notes.append(
                Problem(
                    "training.logging_dir",
                    f"{logs} cannot be made on this machine; logs go to {training['logging_dir']}",
                    None,
                    "warning",
                    "import-fixed",
                )
            )
    for key, what in (("resume", "state folder"),):
        value = training.get(key)
        if isinstance(value, str) and not exists(Path(value)):
            training.pop(key)
            notes.append(
                Problem(
                    f"training.{key}",
                    f"the {what} {value} is not on this machine; not imported",
                    None,
                    "warning",
                    "import-dropped",
                )
            )


def _dataset_paths(
    dataset: dict[str, Any],
    local: LocalPaths,
    origin: str,
    exists: Callable[[Path], bool],
    notes: list[Problem],
) -> dict[str, Any]:
    def subsets(items: Any, where: str) -> Any:
        if not isinstance(items, list):
            return items
        fixed = []
        for i, subset in enumerate(items):
            if isinstance(subset, dict):
                subset = _subset(
                    dict(subset), f"{where}.subsets[{i}]", local, origin, exists, notes
                )
            fixed.append(subset)
        return fixed

    if "subsets" in dataset:
        dataset["subsets"] = subsets(dataset["subsets"], "dataset")
    if isinstance(dataset.get("datasets"), list):
        dataset["datasets"] = [
            {**b, "subsets": subsets(b.get("subsets"), f"dataset.datasets[{d}]")}
            if isinstance(b, dict)
            else b
            for d, b in enumerate(dataset["datasets"])
        ]
    return dataset


def _subset(
    subset: dict[str, Any],
    where: str,
    local: LocalPaths,
    origin: str,
    exists: Callable[[Path], bool],
    notes: list[Problem],
) -> dict[str, Any]:
    for key in ("image_dir", "metadata_file"):
        value = subset.get(key)
        if not isinstance(value, str) or value == DATA_PLACEHOLDER or exists(Path(value)):
            continue  # a bare <data> is the importer's: it reads --data's repeat folders
        if is_placeholder_path(value) and local.data is None:
            continue
        prefix = DATA_PLACEHOLDER + "/"
        name = value[len(prefix) :] if value.startswith(prefix) else foreign_basename(value)
        if local.data is not None:
            here = local.data if local.data.name == name else local.data / name
            if not exists(here) and key == "image_dir" and _holds_images(local.data):
                explicit = subset.get("num_repeats") is not None
                if explicit or parse_repeats_folder(local.data.name) is not None:
                    here = local.data  # --data is this subset's image folder itself
            subset[key] = str(here)
            if not exists(here):
                notes.append(
                    Problem(
                        f"{where}.{key}",
                        f"{value} (from {origin}) is expected at {here}, which does not exist",
                        f"put '{name}' in {local.data}, or give the folder that holds it",
                        "warning",
                        "import-placeholder",
                    )
                )
            continue
        subset[key] = prefix + name
        notes.append(
            _marked(
                f"{where}.{key}",
                value,
                origin,
                f"give the folder that holds '{name}': --data DIR (at import), or set "
                f"{where}.{key}",
            )
        )
    return subset
