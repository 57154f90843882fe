"""Rules on ``[optimizer]`` and ``[scheduler]``: arguments each optimizer and schedule takes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...errors import Problem
from ..network import _LoraPlus
from ..optimizer import (
    ADAPTIVE_OPTIMIZERS,
    AdaFactorOptimizer,
    DAdaptOptimizer,
    ProdigyOptimizer,
    ScheduleFreeOptimizer,
)
from .base import JobView

__all__ = ["check_optimizer", "warn_adaptive"]


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


def _has_equals(value: Any) -> bool:
    if isinstance(value, str):
        return "=" in value
    if isinstance(value, list | tuple):
        return any(_has_equals(v) for v in value)
    return False


def _split_on_equals(job: JobView) -> Iterator[Problem]:
    """sd-scripts reads ``optimizer_args`` and ``lr_scheduler_args`` with ``arg.split("=")``
    (train_util.py), so a value holding ``=`` stops it with "too many values to unpack"."""
    sections = (
        ("optimizer.extra_args", job.optimizer.extra_args),
        ("scheduler.lr_scheduler_args", job.scheduler.lr_scheduler_args),
    )
    for where, args in sections:
        for key, value in args.items():
            if _has_equals(value):
                yield Problem(
                    f"{where}.{key}",
                    f"the value {value!r} holds '=': sd-scripts splits these arguments on every "
                    "'=' and stops",
                    "write the value without '='",
                )


def check_optimizer(job: JobView) -> Iterator[Problem]:
    yield from _split_on_equals(job)
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
    if job.scheduler.lr_scheduler == "adafactor":
        # train_util.get_scheduler_fix asserts the Adafactor optimizer and reads the initial LR from
        # "adafactor:<lr>", which sd-scripts writes itself only with relative_step on (5077-5079).
        if not isinstance(o, AdaFactorOptimizer):
            yield Problem(
                "scheduler.lr_scheduler",
                f"the adafactor schedule works only with the AdaFactor optimizer, not {o.type} "
                "(sd-scripts stops on an assertion)",
                'use optimizer.type = "AdaFactor", or another lr_scheduler',
            )
        elif _optimizer_arg(o, "relative_step")[1] is False:
            yield Problem(
                "scheduler.lr_scheduler",
                "the adafactor schedule needs Adafactor's relative_step: with relative_step = "
                "false sd-scripts stops reading its initial LR (IndexError)",
                "remove relative_step = false, or use another lr_scheduler (constant_with_warmup)",
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
    if s.lr_scheduler == "piecewise_constant" and s.lr_warmup_steps:
        yield Problem(
            "scheduler.lr_warmup_steps",
            "piecewise_constant takes no warmup: sd-scripts ignores lr_warmup_steps with it",
            "set lr_warmup_steps = 0, or write the warmup as step_rules",
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


def warn_adaptive(job: JobView) -> Iterator[Problem]:
    o = job.optimizer
    if o.type in ADAPTIVE_OPTIMIZERS:
        te = o.text_encoder_lr if isinstance(o.text_encoder_lr, list) else [o.text_encoder_lr]
        lrs = {lr for lr in (o.unet_lr, *te) if lr}
        if len(lrs) > 1 or (lrs and lrs != {o.learning_rate}):
            yield Problem(
                "optimizer.unet_lr",
                f"{o.type} uses only the first learning rate group; different unet_lr / "
                "text_encoder_lr have no effect",
                "remove unet_lr and text_encoder_lr (or set text_encoder_lr = 0 to freeze the TE)",
            )
