"""Render a TrainingJob into the files sd-scripts reads. Pure: same job, same bytes.

- ``render_training_toml``: the ``--config_file`` TOML. Sectioned (sd-scripts lifts every section's
  keys to the top level, train_util.py:4748-4758), sd-scripts' own key names, native types as it
  needs them. Store-true flags are left out to keep them off.
- ``render_dataset_toml``: the ``--dataset_config`` TOML, checked by sd-scripts' voluptuous schema
  (library/config_util.py): ``resolution`` is an int or ``[w, h]`` here, never a string.
- ``render_sample_prompts``: the ``--sample_prompts`` text file, one prompt per line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from .._version import __version__
from ..models import (
    BoftNetwork,
    DatasetBlock,
    DatasetConfig,
    DiagOftNetwork,
    DreamBoothSubset,
    DyLoraNetwork,
    FineTuningSubset,
    LoHaNetwork,
    LoKrNetwork,
    LoraNetwork,
    TrainingJob,
)
from ..models.dataset import BucketOptions, CaptionOptions
from ..models.network import (
    _Factorised,
    _LycorisCommon,
    native_module,
    shipped_preset_filename,
    shipped_preset_name,
)
from ..models.optimizer import ArgValue
from ._writer import dumps

__all__ = [
    "LYCORIS_MODULE",
    "RenderPaths",
    "RenderedFiles",
    "network_args",
    "optimizer_args",
    "render_dataset_toml",
    "render_job",
    "render_sample_prompts",
    "render_training_toml",
    "training_config_dict",
]

LYCORIS_MODULE = "lycoris.kohya"
LORA_MODULE = "networks.lora"


@dataclass(frozen=True)
class RenderPaths:
    """Where the rendered files will live; the training config refers to the others by path."""

    dataset_config: str
    sample_prompts: str | None = None
    lycoris_preset: str | None = None
    """Where the caller put the copy of a preset file kohya_orchestrator ships
    (``preset = "kohya_orchestrator:<name>"``). None: ``lycoris-<name>.toml`` beside the dataset
    config, which is where render/files.py and run.py put it."""


@dataclass(frozen=True)
class RenderedFiles:
    """The text of every file sd-scripts will read."""

    config_toml: str
    dataset_toml: str
    sample_prompts: str | None


def _header(job: TrainingJob, what: str) -> list[str]:
    lines = [f"{what}, written by kohya_orchestrator {__version__}."]
    if job.preset:
        lines.append(f"Preset: {job.preset}.")
    lines.append("Edit the job file and render again rather than editing this file.")
    return lines


# ----------------------------------------------------------------------------- value formatting
def _literal(value: ArgValue | tuple[float, ...]) -> str:
    """A Python literal, as sd-scripts' ast.literal_eval reads optimizer/scheduler args."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, tuple):
        return ",".join(_literal(v) for v in value)
    if isinstance(value, list):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    return repr(value)


def _arg_text(value: Any) -> str:
    """A network_args value: sd-scripts hands it to the module as a string."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list | tuple):
        return ",".join(_arg_text(v) for v in value)
    return str(value)


def _compact(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Drop None and False: sd-scripts' flags are store_true, so leaving them out keeps them off."""
    return {k: v for k, v in pairs if v is not None and v is not False}


# ----------------------------------------------------------------------------- network
def _preset_arg(preset: str | None, paths: RenderPaths | None) -> str | None:
    """The ``preset=`` value: a shipped preset becomes the path of its copy (LyCORIS reads files)."""
    if shipped_preset_name(preset) is None or preset is None:
        return preset
    if paths is not None and paths.lycoris_preset is not None:
        return paths.lycoris_preset
    filename = shipped_preset_filename(preset)
    if paths is None:
        return filename
    return str(PurePath(paths.dataset_config).parent / filename)


