"""The base model to train on: one section per family, told apart by ``family``.

Each family's section holds what its training script needs and users tune, under sd-scripts' own
argument names (``tests/e2e/test_family_oracle.py`` reads every one back with the script's own
parser). A field left unset is not written, so sd-scripts' default applies; the family's fixed
arguments (``v2`` for SD 2.x, ``model_type`` for Chroma) come from its profile.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from .base import StrictModel
from .family import DEFAULT_FAMILY, FamilyProfile, profile

__all__ = [
    "AnimaModel",
    "ChromaModel",
    "FluxModel",
    "HunyuanImageModel",
    "LuminaModel",
    "MODEL_SECTIONS",
    "ModelConfig",
    "PATH_FIELDS",
    "Sd2Model",
    "Sd3Model",
    "Sd15Model",
    "SdxlModel",
    "is_placeholder",
    "looks_like_hub_id",
    "model_section",
]

PATH_FIELDS: frozenset[str] = frozenset(
    {
        "pretrained_model_name_or_path", "vae", "tokenizer_cache_dir", "clip_l", "clip_g",
        "t5xxl", "ae", "gemma2", "text_encoder", "byt5", "qwen3",
        "t5_tokenizer_path",
    }
)  # fmt: skip
"""Fields that name files or folders: written absolute, checked to exist."""


def _path(what: str, arg: str) -> Any:
    return Field(min_length=1, description=f"{what} (sd-scripts: --{arg}).")


Path_ = str | None
Shift = Annotated[float | None, Field(gt=0)]
TokenLength = Annotated[int | None, Field(ge=1, le=4096)]
Weighting = Literal["sigma_sqrt", "logit_normal", "mode", "cosmap", "none", "uniform"]
Prediction = Literal["raw", "additive", "sigma_scaled"]
Sampling = Literal["sigma", "uniform", "sigmoid", "shift", "flux_shift"]
AttnMode = Literal["torch", "xformers", "flash", "sageattn", "sdpa"]


class _ModelBase(StrictModel):
    """What every family's section holds."""

    pretrained_model_name_or_path: Annotated[
        str,
        Field(
            min_length=1,
            description="Base checkpoint: a .safetensors/.ckpt file, a diffusers folder or (SD "
            "1.x/2.x/XL) a Hugging Face id (sd-scripts: --pretrained_model_name_or_path).",
        ),
    ]

    @property
    def profile(self) -> FamilyProfile:
        """The family's profile."""
        return profile(self.family)  # type: ignore[attr-defined]

    @property
    def v2(self) -> bool:
        """True for SD 2.x models (sd-scripts: --v2)."""
        return self.profile.v2

    @property
    def script(self) -> str:
        """The sd-scripts training script for this family."""
        return self.profile.script

    def sd_args(self) -> dict[str, Any]:
        """The section as sd-scripts arguments: the family's fixed ones, then every field set
        (None and False are left out: sd-scripts' flags are store_true)."""
        out: dict[str, Any] = {"pretrained_model_name_or_path": self.pretrained_model_name_or_path}
        out.update(self.profile.script_args)
        for key in type(self).model_fields:
            value = getattr(self, key)
            if key != "family" and value is not None and value is not False:
                out[key] = value
        return out

    def component_paths(self) -> dict[str, str]:
        """``model.<field>`` -> path for every path-valued field that is set."""
        return {
            f"model.{k}": getattr(self, k)
            for k in type(self).model_fields
            if k in PATH_FIELDS and getattr(self, k) is not None
        }


class _UNetModel(_ModelBase):
    """SD 1.x/2.x/XL: a U-Net with CLIP text encoders."""

    v_parameterization: Annotated[
        bool,
        Field(
            description="v-prediction model, e.g. SD 2.x 768-v or an SDXL v-pred fine-tune "
            "(sd-scripts: --v_parameterization)."
        ),
    ] = False
    clip_skip: Annotated[
        int | None,
        Field(
            ge=1,
            le=12,
            description="Use the output of the n-th last CLIP layer (sd-scripts: --clip_skip).",
        ),
    ] = None
    vae: Annotated[Path_, _path("A separate VAE file or folder", "vae")] = None
    tokenizer_cache_dir: Annotated[
        Path_, _path("Folder holding the tokenizers, for offline machines", "tokenizer_cache_dir")
    ] = None
    max_token_length: Annotated[
        Literal[75, 150, 225] | None,
        Field(
            description="Caption token limit: 75 (default), 150 or 225 (sd-scripts: --max_token_length)."
        ),
    ] = None
    no_half_vae: Annotated[
        bool,
        Field(
            description="Keep the VAE in fp32 (against NaN or black images with fp16; sd-scripts: --no_half_vae)."
        ),
    ] = False


