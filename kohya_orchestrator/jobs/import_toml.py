"""Read an existing kohya training TOML (flat or sectioned) and dataset TOML back into a job.

sd-scripts lifts each section's keys one level up and silently accepts unknown keys
(train_util.py:4748-4761). Here every key is accounted for: mapped onto the job format, kept in
``extra_args`` when sd-scripts knows it but the job format does not, or reported when sd-scripts
would ignore it.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Problem
from ..models import TrainingJob
from ..models.arguments import BUILTIN, Arguments
from ..models.family import DEFAULT_FAMILY, FAMILIES, family_from_args, profile
from ..models.model import model_section
from ..models.network import ALGOS, NETWORK_MODELS
from ..models.sd_args import known_args
from ..models.training import TrainingConfig
from .import_dataset import DATASET_KEYS as _DATASET_KEYS
from .import_dataset import dataset_section as _dataset
from .import_dataset import prompts_file as _prompts
from .import_paths import LocalPaths, localize_paths
from .loading import read_toml, validate_job

__all__ = ["ImportResult", "import_kohya_config", "job_dict_from_kohya"]

# Credentials sd-scripts takes as arguments -> the variable their library reads instead.
_SECRET_VARIABLES = {"wandb_api_key": "WANDB_API_KEY", "huggingface_token": "HF_TOKEN"}

_OPT_KEYS = {"learning_rate", "unet_lr", "text_encoder_lr", "max_grad_norm"}
_SCHED_KEYS = {
    "lr_scheduler",
    "lr_warmup_steps",
    "lr_decay_steps",
    "lr_scheduler_num_cycles",
    "lr_scheduler_power",
    "lr_scheduler_min_lr_ratio",
    "lr_scheduler_timescale",
}
_NET_KEYS = {
    "network_dim",
    "network_alpha",
    "network_dropout",
    "network_weights",
    "network_train_unet_only",
    "network_train_text_encoder_only",
    "scale_weight_norms",
}
_SAMPLE_KEYS = {
    "sample_every_n_epochs",
    "sample_every_n_steps",
    "sample_at_first",
    "sample_sampler",
}
_TRAINING_KEYS = set(TrainingConfig.model_fields) - {"attention"}
# Written by the orchestrator itself or replaced by typed sections.
_HANDLED = {
    "network_module",
    "network_args",
    "optimizer_type",
    "optimizer_args",
    "lr_scheduler_args",
    "dataset_config",
    "sample_prompts",
    "config_file",
    "train_data_dir",
    "reg_data_dir",
    "sdpa",
    "xformers",
    "mem_eff_attn",
    "v2",
    "resolution",
    "train_batch_size",
}


class ImportResult:
    """The imported job, and what could not be carried over."""

    def __init__(self, job: TrainingJob, problems: list[Problem]) -> None:
        self.job = job
        self.problems = problems


def _flatten(config: Mapping[str, Any]) -> dict[str, Any]:
    # sd-scripts flattens one level: section tables lift their keys; later keys win.
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_kv(items: Any, what: str, problems: list[Problem]) -> dict[str, str]:
    if isinstance(items, str):
        items = items.split()
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep:
            problems.append(
                Problem(
                    what, f"'{item}' has no '=': sd-scripts would fail on it", "write key=value"
                )
            )
            continue
        out[key.strip()] = value.strip()
    return out


def _network(flat: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
    module = flat.get("network_module", "networks.lora")
    args = _parse_kv(flat.get("network_args"), "network_args", problems)
    net: dict[str, Any] = {k: flat[k] for k in _NET_KEYS if k in flat}
    if module == "networks.lora":
        net["algo"] = "lora"
        args.pop("dropout", None)
    elif module == "lycoris.kohya":
        algo = args.pop("algo", "lora").lower()
        net["algo"] = "locon" if algo == "lora" else algo
        if net["algo"] not in ALGOS:
            problems.append(Problem("network_args", f"algo={algo} is not supported", None))
        dropout = args.pop("dropout", None)
        if dropout not in (None, "None", "0", "0.0") and "network_dropout" not in net:
            net["network_dropout"] = float(dropout)
        # LyCORIS' old names (ly:lycoris/wrapper.py): use_cp / use_conv_cp -> use_tucker
        for old in ("use_cp", "use_conv_cp", "disable_conv_cp"):
            if old in args:
                value = args.pop(old)
                problems.append(
                    Problem(
                        f"network_args {old}",
                        f"old LyCORIS name, read as use_tucker={value}",
                        None,
                        "warning",
                    )
                )
                args.setdefault("use_tucker", value)
        if args.get("decompose_both", "").lower() == "false":
            problems.append(
                Problem(
                    "network_args decompose_both",
                    "decompose_both=False is read as TRUE by LyCORIS (it tests the raw string); "
                    "imported as false, which is what it says",
                    None,
                    "warning",
                )
            )
        for gui_only in ("rank_dropout_scale", "train_on_input"):
            if gui_only in args:
                args.pop(gui_only)
                problems.append(
                    Problem(
                        f"network_args {gui_only}",
                        "LyCORIS' kohya entry point ignores it; dropped",
                        None,
                        "warning",
                    )
                )
    else:
        problems.append(
            Problem(
                "network_module",
                f"'{module}' is not supported",
                "use networks.lora or lycoris.kohya",
            )
        )
    for key, value in args.items():
        if value.lower() in ("true", "false"):
            net[key] = value.lower() == "true"
        elif key in ("block_dims", "conv_block_dims"):
            net[key] = [int(v) for v in value.split(",")]
        elif key in ("block_alphas", "conv_block_alphas"):
            net[key] = [float(v) for v in value.split(",")]
        elif key in ("down_lr_weight", "mid_lr_weight", "up_lr_weight", "preset", "algo"):
            net[key] = value
        else:
            parsed = _literal(value)
            net[key] = parsed
    # What sd-scripts / LyCORIS use when the file says nothing (not our own friendlier defaults).
    if net.get("algo") not in ("ia3", "full"):
        net.setdefault("network_dim", 4)
        net.setdefault("network_alpha", 1.0)
    if module == "lycoris.kohya":
        if net.get("algo") in ("locon", "loha", "lokr"):
            # LyCORIS' own default; the job format's default for these is attn-mlp
            net.setdefault("preset", "full")
        if net.get("algo") == "lokr":
            net.setdefault("factor", -1)
    if net.get("algo") in ("ia3", "full"):
        net.pop("network_dim", None)
        net.pop("network_alpha", None)
    if net.get("algo") in ("diag-oft", "boft"):
        net.pop("network_alpha", None)
    model = NETWORK_MODELS.get(str(net.get("algo")))
    if model is not None:
        for key in [k for k in net if k not in model.model_fields and k in args]:
            value = net.pop(key)
            problems.append(
                Problem(
                    f"network_args {key}",
                    f"{key}={value} is not read by {module} for {net['algo']}: sd-scripts "
                    "runs without it; not imported",
                    None,
                    "warning",
                    "import-dropped",
                )
            )
    return net


def _optimizer(flat: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
    opt: dict[str, Any] = {k: flat[k] for k in _OPT_KEYS if k in flat}
    if isinstance(opt.get("text_encoder_lr"), list):
        lrs = opt["text_encoder_lr"]
        opt["text_encoder_lr"] = lrs[0] if lrs else None
        if len(set(lrs)) > 1:
            problems.append(
                Problem(
                    "text_encoder_lr",
                    "several values; sd-scripts' networks use only the first",
                    None,
                    "warning",
                )
            )
        if opt["text_encoder_lr"] is None:
            opt.pop("text_encoder_lr")
    opt.setdefault("learning_rate", 2e-6)  # sd-scripts' default (train_util.py:3701)
    opt["type"] = flat.get("optimizer_type") or "AdamW"
    if flat.get("use_8bit_adam"):
        opt["type"] = "AdamW8bit"
    args = _parse_kv(flat.get("optimizer_args"), "optimizer_args", problems)
    from ..models import optimizer as optmod
    from ..models.optimizer import optimizer_tag

    model = getattr(optmod, optimizer_tag(opt), None)
    fields = set(model.model_fields) if model is not None else set()
    extra: dict[str, Any] = {}
    for key, value in args.items():
        parsed = _literal(value)
        if isinstance(parsed, tuple):
            parsed = list(parsed)
        if key in fields and key not in ("type", "extra_args"):
            opt[key] = parsed
        else:
            extra[key] = parsed
    if extra:
        opt["extra_args"] = extra
    return opt


def _scheduler(flat: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
    sched = {k: flat[k] for k in _SCHED_KEYS if k in flat}
    args = _parse_kv(flat.get("lr_scheduler_args"), "lr_scheduler_args", problems)
    if args:
        sched["lr_scheduler_args"] = {k: _literal(v) for k, v in args.items()}
    return sched


def _guess_family(flat: Mapping[str, Any]) -> str:
    """The family a kohya config was written for (when ``--family`` does not say).

    Arguments only one family's script defines say it (``t5xxl``/``ae`` FLUX.1, with
    ``model_type = "chroma"`` Chroma, ``clip_g`` SD3, ``gemma2`` Lumina, ...); else the base
    model file, where it is here (jobs/model_file.py); else a text-encoder cache key says SDXL, ``v2`` the SD 2.x family; anything else is the job
    format's default family.
    """
    found = family_from_args(dict(flat))
    if found is not None:
        return found
    model = flat.get("pretrained_model_name_or_path")
    if isinstance(model, str) and model and Path(model).exists():
        from .model_file import detect_family

        detected = detect_family(Path(model)).family
        if detected is not None:
            return detected
    if "cache_text_encoder_outputs" in flat:
        return next(name for name, p in FAMILIES.items() if p.caches_text_encoder_outputs)
    if flat.get("v2"):
        return next(name for name, p in FAMILIES.items() if p.v2)
    return DEFAULT_FAMILY


def job_dict_from_kohya(
    config: Mapping[str, Any],
    dataset_config: Mapping[str, Any] | None = None,
    *,
    family: str | None = None,
    arguments: Arguments | None = None,
    local: LocalPaths | None = None,
    origin: str = "the config",
) -> tuple[dict[str, Any], list[Problem]]:
    """Map sd-scripts config dicts onto job data; returns the data and the problems found.

    ``arguments``: what the install that will run the job accepts (its argument manifest); keys
    it has go to ``[extra_args]``. Default: the built-in list of sd-scripts 48d368fa.
    ``local``: paths that are not on this machine become placeholders, filled from what it
    gives (:mod:`.import_paths`); without it a missing image folder is an error.
    """
    problems: list[Problem] = []
    flat = _flatten(config)
    if family is None:
        family = _guess_family(flat)
    known = (arguments.names(family) if arguments else None) or known_args(family)
    model_keys = set(model_section(family).model_fields) - {"family"}
    model = {k: flat[k] for k in model_keys if k in flat}
    for key, value in profile(family).script_args:  # v2 / model_type: said by the family
        if flat.get(key) == value:
            model_keys.add(key)
    model["family"] = family
    training: dict[str, Any] = {k: flat[k] for k in _TRAINING_KEYS if k in flat}
    attention = [a for a in ("sdpa", "xformers", "mem_eff_attn") if flat.get(a)]
    training["attention"] = attention[0] if attention else "none"
    if len(attention) > 1:
        problems.append(
            Problem(
                "sdpa/xformers",
                f"several attention switches on ({', '.join(attention)}); kept {attention[0]}",
                None,
                "warning",
            )
        )
    for key in ("cache_latents", "persistent_data_loader_workers"):
        training.setdefault(key, bool(flat.get(key, False)))
    training.setdefault("mixed_precision", "no")
    if training.get("save_precision") is None:
        training["save_precision"] = "float"  # sd-scripts saves in the training dtype when unset
    data: dict[str, Any] = {
        "model": model,
        "dataset": _dataset(flat, dataset_config, problems, local),
        "network": _network(flat, problems),
        "optimizer": _optimizer(flat, problems),
        "scheduler": _scheduler(flat, problems),
        "training": training,
    }
    _lengths(training, problems)
    sampling = {k: flat[k] for k in _SAMPLE_KEYS if k in flat}
    _cadences(sampling, problems)
    if flat.get("sample_prompts"):
        sampling["prompts"] = _prompts(str(flat["sample_prompts"]), problems)
    if not sampling.get("prompts"):
        for key in ("sample_every_n_epochs", "sample_every_n_steps", "sample_at_first"):
            sampling.pop(key, None)
        sampling.pop("prompts", None)
    if sampling:
        sampling.setdefault("sample_sampler", "ddim")
        data["sampling"] = sampling
    modelled = (
        model_keys
        | _OPT_KEYS
        | _SCHED_KEYS
        | _NET_KEYS
        | _SAMPLE_KEYS
        | _TRAINING_KEYS
        | _HANDLED
        | _DATASET_KEYS
        | {
            "cache_latents",
            "cache_latents_to_disk",
            "cache_text_encoder_outputs",
            "vae_batch_size",
            "max_data_loader_n_workers",
            "persistent_data_loader_workers",
            "logging_dir",
            "log_with",
            "log_prefix",
            "use_8bit_adam",
        }
    )
    extra: dict[str, Any] = {}
    for key, value in flat.items():
        if key in modelled:
            continue
        if key in _SECRET_VARIABLES:
            problems.append(
                Problem(
                    key,
                    "a secret; not imported (a job file would keep it in clear)",
                    f"set {_SECRET_VARIABLES[key]} in the environment the trainer runs in",
                    "warning",
                )
            )
        elif key in known:
            extra[key] = value
        else:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            problems.append(
                Problem(
                    key,
                    f"{(arguments or BUILTIN).label} has no such argument (sd-scripts silently "
                    "ignores it); not imported",
                    f"did you mean '{close[0]}'?" if close else None,
                    "warning",
                )
            )
    if extra:
        data["extra_args"] = extra
    if local is not None:
        data, notes = localize_paths(data, local, origin=origin)
        problems.extend(notes)
    return data, problems


def _lengths(training: dict[str, Any], problems: list[Problem]) -> None:
    """``max_train_epochs = 0`` beside steps: what GUIs and notebooks write for "unset"."""
    if training.get("max_train_epochs") == 0 and training.get("max_train_steps"):
        training.pop("max_train_epochs")
        problems.append(
            Problem(
                "max_train_epochs",
                "0 epochs: sd-scripts reads it literally (it overrides max_train_steps with 0 "
                f"steps, so nothing trains); kept max_train_steps = {training['max_train_steps']}, "
                "which is what the file meant",
                None,
                "warning",
                "import-fixed",
            )
        )


def _cadences(sampling: dict[str, Any], problems: list[Problem]) -> None:
    """Both sample cadences, or one of 0: what sd-scripts does with them, said and kept."""
    for key in ("sample_every_n_epochs", "sample_every_n_steps"):
        value = sampling.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
            sampling.pop(key)
            problems.append(
                Problem(
                    key,
                    f"{key} = {value}: sd-scripts turns it off; not imported",
                    None,
                    "warning",
                    "import-dropped",
                )
            )
    if "sample_every_n_epochs" in sampling and "sample_every_n_steps" in sampling:
        steps = sampling.pop("sample_every_n_steps")
        problems.append(
            Problem(
                "sample_every_n_steps",
                f"both cadences set: sd-scripts samples every {sampling['sample_every_n_epochs']} "
                f"epoch(s) and ignores sample_every_n_steps = {steps}; kept the epochs one",
                None,
                "warning",
                "import-fixed",
            )
        )


def import_kohya_config(
    config_path: Path,
    dataset_path: Path | None = None,
    *,
    family: str | None = None,
    arguments: Arguments | None = None,
    local: LocalPaths | None = None,
) -> ImportResult:
    """Read kohya TOML files into a validated job (ConfigError when it cannot be one).

    ``local``: fill or mark paths that are not on this machine (:mod:`.import_paths`); the
    CLI always passes it. Without it (the API's default) a missing image folder is an error.
    """
    config = read_toml(config_path, what="kohya config")
    flat = _flatten(config)
    if dataset_path is None and flat.get("dataset_config"):
        candidate = Path(str(flat["dataset_config"]))
        if candidate.is_file():
            dataset_path = candidate
    dataset_cfg = read_toml(dataset_path, what="dataset config") if dataset_path else None
    data, problems = job_dict_from_kohya(
        config,
        dataset_cfg,
        family=family,
        arguments=arguments,
        local=local,
        origin=config_path.name,
    )
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ConfigError(errors, source=str(config_path))
    job = validate_job(data, source=str(config_path), arguments=arguments)
    return ImportResult(job, problems)
