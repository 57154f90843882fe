"""Which family a base model file is, from its safetensors header or diffusers folder (no torch).

A ``.safetensors`` file starts with an 8-byte little-endian length and a JSON header naming
every tensor (and a ``__metadata__`` table): reading it costs a few kilobytes, not the weights.
The family comes from, in order: the ``modelspec.architecture`` the file declares (written by
sd-scripts, ComfyUI and others: ``stable-diffusion-xl-v1-base``, ``flux-1-dev``, ...), then
the tensor names each family's own loader reads (``double_blocks`` for FLUX.1, ``joint_blocks``
for SD3, ``conditioner.embedders.1`` for SDXL, ...) and, for SD 1.x against 2.x, the width of the
cross-attention (768 or 1024). A diffusers folder says its pipeline in ``model_index.json``.
``.ckpt`` files are pickles: they are not opened (that would run code); their family is unknown.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Problem
from ..models.family import FAMILIES, profile

__all__ = ["Detected", "check_model_family", "detect_family", "read_safetensors_header"]

MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "net.", "model.")


@dataclass(frozen=True)
class Detected:
    """A verdict on a model file: the family (None: cannot tell) and what showed it."""

    family: str | None
    evidence: str


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor names -> dtype/shape, and ``__metadata__``).

    Raises:
        ValueError: not a safetensors file (too short, a length past the file, bad JSON).
    """
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("too short for a safetensors file")
        (size,) = struct.unpack("<Q", head)
        if size > MAX_HEADER or size > path.stat().st_size - 8:
            raise ValueError("not a safetensors file (header length out of range)")
        data = json.loads(f.read(size).decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a safetensors file (header is not a table)")
    return data


def _strip(key: str) -> str:
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _cross_attention_width(header: Mapping[str, Any]) -> int | None:
    for key, value in header.items():
        if key.endswith("attn2.to_k.weight") and isinstance(value, Mapping):
            shape = value.get("shape")
            if isinstance(shape, list) and len(shape) == 2:
                return int(shape[1])
    return None


def _matches(marker: tuple[str, ...], keys: set[str]) -> bool:
    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    return all(not has(m[1:]) if m.startswith("!") else has(m) for m in marker)


def _from_keys(header: Mapping[str, Any]) -> Detected:
    raw = {k for k in header if k != "__metadata__"}
    keys = raw | {_strip(k) for k in raw}
    for p in FAMILIES.values():
        for marker in p.checkpoint_markers:
            if _matches(marker, keys):
                shown = ", ".join(m for m in marker if not m.startswith("!"))
                return Detected(p.name, f"tensors {shown} ({p.title})")
    width = _cross_attention_width(header)
    for p in FAMILIES.values():
        if width is not None and p.cross_attention_width == width:
            return Detected(p.name, f"cross-attention width {width} ({p.title})")
    return Detected(None, "no tensor names a family's loader reads")


def _from_folder(folder: Path) -> Detected:
    index = folder / "model_index.json"
    try:
        pipeline = str(json.loads(index.read_text(encoding="utf-8")).get("_class_name", ""))
    except (OSError, ValueError, AttributeError):
        return Detected(None, "no readable model_index.json")
    for p in FAMILIES.values():
        if pipeline in p.pipelines:
            return Detected(p.name, f"diffusers {pipeline}")
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
        width = int(unet.get("cross_attention_dim", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        width = 0
    for p in FAMILIES.values():
        if p.cross_attention_width == width and not p.pipelines:
            return Detected(p.name, f"diffusers {pipeline}, cross-attention {width}")
    return Detected(None, f"diffusers {pipeline or 'pipeline'} not known")


def detect_family(path: Path) -> Detected:
    """The family of a base model file or diffusers folder (None where it cannot tell)."""
    if path.is_dir():
        return _from_folder(path)
    if path.suffix.lower() not in (".safetensors", ".sft"):
        return Detected(None, f"{path.suffix or 'this'} files are not read (only safetensors)")
    try:
        header = read_safetensors_header(path)
    except (OSError, ValueError) as exc:
        return Detected(None, f"unreadable: {exc}")
    meta = header.get("__metadata__")
    arch = str(meta.get("modelspec.architecture", "")) if isinstance(meta, Mapping) else ""
    for p in FAMILIES.values():
        if arch and arch.startswith(p.modelspec):
            return Detected(p.name, f"modelspec.architecture {arch}")
    return _from_keys(header)


def check_model_family(family: str, path: str, key: str) -> Problem | None:
    """A problem when the model file at ``path`` is of another family than ``family``."""
    p = Path(path)
    if not p.exists():
        return None
    found = detect_family(p)
    if found.family is None or found.family == family:
        return None
    other = profile(found.family)
    return Problem(
        key,
        f"this file is {other.title} ({found.evidence}), but the job says family "
        f'"{family}" ({profile(family).title}); {profile(family).script} would fail on it',
        f'set model.family = "{found.family}", or give a {profile(family).title} model',
    )