class Sd15Model(_UNetModel):
    """`[model]` for Stable Diffusion 1.x (train_network.py)."""

    family: Annotated[Literal["sd15"], Field(description="Model family.")] = "sd15"


class Sd2Model(_UNetModel):
    """`[model]` for Stable Diffusion 2.x (train_network.py --v2)."""

    family: Annotated[Literal["sd2"], Field(description="Model family.")] = "sd2"


class SdxlModel(_UNetModel):
    """`[model]` for SDXL (sdxl_train_network.py)."""

    family: Annotated[Literal["sdxl"], Field(description="Model family.")] = "sdxl"
    disable_mmap_load_safetensors: Annotated[
        bool, Field(description="Read the checkpoint without mmap (faster under WSL).")
    ] = False


class _FlowModel(_ModelBase):
    """What every flow-matching (DiT) script adds alike."""

    weighting_scheme: Annotated[
        Weighting | None, Field(description="Loss weighting over timesteps (default uniform).")
    ] = None
    logit_mean: Annotated[float | None, Field(description="Mean for logit_normal weighting.")] = (
        None
    )
    logit_std: Annotated[
        float | None, Field(gt=0, description="Std for logit_normal weighting.")
    ] = None
    mode_scale: Annotated[float | None, Field(description="Scale for mode weighting.")] = None
    blocks_to_swap: Annotated[
        int | None,
        Field(ge=1, description="Swap this many DiT blocks to the CPU: less VRAM, slower."),
    ] = None
    text_encoder_batch_size: Annotated[
        int | None,
        Field(ge=1, description="Batch size when caching text-encoder outputs."),
    ] = None
    disable_mmap_load_safetensors: Annotated[
        bool, Field(description="Read the checkpoints without mmap (faster under WSL).")
    ] = False


class _FluxLike(_FlowModel):
    t5xxl: Annotated[Path_, _path("T5-XXL text encoder (.safetensors)", "t5xxl")] = None
    ae: Annotated[Path_, _path("The autoencoder (ae.safetensors)", "ae")] = None
    tokenizer_cache_dir: Annotated[
        Path_, _path("Folder holding the tokenizers, for offline machines", "tokenizer_cache_dir")
    ] = None
    t5xxl_max_token_length: Annotated[
        TokenLength,
        Field(description="T5 token limit (sd-scripts: 512 for dev, 256 for schnell)."),
    ] = None
    timestep_sampling: Annotated[
        Sampling | None, Field(description="How timesteps are drawn (default sigma).")
    ] = None
    sigmoid_scale: Annotated[
        float | None, Field(gt=0, description="Scale for sigmoid timestep sampling.")
    ] = None
    discrete_flow_shift: Annotated[Shift, Field(description="Flow shift (default 3.0).")] = None
    model_prediction_type: Annotated[
        Prediction | None, Field(description="How the prediction is read (default sigma_scaled).")
    ] = None


class FluxModel(_FluxLike):
    """`[model]` for FLUX.1 dev/schnell (flux_train_network.py)."""

    family: Annotated[Literal["flux"], Field(description="Model family.")] = "flux"
    clip_l: Annotated[Path_, _path("CLIP-L text encoder (.safetensors)", "clip_l")] = None
    guidance_scale: Annotated[
        float | None, Field(ge=0, description="Guidance given to FLUX.1 dev (default 3.5).")
    ] = None
    apply_t5_attn_mask: Annotated[
        bool, Field(description="Mask T5 padding in the encoder and the double blocks.")
    ] = False


class ChromaModel(_FluxLike):
    """`[model]` for Chroma (flux_train_network.py --model_type chroma; no CLIP-L)."""

    family: Annotated[Literal["chroma"], Field(description="Model family.")] = "chroma"
    apply_t5_attn_mask: Annotated[
        Literal[True], Field(description="Always on: the Flux script requires it for Chroma.")
    ] = True