def network_args(job: TrainingJob, paths: RenderPaths | None = None) -> list[str]:
    """The ``network_args`` strings for the job's network, in a fixed order.

    ``paths`` places the copy of a preset file kohya_orchestrator ships; without it such a preset
    is written as its bare file name.
    """
    n = job.network
    pairs: list[tuple[str, Any]] = []
    if isinstance(n, LoraNetwork):
        # networks.lora reads these (sd:networks/lora.py create_network); dropout is --network_dropout.
        pairs += [
            ("conv_dim", n.conv_dim),
            ("conv_alpha", n.conv_alpha),
            ("rank_dropout", n.rank_dropout),
            ("module_dropout", n.module_dropout),
            ("block_dims", n.block_dims),
            ("block_alphas", n.block_alphas),
            ("conv_block_dims", n.conv_block_dims),
            ("conv_block_alphas", n.conv_block_alphas),
            ("down_lr_weight", n.down_lr_weight),
            ("mid_lr_weight", n.mid_lr_weight),
            ("up_lr_weight", n.up_lr_weight),
            ("block_lr_zero_threshold", n.block_lr_zero_threshold),
            # the DiT families' LoRA modules (networks/lora_flux.py, lora_sd3.py, ...)
            ("train_blocks", n.train_blocks),
            ("split_qkv", n.split_qkv),
            ("train_t5xxl", n.train_t5xxl),
            ("train_llm_adapter", n.train_llm_adapter),
        ]
    elif native_module(n) is not None:
        # sd-scripts' own networks.loha / networks.lokr: its create_network reads these; its
        # booleans are `str(v).lower() == "true"`.
        assert isinstance(n, LoHaNetwork | LoKrNetwork)
        pairs += [
            ("conv_dim", n.conv_dim),
            ("conv_alpha", n.conv_alpha),
            ("use_tucker", n.use_tucker),
            ("rank_dropout", n.rank_dropout),
            ("module_dropout", n.module_dropout),
        ]
        if isinstance(n, LoKrNetwork):
            pairs += [("factor", n.factor)]
    else:
        # LyCORIS (ly:lycoris/kohya.py). Its booleans are str_bool ("anything but 'false' is
        # true") and decompose_both is tested raw, so a flag is written only when it is on.
        assert isinstance(n, _LycorisCommon)
        pairs += [("algo", n.algo), ("preset", _preset_arg(n.preset, paths))]
        if isinstance(n, _Factorised | DyLoraNetwork):
            pairs += [("conv_dim", n.conv_dim), ("conv_alpha", n.conv_alpha)]
        pairs += [("rank_dropout", n.rank_dropout), ("module_dropout", n.module_dropout)]
        if isinstance(n, _Factorised):
            pairs += [
                ("use_tucker", n.use_tucker),
                ("use_scalar", n.use_scalar),
                ("dora_wd", n.dora_wd),
                # LyCORIS defaults wd_on_output to True (ly:lycoris/kohya.py); write it both ways
                # with dora_wd so the file's layout never depends on the LyCORIS version.
                ("wd_on_output", ("True" if n.wd_on_output else "False") if n.dora_wd else None),
                ("rs_lora", n.rs_lora),
                ("bypass_mode", n.bypass_mode),
            ]
        if isinstance(n, LoKrNetwork):
            pairs += [
                ("factor", n.factor),
                ("decompose_both", n.decompose_both),
                ("full_matrix", n.full_matrix),
                ("unbalanced_factorization", n.unbalanced_factorization),
            ]
        if isinstance(n, DyLoraNetwork):
            pairs += [("block_size", n.block_size)]
        if isinstance(n, DiagOftNetwork | BoftNetwork):
            pairs += [("constraint", n.constraint), ("rescaled", n.rescaled)]
        pairs += [("train_norm", n.train_norm)]
    pairs += [
        ("loraplus_lr_ratio", n.loraplus_lr_ratio),
        ("loraplus_unet_lr_ratio", n.loraplus_unet_lr_ratio),
        ("loraplus_text_encoder_lr_ratio", n.loraplus_text_encoder_lr_ratio),
    ]
    return [f"{k}={_arg_text(v)}" for k, v in _compact(pairs).items()]


