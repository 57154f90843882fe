"""`[network]`: what to train. A discriminated union on ``algo``.

``lora`` is sd-scripts' own ``networks.lora`` (LoRA-LierLa; with ``conv_dim`` LoRA-C3Lier, the
LoCon-style variant). Every other algo goes through LyCORIS (``lycoris.kohya``), which reads its
settings from ``network_args`` strings (ly:lycoris/kohya.py). Each algo accepts only the arguments it
uses: an IA3 job with a ``network_dim`` is an error, not a silently ignored value.

Defaults follow LyCORIS' own guidance (ly:docs/Algo-List.md, ly:docs/Guidelines.md) and are chosen
so that ``network = {algo = "..."}`` alone trains on every lycoris-lora version in the
compatibility table (kohya_orchestrator/environment/lycoris_table.py, docs/networks.md):

- every LyCORIS algo defaults to ``preset = "attn-mlp"`` (LyCORIS' advice "in most cases"; the
  preset LyCORIS picks when none is given, ``full``, fails on SD1/SD2 with lycoris-lora 4.x);
  IA3 defaults to the preset file kohya_orchestrator ships, ``kohya_orchestrator:ia3-sd15``;
- rank and alpha: LoRA/LoCon dim <= 64 with alpha 1 to dim/2 (16/8 here), LoHa dim <= 32
  (8/4), LoKr either small (``factor = -1``) or "full dimension" (dim 10000, factor 4-8, alpha
  ignored; 10000/1/8 here), DyLoRA a large dim with alpha dim/4 to dim (32/16);
- learning rates (set in ``[optimizer]``): about 1e-4 to 2e-4 for the low-rank algos, 5e-3 to
  1e-2 for IA3, about 2e-6 for ``full``, 1.0 with Prodigy/D-Adaptation.

Rank and alpha, when a result disappoints (the update is scaled by alpha/dim): if it underfits
(details are not learned), raise the rank, or try LoKr with a low factor (4-8) at full dimension;
if it overfits (the training images' style leaks, poses are hard to change), lower the rank, or
use LoHa, LoKr with a large factor, or IA3. Alpha acts like a learning-rate multiplier: with alpha
fixed at 1 a higher rank learns *less* per step, with alpha = dim/2 it does not.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from .base import StrictModel

__all__ = [
    "BoftNetwork",
    "DiagOftNetwork",
    "DyLoraNetwork",
    "FullNetwork",
    "IA3Network",
    "LoConNetwork",
    "LoHaNetwork",
    "LoKrNetwork",
    "LoraNetwork",
    "Network",
    "NETWORK_MODELS",
    "ALGOS",
    "LYCORIS_ONLY",
    "LYCORIS_BUILTIN_PRESETS",
    "SHIPPED_PRESET_PREFIX",
    "SHIPPED_LYCORIS_PRESETS",
    "native_module",
    "shipped_preset_filename",
    "shipped_preset_name",
]

ALGOS = ("lora", "locon", "loha", "lokr", "ia3", "dylora", "full", "diag-oft", "boft")

LYCORIS_BUILTIN_PRESETS = (
    "full",
    "full-lin",
    "attn-mlp",
    "attn-only",
    "unet-only",
    "unet-transformer-only",
    "unet-convblock-only",
    "ia3",
)

SHIPPED_PRESET_PREFIX = "kohya_orchestrator:"
"""A ``preset`` starting with this names a LyCORIS preset file shipped with kohya_orchestrator."""

SHIPPED_LYCORIS_PRESETS = ("ia3-sd15", "full-sd15")
"""The files in ``kohya_orchestrator/lycoris_presets/`` (``<name>.toml``), without the suffix."""


def shipped_preset_name(preset: str | None) -> str | None:
    """``'ia3-sd15'`` for ``'kohya_orchestrator:ia3-sd15'``; None for any other preset."""
    if preset is None or not preset.startswith(SHIPPED_PRESET_PREFIX):
        return None
    return preset[len(SHIPPED_PRESET_PREFIX) :]


def _looks_like_preset_file(preset: str) -> bool:
    """A preset LyCORIS reads as a file: a TOML path (a built-in name never has a suffix or slash)."""
    if preset in LYCORIS_BUILTIN_PRESETS:
        return True
    return preset.lower().endswith(".toml") or "/" in preset or "\\" in preset


def shipped_preset_filename(preset: str) -> str:
    """The name the copy of a shipped preset file gets beside the rendered config."""
    name = shipped_preset_name(preset) or preset
    return f"lycoris-{name}.toml"


Dim = Annotated[
    int, Field(ge=1, le=100000, description="Rank of the linear layers (--network_dim).")
]
Alpha = Annotated[
    float, Field(gt=0, description="Alpha; the update is scaled by alpha/dim (--network_alpha).")
]
Dropout = Annotated[float | None, Field(ge=0.0, lt=1.0)]


class _NetworkCommon(StrictModel):
    """Settings every network type shares (sd-scripts' own arguments, not network_args)."""

    @field_validator("algo", mode="before", check_fields=False)
    @classmethod
    def _lower_algo(cls, v: Any) -> Any:
        # LyCORIS lower-cases algo names (ly:lycoris/kohya.py:47)
        return v.lower() if isinstance(v, str) else v

    network_weights: Annotated[
        str | None,
        Field(min_length=1, description="Start from these weights (--network_weights)."),
    ] = None
    network_train_unet_only: Annotated[
        bool, Field(description="Train the U-Net only (--network_train_unet_only).")
    ] = False
    network_train_text_encoder_only: Annotated[
        bool, Field(description="Train the text encoder only (--network_train_text_encoder_only).")
    ] = False
    scale_weight_norms: Annotated[
        float | None, Field(gt=0, description="Max-norm regularisation (--scale_weight_norms).")
    ] = None


class _LoraPlus(StrictModel):
    loraplus_lr_ratio: Annotated[
        float | None, Field(gt=0, description="LoRA+: LR of the up matrices × ratio (paper: 16).")
    ] = None
    loraplus_unet_lr_ratio: Annotated[
        float | None, Field(gt=0, description="LoRA+ ratio for the U-Net only.")
    ] = None
    loraplus_text_encoder_lr_ratio: Annotated[
        float | None, Field(gt=0, description="LoRA+ ratio for the text encoder only.")
    ] = None


class LoraNetwork(_NetworkCommon, _LoraPlus):
    """sd-scripts' networks.lora. With conv_dim it also trains 3x3 convs (LoRA-C3Lier, LoCon-style)."""

    algo: Literal["lora"] = "lora"
    network_dim: Dim = 16
    network_alpha: Alpha = 8.0
    conv_dim: Annotated[
        int | None, Field(ge=1, description="Rank for 3x3 convs; enables C3Lier (network_args).")
    ] = None
    conv_alpha: Annotated[float | None, Field(gt=0, description="Alpha for 3x3 convs.")] = None
    network_dropout: Annotated[
        Dropout, Field(description="Neuron dropout (--network_dropout).")
    ] = None
    rank_dropout: Annotated[Dropout, Field(description="Per-rank dropout (network_args).")] = None
    module_dropout: Annotated[
        Dropout, Field(description="Skip a module with this probability.")
    ] = None
    block_dims: Annotated[
        list[int] | None, Field(description="Per-block ranks: 25 values for SD1/2, 23 for SDXL.")
    ] = None
    block_alphas: Annotated[list[float] | None, Field(description="Per-block alphas.")] = None
    conv_block_dims: Annotated[list[int] | None, Field(description="Per-block 3x3 ranks.")] = None
    conv_block_alphas: Annotated[list[float] | None, Field(description="Per-block 3x3 alphas.")] = (
        None
    )
    down_lr_weight: Annotated[
        str | None, Field(description="Per-block LR weights (comma floats or e.g. 'sine+.5').")
    ] = None
    mid_lr_weight: Annotated[str | None, Field(description="Mid-block LR weight(s).")] = None
    up_lr_weight: Annotated[str | None, Field(description="Up-block LR weights.")] = None
    block_lr_zero_threshold: Annotated[
        float | None, Field(ge=0, description="Blocks at or below this LR weight are not created.")
    ] = None
    train_blocks: Annotated[
        str | None,
        Field(
            min_length=1,
            description="FLUX.1/Chroma: all, single or double; Lumina: all, transformer, "
            "refiners, noise_refiner or context_refiner (network_args).",
        ),
    ] = None
    split_qkv: Annotated[
        bool, Field(description="FLUX.1/SD3/Lumina/HunyuanImage: separate q, k, v LoRAs.")
    ] = False
    train_t5xxl: Annotated[bool, Field(description="FLUX.1/SD3: also train T5-XXL.")] = False
    train_llm_adapter: Annotated[bool, Field(description="Anima: also train the LLM adapter.")] = (
        False
    )


class _LycorisCommon(_NetworkCommon, _LoraPlus):
    """Settings every LyCORIS algo reads (ly:lycoris/kohya.py)."""

    @field_validator("preset", check_fields=False)
    @classmethod
    def _check_shipped_preset(cls, v: str | None) -> str | None:
        name = shipped_preset_name(v)
        if name is not None and name not in SHIPPED_LYCORIS_PRESETS:
            close = difflib.get_close_matches(name, SHIPPED_LYCORIS_PRESETS, n=1)
            known = ", ".join(SHIPPED_PRESET_PREFIX + n for n in SHIPPED_LYCORIS_PRESETS)
            mean = f"did you mean '{SHIPPED_PRESET_PREFIX}{close[0]}'? " if close else ""
            raise ValueError(
                f"kohya_orchestrator ships no LyCORIS preset '{name}'; {mean}known: {known}"
            )
        if name is None and v is not None and not _looks_like_preset_file(v):
            # LyCORIS reads any other name as a file path and stops with a bare AssertionError.
            close = difflib.get_close_matches(
                v.lower().replace("_", "-"), LYCORIS_BUILTIN_PRESETS, n=1, cutoff=0.5
            )
            mean = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(
                f"LyCORIS has no built-in preset '{v}'; {mean}built-in: "
                f"{', '.join(LYCORIS_BUILTIN_PRESETS)}; a preset file is a path ending in .toml"
            )
        return v

    preset: Annotated[
        str | None,
        Field(
            min_length=1,
            description="LyCORIS preset (network_args preset=): a built-in name (attn-mlp, "
            "full, full-lin, attn-only, unet-only, ...), the path of a preset TOML, or a preset "
            "file kohya_orchestrator ships ('kohya_orchestrator:full-sd15': full with convs, for "
            "lycoris-lora 4.x on SD1/SD2). Defaults to attn-mlp: LyCORIS' own default 'full' "
            "fails on SD1/SD2 with lycoris-lora 4.x (duplicated lora name).",
        ),
    ] = "attn-mlp"
    network_dropout: Annotated[Dropout, Field(description="Neuron dropout (dropout=).")] = None
    rank_dropout: Annotated[Dropout, Field(description="Per-rank dropout.")] = None
    module_dropout: Annotated[
        Dropout, Field(description="Skip a module with this probability.")
    ] = None
    train_norm: Annotated[bool, Field(description="Also train norm layers.")] = False


class _Factorised(_LycorisCommon):
    """LoCon / LoHa / LoKr: low-rank factorisations with optional conv layers."""

    preset: Annotated[
        str,
        Field(
            min_length=1,
            description="LyCORIS preset: a built-in name, a preset TOML path, or a file "
            "kohya_orchestrator ships. Defaults to attn-mlp (attention and MLP layers, no convs), "
            "LyCORIS' advice for most cases and a preset that trains SD1.5 on every lycoris-lora "
            "version measured. For conv layers use 'kohya_orchestrator:full-sd15' with conv_dim "
            "('full' fails on SD1/SD2 with lycoris-lora 4.x: duplicated lora name).",
        ),
    ] = "attn-mlp"
    conv_dim: Annotated[
        int | None,
        Field(
            ge=1,
            description="Rank for k>1 convs (conv_dim=); LyCORIS defaults it to network_dim. "
            "Only used with a preset that trains convs (full, kohya_orchestrator:full-sd15).",
        ),
    ] = None
    conv_alpha: Annotated[
        float | None, Field(gt=0, description="Alpha for convs (conv_alpha=).")
    ] = None
    use_tucker: Annotated[
        bool, Field(description="Tucker decomposition for k>1 convs (use_tucker=).")
    ] = False
    use_scalar: Annotated[bool, Field(description="Train an extra scalar per module.")] = False
    dora_wd: Annotated[
        bool, Field(description="DoRA weight decomposition; wants a smaller LR (dora_wd=).")
    ] = False
    wd_on_output: Annotated[
        bool,
        Field(
            description="With dora_wd: decompose the weight on the output axis (wd_on_output=). "
            "LyCORIS defaults it to true; kohya_orchestrator renders false, the one layout "
            "AUTOMATIC1111, ComfyUI and Forge all apply exactly (A1111 applies true 6-11x off)."
        ),
    ] = False
    rs_lora: Annotated[bool, Field(description="Rank-stabilised scaling (rs_lora=).")] = False
    bypass_mode: Annotated[
        bool, Field(description="Bypass mode for quantised base layers; not with dora_wd.")
    ] = False


Implementation = Literal["lycoris", "sd-scripts"]


class _Native:
    """LoHa and LoKr have a second implementation: sd-scripts' own ``networks.loha`` /
    ``networks.lokr`` (after 0.10.1; SDXL and Anima only), which needs no lycoris-lora."""

    implementation: Annotated[
        Implementation,
        Field(
            description="'lycoris': LyCORIS' lycoris.kohya (needs lycoris-lora); 'sd-scripts': "
            "sd-scripts' own networks.loha / networks.lokr (sd-scripts newer than 0.10.1; "
            "SDXL and Anima only; reads conv_dim, conv_alpha, use_tucker, rank_dropout, "
            "module_dropout, factor and LoRA+ ratios)."
        ),
    ] = "lycoris"


def native_module(network: object) -> str | None:
    """``networks.loha`` for a LoHa/LoKr job on sd-scripts' own implementation; else None."""
    if getattr(network, "implementation", "lycoris") != "sd-scripts":
        return None
    return f"networks.{getattr(network, 'algo', '')}"


# LyCORIS settings that sd-scripts' own networks.loha / networks.lokr do not read (their
# create_network reads conv_dim, conv_alpha, use_tucker, rank_dropout, module_dropout, factor,
# include/exclude patterns and the LoRA+ ratios).
LYCORIS_ONLY = (
    "use_scalar", "dora_wd", "wd_on_output", "rs_lora", "bypass_mode", "train_norm",
    "decompose_both", "full_matrix", "unbalanced_factorization",
)  # fmt: skip


class LoConNetwork(_Factorised):
    """LyCORIS LoCon: LoRA on linear and conv layers."""

    algo: Literal["locon"] = "locon"
    network_dim: Dim = 16
    network_alpha: Alpha = 8.0


class LoHaNetwork(_Native, _Factorised):
    """LyCORIS LoHa: Hadamard product of two low-rank pairs. LyCORIS advises dim <= 32."""

    algo: Literal["loha"] = "loha"
    network_dim: Dim = 8
    network_alpha: Alpha = 4.0


class LoKrNetwork(_Native, _Factorised):
    """LyCORIS LoKr: Kronecker product. Small: factor -1; large: factor 4-8 with a huge dim."""

    algo: Literal["lokr"] = "lokr"
    network_dim: Dim = 10000
    network_alpha: Alpha = 1.0
    factor: Annotated[
        int,
        Field(description="Kronecker factor; -1 picks the smallest decomposition (factor=)."),
    ] = 8
    decompose_both: Annotated[
        bool,
        Field(
            description="Also decompose the left matrix. Rendered only when true: LyCORIS reads "
            "the string 'False' as true (decompose_both=)."
        ),
    ] = False
    full_matrix: Annotated[bool, Field(description="Use a full matrix for w2 (full_matrix=).")] = (
        False
    )
    unbalanced_factorization: Annotated[
        bool, Field(description="Swap the factor sides (unbalanced_factorization=).")
    ] = False


class IA3Network(_LycorisCommon):
    """LyCORIS (IA)^3: learned scaling vectors, tiny files, high LR (5e-3 to 1e-2). No dim/alpha.

    Needs lycoris-lora 4.x; the default preset is a file kohya_orchestrator ships (docs/networks.md).
    """

    # 3.x has no ia3 in its kohya entry (KeyError: 'ia3'), and LyCORIS' built-in ia3 preset
    # matches no SD module (re.match from the start of the path): "optimizer got an empty
    # parameter list". The shipped file names the IA3 paper's layers as fnmatch patterns.

    algo: Literal["ia3"] = "ia3"
    preset: Annotated[
        str | None,
        Field(
            min_length=1,
            description="LyCORIS preset (network_args preset=). Defaults to "
            "'kohya_orchestrator:ia3-sd15', a preset file shipped with kohya_orchestrator: "
            "LyCORIS' built-in 'ia3' preset matches no module of SD1.5 with lycoris-lora 4.x.",
        ),
    ] = "kohya_orchestrator:ia3-sd15"


class DyLoraNetwork(_LycorisCommon):
    """LyCORIS DyLoRA: trains all ranks up to dim at once."""

    algo: Literal["dylora"] = "dylora"
    network_dim: Dim = 32
    network_alpha: Alpha = 16.0
    block_size: Annotated[int, Field(ge=1, description="Rows updated per step (block_size=).")] = 4
    conv_dim: Annotated[int | None, Field(ge=1, description="Rank for convs (conv_dim=).")] = None
    conv_alpha: Annotated[float | None, Field(gt=0, description="Alpha for convs.")] = None


class FullNetwork(_LycorisCommon):
    """LyCORIS full: native fine-tuning of the targeted layers (no dim/alpha; LR ~2e-6)."""

    algo: Literal["full"] = "full"


class DiagOftNetwork(_LycorisCommon):
    """LyCORIS Diag-OFT: orthogonal fine-tuning; dim is the block size."""

    algo: Literal["diag-oft"] = "diag-oft"
    network_dim: Annotated[int, Field(ge=1, description="Block size (--network_dim).")] = 32
    constraint: Annotated[float | None, Field(ge=0, description="COFT constraint.")] = None
    rescaled: Annotated[bool, Field(description="Rescaled OFT (rescaled=).")] = False


class BoftNetwork(_LycorisCommon):
    """LyCORIS BOFT: butterfly orthogonal fine-tuning; dim is the block size."""

    algo: Literal["boft"] = "boft"
    network_dim: Annotated[int, Field(ge=1, description="Block size (--network_dim).")] = 32
    constraint: Annotated[float | None, Field(ge=0, description="COFT constraint.")] = None
    rescaled: Annotated[bool, Field(description="Rescaled OFT (rescaled=).")] = False


def _algo(v: Any) -> str:
    raw = v.get("algo", "lora") if isinstance(v, dict) else getattr(v, "algo", "lora")
    return str(raw).lower() if isinstance(raw, str) else str(raw)


Network = Annotated[
    Annotated[LoraNetwork, Tag("lora")]
    | Annotated[LoConNetwork, Tag("locon")]
    | Annotated[LoHaNetwork, Tag("loha")]
    | Annotated[LoKrNetwork, Tag("lokr")]
    | Annotated[IA3Network, Tag("ia3")]
    | Annotated[DyLoraNetwork, Tag("dylora")]
    | Annotated[FullNetwork, Tag("full")]
    | Annotated[DiagOftNetwork, Tag("diag-oft")]
    | Annotated[BoftNetwork, Tag("boft")],
    Discriminator(
        _algo, custom_error_type="unknown_algo", custom_error_message="unknown network algo"
    ),
]
"""A network section; ``algo`` picks the member (``lora`` when left out)."""

NETWORK_MODELS: dict[str, type[_NetworkCommon]] = {
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
"""``algo`` -> its section's model (the keys each network module reads)."""
