"""Import a kohya_ss GUI preset or saved configuration (JSON) as a preset of this project.

The GUI keys its JSON by its own form field names, not sd-scripts' (``LoRA_type``,
``optimizer``, ``max_resolution``, ``lr_warmup`` in percent, ``epoch``, ``xformers`` as a bool
or ``"xformers"``/``"sdpa"``, numbers often as strings, ``optimizer_args`` / ``network_args`` as
one space-separated string). A GUI preset is an overlay of its form: the keys it leaves out keep
whatever the form showed. Imported, they come from the job format's defaults instead.

The GUI's known traps are fixed, not copied, and each fix is reported:

- It drops every ``0``/``False``/``""`` from the TOML it writes, so a meaningful zero
  (``max_grad_norm = 0``: no clipping; ``seed = 0``) never reached sd-scripts. Kept here.
- It writes ``decompose_both=False`` for LoKr, which LyCORIS reads as *true* (it tests the raw
  string). Imported as false, what the checkbox says.
- It writes the old ``use_cp`` after ``use_tucker``, and LyCORIS lets the old name win, so the
  "use tucker" checkbox could be overridden. The checkbox (``use_tucker``) is imported.
- ``train_on_input`` (iA3) and ``rank_dropout_scale`` are not read by LyCORIS' kohya entry point,
  and it writes ``conv_dim``/``conv_alpha`` for iA3: dropped.
- ``epoch`` becomes ``max_train_steps`` through a formula that ignores bucketing (runs end
  early); imported as ``max_train_epochs``, which sd-scripts counts exactly.
"""

from __future__ import annotations

import difflib
import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import ConfigError, Problem
from ..models import TrainingJob
from ..models.dataset import DatasetConfig
from ..models.model import ModelConfig
from ..models.network import (
    LYCORIS_BUILTIN_PRESETS,
    BoftNetwork,
    DiagOftNetwork,
    DyLoraNetwork,
    FullNetwork,
    IA3Network,
    LoConNetwork,
    LoHaNetwork,
    LoKrNetwork,
    LoraNetwork,
)
from ..models.optimizer import SchedulerConfig
from ..models.sampling import SamplingConfig
from ..models.sd_args import known_args
from ..models.training import TrainingConfig
from .import_toml import _literal, _optimizer, _subsets_from_dirs, parse_prompt_line
from .loading import Layer, compose_layers, validate_job

__all__ = ["GuiImport", "gui_to_job_dict", "import_gui_preset"]

# GUI LoRA_type -> (algo, trains 3x3 convs with networks.lora)
_LORA_TYPES: dict[str, tuple[str, bool]] = {
    "Standard": ("lora", False),
    "Kohya LoCon": ("lora", True),
    "LoCon": ("locon", True),
    "LyCORIS/LoCon": ("locon", True),
    "LyCORIS/LoHa": ("loha", True),
    "LyCORIS/LoKr": ("lokr", True),
    "LyCORIS/iA3": ("ia3", False),
    "LyCORIS/DyLoRA": ("dylora", True),
    "Kohya DyLoRA": ("dylora", True),
    "LyCORIS/Native Fine-Tuning": ("full", False),
    "LyCORIS/Diag-OFT": ("diag-oft", False),
    "LyCORIS/BOFT": ("boft", False),
}
_NETWORK_MODELS: dict[str, type[BaseModel]] = {
    "lora": LoraNetwork,
    "locon": LoConNetwork,
    "loha": LoHaNetwork,
    "lokr": LoKrNetwork,
    "ia3": IA3Network,
    "dylora": DyLoraNetwork,
    "full": FullNetwork,
    "diag-oft": DiagOftNetwork,
    "boft": BoftNetwork,
}

