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
``LoraInfo.inferred``). The lenient converters and the readers of each ``ss_*`` value are in
:mod:`kohya_orchestrator.outputs.lora_metadata`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from ..errors import ConfigError, Problem
from ..models.base import LenientModel
from ..models.clients import CLIENTS, client_line, client_row
from ..models.family import FAMILIES
from .lora_header import HeaderError, TensorInfo, read_header
from .lora_metadata import (
    NO_DIM_ALGOS,
    Bool,
    DatasetDir,
    Float,
    Int,
    Str,
    algo_from_tensors,
    json_value,
    rank_from_tensors,
    read_algo,
    read_batch_size,
    read_dataset_dirs,
    read_network_args,
    read_optimizer,
    read_resolution,
    read_tag_frequency,
    tensor_summary,
    to_float,
    to_int,
    utc_time,
)

__all__ = [
    "DatasetDir",
    "LoraInfo",
    "TagCount",
    "inspect_lora",
    "lora_info_from_metadata",
]


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
    lr_warmup_ratio: float | None = Field(
        default=None,
        description="ss_lr_warmup_steps when it is a ratio of the steps (0.05), not a count.",
    )
    base_model_folder: bool = Field(
        default=False,
        description="The base model was a diffusers folder: sd-scripts recorded no hash "
        "('IsADirectory').",
    )
    thumbnail_bytes: int | None = Field(
        default=None, description="Length of the modelspec.thumbnail data URI, when there is one."
    )
    clients: dict[str, str] = Field(
        default_factory=dict,
        description="How the file loads in ComfyUI, Forge and A1111: full, approximate, wrong, "
        "none or unknown (kohya_orchestrator.models.clients; measured on SD 1.5).",
    )
    clients_line: str | None = Field(
        default=None, description="The same as one sentence, with what to choose instead."
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
    author: Str = Field(default=None, alias="modelspec.author")
    description: Str = Field(default=None, alias="modelspec.description")
    license: Str = Field(default=None, alias="modelspec.license")
    tags: Str = Field(default=None, alias="modelspec.tags")
    trigger_phrase: Str = Field(default=None, alias="modelspec.trigger_phrase")
    date: Str = Field(default=None, alias="modelspec.date")
    architecture: Str = Field(default=None, alias="modelspec.architecture")

    @property
    def has_training_metadata(self) -> bool:
        """True when the file carries sd-scripts' ``ss_*`` keys."""
        return any(k.startswith("ss_") for k in self.metadata)

    @property
    def uses_dim_alpha(self) -> bool:
        """False for algorithms that ignore network_dim/alpha (ia3, full)."""
        return self.algo not in NO_DIM_ALGOS

    @property
    def family(self) -> str | None:
        """The model family it was trained on, from ``ss_base_model_version`` (the prefixes
        each family's script writes: ``sd_v1``, ``sdxl_base_v1-0``, ``flux1``, ``chroma``, ...)."""
        version = self.base_model_version or ""
        for p in FAMILIES.values():
            if version and version.startswith(p.base_model_versions):
                return p.name
        return None

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
    derived.update(tensor_summary(tensors))
    network_args = read_network_args(meta.get("ss_network_args"))
    derived["network_args"] = network_args
    inferred: list[str] = []
    notes: list[str] = []

    algo = read_algo(meta.get("ss_network_module"), network_args)
    if algo is None and tensors:
        algo = algo_from_tensors(derived["tensor_suffixes"])
        if algo is not None:
            inferred.append("algo")
    derived["algo"] = algo
    if to_int(meta.get("ss_network_dim")) is None and tensors:
        rank = rank_from_tensors(tensors)
        if rank is not None:
            derived["ss_network_dim"] = str(rank)
            inferred.append("network_dim")
    if algo in NO_DIM_ALGOS:
        notes.append(f"{algo} ignores network_dim and network_alpha")

    derived["resolution"] = read_resolution(meta)
    warmup = meta.get("ss_lr_warmup_steps")
    if to_int(warmup) is None and to_float(warmup) is not None:
        # sd-scripts takes a float as a ratio of the steps: int(ratio * steps) (train_util.py)
        derived["lr_warmup_ratio"] = to_float(warmup)
    if "IsADirectory" in (meta.get("ss_sd_model_hash"), meta.get("ss_new_sd_model_hash")):
        # train_util.model_hash / calculate_sha256 return this for a diffusers folder
        derived["base_model_folder"] = True
        derived["ss_sd_model_hash"] = derived["ss_new_sd_model_hash"] = None
    thumbnail = meta.get("modelspec.thumbnail")
    derived["thumbnail_bytes"] = len(thumbnail) if thumbnail else None
    # LyCORIS reads a flag as "anything but 'false'"; wd_on_output defaults to true
    # (ly:lycoris/kohya.py, lycoris/utils str_bool)
    dora = network_args.get("dora_wd")
    on_output = network_args.get("wd_on_output")
    row = client_row(
        algo,
        dora_wd=dora is not None and dora.lower() != "false",
        wd_on_output=on_output is None or on_output.lower() != "false",
    )
    derived["clients"] = dict(zip(CLIENTS, row.support, strict=True))
    version = meta.get("ss_base_model_version") or ""
    family = next(
        (
            p.name
            for p in FAMILIES.values()
            if version and version.startswith(p.base_model_versions)
        ),
        None,
    )
    derived["clients_line"] = client_line(row, family)
    name, args = read_optimizer(meta.get("ss_optimizer"))
    derived["optimizer_name"], derived["optimizer_args"] = name, args
    datasets = json_value(meta.get("ss_datasets"))
    derived["dataset_dirs"] = read_dataset_dirs(meta, datasets)
    derived["tag_frequency"] = read_tag_frequency(meta.get("ss_tag_frequency"), datasets)
    derived["batch_size"] = read_batch_size(meta, datasets)
    started = to_float(meta.get("ss_training_started_at"))
    finished = to_float(meta.get("ss_training_finished_at"))
    derived["training_started_at"] = utc_time(started)
    derived["training_finished_at"] = utc_time(finished)
    if started is not None and finished is not None and finished >= started:
        derived["training_time_s"] = finished - started
    if not any(k.startswith("ss_") for k in meta):
        notes.append("no ss_* training metadata in this file (--no_metadata or another trainer)")
    derived["inferred"] = inferred
    derived["notes"] = notes
    return LoraInfo.model_validate({**meta, **derived})
