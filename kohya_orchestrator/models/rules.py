"""Cross-field rules on a TrainingJob: ``check_*`` return errors, ``warn_*`` return warnings.

Each rule names the key as the user wrote it (dotted path), says what is wrong and how to fix it.
Sources are the sd-scripts checks listed in docs/sd-scripts-reference.md section 1.5 and the
peers' complaints (peers.md section 4.8).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import Problem
from .dataset import DatasetBlock, DatasetConfig, DreamBoothSubset, FineTuningSubset
from .family import profile
from .network import (
    DyLoraNetwork,
    IA3Network,
    LoraNetwork,
    _Factorised,
    _LoraPlus,
)
from .optimizer import (
    ADAPTIVE_OPTIMIZERS,
    AdaFactorOptimizer,
    DAdaptOptimizer,
    ProdigyOptimizer,
    ScheduleFreeOptimizer,
)
from .sd_args import known_args

if TYPE_CHECKING:
    from .job import TrainingJob

__all__ = ["check_job", "job_warnings"]

Rule = Callable[["TrainingJob"], Iterator[Problem]]
_CHECKS: list[Rule] = []
_WARNINGS: list[Rule] = []


def _check(fn: Rule) -> Rule:
    _CHECKS.append(fn)
    return fn


def _warn(fn: Rule) -> Rule:
    _WARNINGS.append(fn)
    return fn


def check_job(job: TrainingJob) -> list[Problem]:
    """Every cross-field error in the job (empty when it is valid)."""
    return [p for rule in _CHECKS for p in rule(job)]


def job_warnings(job: TrainingJob) -> list[Problem]:
    """Things that are allowed but probably not what the user wants."""
    return [
        Problem(p.path, p.message, p.hint, severity="warning")
        for rule in _WARNINGS
        for p in rule(job)
    ]


def _blocks(ds: DatasetConfig) -> list[tuple[str, DatasetConfig | DatasetBlock]]:
    return [("dataset", ds)] + [(f"dataset.datasets[{i}]", b) for i, b in enumerate(ds.datasets)]


# ----------------------------------------------------------------------------- length and cadence
@_check
def check_length(job: TrainingJob) -> Iterator[Problem]:
    t = job.training
    if t.max_train_epochs is not None and t.max_train_steps is not None:
        yield Problem(
            "training.max_train_steps",
            "both max_train_epochs and max_train_steps are set; sd-scripts silently uses epochs",
            "keep one: max_train_epochs (recommended) or max_train_steps",
        )
    if t.max_train_epochs is None and t.max_train_steps is None:
        yield Problem(
            "training.max_train_epochs",
            "no training length; sd-scripts would fall back to 1600 steps whatever the dataset",
            "set training.max_train_epochs (e.g. 10) or training.max_train_steps",
        )


@_check
def check_sampling(job: TrainingJob) -> Iterator[Problem]:
    s = job.sampling
    if s.sample_every_n_epochs is not None and s.sample_every_n_steps is not None:
        yield Problem(
            "sampling.sample_every_n_steps",
            "both sample_every_n_epochs and sample_every_n_steps are set; sd-scripts ignores "
            "the steps one",
            "keep one of them",
        )
    cadence = s.sample_every_n_epochs or s.sample_every_n_steps or s.sample_at_first
    if cadence and not s.prompts:
        yield Problem(
            "sampling.prompts",
            "sampling is scheduled but there are no prompts",
            'add [[sampling.prompts]] with prompt = "..." or remove the sample_every_* keys',
        )


# What sd-scripts' .txt prompt-file reader does with a line (library/train_util.py load_prompts
# and line_to_prompt_dict at the pinned commit; this is our own table, not its code): a line whose
# first character is "#" is skipped, the rest is stripped and split on " --", and every part, the
# prompt itself included, is matched case-insensitively (Python re) against these option starts.
_SD_PROMPT_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("w", r"\d", "width"),
    ("h", r"\d", "height"),
    ("d", r"\d", "seed"),
    ("s", r"\d", "steps"),
    ("l", r"[\d.]", "CFG scale"),
    ("g", r"[\d.]", "guidance scale"),
    ("n", r".", "negative prompt"),
    ("ss", r".", "sampler"),
    ("cn", r".", "ControlNet image"),
    ("ctr", r".", "CFG truncation ratio"),
    ("rcfg", r".", "renorm CFG"),
    ("fs", r".", "flow shift"),
)
_SD_OPTION_STARTS = tuple(
    (re.compile(f"{name} {value}", re.IGNORECASE), name, meaning)
    for name, value, meaning in _SD_PROMPT_OPTIONS
)
MAX_TORCH_SEED = 0xFFFF_FFFF_FFFF_FFFF
"""torch.manual_seed's upper bound; sd-scripts seeds each sample with it."""


