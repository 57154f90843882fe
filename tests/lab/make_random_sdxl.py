"""A full-size SDXL base model with random weights, as one .safetensors checkpoint (bf16).

Run with the lab venv's Python:  python make_random_sdxl.py SD_SCRIPTS_DIR OUT.safetensors

The shapes are SDXL base 1.0's published ones (U-Net 2.57B, CLIP ViT-L/14 text encoder 123M,
OpenCLIP ViT-bigG/14 text encoder 695M, VAE 84M). The modules are the ones sd-scripts' SDXL loader
builds (its own original-layout U-Net, the transformers text encoders, the diffusers VAE) and the
file is written by sd-scripts' own ``save_stable_diffusion_checkpoint``, so sdxl_train_network.py
reads it exactly as it reads the real checkpoint; only the images it draws are noise. Seeded:
the same file every time. Building takes about a minute and 15 GB of memory (the save holds a
serialised copy of the whole file); the file is 6.9 GB, written beside OUT first, then renamed.

Why this form (docs/e2e-lab.md, "SDXL", has the measurements). On a CPU without bf16
instructions only fp32 trains at a usable speed, and then sd-scripts holds every form in fp32
(13.9 GB of weights). Read without mmap (``disable_mmap_load_safetensors``), one file peaks at
16.0-16.5 GB over a whole run; a diffusers folder at 16.4-19.3 GB, because its mapped U-Net
file stays resident while it converts. On a CPU with bf16 instructions, bf16 weights load
without any copy under ``full_bf16`` (5.6 GB, mapped from the file).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

TEXT1 = {  # CLIP ViT-L/14, as sd-scripts' SDXL loader configures it
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
TEXT2 = {  # OpenCLIP ViT-bigG/14's text tower
    **TEXT1,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}


def main(sd_scripts: Path, out: Path) -> None:
    if out.suffix != ".safetensors":
        raise SystemExit(f"OUT must end in .safetensors (sd-scripts picks the format by it): {out}")
    sys.path.insert(0, str(sd_scripts))
    from diffusers import AutoencoderKL
    from library import model_util, sdxl_model_util, sdxl_original_unet
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(1234)
    # Built in bf16 from the start (the modules' own initialisers): half the memory of fp32.
    torch.set_default_dtype(torch.bfloat16)
    modules = {
        "unet": sdxl_original_unet.SdxlUNet2DConditionModel(),
        "te1": CLIPTextModel(CLIPTextConfig(**TEXT1)),
        "te2": CLIPTextModelWithProjection(CLIPTextConfig(**TEXT2)),
        "vae": AutoencoderKL(**model_util.create_vae_diffusers_config()),
    }
    torch.set_default_dtype(torch.float32)
    logit_scale = torch.tensor(math.log(100.0), dtype=torch.bfloat16)  # CLIP's trained value
    for name, module in modules.items():
        if not all(torch.isfinite(p).all() for p in module.parameters()):
            raise SystemExit(f"{name}: non-finite random weights")
    counts = {k: sum(p.numel() for p in m.parameters()) for k, m in modules.items()}

    partial = out.with_name(out.stem + ".partial.safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    sdxl_model_util.save_stable_diffusion_checkpoint(
        str(partial),
        modules["te1"],
        modules["te2"],
        modules["unet"],
        0,
        0,
        None,
        modules["vae"],
        logit_scale,
        None,
    )
    partial.replace(out)  # a half-written model never looks finished
    parts = ", ".join(f"{k} {v / 1e6:.0f}M" for k, v in counts.items())
    print(f"model: {sum(counts.values()) / 1e6:.0f}M random parameters ({parts}) in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
