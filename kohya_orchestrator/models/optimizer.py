"""`[optimizer]` (a union on ``type``) and `[scheduler]`.

sd-scripts passes ``optimizer_args`` through ``ast.literal_eval`` (train_util.py:4857-4874), so
every typed argument here is rendered as a Python literal: ``betas=(0.9, 0.999)``, ``decouple=True``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Strict, Tag, field_validator

from .base import StrictModel

__all__ = [
    "ADAPTIVE_OPTIMIZERS",
    "KNOWN_OPTIMIZERS",
    "AdaFactorOptimizer",
    "AdamWOptimizer",
    "CustomOptimizer",
    "DAdaptOptimizer",
    "LionOptimizer",
    "Optimizer",
    "ProdigyOptimizer",
    "SGDNesterovOptimizer",
    "ScheduleFreeOptimizer",
    "SchedulerConfig",
]

ArgValue = bool | int | float | str | list[float] | list[int] | list[str]
Betas = Annotated[tuple[float, float], Strict(False)]


class _OptimizerCommon(StrictModel):
    learning_rate: Annotated[
        float, Field(gt=0, description="Base learning rate (--learning_rate).")
    ] = 1e-4
    unet_lr: Annotated[
        float | None, Field(ge=0, description="U-Net LR; defaults to learning_rate (--unet_lr).")
    ] = None
    text_encoder_lr: Annotated[
        Annotated[float, Field(ge=0)]
        | Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1, max_length=3)]
        | None,
        Field(
            description="Text-encoder LR; 0 freezes it (--text_encoder_lr). FLUX.1 takes one per "
            "text encoder [CLIP-L, T5], SD3 [CLIP-L, CLIP-G, T5]."
        ),
    ] = None
    max_grad_norm: Annotated[
        float | None,
        Field(
            ge=0, description="Gradient clipping; 0 turns it off (--max_grad_norm; default 1.0)."
        ),
    ] = None
    extra_args: Annotated[
        dict[str, ArgValue],
        Field(description="More optimizer arguments passed as-is (optimizer_args k=v)."),
    ] = {}

    @field_validator("type", mode="before", check_fields=False)
    @classmethod
    def _canonical_type(cls, v: Any) -> Any:
        # sd-scripts matches optimizer names case-insensitively (train_util.py:4846).
        if isinstance(v, str) and "." not in v:
            return _CANONICAL.get(v.lower(), v)
        return v


class AdamWOptimizer(_OptimizerCommon):
    """AdamW and its bitsandbytes variants."""

    type: Literal["AdamW", "AdamW8bit", "PagedAdamW8bit", "PagedAdamW", "PagedAdamW32bit"] = "AdamW"
    weight_decay: Annotated[float | None, Field(ge=0, description="Decoupled weight decay.")] = None
    betas: Annotated[Betas | None, Field(description="Adam betas [b1, b2].")] = None
    eps: Annotated[float | None, Field(gt=0, description="Adam epsilon.")] = None


class LionOptimizer(_OptimizerCommon):
    """Lion (lion-pytorch) and its 8-bit variants. Use an LR 3-10x lower than AdamW."""

    type: Literal["Lion", "Lion8bit", "PagedLion8bit"]
    weight_decay: Annotated[float | None, Field(ge=0, description="Weight decay.")] = None
    betas: Annotated[Betas | None, Field(description="Lion betas [b1, b2].")] = None


class SGDNesterovOptimizer(_OptimizerCommon):
    """SGD with Nesterov momentum."""

    type: Literal["SGDNesterov", "SGDNesterov8bit"]
    momentum: Annotated[
        float | None,
        Field(gt=0, lt=1, description="Momentum (default 0.9; torch's Nesterov SGD needs > 0)."),
    ] = None
    weight_decay: Annotated[float | None, Field(ge=0, description="Weight decay.")] = None


ADAPTIVE_OPTIMIZERS = (
    "DAdaptation",
    "DAdaptAdamPreprint",
    "DAdaptAdaGrad",
    "DAdaptAdam",
    "DAdaptAdan",
    "DAdaptAdanIP",
    "DAdaptLion",
    "DAdaptSGD",
    "Prodigy",
)


class DAdaptOptimizer(_OptimizerCommon):
    """D-Adaptation family: finds its own step size. Use learning_rate 1.0 and one LR group."""

    type: Literal[
        "DAdaptation",
        "DAdaptAdamPreprint",
        "DAdaptAdaGrad",
        "DAdaptAdam",
        "DAdaptAdan",
        "DAdaptAdanIP",
        "DAdaptLion",
        "DAdaptSGD",
    ]
    learning_rate: Annotated[float, Field(gt=0, description="Keep at 1.0 (--learning_rate).")] = 1.0
    decouple: Annotated[bool | None, Field(description="AdamW-style weight decay.")] = None
    weight_decay: Annotated[float | None, Field(ge=0, description="Weight decay.")] = None
    betas: Annotated[Betas | None, Field(description="Betas [b1, b2].")] = None
    d0: Annotated[float | None, Field(gt=0, description="Initial D estimate.")] = None
    growth_rate: Annotated[float | None, Field(gt=0, description="Max growth of D per step.")] = (
        None
    )
    use_bias_correction: Annotated[bool | None, Field(description="Adam bias correction.")] = None


class ProdigyOptimizer(_OptimizerCommon):
    """Prodigy (prodigyopt): adaptive, learning_rate 1.0. The presets carry the recommended args."""

    type: Literal["Prodigy"]
    learning_rate: Annotated[float, Field(gt=0, description="Keep at 1.0 (--learning_rate).")] = 1.0
    d_coef: Annotated[
        float | None, Field(gt=0, description="Scales the adapted step (d_coef; 0.5-2).")
    ] = None
    decouple: Annotated[
        bool | None, Field(description="AdamW-style weight decay (recommended on).")
    ] = None
    weight_decay: Annotated[float | None, Field(ge=0, description="Weight decay, e.g. 0.01.")] = (
        None
    )
    use_bias_correction: Annotated[
        bool | None, Field(description="Adam bias correction (recommended on).")
    ] = None
    safeguard_warmup: Annotated[
        bool | None, Field(description="Safer D estimate during LR warmup (recommended on).")
    ] = None
    betas: Annotated[Betas | None, Field(description="Betas [b1, b2], e.g. [0.9, 0.99].")] = None
    d0: Annotated[float | None, Field(gt=0, description="Initial D estimate.")] = None
    growth_rate: Annotated[float | None, Field(gt=0, description="Max growth of D per step.")] = (
        None
    )


class AdaFactorOptimizer(_OptimizerCommon):
    """Adafactor (transformers). With relative_step on, sd-scripts ignores the LR scheduler."""

    type: Literal["AdaFactor"]
    relative_step: Annotated[
        bool | None, Field(description="Time-dependent LR; sd-scripts treats unset as true.")
    ] = None
    scale_parameter: Annotated[bool | None, Field(description="Scale LR by parameter RMS.")] = None
    warmup_init: Annotated[bool | None, Field(description="Warm-up initialisation.")] = None
    clip_threshold: Annotated[float | None, Field(gt=0, description="Update clipping.")] = None


class ScheduleFreeOptimizer(_OptimizerCommon):
    """Schedule-free optimizers: sd-scripts uses a dummy LR scheduler with them."""

    type: Literal["RAdamScheduleFree", "AdamWScheduleFree", "SGDScheduleFree"]
    weight_decay: Annotated[float | None, Field(ge=0, description="Weight decay.")] = None
    betas: Annotated[Betas | None, Field(description="Betas [b1, b2].")] = None
    warmup_steps: Annotated[int | None, Field(ge=0, description="Built-in warmup steps.")] = None


_CLASS_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")


class CustomOptimizer(_OptimizerCommon):
    """Any optimizer class by dotted path, e.g. pytorch_optimizer.CAME, with its args in extra_args."""

    type: Annotated[
        str,
        Field(
            description="A dotted class path such as 'pytorch_optimizer.CAME' (--optimizer_type)."
        ),
    ]

    @field_validator("type")
    @classmethod
    def _check_path(cls, v: str) -> str:
        if not _CLASS_PATH.match(v):
            raise ValueError(f"'{v}' is not a dotted class path like 'pytorch_optimizer.CAME'")
        return v


_FAMILIES: dict[str, str] = {}
for _model in (
    AdamWOptimizer,
    LionOptimizer,
    SGDNesterovOptimizer,
    DAdaptOptimizer,
    ProdigyOptimizer,
    AdaFactorOptimizer,
    ScheduleFreeOptimizer,
):
    for _name in _model.model_fields["type"].annotation.__args__:  # type: ignore[union-attr]
        _FAMILIES[_name.lower()] = _model.__name__
KNOWN_OPTIMIZERS: tuple[str, ...] = tuple(
    name
    for model in (
        AdamWOptimizer,
        LionOptimizer,
        SGDNesterovOptimizer,
        DAdaptOptimizer,
        ProdigyOptimizer,
        AdaFactorOptimizer,
        ScheduleFreeOptimizer,
    )
    for name in model.model_fields["type"].annotation.__args__  # type: ignore[union-attr]
)
"""Every optimizer name sd-scripts knows without a module path, in its own spelling."""
_CANONICAL: dict[str, str] = {n.lower(): n for n in KNOWN_OPTIMIZERS}


def optimizer_tag(v: Any) -> str:
    """Route a raw optimizer table to its model (sd-scripts matches the type case-insensitively)."""
    t = v.get("type", "AdamW") if isinstance(v, dict) else getattr(v, "type", "AdamW")
    if not isinstance(t, str):
        return "AdamWOptimizer"
    if "." in t:
        return "CustomOptimizer"
    return _FAMILIES.get(t.lower(), "unknown")


Optimizer = Annotated[
    Annotated[AdamWOptimizer, Tag("AdamWOptimizer")]
    | Annotated[LionOptimizer, Tag("LionOptimizer")]
    | Annotated[SGDNesterovOptimizer, Tag("SGDNesterovOptimizer")]
    | Annotated[DAdaptOptimizer, Tag("DAdaptOptimizer")]
    | Annotated[ProdigyOptimizer, Tag("ProdigyOptimizer")]
    | Annotated[AdaFactorOptimizer, Tag("AdaFactorOptimizer")]
    | Annotated[ScheduleFreeOptimizer, Tag("ScheduleFreeOptimizer")]
    | Annotated[CustomOptimizer, Tag("CustomOptimizer")],
    Discriminator(
        optimizer_tag,
        custom_error_type="unknown_optimizer",
        custom_error_message="unknown optimizer type",
    ),
]

SchedulerName = Literal[
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "warmup_stable_decay",
    "piecewise_constant",
    "adafactor",
]


def _ratio_or_steps(v: Any) -> Any:
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            return float(v.strip()[:-1]) / 100.0
        except ValueError:
            return v
    return v


class SchedulerConfig(StrictModel):
    """`[scheduler]`: the learning-rate schedule."""

    lr_scheduler: Annotated[SchedulerName, Field(description="Schedule name (--lr_scheduler).")] = (
        "constant"
    )
    lr_warmup_steps: Annotated[
        int | float,
        Field(
            ge=0,
            description="Warmup: an int is a number of steps, a float below 1 a fraction of all "
            "steps, '10%' a percentage (--lr_warmup_steps).",
        ),
    ] = 0
    lr_decay_steps: Annotated[
        int | float, Field(ge=0, description="Decay steps or fraction (warmup_stable_decay).")
    ] = 0
    lr_scheduler_num_cycles: Annotated[
        int | None, Field(ge=1, description="Hard restarts for cosine_with_restarts.")
    ] = None
    lr_scheduler_power: Annotated[
        float | None, Field(gt=0, description="Power of the polynomial schedule.")
    ] = None
    lr_scheduler_min_lr_ratio: Annotated[
        float | None, Field(ge=0, le=1, description="Floor for cosine_with_min_lr / wsd.")
    ] = None
    lr_scheduler_timescale: Annotated[
        int | None, Field(ge=1, description="Timescale of inverse_sqrt.")
    ] = None
    lr_scheduler_args: Annotated[
        dict[str, ArgValue], Field(description="Extra scheduler arguments (--lr_scheduler_args).")
    ] = {}

    @field_validator("lr_warmup_steps", "lr_decay_steps", mode="before")
    @classmethod
    def _percent(cls, v: Any) -> Any:
        return _ratio_or_steps(v)

    @field_validator("lr_warmup_steps", "lr_decay_steps")
    @classmethod
    def _check_fraction(cls, v: int | float) -> int | float:
        if isinstance(v, float) and v > 1.0:
            raise ValueError(
                f"{v} is a float, which sd-scripts reads as a fraction of all steps "
                f"({v:g} x the total); write {int(v)} for steps, or at most 1 ('100%') for a fraction"
            )
        return v
