"""What a trained LoRA file says about itself: ``inspect_lora(path) -> LoraInfo``.

Only the safetensors header is read (8 bytes of length, then the JSON header with the
``__metadata__`` table and each tensor's dtype, shape and offsets, by
:func:`kohya_orchestrator.outputs.lora_header.read_header`); the tensor data is never touched,
so a multi-GB file takes milliseconds. No torch.

sd-scripts stores its training settings as ``ss_*`` metadata strings (``str(v)``, so ``None`` is
``"None"`` and JSON blobs are strings; ``train_network.py:1003-1229``, see section 6.2 of the
sd-scripts reference). :class:`LoraInfo` is a lenient view over them: a missing or unreadable value
becomes ``None``, never an error. Files without ``ss_*`` keys (``--no_metadata``, other trainers)
still give the algorithm and rank, inferred from the tensor names and shapes (listed in
``LoraInfo.inferred``).
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field

from ..errors import ConfigError, Problem
from ..models.base import LenientModel
from .lora_header import HeaderError, TensorInfo, read_header

__all__ = [
    "DatasetDir",
    "LoraInfo",
    "TagCount",
    "inspect_lora",
    "lora_info_from_metadata",
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
_NO_DIM_ALGOS = frozenset({"ia3", "full"})


# --------------------------------------------------------------------------- lenient converters
def _none(v: Any) -> Any:
    return None if v is None or (isinstance(v, str) and v.strip() in _NONE_STRINGS) else v


def _to_str(v: Any) -> str | None:
    v = _none(v)
    return None if v is None else str(v)


def _to_int(v: Any) -> int | None:
    v = _none(v)
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) and f == int(f) else None


def _to_float(v: Any) -> float | None:
    v = _none(v)
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _to_bool(v: Any) -> bool | None:
    v = _none(v)
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    return None


def _json(v: Any) -> Any:
    v = _none(v)
    if not isinstance(v, str):
        return v
    try:
        return json.loads(v)
    except ValueError:
        return None


Str = Annotated[str | None, BeforeValidator(_to_str)]
Int = Annotated[int | None, BeforeValidator(_to_int)]
Float = Annotated[float | None, BeforeValidator(_to_float)]
Bool = Annotated[bool | None, BeforeValidator(_to_bool)]


class DatasetDir(LenientModel):
    """One image folder of the training data, as the metadata records it."""

    name: str = Field(description="Folder name (sd-scripts stores the basename only).")
    repeats: int | None = Field(default=None, description="num_repeats of the folder.")
    images: int | None = Field(default=None, description="Images found in it.")
    is_reg: bool = Field(default=False, description="A regularisation folder.")
    class_tokens: str | None = Field(default=None, description="DreamBooth class tokens.")


class TagCount(LenientModel):
    """How often one caption tag occurred, over all folders."""

    tag: str
    count: int


class LoraInfo(LenientModel):
    """A LoRA/LyCORIS file: its tensors, and the training settings sd-scripts stored in it.

    Fields with an ``ss_*`` alias are read from that metadata key (strings converted, ``"None"``
    and bad values become None). The others are derived from several keys or from the header.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # ---- the file and its tensors (from the header)
    path: Path | None = Field(default=None, description="The file.")
    file_size_bytes: int | None = Field(default=None, description="Size of the file.")
    header_bytes: int | None = Field(default=None, description="Size of the JSON header.")
    tensor_count: int = Field(default=0, description="Number of tensors.")
    tensor_bytes: int | None = Field(default=None, description="Bytes of tensor data.")
    dtypes: dict[str, int] = Field(default_factory=dict, description="Tensors per dtype.")
    modules: dict[str, int] = Field(
        default_factory=dict,
        description="Adapted modules per part: text_encoder, text_encoder_2, unet, other.",
    )
    tensor_suffixes: list[str] = Field(
        default_factory=list, description="Distinct tensor-name endings (lora_down.weight, …)."
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="The raw __metadata__ table."
    )
    # ---- derived
    algo: str | None = Field(
        default=None,
        description="lora, locon, loha, lokr, ia3, dylora, oft, full, … (network_args or tensors).",
    )
    network_args: dict[str, str | None] = Field(
        default_factory=dict, description="ss_network_args as a dict."
    )
    resolution: tuple[int, int] | None = Field(
        default=None, description="Training resolution (width, height)."
    )
    optimizer_name: str | None = Field(default=None, description="Short optimizer class name.")
    optimizer_args: dict[str, str] = Field(
        default_factory=dict, description="Arguments shown in ss_optimizer."
    )
    dataset_dirs: list[DatasetDir] = Field(default_factory=list, description="Image folders.")
    tag_frequency: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="ss_tag_frequency: folder -> tag -> count."
    )
    batch_size: int | None = Field(default=None, description="Batch size per device.")
    training_started_at: datetime | None = Field(default=None, description="UTC start time.")
    training_finished_at: datetime | None = Field(
        default=None, description="UTC time of this save."
    )
    training_time_s: float | None = Field(
        default=None, description="Seconds from the start of training to this save."
    )
    inferred: list[str] = Field(
        default_factory=list,
        description="Fields guessed from tensor names/shapes because the metadata lacks them.",
    )
    notes: list[str] = Field(default_factory=list, description="Things worth knowing.")
    # ---- ss_* keys read as they are
    network_module: Str = Field(default=None, alias="ss_network_module")
    network_dim: Int = Field(default=None, alias="ss_network_dim")
    network_alpha: Float = Field(default=None, alias="ss_network_alpha")
    network_dropout: Float = Field(default=None, alias="ss_network_dropout")
    base_model_name: Str = Field(default=None, alias="ss_sd_model_name")
    base_model_hash: Str = Field(default=None, alias="ss_sd_model_hash")
    base_model_sha256: Str = Field(default=None, alias="ss_new_sd_model_hash")
    base_model_version: Str = Field(default=None, alias="ss_base_model_version")
    vae_name: Str = Field(default=None, alias="ss_vae_name")
    v2: Bool = Field(default=None, alias="ss_v2")
    clip_skip: Int = Field(default=None, alias="ss_clip_skip")
    epoch: Int = Field(default=None, alias="ss_epoch")
    num_epochs: Int = Field(default=None, alias="ss_num_epochs")
    steps: Int = Field(default=None, alias="ss_steps")
    max_train_steps: Int = Field(default=None, alias="ss_max_train_steps")
    num_train_images: Int = Field(default=None, alias="ss_num_train_images")
    num_reg_images: Int = Field(default=None, alias="ss_num_reg_images")
    num_batches_per_epoch: Int = Field(default=None, alias="ss_num_batches_per_epoch")
    gradient_accumulation_steps: Int = Field(default=None, alias="ss_gradient_accumulation_steps")
    optimizer: Str = Field(default=None, alias="ss_optimizer")
    learning_rate: Float = Field(default=None, alias="ss_learning_rate")
    unet_lr: Float = Field(default=None, alias="ss_unet_lr")
    text_encoder_lr: Float = Field(default=None, alias="ss_text_encoder_lr")
    lr_scheduler: Str = Field(default=None, alias="ss_lr_scheduler")
    lr_warmup_steps: Int = Field(default=None, alias="ss_lr_warmup_steps")
    mixed_precision: Str = Field(default=None, alias="ss_mixed_precision")
    seed: Int = Field(default=None, alias="ss_seed")
    noise_offset: Float = Field(default=None, alias="ss_noise_offset")
    min_snr_gamma: Float = Field(default=None, alias="ss_min_snr_gamma")
    output_name: Str = Field(default=None, alias="ss_output_name")
    training_comment: Str = Field(default=None, alias="ss_training_comment")
    session_id: Str = Field(default=None, alias="ss_session_id")
    sd_scripts_commit: Str = Field(default=None, alias="ss_sd_scripts_commit_hash")
    model_hash: Str = Field(default=None, alias="sshs_model_hash")
    title: Str = Field(default=None, alias="modelspec.title")
    architecture: Str = Field(default=None, alias="modelspec.architecture")

    @property
    def has_training_metadata(self) -> bool:
        """True when the file carries sd-scripts' ``ss_*`` keys."""
        return any(k.startswith("ss_") for k in self.metadata)

    @property
    def uses_dim_alpha(self) -> bool:
        """False for algorithms that ignore network_dim/alpha (ia3, full)."""
        return self.algo not in _NO_DIM_ALGOS

    @property
    def total_images(self) -> int | None:
        """Training images times repeats (``ss_num_train_images``)."""
        return self.num_train_images

    def top_tags(self, n: int = 10) -> list[TagCount]:
        """The ``n`` most frequent caption tags over all folders (ties: alphabetical).

        Args:
            n: How many to return.

        Returns:
            Tags with their counts, most frequent first.
        """
        total: Counter[str] = Counter()
        for tags in self.tag_frequency.values():
            total.update(tags)
        ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))
        return [TagCount(tag=t, count=c) for t, c in ranked[:n]]