# GUI key -> (section, job key, kind). Kinds: "str", "bool" (False left out), "flag" (kept as
# written), "int", "float", "off" (0 means off: left out), "int_off", "zero" (0 is meaningful:
# kept, and reported because the GUI dropped it).
_SIMPLE: dict[str, tuple[str, str, str]] = {
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
_EXTRA: dict[str, str] = {
    "masked_loss": "bool",
    "v_pred_like_loss": "off",
    "ip_noise_gamma_random_strength": "bool",
    "weighted_captions": "bool",
    "dim_from_weights": "bool",
    "save_last_n_steps_state": "int_off",
    "save_last_n_epochs_state": "int_off",
}
# Handled one by one below.
_SPECIAL = frozenset(
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
_GUI_ONLY = frozenset(
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


@dataclass(frozen=True)
class GuiImport:
    """A GUI file turned into job data, and what could not be carried over or was fixed."""

    source: Path
    data: dict[str, Any]
    """The partial job (the preset format: no ``[epochs_from_data]``, no ``extends``)."""
    problems: list[Problem]
    """Warnings: keys not imported, GUI traps fixed, values changed on the way."""
    job: TrainingJob
    """The merged result, validated (over a placeholder model and data when the file has none)."""

    @property
    def complete(self) -> bool:
        """True when the file names its model, its images and a training length."""
        model = self.data.get("model", {})
        dataset = self.data.get("dataset", {})
        training = self.data.get("training", {})
        return bool(
            model.get("pretrained_model_name_or_path")
            and dataset.get("subsets")
            and ("max_train_epochs" in training or "max_train_steps" in training)
        )

    def to_toml(self, out: str | None = None) -> str:
        """The preset file text, with a header saying how to run it."""
        from ..render._writer import dumps

        target = out or "imported.toml"
        header = [
            f"{self.source.stem}: imported from the kohya_ss GUI file {self.source.name} by "
            "kohya_orchestrator.",
            "",
            "Run it:",
            f"  python -m kohya_orchestrator preset {target} --data img --model /models/base.safetensors",
            "Override one key:",
            f"  python -m kohya_orchestrator preset {target} --data img --set network.network_dim=16",
        ]
        if self.complete:
            header += ["or, since it names its model and images:"]
            header += [f"  python -m kohya_orchestrator train {target}"]
        header += [
            "",
            "Keys the GUI file left out come from the job format's defaults (the GUI would keep",
            "whatever its form showed). Keys that were not imported are listed by import-preset.",
        ]
        order = ["name", "description", "model", "dataset", "network", "optimizer", "scheduler"]
        order += ["training", "sampling", "extra_args"]
        return dumps({k: self.data[k] for k in order if k in self.data}, header=header)


# ----------------------------------------------------------------------------- value coercion
class _BadValue(ValueError):
    pass


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
            raise _BadValue(f"expected a number, got {value!r}") from None
    if value is None:
        return None
    raise _BadValue(f"expected a number, got {value!r}")


def _int(value: Any) -> int | None:
    n = _number(value)
    if n is None:
        return None
    if isinstance(n, float) and not n.is_integer():
        raise _BadValue(f"expected a whole number, got {value!r}")
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
    raise _BadValue(f"expected true or false, got {value!r}")


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _convert(kind: str, value: Any) -> Any:
    """The job value for a GUI value of this kind; None means 'leave it out'."""
    if kind == "str":
        return _str(value)
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


def _csv(value: Any, cast: Callable[[str], Any]) -> list[Any] | None:
    text = _str(value)
    if text is None:
        return None
    return [cast(part.strip()) for part in text.split(",") if part.strip()]


# ----------------------------------------------------------------------------- the mapping
class _Mapper:
    def __init__(self, gui: Mapping[str, Any]) -> None:
        self.gui = gui
        self.out: dict[str, dict[str, Any]] = {}
        self.problems: list[Problem] = []
        self.errors: list[Problem] = []

    def set(self, section: str, key: str, value: Any) -> None:
        if value is not None:
            self.out.setdefault(section, {})[key] = value

    def warn(self, key: str, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(key, message, hint, "warning"))

    def error(self, key: str, message: str, hint: str | None = None) -> None:
        self.errors.append(Problem(key, message, hint))

    def get(self, key: str, kind: str) -> Any:
        if key not in self.gui:
            return None
        try:
            return _convert(kind, self.gui[key])
        except _BadValue as exc:
            self.error(key, str(exc), "fix the value in the GUI file")
            return None

    # ------------------------------------------------------------------ sections
    def simple(self) -> None:
        for key, (section, target, kind) in _SIMPLE.items():
            value = self.get(key, kind)
            if value is None:
                continue
            if kind == "zero" and value == 0:
                self.warn(
                    key,
                    f"{key} = 0: the GUI drops zeros from the TOML it writes, so sd-scripts never "
                    "saw it; kept as 0",
                    "max_grad_norm = 0 turns gradient clipping off; seed = 0 is a fixed seed",
                )
            self.set(section, target, value)
        extra = {}
        for key, kind in _EXTRA.items():
            value = self.get(key, kind)
            if value is not None:
                extra[key] = value
        if extra:
            self.out["extra_args"] = extra

    def model(self) -> str:
        sdxl = self.get("sdxl", "bool")
        v2 = self.get("v2", "bool")
        family = "sdxl" if sdxl else ("sd2" if v2 else None)
        if family:
            self.set("model", "family", family)
        family = family or "sd15"
        skip = self.get("clip_skip", "int")
        if skip is not None and skip > 1:
            if family == "sdxl":
                self.warn("clip_skip", f"clip_skip = {skip}: SDXL ignores it; not imported")
            else:
                self.set("model", "clip_skip", skip)
        if "pretrained_model_name_or_path" not in self.out.get("model", {}):
            default = _DEFAULT_MODELS.get(family)
            if default is not None:
                self.set("model", "pretrained_model_name_or_path", default)
                self.warn(
                    "pretrained_model_name_or_path",
                    f"no base model in the file (GUI presets leave paths out); using {default}",
                    "give yours with --model PATH when running the preset",
                )
        if family == "sdxl":
            if self.get("sdxl_no_half_vae", "bool"):
                self.set("model", "no_half_vae", True)
            if self.get("sdxl_cache_text_encoder_outputs", "bool"):
                self.set("training", "cache_text_encoder_outputs", True)
        return family

    def resolution(self) -> None:
        text = _str(self.gui.get("max_resolution"))
        if text is None:
            return
        try:
            sides = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
        except ValueError:
            self.error("max_resolution", f"expected '512,512', got {text!r}", "fix the value")
            return
        if len(sides) == 1 or (len(sides) == 2 and sides[0] == sides[1]):
            self.set("dataset", "resolution", sides[0])
        elif len(sides) == 2:
            self.set("dataset", "resolution", sides)
        else:
            self.error("max_resolution", f"expected '512,512', got {text!r}", "fix the value")

    def attention(self) -> None:
        if "xformers" not in self.gui and "mem_eff_attn" not in self.gui:
            return
        raw = self.gui.get("xformers")
        choice = str(raw).strip().lower() if isinstance(raw, str) else raw
        if choice is True or choice == "xformers":
            self.set("training", "attention", "xformers")
        elif choice == "sdpa":
            self.set("training", "attention", "sdpa")
        elif self.get("mem_eff_attn", "bool"):
            self.set("training", "attention", "mem_eff_attn")
        else:
            self.set("training", "attention", "none")
            self.warn(
                "xformers",
                "no attention kernel chosen (xformers off, no sdpa): imported as attention = "
                "'none', which is slow and memory-hungry on a GPU",
                "set training.attention = 'sdpa'",
            )

    def length(self) -> None:
        epochs = self.get("max_train_epochs", "int_off")
        steps = self.get("max_train_steps", "int_off")
        gui_epochs = self.get("epoch", "int_off")
        if epochs:
            self.set("training", "max_train_epochs", epochs)
            if steps:
                self.warn(
                    "max_train_steps",
                    "both max_train_epochs and max_train_steps are set; sd-scripts uses the "
                    "epochs, so the steps were not imported",
                )
        elif steps:
            self.set("training", "max_train_steps", steps)
        elif gui_epochs:
            self.set("training", "max_train_epochs", gui_epochs)
            self.warn(
                "epoch",
                f"the GUI turns epoch = {gui_epochs} into max_train_steps with a formula that "
                "ignores bucketing (runs end early); imported as max_train_epochs, which "
                "sd-scripts counts exactly",
                "check the steps with: python -m kohya_orchestrator plan JOB.toml",
            )
        else:
            self.warn(
                "epoch",
                "no training length in the file (epoch, max_train_epochs and max_train_steps "
                "are unset or 0)",
                "add training.max_train_epochs to the imported file, or --set it",
            )

    def scheduler(self) -> None:
        sched = _str(self.gui.get("lr_scheduler"))
        steps = self.get("lr_warmup_steps", "int_off")
        percent = self.get("lr_warmup", "off")
        warmup: int | float | None = None
        if steps:
            warmup = steps
        elif percent:
            if percent >= 100:
                self.error("lr_warmup", f"{percent}% of the steps", "use a value below 100")
            else:
                warmup = round(percent / 100.0, 6)
        if warmup and sched == "constant":
            self.warn(
                "lr_warmup",
                "the 'constant' schedule takes no warmup (sd-scripts stops with an error); the "
                "warmup was not imported",
                "use lr_scheduler = 'constant_with_warmup' to keep a warmup",
            )
            warmup = None
        self.set("scheduler", "lr_warmup_steps", warmup)
        args = _str(self.gui.get("lr_scheduler_args"))
        if args:
            parsed = {}
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                if not sep:
                    self.error("lr_scheduler_args", f"'{item}' has no '='", "write key=value")
                    continue
                parsed[key.strip()] = _literal(value.strip())
            self.set("scheduler", "lr_scheduler_args", parsed or None)

    def optimizer(self) -> None:
        flat: dict[str, Any] = {}
        name = _str(self.gui.get("optimizer"))
        if name:
            flat["optimizer_type"] = name
        args = _str(self.gui.get("optimizer_args"))
        if args:
            flat["optimizer_args"] = args
        if not flat:
            return
        problems: list[Problem] = []
        opt = _optimizer(flat, problems)
        for p in problems:
            self.error(p.path, p.message, p.hint)  # _optimizer names the key already
        opt.pop("learning_rate", None)  # _optimizer's sd-scripts default; the GUI's comes next
        if not name:
            opt.pop("type", None)
        for key, value in opt.items():
            self.set("optimizer", key, value)

    def learning_rates(self) -> None:
        unet = self.get("unet_lr", "float")
        te_raw = self.gui.get("text_encoder_lr")
        if isinstance(te_raw, list):
            te_raw = te_raw[0] if te_raw else None
        try:
            te = _convert("float", te_raw)
        except _BadValue as exc:
            self.error("text_encoder_lr", str(exc), "fix the value")
            te = None
        # The GUI's own rule: a zero LR on one side trains only the other (lora_gui.py).
        if "network_train_unet_only" in self.gui or "network_train_text_encoder_only" in self.gui:
            unet_only = self.get("network_train_unet_only", "bool")
            te_only = self.get("network_train_text_encoder_only", "bool")
        else:
            unet_only = te == 0 and bool(unet)
            te_only = unet == 0 and bool(te)
        if unet_only:
            self.set("network", "network_train_unet_only", True)
        if te_only:
            self.set("network", "network_train_text_encoder_only", True)
        if unet:
            self.set("optimizer", "unet_lr", unet)
        if te and not unet_only:
            self.set("optimizer", "text_encoder_lr", te)

    def noise_and_loss(self) -> None:
        kind = _str(self.gui.get("noise_offset_type")) or "Original"
        if kind.lower() == "multires":
            self.set(
                "training",
                "multires_noise_iterations",
                self.get("multires_noise_iterations", "int_off"),
            )
            self.set(
                "training", "multires_noise_discount", self.get("multires_noise_discount", "off")
            )
        else:
            self.set("training", "noise_offset", self.get("noise_offset", "off"))
        loss = _str(self.gui.get("loss_type"))
        if loss and loss != "l2":
            self.set("training", "loss_type", loss)
            extra = self.out.setdefault("extra_args", {})
            for key, kind_ in (("huber_c", "float"), ("huber_schedule", "str")):
                value = self.get(key, kind_)
                if value is not None:
                    extra[key] = value
            if not extra:
                self.out.pop("extra_args")
        weight = self.get("prior_loss_weight", "float")
        if weight is not None and weight != 1.0:
            self.set("training", "prior_loss_weight", weight)
        top = self.get("max_timestep", "int_off")
        if top is not None and top != 1000:
            self.set("training", "max_timestep", top)
        log_with = _str(self.gui.get("log_with"))
        if log_with in ("tensorboard", "wandb", "all"):
            self.set("training", "log_with", log_with)
        stop = self.get("stop_text_encoder_training", "off")
        if stop:
            self.warn(
                "stop_text_encoder_training",
                f"{stop:g}%: train_network.py has no such option (sd-scripts ignores it); not "
                "imported",
                "to freeze the text encoder, set optimizer.text_encoder_lr = 0",
            )

    def network(self, family: str) -> None:
        lora_type = _str(self.gui.get("LoRA_type")) or "Standard"
        if lora_type not in _LORA_TYPES:
            close = difflib.get_close_matches(lora_type, list(_LORA_TYPES), n=1)
            self.error(
                "LoRA_type",
                f"'{lora_type}' is not supported (SD 1.x/2.x/SDXL networks only)",
                (f"did you mean '{close[0]}'? " if close else "")
                + "supported: "
                + ", ".join(_LORA_TYPES),
            )
            return
        algo, convs = _LORA_TYPES[lora_type]
        if lora_type == "Kohya DyLoRA":
            self.warn(
                "LoRA_type",
                "kohya's own networks.dylora is imported as LyCORIS' dylora (same idea, "
                "LyCORIS' implementation)",
            )
        net: dict[str, Any] = {"algo": algo}
        lycoris = algo != "lora"
        net["network_dim"] = self.get("network_dim", "int")
        net["network_alpha"] = self.get("network_alpha", "float")
        if lycoris:
            net["preset"] = _str(self.gui.get("LyCORIS_preset"))
        if algo == "ia3" and net.get("preset") in LYCORIS_BUILTIN_PRESETS:
            self.warn(
                "LyCORIS_preset",
                f"LyCORIS' built-in preset '{net['preset']}' gives iA3 nothing to train on SD "
                "with lycoris-lora 4.x (optimizer got an empty parameter list); left out, so "
                "IA3's default preset file is used",
            )
            net["preset"] = None
        if convs:
            net["conv_dim"] = self.get("conv_dim", "int_off")
            net["conv_alpha"] = self.get("conv_alpha", "off")
            if net.get("preset") in ("attn-mlp", "attn-only") and net["conv_dim"]:
                self.warn(
                    "conv_dim",
                    f"preset '{net['preset']}' trains no conv layers, so conv_dim is ignored; not "
                    "imported",
                )
                net["conv_dim"] = net["conv_alpha"] = None
        elif algo == "ia3" and (self.get("conv_dim", "int_off") or self.get("conv_alpha", "off")):
            self.warn(
                "conv_dim",
                "the GUI writes conv_dim/conv_alpha for iA3, which has neither; not imported",
            )
        for key in ("use_scalar", "dora_wd", "bypass_mode", "train_norm", "rescaled"):
            net[key] = self.get(key, "bool")
        for key in ("rank_dropout", "module_dropout"):
            net[key] = self.get(key, "off")
        net["constraint"] = self.get("constrain", "off")
        if algo == "dylora":
            net["block_size"] = self.get("unit", "int_off")
        if algo == "lokr":
            net["factor"] = self.get("factor", "int")
            both = self.get("decompose_both", "flag")
            if both is False:
                self.warn(
                    "decompose_both",
                    "the GUI writes decompose_both=False, which LyCORIS reads as TRUE (it tests "
                    "the raw string); imported as false, what the checkbox says",
                )
            net["decompose_both"] = both or None
        self._tucker(net, algo)
        if algo == "ia3" and "train_on_input" in self.gui:
            self.warn(
                "train_on_input",
                "LyCORIS' kohya entry point does not read train_on_input (it is a preset-file "
                "setting); not imported",
                "IA3's default network preset already trains on the MLP input",
            )
        if self.get("rank_dropout_scale", "bool"):
            self.warn(
                "rank_dropout_scale",
                "LyCORIS' kohya entry point does not read rank_dropout_scale; not imported",
            )
        if algo == "lora":
            for key in ("block_dims", "conv_block_dims"):
                net[key] = self._csv(key, int)
            for key in ("block_alphas", "conv_block_alphas"):
                net[key] = self._csv(key, float)
            for key in ("down_lr_weight", "mid_lr_weight", "up_lr_weight"):
                net[key] = _str(self.gui.get(key))
            net["block_lr_zero_threshold"] = self.get("block_lr_zero_threshold", "off")
        for key in (
            "loraplus_lr_ratio",
            "loraplus_unet_lr_ratio",
            "loraplus_text_encoder_lr_ratio",
        ):
            net[key] = self.get(key, "off")
        self._network_args(net)
        fields = _NETWORK_MODELS[algo].model_fields
        for key, value in net.items():
            if value is None:
                continue
            if key in fields:
                self.set("network", key, value)
            elif key in ("network_dim", "network_alpha", "conv_dim", "conv_alpha"):
                continue  # the GUI writes these for every type; this algo has none
            else:
                self.warn(key, f"algo {algo} does not use '{key}'; not imported")

    def _csv(self, key: str, cast: Callable[[str], Any]) -> list[Any] | None:
        try:
            return _csv(self.gui.get(key), cast)
        except ValueError:
            self.error(key, f"expected comma-separated numbers, got {self.gui.get(key)!r}")
            return None

    def _tucker(self, net: dict[str, Any], algo: str) -> None:
        tucker = self.get("use_tucker", "flag")
        old = self.get("use_cp", "flag")
        if algo not in ("locon", "loha", "lokr"):
            return
        if tucker is None and old is not None:
            net["use_tucker"] = old or None  # an old GUI file: use_cp was the checkbox
            return
        if old is not None and tucker is not None and old != tucker:
            self.warn(
                "use_cp",
                f"use_cp = {old} disagrees with use_tucker = {tucker}: the GUI writes use_cp "
                f"after use_tucker and LyCORIS lets the old name win, so a GUI run used "
                f"use_tucker = {old}; imported as use_tucker = {tucker}, the checkbox",
            )
        net["use_tucker"] = tucker or None

    def _network_args(self, net: dict[str, Any]) -> None:
        text = _str(self.gui.get("network_args"))
        if not text:
            return
        for item in shlex.split(text):
            key, sep, value = item.partition("=")
            if not sep:
                self.error("network_args", f"'{item}' has no '='", "write key=value")
                continue
            key, value = key.strip(), value.strip()
            if key == "algo":
                continue
            if value.lower() in ("true", "false"):
                net[key] = value.lower() == "true"
            elif key == "preset":
                net[key] = value
            else:
                net[key] = _literal(value)

    def data(self) -> None:
        if _str(self.gui.get("dataset_config")):
            self.warn(
                "dataset_config",
                "the dataset TOML it names is not imported",
                "import it with import-config, or give the images with --data DIR",
            )
        train = _str(self.gui.get("train_data_dir"))
        reg = _str(self.gui.get("reg_data_dir"))
        if not train and not reg:
            return
        problems: list[Problem] = []
        subsets = _subsets_from_dirs(train, reg, problems)
        for p in problems:
            self.warn(
                p.path,
                p.message + " (no subsets imported from it)",
                "give the images with --data DIR when running the preset",
            )
        if subsets:
            self.set("dataset", "subsets", subsets)

    def prompts(self) -> None:
        text = self.gui.get("sample_prompts")
        prompts: list[dict[str, Any]] = []
        for line in str(text or "").splitlines():
            parsed = parse_prompt_line(line)
            if parsed is None:
                continue
            prompt, notes = parsed
            for note, is_error in notes:
                (self.error if is_error else self.warn)("sample_prompts", note)
            prompts.append(prompt)
        if prompts:
            self.set("sampling", "prompts", prompts)
        elif self.out.get("sampling", {}).keys() & {
            "sample_every_n_epochs",
            "sample_every_n_steps",
        }:
            for key in ("sample_every_n_epochs", "sample_every_n_steps"):
                self.out["sampling"].pop(key, None)
            self.warn(
                "sample_every_n_epochs",
                "a sampling cadence without sample prompts; not imported",
                "add [[sampling.prompts]] to the imported file to get sample images",
            )

    def additional(self, family: str) -> None:
        text = _str(self.gui.get("additional_parameters"))
        if not text:
            return
        try:
            tokens = shlex.split(text)
        except ValueError as exc:
            self.error("additional_parameters", f"cannot split it: {exc}")
            return
        sections: dict[str, type[BaseModel]] = {
            "model": ModelConfig,
            "dataset": DatasetConfig,
            "scheduler": SchedulerConfig,
            "training": TrainingConfig,
            "sampling": SamplingConfig,
        }
        known = known_args(family)
        i = 0
        while i < len(tokens):
            token = tokens[i]
            i += 1
            if not token.startswith("--"):
                self.warn("additional_parameters", f"'{token}' is not an option; not imported")
                continue
            key = token[2:].replace("-", "_")
            value: Any = True
            if i < len(tokens) and not tokens[i].startswith("--"):
                value = _literal(tokens[i])
                i += 1
            where = next((s for s, m in sections.items() if key in m.model_fields), None)
            if key in ("max_grad_norm", "learning_rate", "unet_lr", "text_encoder_lr"):
                where = "optimizer"
            if where is not None:
                self.set(where, key, value)
            elif key in known:
                self.out.setdefault("extra_args", {})[key] = value
            else:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                self.warn(
                    "additional_parameters",
                    f"--{key}: sd-scripts has no such argument (it would fail); not imported",
                    f"did you mean '--{close[0]}'?" if close else None,
                )

    def unknown(self) -> None:
        mapped = set(_SIMPLE) | set(_EXTRA) | _SPECIAL | _GUI_ONLY
        for key in self.gui:
            if key in mapped:
                continue
            close = difflib.get_close_matches(key, sorted(mapped), n=1)
            self.warn(
                key,
                f"not a kohya_ss GUI setting this importer knows; not imported "
                f"(value {self.gui[key]!r})",
                f"did you mean '{close[0]}'?" if close else "set it with --set if it matters",
            )


def gui_to_job_dict(gui: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """Map a GUI preset/config object onto job data.

    Args:
        gui: The parsed JSON object.

    Returns:
        ``(data, warnings)``: the partial job, and every key not imported or value fixed.

    Raises:
        ConfigError: A value cannot be read, or the network type is not supported.
    """
    m = _Mapper(gui)
    m.simple()
    family = m.model()
    m.resolution()
    m.attention()
    m.length()
    m.scheduler()
    m.optimizer()
    m.learning_rates()
    m.noise_and_loss()
    m.network(family)
    m.data()
    m.prompts()
    m.additional(family)
    m.unknown()
    if m.errors:
        raise ConfigError(m.errors + m.problems, source="the kohya_ss GUI file")
    order = ["model", "dataset", "network", "optimizer", "scheduler", "training", "sampling"]
    data = {k: _in_field_order(k, m.out[k]) for k in [*order, "extra_args"] if m.out.get(k)}
    return data, m.problems


def _in_field_order(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """A section's keys in the job model's field order (how a job file is written)."""
    from ..models.optimizer import optimizer_tag

    models: dict[str, type[BaseModel]] = {
        "model": ModelConfig,
        "dataset": DatasetConfig,
        "scheduler": SchedulerConfig,
        "training": TrainingConfig,
        "sampling": SamplingConfig,
    }
    model = models.get(section)
    if section == "network":
        model = _NETWORK_MODELS.get(str(values.get("algo")))
    elif section == "optimizer":
        from ..models import optimizer as optmod

        model = getattr(optmod, optimizer_tag(values), None)
    if model is None:
        return values
    fields = list(model.model_fields)
    if "algo" in fields:
        fields.insert(0, fields.pop(fields.index("algo")))
    if "type" in fields:
        fields.insert(0, fields.pop(fields.index("type")))
    rank = {name: i for i, name in enumerate(fields)}
    return dict(sorted(values.items(), key=lambda kv: rank.get(kv[0], len(rank))))


_DEFAULT_MODELS = {
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
}
_PLACEHOLDER: dict[str, dict[str, Any]] = {
    "model": {"pretrained_model_name_or_path": "placeholder/model"},
    "dataset": {"subsets": [{"image_dir": "/placeholder/10_placeholder"}]},
}


def import_gui_preset(path: Path) -> GuiImport:
    """Read a kohya_ss GUI preset or saved config (JSON) and check it as a job.

    Args:
        path: The ``.json`` file.

    Returns:
        The job data, the warnings, and the validated merged job (over a placeholder model and
        data when the file names none).

    Raises:
        ConfigError: The file cannot be read, is not a GUI object, or the result is not a valid
            job (every problem, each naming the GUI file or the placeholder as its source).
    """
    path = Path(path)
    try:
        gui = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            [Problem(str(path), "file not found", "check the path")], source=str(path)
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            [
                Problem(
                    str(path), f"not a readable JSON file: {exc}", "export it again from the GUI"
                )
            ],
            source=str(path),
        ) from None
    if not isinstance(gui, dict):
        raise ConfigError(
            [Problem(str(path), "expected a JSON object of GUI settings", None)], source=str(path)
        )
    try:
        data, problems = gui_to_job_dict(gui)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source=str(path)) from None
    name = _str(gui.get("output_name")) or path.stem
    data = {
        "name": name,
        "description": f"Imported from the kohya_ss GUI file {path.name}.",
        **data,
    }
    base: dict[str, Any] = {k: dict(v) for k, v in _PLACEHOLDER.items()}
    training = data.get("training", {})
    if "max_train_epochs" not in training and "max_train_steps" not in training:
        base["training"] = {"max_train_epochs": 1}
    layers = [Layer("placeholder (not in the GUI file)", base), Layer(path.name, data)]
    composed = compose_layers(layers)
    job = validate_job(composed.data, source=str(path), provenance=composed.provenance)
    return GuiImport(source=path, data=data, problems=problems, job=job)
