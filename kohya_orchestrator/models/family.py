"""Model families as data: one profile per family, read by every module that differs per family.

Adding a family is one :data:`FAMILIES` entry (plus the model fields its script needs and the
name in :data:`Family`); nothing else switches on the family's name. The values come from
reading each training script at the pinned sd-scripts commit (48d368fa):

- ``script``: the ``*_train_network.py`` that trains a network for the family.
- ``bucket_step``: ``bucket_reso_steps`` must be a multiple of it (train_network.py asserts 64 for
  SD 1.x/2.x; sdxl_train_network.py asserts 32).
- ``base_model_versions``: the prefix sd-scripts writes as ``ss_base_model_version`` in a saved
  network (``sd_v1``, ``sd_v2``, ``sdxl_base_v1-0``).
- ``only_args``: arguments only this family's script adds to the common parser.
- ``lora_blocks``: how many values ``block_dims`` / ``block_alphas`` take (25 for SD 1.x/2.x
  U-Nets, 23 for SDXL); ``lr_weight_blocks`` / ``lr_weight_mid_blocks`` the same for the block
  learning-rate weights (networks/lora.py ``get_block_lr_weight``).
- ``memory_remedies``: which family-only switches the out-of-memory remedies may suggest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_FAMILY", "FAMILIES", "Family", "FamilyProfile", "profile"]

Family = Literal["sd15", "sd2", "sdxl"]
"""The families a job can name; each has a :data:`FAMILIES` entry (a test keeps them equal)."""

DEFAULT_FAMILY: Family = "sd15"
"""The family of a job (or an imported file) that names none."""


@dataclass(frozen=True)
class FamilyProfile:
    """What differs between model families, in one place."""

    name: str
    title: str
    script: str
    bucket_step: int
    default_resolution: int
    base_model_versions: tuple[str, ...]
    default_model: str | None
    """The Hugging Face id a GUI preset import uses when the file names no base model."""
    only_args: frozenset[str] = frozenset()
    network_modules: tuple[str, ...] = ("networks.lora", "lycoris.kohya")
    lora_blocks: int = 25
    lr_weight_blocks: int = 12
    """How many values ``down_lr_weight`` / ``up_lr_weight`` take in ``networks.lora`` (12 for SD
    1.x/2.x, 9 for SDXL: ``LoRANetwork.NUM_OF_BLOCKS`` / ``SDXL_NUM_OF_BLOCKS``)."""
    lr_weight_mid_blocks: int = 1
    """How many values ``mid_lr_weight`` takes (1 for SD 1.x/2.x, 3 for SDXL)."""
    v2: bool = False
    """The script is told ``--v2`` (SD 2.x)."""
    warn_v_parameterization: bool = False
    """Its base models predict noise, so ``v_parameterization`` is worth a warning."""
    uses_clip_skip: bool = True
    caches_text_encoder_outputs: bool = False
    gui_checkbox: str | None = None
    """The kohya_ss GUI's checkbox that selects this family in its saved configs (``v2``,
    ``sdxl``); None for the GUI's default."""
    time_embedding_linear: bool = False
    """Its U-Net names ``time_embedding.linear_1/2``, which LyCORIS 4.x's ``full``-like presets
    also pick as ``TimestepEmbedding`` (``duplicated lora name``)."""
    memory_remedies: tuple[str, ...] = ()
    """Family-only out-of-memory remedies: ``"te_cache"`` (U-Net only with cached text-encoder
    outputs), ``"fp8_base"`` (base model in fp8)."""


FAMILIES: dict[str, FamilyProfile] = {
    p.name: p
    for p in (
        FamilyProfile(
            name="sd15",
            title="Stable Diffusion 1.x",
            script="train_network.py",
            bucket_step=64,
            default_resolution=512,
            base_model_versions=("sd_v1",),
            default_model="stable-diffusion-v1-5/stable-diffusion-v1-5",
            warn_v_parameterization=True,
            time_embedding_linear=True,
        ),
        FamilyProfile(
            name="sd2",
            title="Stable Diffusion 2.x",
            script="train_network.py",
            bucket_step=64,
            default_resolution=768,
            base_model_versions=("sd_v2",),
            default_model=None,
            v2=True,
            gui_checkbox="v2",
            time_embedding_linear=True,
        ),
        FamilyProfile(
            name="sdxl",
            title="Stable Diffusion XL",
            script="sdxl_train_network.py",
            bucket_step=32,
            default_resolution=1024,
            base_model_versions=("sdxl_base",),
            default_model="stabilityai/stable-diffusion-xl-base-1.0",
            only_args=frozenset(
                {
                    "cache_text_encoder_outputs",
                    "cache_text_encoder_outputs_to_disk",
                    "disable_mmap_load_safetensors",
                }
            ),
            lora_blocks=23,
            lr_weight_blocks=9,
            lr_weight_mid_blocks=3,
            uses_clip_skip=False,
            gui_checkbox="sdxl",
            caches_text_encoder_outputs=True,
            memory_remedies=("te_cache", "fp8_base"),
        ),
    )
}


def profile(family: str) -> FamilyProfile:
    """The profile of a family name (``KeyError`` for a name the job model would refuse)."""
    return FAMILIES[family]
