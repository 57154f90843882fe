"""The base model to train on: checkpoint path, family and text-encoder settings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import StrictModel
from .family import DEFAULT_FAMILY, Family, profile

__all__ = ["Family", "ModelConfig"]


class ModelConfig(StrictModel):
    """`[model]`: what to train on."""

    pretrained_model_name_or_path: Annotated[
        str,
        Field(
            min_length=1,
            description="Base checkpoint: a .safetensors/.ckpt file, a diffusers folder or a "
            "Hugging Face id (sd-scripts: --pretrained_model_name_or_path).",
        ),
    ]
    family: Annotated[
        Family,
        Field(description="Model family: sd15, sd2 or sdxl. Picks the training script."),
    ] = DEFAULT_FAMILY
    v_parameterization: Annotated[
        bool,
        Field(
            description="v-prediction model, e.g. SD 2.x 768-v (sd-scripts: --v_parameterization)."
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
    vae: Annotated[
        str | None,
        Field(min_length=1, description="A separate VAE file or folder (sd-scripts: --vae)."),
    ] = None
    tokenizer_cache_dir: Annotated[
        str | None,
        Field(
            min_length=1,
            description="Folder holding the tokenizer, for offline machines (sd-scripts: --tokenizer_cache_dir).",
        ),
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

    @property
    def v2(self) -> bool:
        """True for SD 2.x models (sd-scripts: --v2)."""
        return profile(self.family).v2

    @property
    def script(self) -> str:
        """The sd-scripts training script for this family."""
        return profile(self.family).script
