"""Model families as data: one profile per family, read by every module that differs per family.

Adding a family is one :data:`FAMILIES` entry (plus its model section in ``models/model.py`` and
the name in :data:`Family`); nothing else switches on the family's name. The values come from
reading each training script at the pinned sd-scripts commit (48d368fa) and from its parsers in
the lab (``tests/e2e/test_family_oracle.py``):

- ``script``: the ``*_train_network.py`` that trains a network for the family.
- ``bucket_step``: ``bucket_reso_steps`` must be a multiple of it. Each trainer's
  ``assert_extra_args`` asserts it; Flux, Lumina and HunyuanImage first call the SD 1.x trainer's
  check (64) and then their own (32/16/32), so 64 holds for them; SDXL and SD3 assert 32 only,
  Anima 16 only.
- ``base_model_versions``: the prefixes sd-scripts writes as ``ss_base_model_version`` in a saved
  network (``sd_v1``, ``sdxl_base_v1-0``, ``flux1``, ``chroma``, SD3's model type, ...).
- ``only_args``: arguments only this family's script adds to the common parser (read from each
  ``setup_parser``).
- ``lora_module``: the script's own LoRA module; ``lycoris_algos``: the LyCORIS (``lycoris.kohya``)
  algos offered for the family: those that trained through ``train`` in the lab (SD 1.x: every
  algo, ``tests/e2e/test_networks_e2e.py``; FLUX.1 and SD3: ``tests/e2e/test_dit_lycoris_e2e.py``
  and docs/networks.md); none where the lab could not measure (Chroma, Lumina and HunyuanImage
  load no shrunk model; Anima's full-size DiT ran out of memory on the 24 GB lab machine).
- ``lora_args``: the ``network_args`` the LoRA module reads (``kwargs.get`` in its
  ``create_network``); a LoRA setting outside them is refused.
- ``lora_blocks``: how many values ``block_dims`` / ``block_alphas`` take (25 for SD 1.x/2.x
  U-Nets, 23 for SDXL, None where the module has no per-block ranks); ``lr_weight_blocks`` /
  ``lr_weight_mid_blocks`` the same for the block learning-rate weights.
- ``text_encoder_lrs``: how many ``text_encoder_lr`` values the LoRA module reads (networks.lora
  reads the first of a list only; lora_flux two, lora_sd3 three).
- ``script_args``: arguments the family always passes (``v2`` for SD 2.x, ``model_type`` for
  Chroma, which trains with the Flux script).
- ``identifying_args``: arguments that only a config written for this family holds (how an
  imported config names its family).
- ``memory_remedies``: which family-only switches the out-of-memory remedies may suggest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_FAMILY",
    "FAMILIES",
    "Family",
    "FamilyProfile",
    "family_from_args",
    "profile",
]

Family = Literal["sd15", "sd2", "sdxl", "flux", "chroma", "sd3", "lumina", "hunyuan_image", "anima"]
"""The families a job can name; each has a :data:`FAMILIES` entry (a test keeps them equal)."""

DEFAULT_FAMILY: Family = "sd15"
"""The family of a job (or an imported file) that names none."""

# networks.lora's network_args (networks/lora.py create_network)
_SD_LORA_ARGS = frozenset(
    {
        "conv_dim", "conv_alpha", "rank_dropout", "module_dropout", "block_dims", "block_alphas",
        "conv_block_dims", "conv_block_alphas", "down_lr_weight", "mid_lr_weight", "up_lr_weight",
        "block_lr_zero_threshold",
    }
)  # fmt: skip
_LORAPLUS = frozenset(
    {"loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio"}
)
_ALL_LYCORIS = ("locon", "loha", "lokr", "ia3", "dylora", "full", "diag-oft", "boft")
# LyCORIS 4.1.3 algos that trained with attn-mlp on the lab's FLUX.1 and SD3 models through `train`
# (boft: not measured, it ran out of memory on SD1.5 already)
_DIT_LYCORIS = ("locon", "loha", "lokr", "ia3", "dylora", "full", "diag-oft")
# Arguments the flow-matching (DiT) scripts add alike (each setup_parser at 48d368fa).
_DIT_ARGS = frozenset(
    {
        "blocks_to_swap", "cache_text_encoder_outputs", "cache_text_encoder_outputs_to_disk",
        "disable_mmap_load_safetensors", "logit_mean", "logit_std", "mode_scale",
        "text_encoder_batch_size", "weighting_scheme",
    }
)  # fmt: skip


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
    """The Hugging Face id a GUI preset import uses when the file names no base model (only for
    families whose loader takes a Hub id)."""
    only_args: frozenset[str] = frozenset()
    lora_module: str = "networks.lora"
    lycoris_algos: tuple[str, ...] = _ALL_LYCORIS
    native_networks: tuple[str, ...] = ()
    """Algos sd-scripts' own networks (``networks.loha`` / ``networks.lokr``, after 0.10.1) train
    for the family: their architecture detection knows SDXL and Anima only."""
    lora_args: frozenset[str] = _SD_LORA_ARGS
    lora_blocks: int | None = 25
    lr_weight_blocks: int | None = 12
    """How many values ``down_lr_weight`` / ``up_lr_weight`` take in ``networks.lora`` (12 for SD
    1.x/2.x, 9 for SDXL: ``LoRANetwork.NUM_OF_BLOCKS`` / ``SDXL_NUM_OF_BLOCKS``)."""
    lr_weight_mid_blocks: int | None = 1
    """How many values ``mid_lr_weight`` takes (1 for SD 1.x/2.x, 3 for SDXL)."""
    text_encoder_lrs: int = 1
    train_blocks: tuple[str, ...] = ()
    """The values the LoRA module's ``train_blocks`` takes (none: it has no such switch)."""
    script_args: tuple[tuple[str, str | bool], ...] = ()
    identifying_args: frozenset[str] = frozenset()
    ignored_args: frozenset[str] = frozenset()
    """Arguments the script's parser takes but its LoRA training never reads (Anima's per-layer
    learning rates belong to ``anima_train.py``)."""
    modelspec: tuple[str, ...] = ()
    """``modelspec.architecture`` prefixes of its checkpoints (sd-scripts' sai_model_spec ARCH_*)."""
    pipelines: tuple[str, ...] = ()
    """The diffusers pipeline classes (``model_index.json`` ``_class_name``) of its folders."""
    checkpoint_markers: tuple[tuple[str, ...], ...] = ()
    """Tensor-name prefixes that show a single-file checkpoint is this family: any one group
    whose prefixes are all present (``!prefix``: must be absent), after stripping
    ``model.diffusion_model.`` / ``net.``-style prefixes."""
    cross_attention_width: int | None = None
    """The U-Net's cross-attention width (``attn2.to_k`` input): 768 SD 1.x, 1024 SD 2.x."""
    swap_blocks: int = 0
    """How many blocks the ``blocks_to_swap`` remedy swaps (sd-scripts' own advice for FLUX.1 is
    18, what it sets for the deprecated ``split_mode``; a third of the blocks elsewhere)."""
    fp8_base: bool = True
    """The script honours ``fp8_base`` (HunyuanImage and Anima turn it off with a warning)."""
    hub_ids: bool = True
    """Its loader takes a Hugging Face id (diffusers); the DiT loaders read local files only."""
    v2: bool = False
    """The script is told ``--v2`` (SD 2.x)."""
    warn_v_parameterization: bool = False
    """Its base models predict noise, so ``v_parameterization`` is worth a warning."""
    uses_clip_skip: bool = True
    caches_text_encoder_outputs: bool = False
    gui_checkbox: str | None = None
    """The kohya_ss GUI's checkbox that selects this family in its saved configs (``v2``,
    ``sdxl``, ``flux1_checkbox``, ...); None for the GUI's default."""
    time_embedding_linear: bool = False
    """Its U-Net names ``time_embedding.linear_1/2``, which LyCORIS 4.x's ``full``-like presets
    also pick as ``TimestepEmbedding`` (``duplicated lora name``)."""
    memory_remedies: tuple[str, ...] = ()
    """Family-only out-of-memory remedies: ``"te_cache"`` (U-Net only with cached text-encoder
    outputs), ``"fp8_base"`` (base model in fp8), ``"blocks_to_swap"`` (DiT blocks swapped to
    the CPU)."""

    @property
    def lycoris(self) -> bool:
        """LyCORIS is offered for the family (some algo of it was measured)."""
        return bool(self.lycoris_algos)

    @property
    def network_modules(self) -> tuple[str, ...]:
        """The network modules a job of this family can train with."""
        return (self.lora_module, "lycoris.kohya") if self.lycoris else (self.lora_module,)