# --------------------------------------------------------------------------- the file
def inspect_lora(path: Path | str) -> LoraInfo:
    """Read a LoRA file's header and metadata (never its tensor data).

    Args:
        path: A ``.safetensors`` file (LoRA, LoCon, LoHa, LoKr, IA3, …).

    Returns:
        The file's :class:`LoraInfo`.

    Raises:
        ConfigError: the file is missing or not a safetensors file.
    """
    p = Path(path)
    try:
        header = read_header(p)
    except HeaderError as exc:
        raise ConfigError(
            [
                Problem(
                    str(p),
                    f"not a readable safetensors file: {str(exc).removeprefix(f'{p.name}: ')}",
                    "pass a .safetensors file written by sd-scripts or LyCORIS",
                )
            ],
            source=str(p),
        ) from None
    return lora_info_from_metadata(
        header.metadata,
        tensors=header.tensors,
        path=p,
        file_size_bytes=header.file_size,
        header_bytes=header.header_size,
    )


def lora_info_from_metadata(
    metadata: Mapping[str, str],
    *,
    tensors: Mapping[str, TensorInfo] | None = None,
    path: Path | None = None,
    file_size_bytes: int | None = None,
    header_bytes: int | None = None,
) -> LoraInfo:
    """Build a :class:`LoraInfo` from a metadata table (and, when known, the tensor table).

    Args:
        metadata: The ``__metadata__`` strings (``ss_*``, ``modelspec.*``, ``sshs_*``).
        tensors: The header's tensor table (``lora_header.read_header(path).tensors``).
        path: The file, for display.
        file_size_bytes: The file's size.
        header_bytes: The header's size.

    Returns:
        The lenient view; never raises for odd values.
    """
    meta = {str(k): str(v) for k, v in metadata.items()}
    tensors = tensors or {}
    derived: dict[str, Any] = {
        "path": path,
        "file_size_bytes": file_size_bytes,
        "header_bytes": header_bytes,
        "metadata": meta,
    }
    derived.update(_tensor_summary(tensors))
    network_args = _network_args(meta.get("ss_network_args"))
    derived["network_args"] = network_args
    inferred: list[str] = []
    notes: list[str] = []

    algo = _algo(meta.get("ss_network_module"), network_args)
    if algo is None and tensors:
        algo = _algo_from_tensors(derived["tensor_suffixes"])
        if algo is not None:
            inferred.append("algo")
    derived["algo"] = algo
    if _to_int(meta.get("ss_network_dim")) is None and tensors:
        rank = _rank_from_tensors(tensors)
        if rank is not None:
            derived["ss_network_dim"] = str(rank)
            inferred.append("network_dim")
    if algo in _NO_DIM_ALGOS:
        notes.append(f"{algo} ignores network_dim and network_alpha")

    derived["resolution"] = _resolution(meta)
    name, args = _optimizer(meta.get("ss_optimizer"))
    derived["optimizer_name"], derived["optimizer_args"] = name, args
    datasets = _json(meta.get("ss_datasets"))
    derived["dataset_dirs"] = _dataset_dirs(meta, datasets)
    derived["tag_frequency"] = _tag_frequency(meta.get("ss_tag_frequency"), datasets)
    derived["batch_size"] = _batch_size(meta, datasets)
    started = _to_float(meta.get("ss_training_started_at"))
    finished = _to_float(meta.get("ss_training_finished_at"))
    derived["training_started_at"] = _utc(started)
    derived["training_finished_at"] = _utc(finished)
    if started is not None and finished is not None and finished >= started:
        derived["training_time_s"] = finished - started
    if not any(k.startswith("ss_") for k in meta):
        notes.append("no ss_* training metadata in this file (--no_metadata or another trainer)")
    derived["inferred"] = inferred
    derived["notes"] = notes
    return LoraInfo.model_validate({**meta, **derived})