def _prompt_text_problems(path: str, text: str, *, negative: bool) -> Iterator[Problem]:
    """Why sd-scripts would not read ``text`` back exactly from a rendered prompt line."""
    if "\n" in text or "\r" in text:
        yield Problem(
            path,
            "is not a single line; sd-scripts reads one prompt per line",
            "put it on one line",
        )
    if " --" in text:
        yield Problem(
            path,
            "contains ' --', where sd-scripts' prompt reader starts an option (--n, --w, ...); "
            "the rest of the text would be misread",
            "drop the space before '--' or the dashes (e.g. 'a--b' or 'a - b')",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # pydantic lets lone surrogates into `str | None` fields
        yield Problem(
            path,
            "contains a character that cannot be written as UTF-8 (a lone surrogate)",
            "remove it",
        )
    if negative:
        if text and not text.strip():
            yield Problem(
                path,
                "is only whitespace",
                'write a negative prompt, or "" for none',
            )
        return
    if not text.strip():
        yield Problem(
            path,
            "is blank; sd-scripts skips blank lines, so this sample would never be made",
            "write a prompt, or remove this entry",
        )
        return
    if text[0].isspace():
        yield Problem(
            path,
            "begins with whitespace, which sd-scripts strips from each prompt line",
            "remove the leading whitespace",
        )
    elif text.startswith("#"):
        yield Problem(
            path,
            "begins with '#', so sd-scripts would skip the whole line as a comment",
            "reword the start of the prompt (move the '#' later)",
        )
    for pattern, name, meaning in _SD_OPTION_STARTS:
        m = pattern.match(text)
        if m:
            yield Problem(
                path,
                f"begins with {m.group(0)!r}, which sd-scripts reads as its --{name} option "
                f"({meaning}), not as prompt text",
                "reword the start of the prompt (put another word first)",
            )
            break


@_check
def check_sample_prompts(job: TrainingJob) -> Iterator[Problem]:
    """Prompt texts and numbers that sd-scripts' prompt file would not carry exactly."""
    s = job.sampling
    holders: list[tuple[str, Any]] = [("sampling", s)]
    holders += [(f"sampling.prompts[{i}]", p) for i, p in enumerate(s.prompts)]
    for where, holder in holders:
        if holder is not s:
            yield from _prompt_text_problems(f"{where}.prompt", holder.prompt, negative=False)
        if holder.negative_prompt is not None:
            yield from _prompt_text_problems(
                f"{where}.negative_prompt", holder.negative_prompt, negative=True
            )
        for key in ("width", "height"):
            value = getattr(holder, key)
            if value is not None and value % 8:
                low = value - value % 8
                yield Problem(
                    f"{where}.{key}",
                    f"{value} is not a multiple of 8; sd-scripts rounds it down to {low}",
                    f"use {low} or {low + 8}",
                )
        if holder.seed is not None and holder.seed > MAX_TORCH_SEED:
            yield Problem(
                f"{where}.seed",
                f"{holder.seed} is above {MAX_TORCH_SEED}, the largest seed torch takes; "
                "sampling would fail",
                "use a smaller seed",
            )


@_check
def check_saving(job: TrainingJob) -> Iterator[Problem]:
    t = job.training
    if t.save_last_n_epochs is not None and t.save_every_n_epochs is None:
        yield Problem(
            "training.save_last_n_epochs",
            "save_last_n_epochs has no effect without save_every_n_epochs",
            "set training.save_every_n_epochs",
        )


# ----------------------------------------------------------------------------- precision and memory
@_check
def check_precision(job: TrainingJob) -> Iterator[Problem]:
    t = job.training
    if t.full_fp16 and t.full_bf16:
        yield Problem("training.full_bf16", "full_fp16 and full_bf16 are both on", "keep one")
    if t.full_fp16 and t.mixed_precision != "fp16":
        yield Problem(
            "training.full_fp16",
            f'full_fp16 needs mixed_precision = "fp16" (it is "{t.mixed_precision}")',
            'set training.mixed_precision = "fp16" or turn full_fp16 off',
        )
    if t.full_bf16 and t.mixed_precision != "bf16":
        yield Problem(
            "training.full_bf16",
            f'full_bf16 needs mixed_precision = "bf16" (it is "{t.mixed_precision}")',
            'set training.mixed_precision = "bf16" or turn full_bf16 off',
        )
    if t.fp8_base and t.mixed_precision == "no":
        yield Problem(
            "training.fp8_base",
            'fp8_base needs mixed_precision "fp16" or "bf16"',
            'set training.mixed_precision = "bf16" (or "fp16")',
        )


@_check
def check_caching(job: TrainingJob) -> Iterator[Problem]:
    t = job.training
    if t.cache_latents or t.cache_latents_to_disk:
        for where, opts in _caption_option_holders(job.dataset):
            for key in ("color_aug", "random_crop"):
                if getattr(opts, key):
                    yield Problem(
                        f"{where}.{key}",
                        f"{key} changes the image every step, so latents cannot be cached",
                        f"set training.cache_latents = false, or remove {key}",
                    )
    if t.cache_text_encoder_outputs:
        if not profile(job.model.family).caches_text_encoder_outputs:
            yield Problem(
                "training.cache_text_encoder_outputs",
                f"only SDXL can cache text-encoder outputs (family is {job.model.family})",
                "remove training.cache_text_encoder_outputs",
            )
        if not job.network.network_train_unet_only:
            yield Problem(
                "training.cache_text_encoder_outputs",
                "caching text-encoder outputs needs U-Net-only training",
                "set network.network_train_unet_only = true",
            )
        for where, opts in _caption_option_holders(job.dataset):
            for key in (
                "shuffle_caption",
                "caption_dropout_rate",
                "caption_tag_dropout_rate",
                "caption_dropout_every_n_epochs",
                "token_warmup_step",
            ):
                if getattr(opts, key):
                    yield Problem(
                        f"{where}.{key}",
                        f"{key} changes captions every step, so text-encoder outputs cannot be cached",
                        f"remove {key} or set training.cache_text_encoder_outputs = false",
                    )


def _caption_option_holders(ds: DatasetConfig) -> Iterator[tuple[str, object]]:
    for where, block in _blocks(ds):
        yield where, block
    for where, subset in ds.all_subsets():
        yield where, subset


@_check
def check_noise_and_loss(job: TrainingJob) -> Iterator[Problem]:
    t = job.training
    if t.adaptive_noise_scale is not None and t.noise_offset is None:
        yield Problem(
            "training.adaptive_noise_scale",
            "adaptive_noise_scale needs noise_offset",
            "set training.noise_offset (e.g. 0.05) or remove adaptive_noise_scale",
        )
    if t.scale_v_pred_loss_like_noise_pred and not job.model.v_parameterization:
        yield Problem(
            "training.scale_v_pred_loss_like_noise_pred",
            "only applies to v-prediction models",
            "set model.v_parameterization = true or remove it",
        )
    if (
        t.min_timestep is not None
        and t.max_timestep is not None
        and t.min_timestep >= t.max_timestep
    ):
        yield Problem(
            "training.min_timestep",
            f"min_timestep ({t.min_timestep}) must be below max_timestep ({t.max_timestep})",
            "lower min_timestep or raise max_timestep",
        )
    if t.log_with in ("tensorboard", "all") and t.logging_dir is None:
        yield Problem(
            "training.logging_dir",
            f'log_with = "{t.log_with}" needs a logging_dir',
            'set training.logging_dir (e.g. "logs")',
        )


# ----------------------------------------------------------------------------- dataset
@_check
def check_dataset_shape(job: TrainingJob) -> Iterator[Problem]:
    ds = job.dataset
    if not ds.subsets and not ds.datasets:
        yield Problem(
            "dataset.subsets",
            "no images: the dataset has no subsets",
            'add [[dataset.subsets]] with image_dir = "img/20_my style" (a <repeats>_<name> folder)',
        )
    if ds.subsets and ds.datasets:
        yield Problem(
            "dataset.datasets",
            "both dataset.subsets and dataset.datasets are set",
            "put the subsets inside one of the [[dataset.datasets]] entries",
        )
    groups = [("dataset.subsets", ds.subsets)] + [
        (f"dataset.datasets[{i}].subsets", b.subsets) for i, b in enumerate(ds.datasets)
    ]
    for where, subsets in groups:
        kinds = {s.kind for s in subsets}
        if len(kinds) > 1:
            yield Problem(
                where,
                "DreamBooth (image_dir) and fine-tuning (metadata_file) subsets are mixed in one "
                "dataset; sd-scripts refuses that",
                "move the fine-tuning subsets into their own [[dataset.datasets]] entry",
            )
        if subsets and all(isinstance(s, DreamBoothSubset) and s.is_reg for s in subsets):
            yield Problem(
                where,
                "every subset is a regularisation set (is_reg = true): nothing to learn from",
                "add a subset of training images",
            )
    # Subsets without their own repeat count take their [[dataset.datasets]] entry's, then
    # [dataset]'s (sd-scripts' subset > dataset > general defaults).
    with_defaults = [("dataset", ds.num_repeats, ds.subsets)] + [
        (
            f"dataset.datasets[{d}]",
            ds.num_repeats if b.num_repeats is None else b.num_repeats,
            b.subsets,
        )
        for d, b in enumerate(ds.datasets)
    ]
    for prefix, default_repeats, subsets in with_defaults:
        for i, s in enumerate(subsets):
            if not isinstance(s, DreamBoothSubset) or s.num_repeats is not None:
                continue
            where = f"{prefix}.subsets[{i}]"
            if s.effective_repeats is None and default_repeats is None:
                yield Problem(
                    f"{where}.num_repeats",
                    f"no repeat count: '{s.folder_name}' has no '<repeats>_' prefix",
                    f"set num_repeats (e.g. 10) or rename the folder to '10_{s.folder_name}'",
                )
            if s.effective_repeats == 0:
                yield Problem(
                    f"{where}.image_dir",
                    f"folder '{s.folder_name}' means 0 repeats: sd-scripts skips it silently",
                    "rename it with a repeat count of 1 or more, e.g. '10_name'",
                )


@_check
def check_buckets(job: TrainingJob) -> Iterator[Problem]:
    family = job.model.family
    step_multiple = profile(family).bucket_step
    ds = job.dataset
    for where, block in _blocks(ds):
        steps = block.bucket_reso_steps
        if steps is not None and steps % step_multiple:
            yield Problem(
                f"{where}.bucket_reso_steps",
                f"{steps} is not a multiple of {step_multiple}, which {family} requires",
                f"use {step_multiple} or another multiple of {step_multiple}",
            )
        res = block.resolution if block.resolution is not None else ds.resolution
        sides = (res, res) if isinstance(res, int) else res
        lo = block.min_bucket_reso if block.min_bucket_reso is not None else ds.min_bucket_reso
        hi = block.max_bucket_reso if block.max_bucket_reso is not None else ds.max_bucket_reso
        if lo is not None and lo > min(sides):
            yield Problem(
                f"{where}.min_bucket_reso",
                f"min_bucket_reso {lo} is above the resolution's short side {min(sides)}",
                f"set min_bucket_reso to {min(sides)} or less",
            )
        if hi is not None and hi < max(sides):
            yield Problem(
                f"{where}.max_bucket_reso",
                f"max_bucket_reso {hi} is below the resolution's long side {max(sides)}",
                f"set max_bucket_reso to {max(sides)} or more",
            )


# ----------------------------------------------------------------------------- network
@_check
def check_network(job: TrainingJob) -> Iterator[Problem]:
    n = job.network
    if n.network_train_unet_only and n.network_train_text_encoder_only:
        yield Problem(
            "network.network_train_text_encoder_only",
            "network_train_unet_only and network_train_text_encoder_only are both on",
            "keep one",
        )
    if isinstance(n, LoraNetwork):
        expected = profile(job.model.family).lora_blocks
        pairs = (("block_dims", "block_alphas"), ("conv_block_dims", "conv_block_alphas"))
        for dims_key, alphas_key in pairs:
            dims, alphas = getattr(n, dims_key), getattr(n, alphas_key)
            if dims is not None and len(dims) != expected:
                yield Problem(
                    f"network.{dims_key}",
                    f"{len(dims)} values; {job.model.family} has {expected} blocks",
                    f"give exactly {expected} values",
                )
            if alphas is not None and (dims is None or len(alphas) != len(dims)):
                yield Problem(
                    f"network.{alphas_key}",
                    f"{alphas_key} needs {dims_key} with the same number of values",
                    f"set {dims_key} and give both {expected} values",
                )
        if n.conv_alpha is not None and n.conv_dim is None:
            yield Problem(
                "network.conv_alpha", "conv_alpha without conv_dim", "set network.conv_dim"
            )
    if isinstance(n, DyLoraNetwork) and n.conv_dim is not None and n.conv_dim != n.network_dim:
        yield Problem(
            "network.conv_dim",
            f"DyLoRA needs conv_dim equal to network_dim ({n.network_dim})",
            f"set conv_dim = {n.network_dim} or remove it",
        )
    if isinstance(n, _Factorised) and n.dora_wd and n.bypass_mode:
        yield Problem(
            "network.bypass_mode",
            "dora_wd turns bypass mode off in LyCORIS; they cannot be combined",
            "turn one of them off",
        )


# ----------------------------------------------------------------------------- optimizer
# Arguments ScheduleFreeOptimizer offers that a schedulefree 1.4 class does not take
# (its __init__ signatures; sd-scripts passes optimizer_args as keyword arguments).
_SCHEDULEFREE_UNTAKEN: dict[str, tuple[str, ...]] = {
    "RAdamScheduleFree": ("warmup_steps",),
    "SGDScheduleFree": ("betas",),
}
_SCHEDULEFREE_FIX = {
    "warmup_steps": " (RAdamScheduleFree warms up by itself), or use AdamWScheduleFree",
    "betas": " (SGDScheduleFree takes momentum in extra_args), or use AdamWScheduleFree",
}


def _optimizer_arg(o: Any, key: str) -> tuple[str, Any]:
    """Where an optimizer argument is set and its value as sd-scripts gets it (None: not set).

    extra_args are rendered after the typed fields, and sd-scripts keeps the last ``key=value``.
    """
    if key in o.extra_args:
        return f"optimizer.extra_args.{key}", o.extra_args[key]
    return f"optimizer.{key}", getattr(o, key, None)


@_check
def check_optimizer(job: TrainingJob) -> Iterator[Problem]:
    o = job.optimizer
    adaptive = isinstance(o, ProdigyOptimizer | DAdaptOptimizer)
    if adaptive and o.learning_rate <= 0.1:
        yield Problem(
            "optimizer.learning_rate",
            f"{o.type} adapts its own step size and expects learning_rate around 1.0 "
            f"(got {o.learning_rate:g}); at this value it barely trains",
            "set optimizer.learning_rate = 1.0 (use d_coef to scale Prodigy)",
        )
    if adaptive and isinstance(job.network, _LoraPlus):
        n = job.network
        if n.loraplus_lr_ratio or n.loraplus_unet_lr_ratio or n.loraplus_text_encoder_lr_ratio:
            yield Problem(
                "network.loraplus_lr_ratio",
                f"LoRA+ ratios cannot be combined with {o.type}: it keeps one step size",
                "remove the loraplus_* ratios or use AdamW",
            )
    if isinstance(o, AdaFactorOptimizer) and o.relative_step is not False:
        s = job.scheduler
        if s.lr_warmup_steps:
            yield Problem(
                "scheduler.lr_warmup_steps",
                "Adafactor with relative_step (its default) does not take a warmup; sd-scripts "
                "raises an error",
                "set lr_warmup_steps = 0, or optimizer.relative_step = false",
            )
    if isinstance(o, AdaFactorOptimizer):
        # sd-scripts tests both by truth value (train_util.py:5049-5055).
        relative = _optimizer_arg(o, "relative_step")[1]
        where, warmup_init = _optimizer_arg(o, "warmup_init")
        if relative is not None and not relative and warmup_init:
            yield Problem(
                where,
                "Adafactor's warmup_init needs relative_step; with relative_step = false "
                "sd-scripts turns relative_step back on, ignoring learning_rate and the scheduler",
                "remove warmup_init (or set it to false), or set optimizer.relative_step = true",
            )
    if isinstance(o, ScheduleFreeOptimizer):
        for key in _SCHEDULEFREE_UNTAKEN.get(o.type, ()):
            where, value = _optimizer_arg(o, key)
            if value is not None:
                yield Problem(
                    where,
                    f"{o.type} (schedulefree 1.4, as sd-scripts pins it) takes no {key}; training "
                    "would stop with a TypeError",
                    f"remove {key}" + _SCHEDULEFREE_FIX[key],
                )
    s = job.scheduler
    if s.lr_scheduler == "constant" and s.lr_warmup_steps:
        yield Problem(
            "scheduler.lr_warmup_steps",
            'the "constant" schedule does not take a warmup; sd-scripts raises an error',
            'use lr_scheduler = "constant_with_warmup", or set lr_warmup_steps = 0',
        )
    if s.lr_scheduler == "cosine_with_min_lr" and s.lr_scheduler_min_lr_ratio is None:
        yield Problem(
            "scheduler.lr_scheduler_min_lr_ratio",
            "cosine_with_min_lr needs lr_scheduler_min_lr_ratio",
            "set it, e.g. 0.1",
        )
    if s.lr_scheduler == "warmup_stable_decay" and not s.lr_decay_steps:
        yield Problem(
            "scheduler.lr_decay_steps",
            "warmup_stable_decay needs lr_decay_steps",
            "set it, e.g. 0.1 (10% of the steps)",
        )
    if s.lr_scheduler == "piecewise_constant" and "step_rules" not in s.lr_scheduler_args:
        yield Problem(
            "scheduler.lr_scheduler_args",
            "piecewise_constant needs step_rules",
            'set lr_scheduler_args = { step_rules = "1:10,0.1" }',
        )


# ----------------------------------------------------------------------------- extra_args
def _modelled_keys() -> dict[str, str]:
    from .job import TrainingJob

    out: dict[str, str] = {}
    for section, field in TrainingJob.model_fields.items():
        ann = field.annotation
        for model in getattr(ann, "__args__", (ann,)):
            for key in getattr(model, "model_fields", {}):
                out.setdefault(key, section)
    return out


# sd-scripts arguments that carry credentials -> the environment variable the library that uses
# them reads by itself (wandb.login, huggingface_hub) when the argument is not given.
_SECRETS = {"wandb_api_key": "WANDB_API_KEY", "huggingface_token": "HF_TOKEN"}


@_check
def check_extra_args(job: TrainingJob) -> Iterator[Problem]:
    known = known_args(job.model.family)
    modelled = _modelled_keys()
    for key in job.extra_args:
        where = f"extra_args.{key}"
        if key in _SECRETS:
            yield Problem(
                where,
                "a secret in a job file would be written in clear into config.toml, job.json and "
                "the queue",
                f"remove it and set {_SECRETS[key]} in the environment instead (the trainer "
                "inherits it, and nothing records it)",
            )
        elif key in modelled and key not in ("extra_args",):
            yield Problem(
                where,
                f"'{key}' is part of the job format",
                f"set it as {modelled[key]}.{key} instead",
            )
        elif key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            yield Problem(
                where,
                f"sd-scripts has no argument '{key}' for {job.model.family}; it would silently "
                "ignore it",
                f"did you mean '{close[0]}'?"
                if close
                else "check the name against sd-scripts' --help",
            )
        elif key in (
            "config_file",
            "dataset_config",
            "output_config",
            "sample_prompts",
            "network_module",
            "network_args",
            "optimizer_args",
            "optimizer_type",
            "train_data_dir",
            "reg_data_dir",
            "in_json",
        ):
            yield Problem(where, f"'{key}' is written by kohya_orchestrator", "remove it")


# ----------------------------------------------------------------------------- warnings
@_warn
def warn_adaptive(job: TrainingJob) -> Iterator[Problem]:
    o = job.optimizer
    if o.type in ADAPTIVE_OPTIMIZERS:
        lrs = {lr for lr in (o.unet_lr, o.text_encoder_lr) if lr}
        if len(lrs) > 1 or (lrs and lrs != {o.learning_rate}):
            yield Problem(
                "optimizer.unet_lr",
                f"{o.type} uses only the first learning rate group; different unet_lr / "
                "text_encoder_lr have no effect",
                "remove unet_lr and text_encoder_lr (or set text_encoder_lr = 0 to freeze the TE)",
            )


@_warn
def warn_network(job: TrainingJob) -> Iterator[Problem]:
    n = job.network
    if isinstance(n, _Factorised) and n.conv_dim and n.preset in ("attn-mlp", "attn-only"):
        yield Problem(
            "network.conv_dim",
            f"preset '{n.preset}' trains no conv layers, so conv_dim is ignored",
            'remove conv_dim, or use preset = "kohya_orchestrator:full-sd15" (trains convs on SD1.5 '
            'with lycoris-lora 4.x, where the built-in "full" fails)',
        )
    if isinstance(n, IA3Network) and n.preset in (None, "ia3", "full"):
        yield Problem(
            "network.preset",
            "LyCORIS' built-in presets give IA3 nothing to train on SD1.5 with lycoris-lora 4.x "
            "(optimizer got an empty parameter list)",
            'leave network.preset unset: the default "kohya_orchestrator:ia3-sd15" targets '
            "attention k/v and the MLP output",
        )
    if type(n).__name__ == "LoHaNetwork" and getattr(n, "network_dim", 0) > 32:
        yield Problem(
            "network.network_dim",
            "LoHa above dim 32 is prone to NaN losses (LyCORIS guidance)",
            "use dim 32 or less, or lower the learning rate",
        )
    if n.network_train_unet_only and job.optimizer.text_encoder_lr:
        yield Problem(
            "optimizer.text_encoder_lr",
            "text_encoder_lr is set but only the U-Net is trained",
            "remove text_encoder_lr or network_train_unet_only",
        )


@_warn
def warn_model(job: TrainingJob) -> Iterator[Problem]:
    m = job.model
    if profile(m.family).warn_v_parameterization and m.v_parameterization:
        yield Problem(
            "model.v_parameterization",
            "SD 1.5 models predict noise, not v",
            "remove it unless your model is a v-prediction fine-tune",
        )
    if not profile(m.family).uses_clip_skip and m.clip_skip is not None:
        yield Problem("model.clip_skip", "SDXL ignores clip_skip", "remove model.clip_skip")


@_warn
def warn_cadence(job: TrainingJob) -> Iterator[Problem]:
    t, s = job.training, job.sampling
    if t.max_train_epochs and t.save_every_n_epochs and t.save_every_n_epochs >= t.max_train_epochs:
        yield Problem(
            "training.save_every_n_epochs",
            f"saving every {t.save_every_n_epochs} epochs in a {t.max_train_epochs}-epoch run keeps "
            "only the final file, nothing to compare",
            "save every 1-2 epochs to pick the best epoch by eye",
        )
    if s.prompts and not (s.sample_every_n_epochs or s.sample_every_n_steps or s.sample_at_first):
        yield Problem(
            "sampling.sample_every_n_epochs",
            "there are prompts but no sampling cadence, so no samples will be made",
            "set sampling.sample_every_n_epochs (e.g. 1)",
        )
    if s.prompts and not t.save_every_n_epochs and not t.save_every_n_steps:
        yield Problem(
            "training.save_every_n_epochs",
            "samples are made but only the final checkpoint is saved",
            "set training.save_every_n_epochs to keep the epochs you compare",
        )


@_warn
def warn_dataset(job: TrainingJob) -> Iterator[Problem]:
    for where, s in job.dataset.all_subsets():
        if isinstance(s, FineTuningSubset):
            continue
        if s.class_tokens is None and s.effective_class_tokens and s.num_repeats is None:
            continue
        if s.num_repeats is not None and s.effective_repeats is not None:
            from .dataset import parse_repeats_folder

            parsed = parse_repeats_folder(s.folder_name)
            if parsed and parsed[0] != s.num_repeats:
                yield Problem(
                    f"{where}.num_repeats",
                    f"num_repeats = {s.num_repeats} but the folder says {parsed[0]} "
                    f"('{s.folder_name}'); num_repeats wins",
                    "make them agree to avoid confusion",
                )
