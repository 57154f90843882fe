"""The kohya_ss GUI's form fields: which job key each maps to, and how its values are read.

The GUI keys its JSON by its own form field names, numbers often as strings, booleans as
``"True"``/``"False"``; :func:`convert` reads a value by the kind its table entry gives, and
:class:`GuiReader` collects what the sections make of them (``gui_mapper``, ``gui_network``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import Problem

__all__ = [
    "EXTRA_FIELDS",
    "GUI_ONLY_FIELDS",
    "SIMPLE_FIELDS",
    "SPECIAL_FIELDS",
    "BadValue",
    "GuiReader",
    "as_text",
    "convert",
    "csv_list",
    "loads_json_lenient",
]


# GUI key -> (section, job key, kind). Kinds: "str", "bool" (False left out), "flag" (kept as
# written), "int", "float", "off" (0 means off: left out), "int_off", "zero" (0 is meaningful:
# kept, and reported because the GUI dropped it).
SIMPLE_FIELDS: dict[str, tuple[str, str, str]] = {
    "pretrained_model_name_or_path": ("model", "pretrained_model_name_or_path", "str"),
    "v_parameterization": ("model", "v_parameterization", "bool"),
    "vae": ("model", "vae", "str"),
    "max_token_length": ("model", "max_token_length", "int"),
    "train_batch_size": ("dataset", "batch_size", "int"),
    "enable_bucket": ("dataset", "enable_bucket", "flag"),
    "min_bucket_reso": ("dataset", "min_bucket_reso", "int"),
    "max_bucket_reso": ("dataset", "max_bucket_reso", "int"),
    "bucket_reso_steps": ("dataset", "bucket_reso_steps", "int"),
    "bucket_no_upscale": ("dataset", "bucket_no_upscale", "flag"),
    "caption_extension": ("dataset", "caption_extension", "str"),
    "shuffle_caption": ("dataset", "shuffle_caption", "flag"),
    "keep_tokens": ("dataset", "keep_tokens", "int_off"),
    "keep_tokens_separator": ("dataset", "keep_tokens_separator", "str"),
    "secondary_separator": ("dataset", "secondary_separator", "str"),
    "enable_wildcard": ("dataset", "enable_wildcard", "bool"),
    "caption_dropout_rate": ("dataset", "caption_dropout_rate", "off"),
    "caption_dropout_every_n_epochs": ("dataset", "caption_dropout_every_n_epochs", "int_off"),
    "caption_tag_dropout_rate": ("dataset", "caption_tag_dropout_rate", "off"),
    "flip_aug": ("dataset", "flip_aug", "bool"),
    "color_aug": ("dataset", "color_aug", "bool"),
    "random_crop": ("dataset", "random_crop", "bool"),
    "learning_rate": ("optimizer", "learning_rate", "float"),
    "max_grad_norm": ("optimizer", "max_grad_norm", "zero"),
    "lr_scheduler": ("scheduler", "lr_scheduler", "str"),
    "lr_scheduler_num_cycles": ("scheduler", "lr_scheduler_num_cycles", "int_off"),
    "lr_scheduler_power": ("scheduler", "lr_scheduler_power", "off"),
    "lr_scheduler_min_lr_ratio": ("scheduler", "lr_scheduler_min_lr_ratio", "off"),
    "output_dir": ("training", "output_dir", "str"),
    "output_name": ("training", "output_name", "str"),
    "save_model_as": ("training", "save_model_as", "str"),
    "save_precision": ("training", "save_precision", "str"),
    "save_every_n_epochs": ("training", "save_every_n_epochs", "int_off"),
    "save_every_n_steps": ("training", "save_every_n_steps", "int_off"),
    "save_last_n_epochs": ("training", "save_last_n_epochs", "int_off"),
    "save_last_n_steps": ("training", "save_last_n_steps", "int_off"),
    "save_state": ("training", "save_state", "bool"),
    "save_state_on_train_end": ("training", "save_state_on_train_end", "bool"),
    "resume": ("training", "resume", "str"),
    "mixed_precision": ("training", "mixed_precision", "str"),
    "full_fp16": ("training", "full_fp16", "bool"),
    "full_bf16": ("training", "full_bf16", "bool"),
    "fp8_base": ("training", "fp8_base", "bool"),
    "seed": ("training", "seed", "zero"),
    "gradient_checkpointing": ("training", "gradient_checkpointing", "flag"),
    "gradient_accumulation_steps": ("training", "gradient_accumulation_steps", "int"),
    "cache_latents": ("training", "cache_latents", "flag"),
    "cache_latents_to_disk": ("training", "cache_latents_to_disk", "bool"),
    "vae_batch_size": ("training", "vae_batch_size", "int_off"),
    "max_data_loader_n_workers": ("training", "max_data_loader_n_workers", "int"),
    "persistent_data_loader_workers": ("training", "persistent_data_loader_workers", "bool"),
    "lowram": ("training", "lowram", "bool"),
    "highvram": ("training", "highvram", "bool"),
    "noise_offset_random_strength": ("training", "noise_offset_random_strength", "bool"),
    "adaptive_noise_scale": ("training", "adaptive_noise_scale", "off"),
    "ip_noise_gamma": ("training", "ip_noise_gamma", "off"),
    "min_snr_gamma": ("training", "min_snr_gamma", "off"),
    "debiased_estimation_loss": ("training", "debiased_estimation_loss", "bool"),
    "scale_v_pred_loss_like_noise_pred": ("training", "scale_v_pred_loss_like_noise_pred", "bool"),
    "zero_terminal_snr": ("training", "zero_terminal_snr", "bool"),
    "min_timestep": ("training", "min_timestep", "int_off"),
    "logging_dir": ("training", "logging_dir", "str"),
    "log_prefix": ("training", "log_prefix", "str"),
    "training_comment": ("training", "training_comment", "str"),
    "metadata_title": ("training", "metadata_title", "str"),
    "metadata_author": ("training", "metadata_author", "str"),
    "metadata_description": ("training", "metadata_description", "str"),
    "metadata_license": ("training", "metadata_license", "str"),
    "metadata_tags": ("training", "metadata_tags", "str"),
    "sample_every_n_epochs": ("sampling", "sample_every_n_epochs", "int_off"),
    "sample_every_n_steps": ("sampling", "sample_every_n_steps", "int_off"),
    "sample_sampler": ("sampling", "sample_sampler", "str"),
    "lora_network_weights": ("network", "network_weights", "str"),
    "scale_weight_norms": ("network", "scale_weight_norms", "off"),
    "network_dropout": ("network", "network_dropout", "off"),
}
# Kept in [extra_args] (sd-scripts arguments the job format does not model) when set.
EXTRA_FIELDS: dict[str, str] = {
    "masked_loss": "bool",
    "v_pred_like_loss": "off",
    "ip_noise_gamma_random_strength": "bool",
    "weighted_captions": "bool",
    "dim_from_weights": "bool",
    "save_last_n_steps_state": "int_off",
    "save_last_n_epochs_state": "int_off",
}
# Handled one by one below.
SPECIAL_FIELDS = frozenset(
    [
        "LoRA_type",
        "LyCORIS_preset",
        "network_dim",
        "network_alpha",
        "conv_dim",
        "conv_alpha",
        "factor",
        "use_tucker",
        "use_cp",
        "use_scalar",
        "decompose_both",
        "dora_wd",
        "bypass_mode",
        "train_norm",
        "train_on_input",
        "rank_dropout",
        "module_dropout",
        "rank_dropout_scale",
        "unit",
        "constrain",
        "rescaled",
        "block_dims",
        "block_alphas",
        "conv_block_dims",
        "conv_block_alphas",
        "down_lr_weight",
        "mid_lr_weight",
        "up_lr_weight",
        "block_lr_zero_threshold",
        "loraplus_lr_ratio",
        "loraplus_unet_lr_ratio",
        "loraplus_text_encoder_lr_ratio",
        "network_args",
        "network_train_unet_only",
        "network_train_text_encoder_only",
        "optimizer",
        "optimizer_args",
        "unet_lr",
        "text_encoder_lr",
        "lr_warmup",
        "lr_warmup_steps",
        "lr_scheduler_args",
        "max_resolution",
        "clip_skip",
        "sdxl",
        "v2",
        "sdxl_cache_text_encoder_outputs",
        "sdxl_no_half_vae",
        "xformers",
        "mem_eff_attn",
        "epoch",
        "max_train_epochs",
        "max_train_steps",
        "train_data_dir",
        "reg_data_dir",
        "dataset_config",
        "sample_prompts",
        "noise_offset_type",
        "noise_offset",
        "multires_noise_iterations",
        "multires_noise_discount",
        "loss_type",
        "huber_c",
        "huber_schedule",
        "prior_loss_weight",
        "max_timestep",
        "stop_text_encoder_training",
        "additional_parameters",
        "log_with",
    ]
)
# The GUI's own settings (launcher, trackers, Hugging Face upload, UI state): nothing to train.
GUI_ONLY_FIELDS = frozenset(
    [
        "model_list",
        "gpu_ids",
        "multi_gpu",
        "num_processes",
        "num_machines",
        "num_cpu_threads_per_process",
        "main_process_port",
        "dynamo_backend",
        "dynamo_mode",
        "dynamo_use_fullgraph",
        "dynamo_use_dynamic",
        "extra_accelerate_launch_args",
        "use_wandb",
        "wandb_api_key",
        "wandb_run_name",
        "log_tracker_name",
        "log_tracker_config",
        "log_config",
        "async_upload",
        "huggingface_repo_id",
        "huggingface_token",
        "huggingface_repo_type",
        "huggingface_repo_visibility",
        "huggingface_path_in_repo",
        "save_state_to_huggingface",
        "resume_from_huggingface",
        "save_as_bool",
        "save_every_n_steps_state",
        "skip_cache_check",
        "training_preset",
        "LyCORIS_preset_file",
        "mixed_precision_type",
        "ss_sd_model_name",
    ]
)


# ----------------------------------------------------------------------------- value coercion
class BadValue(ValueError):
    """A GUI value that cannot be read as its kind."""


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise BadValue(f"expected a number, got {value!r}") from None
    if value is None:
        return None
    raise BadValue(f"expected a number, got {value!r}")


def _int(value: Any) -> int | None:
    n = _number(value)
    if n is None:
        return None
    if isinstance(n, float) and not n.is_integer():
        raise BadValue(f"expected a whole number, got {value!r}")
    return int(n)


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str) and not value.strip():
        return None
    raise BadValue(f"expected true or false, got {value!r}")


def as_text(value: Any) -> str | None:
    """The value as stripped text; None when it is missing or blank."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def convert(kind: str, value: Any) -> Any:
    """The job value for a GUI value of this kind; None means 'leave it out'."""
    if kind == "str":
        return as_text(value)
    if kind == "bool":
        return _bool(value) or None
    if kind == "flag":
        return _bool(value)
    if kind == "int":
        return _int(value)
    if kind == "int_off":
        whole = _int(value)
        return whole or None
    if kind == "float":
        number = _number(value)
        return None if number is None else float(number)
    if kind == "off":
        number = _number(value)
        return float(number) if number else None
    if kind == "zero":
        return _number(value)
    raise AssertionError(kind)  # pragma: no cover - the tables use the kinds above