# --------------------------------------------------------------------------- helpers
def _tensor_summary(tensors: Mapping[str, TensorInfo]) -> dict[str, Any]:
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
    # sd-scripts prefixes: lora_te_ (SD1/2), lora_te1_/lora_te2_ (SDXL), lora_unet_; LyCORIS and
    # OFT use the same with their own first word (oft_unet_).
    body = module.split("_", 1)[1] if "_" in module else module
    if body.startswith(("te1_", "te_")):
        return "text_encoder"
    if body.startswith("te2_"):
        return "text_encoder_2"
    if body.startswith("unet_"):
        return "unet"
    return "other"


def _network_args(raw: str | None) -> dict[str, str | None]:
    data = _json(raw)
    if not isinstance(data, dict):
        return {}
    return {str(k): None if v is None else str(v) for k, v in data.items()}


def _algo(module: str | None, args: Mapping[str, str | None]) -> str | None:
    module = _to_str(module)
    if module is None:
        return None
    if module == "lycoris.kohya":
        # LyCORIS's "lora" is its LoCon module (ly:lycoris/wrapper.py); we call it locon as the
        # job model does.
        algo = (args.get("algo") or "lora").lower()
        return "locon" if algo == "lora" else algo
    if module in ("networks.lora", "networks.lora_sd3", "networks.lora_flux"):
        return "lora"
    if module.startswith("networks.dylora"):
        return "dylora"
    if module.startswith("networks.oft"):
        return "oft"
    return module.rsplit(".", 1)[-1]