def _dit(
    name: str,
    title: str,
    script: str,
    *,
    bucket_step: int,
    versions: tuple[str, ...],
    args: set[str],
    identifying: set[str],
    lora_module: str,
    lora_args: set[str],
    train_blocks: tuple[str, ...] = (),
    text_encoder_lrs: int = 1,
    script_args: tuple[tuple[str, str | bool], ...] = (),
    gui_checkbox: str | None = None,
    remedies: tuple[str, ...] = ("te_cache", "fp8_base", "blocks_to_swap"),
    fp8_base: bool = True,
    swap_blocks: int = 8,
    modelspec: tuple[str, ...] = (),
    pipelines: tuple[str, ...] = (),
    markers: tuple[tuple[str, ...], ...] = (),
    ignored: set[str] | None = None,
    lycoris_algos: tuple[str, ...] = (),
    native_networks: tuple[str, ...] = (),
) -> FamilyProfile:
    """A flow-matching (DiT) family: local files, its own LoRA module, no U-Net block tables."""
    return FamilyProfile(
        name=name,
        title=title,
        script=script,
        bucket_step=bucket_step,
        default_resolution=1024,
        base_model_versions=versions,
        default_model=None,
        only_args=_DIT_ARGS | frozenset(args),
        lora_module=lora_module,
        lycoris_algos=lycoris_algos,
        native_networks=native_networks,
        lora_args=frozenset(lora_args) | {"rank_dropout", "module_dropout"},
        lora_blocks=None,
        lr_weight_blocks=None,
        lr_weight_mid_blocks=None,
        text_encoder_lrs=text_encoder_lrs,
        train_blocks=train_blocks,
        script_args=script_args,
        identifying_args=frozenset(identifying),
        fp8_base=fp8_base,
        swap_blocks=swap_blocks,
        modelspec=modelspec,
        pipelines=pipelines,
        checkpoint_markers=markers,
        ignored_args=frozenset(ignored or ()),
        hub_ids=False,
        uses_clip_skip=False,
        caches_text_encoder_outputs=True,
        gui_checkbox=gui_checkbox,
        memory_remedies=remedies,
    )