def csv_list(value: Any, cast: Callable[[str], Any]) -> list[Any] | None:
    """Comma-separated values, each read with ``cast``; None when blank."""
    text = as_text(value)
    if text is None:
        return None
    return [cast(part.strip()) for part in text.split(",") if part.strip()]


# ----------------------------------------------------------------------------- the reader
class GuiReader:
    """A GUI object being read: values by kind, the job data so far, and the problems found."""

    def __init__(self, gui: Mapping[str, Any]) -> None:
        self.gui = gui
        self.out: dict[str, dict[str, Any]] = {}
        self.problems: list[Problem] = []
        self.errors: list[Problem] = []

    def set(self, section: str, key: str, value: Any) -> None:
        """Set ``[section] key`` (a None value leaves it out)."""
        if value is not None:
            self.out.setdefault(section, {})[key] = value

    def warn(self, key: str, message: str, hint: str | None = None) -> None:
        """Report a GUI key that was not imported, or a value changed on the way."""
        self.problems.append(Problem(key, message, hint, "warning"))

    def error(self, key: str, message: str, hint: str | None = None) -> None:
        """Report a GUI value that cannot be imported (the import fails)."""
        self.errors.append(Problem(key, message, hint))

    def get(self, key: str, kind: str) -> Any:
        """The job value of a GUI key read as ``kind``; None when absent, off or unreadable."""
        if key not in self.gui:
            return None
        try:
            return convert(kind, self.gui[key])
        except BadValue as exc:
            self.error(key, str(exc), "fix the value in the GUI file")
            return None


_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def loads_json_lenient(text: str) -> tuple[Any, bool]:
    """JSON, or JSON with trailing commas (hand-copied configs): ``(value, had_commas)``.

    Commas are removed only outside strings. Raises :class:`json.JSONDecodeError` when the text
    is not JSON either way.
    """
    try:
        return json.loads(text), False
    except json.JSONDecodeError:
        pass
    out: list[str] = []
    i, in_string = 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch == "," and _TRAILING_COMMA.match(text, i):
            pass
        else:
            out.append(ch)
        i += 1
    return json.loads("".join(out)), True
