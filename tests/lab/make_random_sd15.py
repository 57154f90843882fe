"""A full-size Stable Diffusion 1.5 model with random weights, as a diffusers folder (fp16).

Run with the lab venv's Python:  python make_random_sd15.py TOKENIZER_DIR OUT_DIR

The shapes are SD 1.5's published ones (UNet 860M, VAE 84M, CLIP ViT-L/14 text encoder 123M), so
sd-scripts loads, trains and saves it exactly as it would the real model; only the images it draws
are noise. Seeded: the same folder every time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
TEXT = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}
SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


def main(tokenizer_dir: Path, out: Path) -> None:
    torch.manual_seed(1234)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**VAE),
        text_encoder=CLIPTextModel(CLIPTextConfig(**TEXT)),
        tokenizer=CLIPTokenizer.from_pretrained(str(tokenizer_dir)),
        unet=UNet2DConditionModel(**UNET),
        scheduler=PNDMScheduler(**SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(torch.float16)
    partial = out.with_name(out.name + ".partial")
    pipe.save_pretrained(str(partial), safe_serialization=True)
    partial.replace(out)  # a half-written model never looks finished
    n = sum(p.numel() for m in (pipe.unet, pipe.vae, pipe.text_encoder) for p in m.parameters())
    print(f"model: {n / 1e6:.0f}M random parameters in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
