"""Reading the ``ss_*`` metadata strings sd-scripts stores in a LoRA file, leniently.

sd-scripts writes every training setting as a string (``str(v)``: ``None`` is ``"None"``, JSON
blobs are strings; ``train_network.py:1003-1229``). The converters here turn a missing or
unreadable value into ``None``, never an error; the readers pull the algorithm, rank, resolution,
optimizer, image folders and tag counts out of those strings (and out of the tensor table when
the strings are missing). :mod:`.lora` builds :class:`~.lora.LoraInfo` from them.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from ..models.base import LenientModel
from ..models.family import FAMILIES
from .lora_header import TensorInfo

__all__ = [
    "NO_DIM_ALGOS",
    "Bool",
    "DatasetDir",
    "Float",
    "Int",
    "Str",
    "algo_from_tensors",
    "json_value",
    "rank_from_tensors",
    "read_algo",
    "read_batch_size",
    "read_dataset_dirs",
    "read_network_args",
    "read_optimizer",
    "read_resolution",
    "read_tag_frequency",
    "tensor_summary",
    "to_float",
    "to_int",
    "to_str",
    "utc_time",
]

_NONE_STRINGS = frozenset({"", "None", "null", "none"})
# Tensor-name suffixes that identify an algorithm (LyCORIS module state-dict names).
_SUFFIX_ALGOS: tuple[tuple[str, str], ...] = (
    ("lora_down.weight", "lora"),
    ("hada_w1_a", "loha"),
    ("lokr_w1", "lokr"),
    ("lokr_w1_a", "lokr"),
    ("on_input", "ia3"),
    ("oft_blocks", "diag-oft"),
    ("oft_diag", "diag-oft"),
    ("a1.weight", "glora"),
    ("diff", "full"),
)
# Algorithms that ignore network_dim/network_alpha (sd-scripts reference 3.5).
NO_DIM_ALGOS = frozenset({"ia3", "full"})


# --------------------------------------------------------------------------- lenient converters
def none_if_blank(v: Any) -> Any:
    """None for None and the strings sd-scripts writes for "no value" ("", "None", "null")."""
    return None if v is None or (isinstance(v, str) and v.strip() in _NONE_STRINGS) else v


def to_str(v: Any) -> str | None:
    """The value as a string, or None."""
    v = none_if_blank(v)
    return None if v is None else str(v)


def to_int(v: Any) -> int | None:
    """The value as an integer (``"4"``, ``"4.0"``, ``4``), or None."""
    v = none_if_blank(v)
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) and f == int(f) else None


def to_float(v: Any) -> float | None:
    """The value as a finite float, or None."""
    v = none_if_blank(v)
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def to_bool(v: Any) -> bool | None:
    """``True``/``False`` (or their strings), or None."""
    v = none_if_blank(v)
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    return None


def json_value(v: Any) -> Any:
    """A JSON string parsed (other values as they are), or None when it does not parse."""
    v = none_if_blank(v)
    if not isinstance(v, str):
        return v
    try:
        return json.loads(v)
    except ValueError:
        return None


Str = Annotated[str | None, BeforeValidator(to_str)]
Int = Annotated[int | None, BeforeValidator(to_int)]
Float = Annotated[float | None, BeforeValidator(to_float)]
Bool = Annotated[bool | None, BeforeValidator(to_bool)]


class DatasetDir(LenientModel):
    """One image folder of the training data, as the metadata records it."""

    name: str = Field(description="Folder name (sd-scripts stores the basename only).")
    repeats: int | None = Field(default=None, description="num_repeats of the folder.")
    images: int | None = Field(default=None, description="Images found in it.")
    is_reg: bool = Field(default=False, description="A regularisation folder.")
    class_tokens: str | None = Field(default=None, description="DreamBooth class tokens.")


# --------------------------------------------------------------------------- helpers
def tensor_summary(tensors: Mapping[str, TensorInfo]) -> dict[str, Any]:
    """Counts, bytes, dtypes, model parts and name suffixes of the header's tensor table."""
    dtypes: Counter[str] = Counter()
    suffixes: set[str] = set()
    modules: set[str] = set()
    total = 0
    for name, spec in tensors.items():
        dtypes[spec.dtype] += 1
        total += spec.data_offsets[1] - spec.data_offsets[0]
        module, _, suffix = name.partition(".")
        suffixes.add(suffix or name)
        modules.add(module)
    parts = Counter(_part(m) for m in modules)
    return {
        "tensor_count": len(tensors),
        "tensor_bytes": total if tensors else None,
        "dtypes": dict(sorted(dtypes.items())),
        "modules": dict(sorted(parts.items())),
        "tensor_suffixes": sorted(suffixes),
    }


