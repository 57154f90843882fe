"""`[training]`: length, saving, precision, memory switches, loss options, output and logging."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import StrictModel

__all__ = ["TrainingConfig"]


class TrainingConfig(StrictModel):
    """`[training]`: how long, how to save, and the switches that trade memory for speed."""

    output_dir: Annotated[
        str, Field(min_length=1, description="Where checkpoints and samples go (--output_dir).")
    ] = "output"
    output_name: Annotated[
        str,
        Field(
            min_length=1,
            pattern=r"^[^/\\:*?\"<>|]+$",
            description="File name stem of the LoRA (--output_name).",
        ),
    ] = "lora"
    save_model_as: Annotated[
        Literal["safetensors", "ckpt", "pt"], Field(description="File format (--save_model_as).")
    ] = "safetensors"
    max_train_epochs: Annotated[
        int | None,
        Field(
            ge=1,
            description="Train this many epochs; wins over max_train_steps (--max_train_epochs).",
        ),
    ] = None
    max_train_steps: Annotated[
        int | None, Field(ge=1, description="Train this many optimizer steps (--max_train_steps).")
    ] = None
    save_every_n_epochs: Annotated[
        int | None,
        Field(ge=1, description="Save a checkpoint every N epochs (--save_every_n_epochs)."),
    ] = None
    save_every_n_steps: Annotated[
        int | None,
        Field(ge=1, description="Save a checkpoint every N steps (--save_every_n_steps)."),
    ] = None
    save_last_n_epochs: Annotated[
        int | None, Field(ge=1, description="Keep only the last N epoch checkpoints.")
    ] = None
    save_last_n_steps: Annotated[
        int | None, Field(ge=1, description="Keep only step checkpoints of the last N steps.")
    ] = None
    save_precision: Annotated[
        Literal["fp16", "bf16", "float"],
        Field(description="Precision of saved weights (--save_precision)."),
    ] = "fp16"
    save_state: Annotated[
        bool,
        Field(description="Save optimizer state with each checkpoint, to resume (--save_state)."),
    ] = False
    save_state_on_train_end: Annotated[
        bool, Field(description="Save the state once at the end (--save_state_on_train_end).")
    ] = False
    resume: Annotated[
        str | None, Field(min_length=1, description="Resume from a saved state folder (--resume).")
    ] = None
    mixed_precision: Annotated[
        Literal["no", "fp16", "bf16"],
        Field(
            description="Mixed precision; 'no' on CPU (--mixed_precision, given to the script itself)."
        ),
    ] = "fp16"
    full_fp16: Annotated[
        bool, Field(description="Everything in fp16; needs mixed_precision fp16.")
    ] = False
    full_bf16: Annotated[
        bool, Field(description="Everything in bf16; needs mixed_precision bf16.")
    ] = False
    fp8_base: Annotated[
        bool, Field(description="Base model in fp8; needs fp16/bf16 mixed precision.")
    ] = False
    seed: Annotated[int, Field(ge=0, description="Random seed; fixed so runs repeat (--seed).")] = (
        42
    )
    gradient_checkpointing: Annotated[
        bool,
        Field(description="Recompute activations: less VRAM, slower (--gradient_checkpointing)."),
    ] = False
    gradient_accumulation_steps: Annotated[
        int,
        Field(
            ge=1, description="Micro-batches per optimizer step (--gradient_accumulation_steps)."
        ),
    ] = 1
    attention: Annotated[
        Literal["sdpa", "xformers", "mem_eff_attn", "none"],
        Field(
            description="Attention kernel: sdpa (PyTorch), xformers, mem_eff_attn, or none (CPU)."
        ),
    ] = "sdpa"
    cache_latents: Annotated[
        bool,
        Field(description="Encode images once; not with color_aug/random_crop (--cache_latents)."),
    ] = True
    cache_latents_to_disk: Annotated[
        bool, Field(description="Keep the latent cache on disk beside the images.")
    ] = False
    cache_text_encoder_outputs: Annotated[
        bool,
        Field(
            description="SDXL and the DiT families: cache text-encoder outputs; needs "
            "U-Net-only training."
        ),
    ] = False
    cache_text_encoder_outputs_to_disk: Annotated[
        bool,
        Field(
            description="Keep the text-encoder cache on disk (needs cache_text_encoder_outputs)."
        ),
    ] = False
    vae_batch_size: Annotated[
        int | None, Field(ge=1, description="Batch size when caching latents.")
    ] = None
    max_data_loader_n_workers: Annotated[
        int | None, Field(ge=0, description="Data loader workers (sd-scripts default 8; 0 on CPU).")
    ] = None
    persistent_data_loader_workers: Annotated[
        bool, Field(description="Keep loader workers alive between epochs.")
    ] = False
    lowram: Annotated[bool, Field(description="Load the model to VRAM directly (--lowram).")] = (
        False
    )
    highvram: Annotated[bool, Field(description="Keep caches on the GPU (--highvram).")] = False
    noise_offset: Annotated[float | None, Field(ge=0, description="Noise offset, e.g. 0.05.")] = (
        None
    )
    noise_offset_random_strength: Annotated[
        bool, Field(description="Random noise-offset strength.")
    ] = False
    adaptive_noise_scale: Annotated[
        float | None, Field(description="Adaptive noise scale; needs noise_offset.")
    ] = None
    multires_noise_iterations: Annotated[
        int | None, Field(ge=1, description="Multi-resolution (pyramid) noise iterations.")
    ] = None
    multires_noise_discount: Annotated[
        float | None, Field(gt=0, le=1, description="Pyramid noise discount (0.3).")
    ] = None
    ip_noise_gamma: Annotated[
        float | None, Field(ge=0, description="Input perturbation noise.")
    ] = None
    min_snr_gamma: Annotated[
        float | None, Field(gt=0, description="Min-SNR weighting; 5 is the paper's value.")
    ] = None
    debiased_estimation_loss: Annotated[bool, Field(description="Debiased estimation loss.")] = (
        False
    )
    zero_terminal_snr: Annotated[
        bool, Field(description="Zero terminal SNR (with v-prediction).")
    ] = False
    scale_v_pred_loss_like_noise_pred: Annotated[
        bool, Field(description="Scale v-pred loss like noise-pred; needs v_parameterization.")
    ] = False
    loss_type: Annotated[
        Literal["l1", "l2", "huber", "smooth_l1"] | None, Field(description="Loss function.")
    ] = None
    prior_loss_weight: Annotated[
        float | None, Field(ge=0, description="Weight of regularisation images' loss.")
    ] = None
    min_timestep: Annotated[int | None, Field(ge=0, le=1000, description="Lowest timestep.")] = None
    max_timestep: Annotated[int | None, Field(ge=1, le=1000, description="Highest timestep.")] = (
        None
    )
    logging_dir: Annotated[
        str | None, Field(min_length=1, description="TensorBoard log folder (--logging_dir).")
    ] = None
    log_with: Annotated[
        Literal["tensorboard", "wandb", "all"] | None, Field(description="Tracker (--log_with).")
    ] = None
    log_prefix: Annotated[str | None, Field(min_length=1, description="Log run-name prefix.")] = (
        None
    )
    training_comment: Annotated[
        str | None, Field(description="Comment stored in the file's metadata (--training_comment).")
    ] = None
    metadata_title: Annotated[str | None, Field(description="modelspec title.")] = None
    metadata_author: Annotated[str | None, Field(description="modelspec author.")] = None
    metadata_description: Annotated[str | None, Field(description="modelspec description.")] = None
    metadata_license: Annotated[str | None, Field(description="modelspec license.")] = None
    metadata_tags: Annotated[str | None, Field(description="modelspec tags, comma-separated.")] = (
        None
    )
    metadata_trigger_phrase: Annotated[
        str | None, Field(description="modelspec trigger phrase.")
    ] = None