def _network_section(job: TrainingJob, paths: RenderPaths) -> dict[str, Any]:
    n = job.network
    module = (
        job.model.profile.lora_module
        if isinstance(n, LoraNetwork)
        else native_module(n) or LYCORIS_MODULE
    )
    dim = getattr(n, "network_dim", None)
    alpha = getattr(n, "network_alpha", None)
    section = _compact(
        [
            ("network_module", module),
            ("network_dim", dim),
            ("network_alpha", alpha),
            ("network_dropout", n.network_dropout),
            ("network_weights", n.network_weights),
            ("network_train_unet_only", n.network_train_unet_only),
            ("network_train_text_encoder_only", n.network_train_text_encoder_only),
            ("scale_weight_norms", n.scale_weight_norms),
        ]
    )
    args = network_args(job, paths)
    if args:
        section["network_args"] = args
    return section


# ----------------------------------------------------------------------------- optimizer
_OPTIMIZER_COMMON = {
    "type",
    "learning_rate",
    "unet_lr",
    "text_encoder_lr",
    "max_grad_norm",
    "extra_args",
}


def optimizer_args(job: TrainingJob) -> list[str]:
    """The ``optimizer_args`` strings (``k=v`` with Python-literal values), in field order."""
    o = job.optimizer
    out: list[str] = []
    for key in type(o).model_fields:
        if key in _OPTIMIZER_COMMON:
            continue
        value = getattr(o, key)
        if value is not None:
            out.append(f"{key}={_literal(value)}")
    out += [f"{k}={_literal(v)}" for k, v in o.extra_args.items()]
    return out


def _optimizer_section(job: TrainingJob) -> dict[str, Any]:
    o, s = job.optimizer, job.scheduler
    section = _compact(
        [
            ("optimizer_type", o.type),
            ("learning_rate", o.learning_rate),
            ("unet_lr", o.unet_lr),
            ("text_encoder_lr", o.text_encoder_lr),
            ("max_grad_norm", o.max_grad_norm),  # 0.0 is kept: it turns clipping off
        ]
    )
    args = optimizer_args(job)
    if args:
        section["optimizer_args"] = args
    section.update(
        _compact(
            [
                ("lr_scheduler", s.lr_scheduler),
                # int = steps, float < 1 = fraction (train_util.py:5275-5280); 0 is left out.
                ("lr_warmup_steps", s.lr_warmup_steps or None),
                ("lr_decay_steps", s.lr_decay_steps or None),
                ("lr_scheduler_num_cycles", s.lr_scheduler_num_cycles),
                ("lr_scheduler_power", s.lr_scheduler_power),
                ("lr_scheduler_min_lr_ratio", s.lr_scheduler_min_lr_ratio),
                ("lr_scheduler_timescale", s.lr_scheduler_timescale),
            ]
        )
    )
    if s.lr_scheduler_args:
        section["lr_scheduler_args"] = [
            f"{k}={_literal(v)}" for k, v in s.lr_scheduler_args.items()
        ]
    return section