def _part(module: str) -> str:
    # sd-scripts prefixes: lora_te_ (SD1/2), lora_te1_/lora_te2_ (SDXL; FLUX.1 CLIP-L), lora_te3_
    # (T5-XXL of FLUX.1/SD3), lora_unet_ (the U-Net or DiT); LyCORIS and OFT use the same with
    # their own first word (oft_unet_).
    body = module.split("_", 1)[1] if "_" in module else module
    if body.startswith(("te1_", "te_")):
        return "text_encoder"
    if body.startswith("te2_"):
        return "text_encoder_2"
    if body.startswith("te3_"):
        return "text_encoder_3"
    if body.startswith("unet_"):
        return "unet"
    return "other"


def read_network_args(raw: str | None) -> dict[str, str | None]:
    """``ss_network_args`` (JSON) as ``{name: value}`` strings."""
    data = json_value(raw)
    if not isinstance(data, dict):
        return {}
    return {str(k): None if v is None else str(v) for k, v in data.items()}


def read_algo(module: str | None, args: Mapping[str, str | None]) -> str | None:
    """The network algorithm from ``ss_network_module`` and its ``algo`` argument."""
    module = to_str(module)
    if module is None:
        return None
    if module == "lycoris.kohya":
        # LyCORIS's "lora" is its LoCon module (ly:lycoris/wrapper.py); we call it locon as the
        # job model does.
        algo = (args.get("algo") or "lora").lower()
        return "locon" if algo == "lora" else algo
    if module in {p.lora_module for p in FAMILIES.values()}:  # each family's own LoRA module
        return "lora"
    if module.startswith("networks.dylora"):
        return "dylora"
    if module.startswith("networks.oft"):
        return "oft"
    return module.rsplit(".", 1)[-1]


def algo_from_tensors(suffixes: list[str]) -> str | None:
    """The algorithm its tensor names give away, or None."""
    present = set(suffixes)
    for suffix, algo in _SUFFIX_ALGOS:
        if suffix in present:
            return algo
    return None


def rank_from_tensors(tensors: Mapping[str, TensorInfo]) -> int | None:
    """The most common rank of the down/w1 matrices, or None."""
    ranks: Counter[int] = Counter()
    for name, spec in tensors.items():
        shape = spec.shape
        if len(shape) < 2:
            continue
        if name.endswith(".lora_down.weight"):
            ranks[int(shape[0])] += 1
        elif name.endswith((".hada_w1_a", ".lokr_w2_a", ".lokr_w1_a")):
            ranks[int(shape[1])] += 1
    return ranks.most_common(1)[0][0] if ranks else None


def read_resolution(meta: Mapping[str, str]) -> tuple[int, int] | None:
    """Training ``(width, height)`` from ``ss_datasets``, ``ss_resolution`` or modelspec."""
    # ss_datasets holds the dataset config's resolution; ss_resolution the legacy --resolution;
    # modelspec.resolution falls back to 512 when --resolution is not given (train_util.py:3495).
    datasets = json_value(meta.get("ss_datasets"))
    if isinstance(datasets, list) and datasets and isinstance(datasets[0], dict):
        res = datasets[0].get("resolution")
        if isinstance(res, list) and len(res) == 2:
            w, h = to_int(res[0]), to_int(res[1])
            if w and h:
                return w, h
    legacy = to_str(meta.get("ss_resolution"))
    if legacy:
        try:
            value = ast.literal_eval(legacy)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, tuple) and len(value) == 2:
            w, h = to_int(value[0]), to_int(value[1])
            if w and h:
                return w, h
        if isinstance(value, int):
            return value, value
    spec = to_str(meta.get("modelspec.resolution"))
    if spec:
        m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", spec)
        if m:
            return int(m[1]), int(m[2])
    return None