_FLUX_ARGS = {
    "ae", "apply_t5_attn_mask", "clip_l", "controlnet_model_name_or_path", "discrete_flow_shift",
    "guidance_scale", "model_prediction_type", "model_type", "sigmoid_scale", "split_mode",
    "t5xxl", "t5xxl_max_token_length", "timestep_sampling",
}  # fmt: skip
_FLUX_LORA = {"train_blocks", "split_qkv", "train_t5xxl", "conv_dim", "conv_alpha"}

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
            modelspec=("stable-diffusion-v1",),
            checkpoint_markers=(("cond_stage_model.transformer.",),),
            cross_attention_width=768,
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
            modelspec=("stable-diffusion-v2",),
            checkpoint_markers=(("cond_stage_model.model.",),),
            cross_attention_width=1024,
            v2=True,
            script_args=(("v2", True),),
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
            modelspec=("stable-diffusion-xl",),
            pipelines=("StableDiffusionXLPipeline",),
            checkpoint_markers=(("conditioner.embedders.1.",), ("label_emb.",)),
            cross_attention_width=2048,
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
            native_networks=("loha", "lokr"),
        ),
        _dit(
            "flux",
            "FLUX.1",
            "flux_train_network.py",
            bucket_step=64,
            versions=("flux1",),
            args=_FLUX_ARGS,
            identifying={"ae", "t5xxl", "guidance_scale"},
            lora_module="networks.lora_flux",
            lora_args=_FLUX_LORA,
            train_blocks=("all", "single", "double"),
            text_encoder_lrs=2,
            gui_checkbox="flux1_checkbox",
            swap_blocks=18,
            lycoris_algos=_DIT_LYCORIS,
            modelspec=("flux-1",),
            pipelines=("FluxPipeline",),
            markers=(
                ("double_blocks.", "single_blocks.", "!byt5_in.", "!distilled_guidance_layer."),
            ),
        ),
        _dit(
            "chroma",
            "Chroma (FLUX.1 schnell based)",
            "flux_train_network.py",
            bucket_step=64,
            versions=("chroma",),
            args=_FLUX_ARGS,
            identifying={"ae", "t5xxl"},
            lora_module="networks.lora_flux",
            lora_args=_FLUX_LORA,
            train_blocks=("all", "single", "double"),
            text_encoder_lrs=2,
            script_args=(("model_type", "chroma"),),
            swap_blocks=18,
            modelspec=("chroma",),
            pipelines=("ChromaPipeline",),
            markers=(("double_blocks.", "distilled_guidance_layer."),),
        ),
        _dit(
            "sd3",
            "Stable Diffusion 3 / 3.5",
            "sd3_train_network.py",
            bucket_step=32,
            versions=("sd3", "medium", "5-large", "5-medium"),
            args={
                "apply_lg_attn_mask",
                "apply_t5_attn_mask",
                "clip_g",
                "clip_g_dropout_rate",
                "clip_l",
                "clip_l_dropout_rate",
                "enable_scaled_pos_embed",
                "pos_emb_random_crop_rate",
                "save_clip",
                "save_t5xxl",
                "t5_dropout_rate",
                "t5xxl",
                "t5xxl_device",
                "t5xxl_dtype",
                "t5xxl_max_token_length",
                "training_shift",
            },
            identifying={"clip_g", "training_shift", "clip_g_dropout_rate"},
            lora_module="networks.lora_sd3",
            lora_args={"train_block_indices", "split_qkv", "train_t5xxl", "conv_dim", "conv_alpha"},
            text_encoder_lrs=3,
            gui_checkbox="sd3_checkbox",
            lycoris_algos=_DIT_LYCORIS,
            modelspec=("stable-diffusion-3",),
            pipelines=("StableDiffusion3Pipeline",),
            markers=(("joint_blocks.",),),
        ),
        _dit(
            "lumina",
            "Lumina Image 2.0",
            "lumina_train_network.py",
            bucket_step=64,
            versions=("lumina2",),
            args={
                "ae",
                "discrete_flow_shift",
                "gemma2",
                "gemma2_max_token_length",
                "model_prediction_type",
                "sample_batch_size",
                "sigmoid_scale",
                "system_prompt",
                "timestep_sampling",
                "use_flash_attn",
                "use_sage_attn",
            },
            identifying={"gemma2", "gemma2_max_token_length", "system_prompt"},
            lora_module="networks.lora_lumina",
            lora_args={"train_blocks", "split_qkv", "conv_dim", "conv_alpha"},
            train_blocks=("all", "transformer", "refiners", "noise_refiner", "context_refiner"),
            gui_checkbox="lumina_checkbox",
            modelspec=("lumina",),
            pipelines=("Lumina2Pipeline", "Lumina2Text2ImgPipeline"),
            markers=(("cap_embedder.",), ("context_refiner.",)),
        ),
        _dit(
            "hunyuan_image",
            "HunyuanImage 2.1",
            "hunyuan_image_train_network.py",
            bucket_step=64,
            versions=("hunyuan-image-2.1",),
            args={
                "attn_mode",
                "byt5",
                "discrete_flow_shift",
                "fp8_scaled",
                "fp8_vl",
                "model_prediction_type",
                "sigmoid_scale",
                "split_attn",
                "text_encoder",
                "text_encoder_cpu",
                "timestep_sampling",
                "vae_chunk_size",
            },
            identifying={"byt5", "fp8_vl", "text_encoder_cpu"},
            lora_module="networks.lora_hunyuan_image",
            lora_args={"split_qkv", "conv_dim", "conv_alpha"},
            gui_checkbox="hunyuan_image_checkbox",
            modelspec=("hunyuan-image",),
            markers=(("double_blocks.", "byt5_in."),),
            remedies=("te_cache", "blocks_to_swap"),
            fp8_base=False,
        ),
        _dit(
            "anima",
            "Anima",
            "anima_train_network.py",
            bucket_step=16,
            versions=("anima",),
            args={
                "attn_mode",
                "cross_attn_lr",
                "discrete_flow_shift",
                "llm_adapter_lr",
                "llm_adapter_path",
                "mlp_lr",
                "mod_lr",
                "qwen3",
                "qwen3_max_token_length",
                "self_attn_lr",
                "sigmoid_scale",
                "split_attn",
                "t5_max_token_length",
                "t5_tokenizer_path",
                "timestep_sampling",
                "unsloth_offload_checkpointing",
                "vae_chunk_size",
                "vae_disable_cache",
            },
            identifying={
                "qwen3",
                "llm_adapter_path",
                "t5_tokenizer_path",
                "qwen3_max_token_length",
            },
            lora_module="networks.lora_anima",
            lora_args={"train_llm_adapter"},
            gui_checkbox="anima_checkbox",
            native_networks=("loha", "lokr"),
            modelspec=("anima",),
            # read only by anima_train.py (library/anima_train_utils.py); measured in the lab
            ignored={
                "self_attn_lr",
                "cross_attn_lr",
                "mlp_lr",
                "mod_lr",
                "llm_adapter_lr",
                "llm_adapter_path",
            },
            markers=(("llm_adapter.",), ("blocks.0.self_attn.", "t_embedder.")),
            remedies=("te_cache", "blocks_to_swap"),
            fp8_base=False,
        ),
    )
}


def profile(family: str) -> FamilyProfile:
    """The profile of a family name (``KeyError`` for a name the job model would refuse)."""
    return FAMILIES[family]


def family_from_args(args: dict[str, object]) -> str | None:
    """The family a flat sd-scripts config was written for, from the arguments only one family's
    script defines (``model_type = "chroma"`` picks Chroma over Flux); None when nothing says."""
    for p in FAMILIES.values():
        if p.script_args and all(args.get(k) == v for k, v in p.script_args) and p.identifying_args:
            if p.identifying_args & args.keys():
                return p.name
    for p in FAMILIES.values():
        if p.identifying_args & args.keys() and not p.script_args:
            return p.name
    return None