class Sd3Model(_FlowModel):
    """`[model]` for SD3 / SD3.5 (sd3_train_network.py)."""

    family: Annotated[Literal["sd3"], Field(description="Model family.")] = "sd3"
    clip_l: Annotated[Path_, _path("CLIP-L (default: from the checkpoint)", "clip_l")] = None
    clip_g: Annotated[Path_, _path("CLIP-G (default: from the checkpoint)", "clip_g")] = None
    t5xxl: Annotated[Path_, _path("T5-XXL (default: from the checkpoint)", "t5xxl")] = None
    vae: Annotated[Path_, _path("The VAE (default: from the checkpoint)", "vae")] = None
    tokenizer_cache_dir: Annotated[
        Path_, _path("Folder holding the tokenizers, for offline machines", "tokenizer_cache_dir")
    ] = None
    t5xxl_max_token_length: Annotated[
        TokenLength, Field(description="T5 token limit (default 256).")
    ] = None
    apply_lg_attn_mask: Annotated[bool, Field(description="Zero CLIP-L/G padding.")] = False
    apply_t5_attn_mask: Annotated[bool, Field(description="Zero T5 padding.")] = False
    clip_l_dropout_rate: Annotated[
        float | None, Field(ge=0, lt=1, description="Caption dropout for CLIP-L.")
    ] = None
    clip_g_dropout_rate: Annotated[
        float | None, Field(ge=0, lt=1, description="Caption dropout for CLIP-G.")
    ] = None
    t5_dropout_rate: Annotated[
        float | None, Field(ge=0, lt=1, description="Caption dropout for T5.")
    ] = None
    training_shift: Annotated[Shift, Field(description="Timestep shift (default 1.0).")] = None
    enable_scaled_pos_embed: Annotated[
        bool, Field(description="SD3.5M: scale position embeddings per resolution.")
    ] = False
    pos_emb_random_crop_rate: Annotated[
        float | None, Field(ge=0, le=1, description="SD3.5M: random crop of position embeddings.")
    ] = None


class LuminaModel(_FlowModel):
    """`[model]` for Lumina Image 2.0 (lumina_train_network.py)."""

    family: Annotated[Literal["lumina"], Field(description="Model family.")] = "lumina"
    gemma2: Annotated[Path_, _path("Gemma2 2B text encoder (.safetensors)", "gemma2")] = None
    ae: Annotated[Path_, _path("The autoencoder (ae.safetensors)", "ae")] = None
    tokenizer_cache_dir: Annotated[
        Path_, _path("Folder holding the tokenizers, for offline machines", "tokenizer_cache_dir")
    ] = None
    gemma2_max_token_length: Annotated[
        TokenLength, Field(description="Gemma2 token limit (default 256).")
    ] = None
    system_prompt: Annotated[
        str | None, Field(description="System prompt put before every caption.")
    ] = None
    timestep_sampling: Annotated[
        Literal["sigma", "uniform", "sigmoid", "shift", "nextdit_shift", "flux_shift"] | None,
        Field(description="How timesteps are drawn (default shift)."),
    ] = None
    sigmoid_scale: Annotated[float | None, Field(gt=0, description="Sigmoid sampling scale.")] = (
        None
    )
    discrete_flow_shift: Annotated[Shift, Field(description="Flow shift (default 6.0).")] = None
    model_prediction_type: Annotated[
        Prediction | None, Field(description="How the prediction is read (default raw).")
    ] = None
    use_flash_attn: Annotated[bool, Field(description="Flash attention (needs flash-attn).")] = (
        False
    )
    use_sage_attn: Annotated[bool, Field(description="Sage attention (needs sageattention).")] = (
        False
    )


class HunyuanImageModel(_FlowModel):
    """`[model]` for HunyuanImage 2.1 (hunyuan_image_train_network.py)."""

    family: Annotated[Literal["hunyuan_image"], Field(description="Model family.")] = (
        "hunyuan_image"
    )
    text_encoder: Annotated[
        Path_, _path("Qwen2.5-VL text encoder (.safetensors)", "text_encoder")
    ] = None
    byt5: Annotated[Path_, _path("byT5 text encoder (.safetensors)", "byt5")] = None
    vae: Annotated[Path_, _path("The VAE (.safetensors)", "vae")] = None
    tokenizer_cache_dir: Annotated[
        Path_, _path("Folder holding the tokenizers, for offline machines", "tokenizer_cache_dir")
    ] = None
    fp8_scaled: Annotated[bool, Field(description="Scaled fp8 DiT (instead of fp8_base).")] = False
    fp8_vl: Annotated[bool, Field(description="Qwen2.5-VL in fp8.")] = False
    text_encoder_cpu: Annotated[bool, Field(description="Run the text encoders on the CPU.")] = (
        False
    )
    attn_mode: Annotated[AttnMode | None, Field(description="Attention kernel.")] = None
    split_attn: Annotated[bool, Field(description="Split attention by batch (less memory).")] = (
        False
    )
    vae_chunk_size: Annotated[
        int | None, Field(ge=1, description="VAE decoding chunk (16 saves memory).")
    ] = None
    timestep_sampling: Annotated[
        Sampling | None, Field(description="How timesteps are drawn (default sigma).")
    ] = None
    sigmoid_scale: Annotated[float | None, Field(gt=0, description="Sigmoid sampling scale.")] = (
        None
    )
    discrete_flow_shift: Annotated[Shift, Field(description="Flow shift (default 5.0).")] = None
    model_prediction_type: Annotated[
        Prediction | None, Field(description="How the prediction is read (default raw).")
    ] = None


