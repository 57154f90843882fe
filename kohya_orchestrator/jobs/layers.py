"""Job layers and their composition: base < preset < job file < ``--set`` overrides.

Layers merge as plain dicts before validation, and the merged dict remembers which layer set each
dotted key, so a problem found later names the layer that contributed the bad value. Relative
paths in a layer are made absolute against the folder of the file that set them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ..errors import ConfigError, Problem
from ..models.model import PATH_FIELDS, is_placeholder_path, looks_like_hub_id

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "Composed",
    "Layer",
    "compose_layers",
    "deep_merge",
    "parse_set_overrides",
    "resolve_relative_paths",
]


@dataclass(frozen=True)
class Layer:
    """One source of job settings, with a name used in error messages."""

    name: str
    data: Mapping[str, Any]
    base_dir: Path | None = None


@dataclass
class Composed:
    """The merged dict plus which layer set each dotted key."""

    data: dict[str, Any]
    provenance: dict[str, str] = field(default_factory=dict)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge tables recursively; anything else in ``override`` replaces the base value."""
    out: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _leaf_paths(data: Mapping[str, Any], prefix: str = "") -> Iterable[str]:
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        yield path
        if isinstance(value, Mapping):
            yield from _leaf_paths(value, path)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    yield from _leaf_paths(item, f"{path}[{i}]")


def compose_layers(layers: Sequence[Layer]) -> Composed:
    """Merge layers in order (later wins) and record which layer set each key."""
    data: dict[str, Any] = {}
    provenance: dict[str, str] = {}
    for layer in layers:
        layer_data = dict(layer.data)
        if layer.base_dir is not None:
            layer_data = resolve_relative_paths(layer_data, layer.base_dir)
        data = deep_merge(data, layer_data)
        for path in _leaf_paths(layer_data):
            provenance[path] = layer.name
    return Composed(data, provenance)


def _parse_value(text: str) -> Any:
    try:
        value: Any = tomllib.loads(f"v = {text}")["v"]
        return value
    except tomllib.TOMLDecodeError:
        return text


def parse_set_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["network.network_dim=32", "training.output_name=my style"]`` into nested dicts.

    Values are read as TOML values (``32``, ``1e-4``, ``true``, ``[1, 2]``, ``"quoted"``); anything
    that is not valid TOML is taken as a plain string.
    """
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(
                Problem(
                    f"--set {item}",
                    "expected key.path=value",
                    "e.g. --set network.network_dim=32",
                )
            )
            continue
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                problems.append(
                    Problem(f"--set {item}", f"'{part}' was already set to a value", None)
                )
                break
            node = nxt
        else:
            node[parts[-1]] = _parse_value(value.strip())
    if problems:
        raise ConfigError(problems, source="--set overrides")
    return out


# Keys whose values are filesystem paths, resolved against the folder of the file that set them.
_PATH_KEYS: dict[str, tuple[str, ...]] = {
    "model": tuple(sorted(PATH_FIELDS - {"pretrained_model_name_or_path"})),
    "training": ("output_dir", "logging_dir", "resume"),
    "network": ("network_weights",),
    "subset": ("image_dir", "metadata_file"),
}


def _is_relative(value: str) -> bool:
    if not value or value.startswith(("~", "$")) or is_placeholder_path(value):
        return False
    return not (PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute())


def _resolve(value: Any, base_dir: Path) -> Any:
    if isinstance(value, str) and _is_relative(value):
        return str(base_dir / value)
    if isinstance(value, str) and value.startswith("~"):
        return str(Path(value).expanduser())
    return value


def resolve_relative_paths(
    data: Mapping[str, Any], base_dir: Path, exists: Callable[[Path], bool] = Path.exists
) -> dict[str, Any]:
    """Make relative paths absolute against ``base_dir`` (sd-scripts runs from its own checkout,
    so a relative path would be looked up there).

    Joins paths and reads nothing, but for one case: a base model written ``org/name`` is a
    Hugging Face id unless ``exists(base_dir / value)`` says it is a local folder.
    """
    out = dict(data)
    for section in ("model", "training", "network"):
        if isinstance(out.get(section), Mapping):
            sec = dict(out[section])
            for key in _PATH_KEYS[section]:
                if key in sec:
                    sec[key] = _resolve(sec[key], base_dir)
            if section == "model" and isinstance(sec.get("pretrained_model_name_or_path"), str):
                p = sec["pretrained_model_name_or_path"]
                if not looks_like_hub_id(p) or exists(base_dir / p):
                    sec["pretrained_model_name_or_path"] = _resolve(p, base_dir)
            if section == "network" and isinstance(sec.get("preset"), str):
                preset = sec["preset"]
                if preset.endswith(".toml") or "/" in preset or "\\" in preset:
                    sec["preset"] = _resolve(preset, base_dir)
            out[section] = sec
    if isinstance(out.get("dataset"), Mapping):
        ds = dict(out["dataset"])

        def fix_subsets(subsets: Any) -> Any:
            if not isinstance(subsets, list):
                return subsets
            fixed = []
            for s in subsets:
                if isinstance(s, Mapping):
                    s = dict(s)
                    for key in _PATH_KEYS["subset"]:
                        if key in s:
                            s[key] = _resolve(s[key], base_dir)
                fixed.append(s)
            return fixed

        if "subsets" in ds:
            ds["subsets"] = fix_subsets(ds["subsets"])
        if isinstance(ds.get("datasets"), list):
            ds["datasets"] = [
                {**d, "subsets": fix_subsets(d.get("subsets"))} if isinstance(d, Mapping) else d
                for d in ds["datasets"]
            ]
        out["dataset"] = ds
    return out