def _algo_from_tensors(suffixes: list[str]) -> str | None:
    present = set(suffixes)
    for suffix, algo in _SUFFIX_ALGOS:
        if suffix in present:
            return algo
    return None


def _rank_from_tensors(tensors: Mapping[str, TensorInfo]) -> int | None:
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


def _resolution(meta: Mapping[str, str]) -> tuple[int, int] | None:
    # ss_datasets holds the dataset config's resolution; ss_resolution the legacy --resolution;
    # modelspec.resolution falls back to 512 when --resolution is not given (train_util.py:3495).
    datasets = _json(meta.get("ss_datasets"))
    if isinstance(datasets, list) and datasets and isinstance(datasets[0], dict):
        res = datasets[0].get("resolution")
        if isinstance(res, list) and len(res) == 2:
            w, h = _to_int(res[0]), _to_int(res[1])
            if w and h:
                return w, h
    legacy = _to_str(meta.get("ss_resolution"))
    if legacy:
        try:
            value = ast.literal_eval(legacy)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, tuple) and len(value) == 2:
            w, h = _to_int(value[0]), _to_int(value[1])
            if w and h:
                return w, h
        if isinstance(value, int):
            return value, value
    spec = _to_str(meta.get("modelspec.resolution"))
    if spec:
        m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", spec)
        if m:
            return int(m[1]), int(m[2])
    return None


def _optimizer(raw: str | None) -> tuple[str | None, dict[str, str]]:
    # "prodigyopt.prodigy.Prodigy(decouple=True,weight_decay=0.01)" or "torch.optim.adamw.AdamW"
    text = _to_str(raw)
    if text is None:
        return None, {}
    cls, _, rest = text.partition("(")
    args: dict[str, str] = {}
    if rest:
        for item in rest.rstrip(")").split(","):
            key, sep, value = item.partition("=")
            if sep and key.strip():
                args[key.strip()] = value.strip()
    return cls.strip().rsplit(".", 1)[-1] or None, args


def _dataset_dirs(meta: Mapping[str, str], datasets: Any) -> list[DatasetDir]:
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
                        repeats=_to_int(sub.get("num_repeats")),
                        images=_to_int(sub.get("img_count")),
                        is_reg=bool(sub.get("is_reg")),
                        class_tokens=_to_str(sub.get("class_tokens")),
                    )
                )
        if out:
            return out
    for key, is_reg in (("ss_dataset_dirs", False), ("ss_reg_dataset_dirs", True)):
        dirs = _json(meta.get(key))
        if not isinstance(dirs, dict):
            continue
        for name, info in dirs.items():
            info = info if isinstance(info, dict) else {}
            out.append(
                DatasetDir(
                    name=str(name),
                    repeats=_to_int(info.get("n_repeats")),
                    images=_to_int(info.get("img_count")),
                    is_reg=is_reg,
                )
            )
    return out


def _tag_frequency(raw: str | None, datasets: Any) -> dict[str, dict[str, int]]:
    data = _json(raw)
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
                str(t): c for t, c in ((t, _to_int(c)) for t, c in tags.items()) if c is not None
            }
    return out


def _batch_size(meta: Mapping[str, str], datasets: Any) -> int | None:
    if isinstance(datasets, list) and datasets and isinstance(datasets[0], dict):
        value = _to_int(datasets[0].get("batch_size_per_device"))
        if value is not None:
            return value
    return _to_int(meta.get("ss_batch_size_per_device"))


def _utc(stamp: float | None) -> datetime | None:
    if stamp is None:
        return None
    try:
        return datetime.fromtimestamp(stamp, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