def read_optimizer(raw: str | None) -> tuple[str | None, dict[str, str]]:
    """The optimizer class name and its arguments from ``ss_optimizer``."""
    # "prodigyopt.prodigy.Prodigy(decouple=True,weight_decay=0.01)" or "torch.optim.adamw.AdamW"
    text = to_str(raw)
    if text is None:
        return None, {}
    # sd-scripts joins "k=v" with "," and writes each value with str() (train_util.py
    # get_optimizer), so a value may hold commas itself: betas=(0.9, 0.99).
    cls, _, rest = text.partition("(")
    args: dict[str, str] = {}
    if rest:
        body = rest[:-1] if rest.endswith(")") else rest
        for item in _split_top_level(body):
            key, sep, value = item.partition("=")
            if sep and key.strip():
                args[key.strip()] = value.strip()
    return cls.strip().rsplit(".", 1)[-1] or None, args


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside brackets and quotes."""
    items: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def read_dataset_dirs(meta: Mapping[str, str], datasets: Any) -> list[DatasetDir]:
    """The image folders from ``ss_datasets`` (dataset configs), else ``ss_*dataset_dirs``."""
    out: list[DatasetDir] = []
    if isinstance(datasets, list):
        for ds in datasets:
            for sub in ds.get("subsets", []) if isinstance(ds, dict) else []:
                if not isinstance(sub, dict):
                    continue
                name = sub.get("image_dir") or sub.get("metadata_file")
                if not name:
                    continue
                out.append(
                    DatasetDir(
                        name=str(name),
                        repeats=to_int(sub.get("num_repeats")),
                        images=to_int(sub.get("img_count")),
                        is_reg=bool(sub.get("is_reg")),
                        class_tokens=to_str(sub.get("class_tokens")),
                    )
                )
        if out:
            return out
    for key, is_reg in (("ss_dataset_dirs", False), ("ss_reg_dataset_dirs", True)):
        dirs = json_value(meta.get(key))
        if not isinstance(dirs, dict):
            continue
        for name, info in dirs.items():
            info = info if isinstance(info, dict) else {}
            out.append(
                DatasetDir(
                    name=str(name),
                    repeats=to_int(info.get("n_repeats")),
                    images=to_int(info.get("img_count")),
                    is_reg=is_reg,
                )
            )
    return out


def read_tag_frequency(raw: str | None, datasets: Any) -> dict[str, dict[str, int]]:
    """``ss_tag_frequency`` (else each dataset's): folder -> tag -> count."""
    data = json_value(raw)
    if not isinstance(data, dict) and isinstance(datasets, list):
        data = {}
        for ds in datasets:
            if isinstance(ds, dict) and isinstance(ds.get("tag_frequency"), dict):
                data.update(ds["tag_frequency"])
    if not isinstance(data, dict):
        return {}
    out: dict[str, dict[str, int]] = {}
    for folder, tags in data.items():
        if isinstance(tags, dict):
            out[str(folder)] = {
                str(t): c for t, c in ((t, to_int(c)) for t, c in tags.items()) if c is not None
            }
    return out


def read_batch_size(meta: Mapping[str, str], datasets: Any) -> int | None:
    """The batch size per device."""
    if isinstance(datasets, list) and datasets and isinstance(datasets[0], dict):
        value = to_int(datasets[0].get("batch_size_per_device"))
        if value is not None:
            return value
    return to_int(meta.get("ss_batch_size_per_device"))


def utc_time(stamp: float | None) -> datetime | None:
    """A POSIX timestamp as an aware UTC datetime, or None."""
    if stamp is None:
        return None
    try:
        return datetime.fromtimestamp(stamp, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