class AnimaModel(_FlowModel):
    """`[model]` for Anima (anima_train_network.py)."""

    family: Annotated[Literal["anima"], Field(description="Model family.")] = "anima"
    qwen3: Annotated[Path_, _path("Qwen3-0.6B text encoder (file or folder)", "qwen3")] = None
    vae: Annotated[Path_, _path("The VAE (.safetensors)", "vae")] = None
    t5_tokenizer_path: Annotated[
        Path_,
        _path("T5 tokenizer folder (default: sd-scripts' configs/t5_old)", "t5_tokenizer_path"),
    ] = None
    qwen3_max_token_length: Annotated[
        TokenLength, Field(description="Qwen3 token limit (default 512).")
    ] = None
    t5_max_token_length: Annotated[
        TokenLength, Field(description="T5 token limit (default 512).")
    ] = None
    attn_mode: Annotated[AttnMode | None, Field(description="Attention kernel.")] = None
    split_attn: Annotated[bool, Field(description="Split attention by batch (less memory).")] = (
        False
    )
    vae_chunk_size: Annotated[
        int | None, Field(ge=2, multiple_of=2, description="Spatial VAE chunk (even).")
    ] = None
    vae_disable_cache: Annotated[
        bool, Field(description="No internal VAE cache (less memory).")
    ] = False
    unsloth_offload_checkpointing: Annotated[
        bool, Field(description="Offload activations to CPU RAM asynchronously.")
    ] = False
    timestep_sampling: Annotated[
        Sampling | None, Field(description="How timesteps are drawn (default sigmoid).")
    ] = None
    sigmoid_scale: Annotated[float | None, Field(gt=0, description="Sigmoid sampling scale.")] = (
        None
    )
    discrete_flow_shift: Annotated[Shift, Field(description="Flow shift (default 1.0).")] = None


def _family_of(value: Any) -> str:
    """The discriminator: ``family``, or the default family where the section names none."""
    if isinstance(value, dict):
        return str(value.get("family", DEFAULT_FAMILY))
    return str(getattr(value, "family", DEFAULT_FAMILY))


ModelConfig = Annotated[
    Annotated[Sd15Model, Tag("sd15")]
    | Annotated[Sd2Model, Tag("sd2")]
    | Annotated[SdxlModel, Tag("sdxl")]
    | Annotated[FluxModel, Tag("flux")]
    | Annotated[ChromaModel, Tag("chroma")]
    | Annotated[Sd3Model, Tag("sd3")]
    | Annotated[LuminaModel, Tag("lumina")]
    | Annotated[HunyuanImageModel, Tag("hunyuan_image")]
    | Annotated[AnimaModel, Tag("anima")],
    Discriminator(
        _family_of,
        custom_error_type="unknown_family",
        custom_error_message="unknown model family",
    ),
]
"""`[model]`: what to train on; ``family`` picks the section's fields and the script."""

MODEL_SECTIONS: dict[str, type[_ModelBase]] = {
    "sd15": Sd15Model,
    "sd2": Sd2Model,
    "sdxl": SdxlModel,
    "flux": FluxModel,
    "chroma": ChromaModel,
    "sd3": Sd3Model,
    "lumina": LuminaModel,
    "hunyuan_image": HunyuanImageModel,
    "anima": AnimaModel,
}
"""The section class of each family (a test keeps it equal to the profiles)."""


def model_section(family: str) -> type[_ModelBase]:
    """The `[model]` class of a family (``KeyError`` for an unknown one)."""
    return MODEL_SECTIONS[family]


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_WEIGHT_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf")


def looks_like_hub_id(value: str) -> bool:
    """True for a well-formed Hugging Face id ``org/name``: letters, digits, ``-``, ``_`` and
    ``.`` (``stabilityai/stable-diffusion-xl-base-1.0``), not a weights file name, no ``..``
    or ``--``."""
    return (
        bool(_HUB_ID.match(value))
        and ".." not in value
        and "--" not in value
        and not value.lower().endswith(_WEIGHT_SUFFIXES)
    )


def is_placeholder(value: str) -> bool:
    """True for a preset's stand-in for a file the user must give: ``<flux1-dev.safetensors>``."""
    return len(value) > 2 and value.startswith("<") and value.endswith(">")


DATA_PLACEHOLDER = "<data>"
"""Where an imported config's images were: ``<data>/20_style`` keeps the repeat folder's name."""
OUTPUT_PLACEHOLDER = "<output>"
"""An imported config's output folder that cannot be made on this machine."""
_PLACEHOLDER_PATH = re.compile(r"^<[^<>/\\]+>(?:[/\\].*)?$")


def is_placeholder_path(value: str) -> bool:
    """True for a placeholder, or a path under one (``<data>/20_style``): a path still to give."""
    return bool(_PLACEHOLDER_PATH.match(value))