# ----------------------------------------------------------------------------- training config
_TRAINING_KEYS = (
    "output_dir",
    "output_name",
    "save_model_as",
    "save_precision",
    "max_train_epochs",
    "max_train_steps",
    "save_every_n_epochs",
    "save_every_n_steps",
    "save_last_n_epochs",
    "save_last_n_steps",
    "save_state",
    "save_state_on_train_end",
    "resume",
    "mixed_precision",
    "full_fp16",
    "full_bf16",
    "fp8_base",
    "seed",
    "gradient_checkpointing",
    "gradient_accumulation_steps",
    "lowram",
    "highvram",
    "noise_offset",
    "noise_offset_random_strength",
    "adaptive_noise_scale",
    "multires_noise_iterations",
    "multires_noise_discount",
    "ip_noise_gamma",
    "min_snr_gamma",
    "debiased_estimation_loss",
    "zero_terminal_snr",
    "scale_v_pred_loss_like_noise_pred",
    "loss_type",
    "prior_loss_weight",
    "min_timestep",
    "max_timestep",
    "training_comment",
    "metadata_title",
    "metadata_author",
    "metadata_description",
    "metadata_license",
    "metadata_tags",
    "metadata_trigger_phrase",
)
_DATASET_ARG_KEYS = (
    "cache_latents",
    "cache_latents_to_disk",
    "cache_text_encoder_outputs",
    "cache_text_encoder_outputs_to_disk",
    "vae_batch_size",
    "max_data_loader_n_workers",
    "persistent_data_loader_workers",
)
_LOGGING_KEYS = ("logging_dir", "log_with", "log_prefix")


def training_config_dict(job: TrainingJob, paths: RenderPaths) -> dict[str, dict[str, Any]]:
    """The training config as sectioned dicts (what render_training_toml writes)."""
    m, t, s = job.model, job.training, job.sampling
    model = m.sd_args()  # the family's section, under sd-scripts' names
    dataset = {"dataset_config": paths.dataset_config}
    dataset.update(_compact((k, getattr(t, k)) for k in _DATASET_ARG_KEYS))
    training = _compact((k, getattr(t, k)) for k in _TRAINING_KEYS)
    # mixed_precision "no" is sd-scripts' default but we always say it: accelerate's own flag does
    # not reach the script (train_util.py:5494-5502).
    training["mixed_precision"] = t.mixed_precision
    if t.attention != "none":
        training[t.attention] = True
    sections: dict[str, dict[str, Any]] = {
        "model_arguments": model,
        "dataset_arguments": dataset,
        "network_arguments": _network_section(job, paths),
        "optimizer_arguments": _optimizer_section(job),
        "training_arguments": training,
    }
    logging = _compact((k, getattr(t, k)) for k in _LOGGING_KEYS)
    if logging:
        sections["logging_arguments"] = logging
    if s.prompts and paths.sample_prompts is not None:
        sections["sample_prompt_arguments"] = _compact(
            [
                ("sample_prompts", paths.sample_prompts),
                ("sample_every_n_epochs", s.sample_every_n_epochs),
                ("sample_every_n_steps", s.sample_every_n_steps),
                ("sample_at_first", s.sample_at_first),
                ("sample_sampler", s.sample_sampler),
            ]
        )
    if job.extra_args:
        sections["extra_arguments"] = {
            k: list(v) if isinstance(v, list) else v for k, v in job.extra_args.items()
        }
    return sections


def render_training_toml(job: TrainingJob, paths: RenderPaths) -> str:
    """The ``--config_file`` TOML for train_network.py (or the family's script)."""
    return dumps(
        training_config_dict(job, paths),
        header=_header(job, f"sd-scripts --config_file for {job.model.script}"),
    )


# ----------------------------------------------------------------------------- dataset config
def _options(model: CaptionOptions | BucketOptions, keys: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        value = getattr(model, key)
        if value is None:
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


_CAPTION_KEYS = tuple(CaptionOptions.model_fields)
_BUCKET_KEYS = tuple(BucketOptions.model_fields)


def _subset_dict(subset: DreamBoothSubset | FineTuningSubset) -> dict[str, Any]:
    if isinstance(subset, FineTuningSubset):
        out: dict[str, Any] = {"metadata_file": subset.metadata_file}
        if subset.image_dir is not None:
            out["image_dir"] = subset.image_dir
        if subset.num_repeats is not None:  # else the dataset's default, as for DreamBooth
            out["num_repeats"] = subset.num_repeats
    else:
        out = {"image_dir": subset.image_dir}
        if subset.effective_repeats is not None:
            out["num_repeats"] = subset.effective_repeats
        if subset.effective_class_tokens is not None:
            out["class_tokens"] = subset.effective_class_tokens
        if subset.is_reg:
            out["is_reg"] = True
        if subset.cache_info is not None:
            out["cache_info"] = subset.cache_info
    if subset.alpha_mask is not None:
        out["alpha_mask"] = subset.alpha_mask
    keys = [
        k
        for k in _CAPTION_KEYS
        if not (isinstance(subset, FineTuningSubset) and k == "caption_extension")
    ]
    out.update(_options(subset, keys))
    return out


def dataset_config_dict(job: TrainingJob) -> dict[str, Any]:
    """The dataset config as nested dicts (what render_dataset_toml writes)."""
    ds: DatasetConfig = job.dataset
    general = _options(ds, _BUCKET_KEYS + _CAPTION_KEYS)
    blocks: list[DatasetBlock | DatasetConfig] = list(ds.datasets) if ds.datasets else [ds]
    datasets: list[dict[str, Any]] = []
    for block in blocks:
        entry: dict[str, Any] = {}
        if block is not ds:
            entry.update(_options(block, _BUCKET_KEYS + _CAPTION_KEYS))
        entry["subsets"] = [_subset_dict(s) for s in block.subsets]
        datasets.append(entry)
    return {"general": general, "datasets": datasets}


def render_dataset_toml(job: TrainingJob) -> str:
    """The ``--dataset_config`` TOML."""
    return dumps(dataset_config_dict(job), header=_header(job, "sd-scripts --dataset_config"))


# ----------------------------------------------------------------------------- sample prompts
def _plain_number(value: float) -> str:
    """A float in positional notation that reads back as exactly ``value``: sd-scripts reads
    ``--l`` with the pattern ``[\\d.]+`` before float(), so ``5e-05`` would come back as 5.0.

    ``repr`` is the shortest text that round-trips; Decimal spells the same number without an
    exponent (``5e-05`` -> ``0.00005``, ``1e+16`` -> ``10000000000000000``).
    """
    return format(Decimal(repr(float(value))), "f")


def _prompt_option(key: str, value: Any) -> str:
    """``--w 512``: ints and the sampler as written, the scale (a float) never in exponent form."""
    return f"--{key} {_plain_number(value) if key == 'l' else value}"


def render_sample_prompts(job: TrainingJob) -> str | None:
    """The ``--sample_prompts`` file (.txt format), or None when the job has no prompts.

    Width and height default to the training resolution: sd-scripts' own default is 512x512 even
    for SDXL (train_util.py:6506-6513). They always follow the prompt, so the prompt is never the
    end of the stripped line and keeps its trailing characters; text sd-scripts would misread is
    refused before this (rules.check_sample_prompts).
    """
    s = job.sampling
    if not s.prompts:
        return None
    res = job.dataset.resolution
    default_w, default_h = (res, res) if isinstance(res, int) else res
    lines = [f"# Sample prompts, written by kohya_orchestrator {__version__}."]
    for p in s.prompts:
        parts = [p.prompt]
        negative = p.negative_prompt if p.negative_prompt is not None else s.negative_prompt
        options: list[tuple[str, Any]] = [
            ("n", negative),
            ("w", p.width or s.width or default_w),
            ("h", p.height or s.height or default_h),
            ("s", p.sample_steps or s.sample_steps),
            ("d", p.seed if p.seed is not None else s.seed),
            ("l", p.scale or s.scale),
            ("ss", p.sample_sampler),
        ]
        parts += [_prompt_option(k, v) for k, v in options if v is not None and v != ""]
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


def render_job(job: TrainingJob, paths: RenderPaths) -> RenderedFiles:
    """Every file sd-scripts reads for this job."""
    prompts = render_sample_prompts(job)
    if prompts is None:
        paths = replace(paths, sample_prompts=None)
    return RenderedFiles(
        config_toml=render_training_toml(job, paths),
        dataset_toml=render_dataset_toml(job),
        sample_prompts=prompts,
    )
