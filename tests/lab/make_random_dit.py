"""Shrunk random-weight DiT checkpoints (FLUX.1 dev, Chroma, SD3/3.5) and offline tokenizers.

Run with the lab venv's Python (it imports torch, transformers and sd-scripts' model classes):

    python make_random_dit.py --sd-scripts DIR --tokcache DIR --out DIR [--captions DIR] FAMILY...

FAMILY is a key of ``FAMILIES`` (``flux``, ``chroma``, ``sd3``, ``sd35m``, ``sd35l``) or ``all``.
Each family gets ``OUT/<family>/`` with its checkpoint(s) and ``model.json``: the sd-scripts
arguments that point at them (``pretrained_model_name_or_path``, ``clip_l``, ``t5xxl``, ...),
``trains`` (whether sd-scripts can train it, or only load it up to its error) and ``note``.
Parts that several families share (T5-XXL, CLIP-L, CLIP-G, the FLUX autoencoder) are written once
under ``OUT/common/``. The tokenizers sd-scripts asks for by Hugging Face id are written into
TOKCACHE (the folder passed as ``tokenizer_cache_dir``): ``google_t5-v1_1-xxl`` (a small
sentencepiece model trained here on the captions) and ``laion_CLIP-ViT-bigG-14-laion2B-39B-b160k``
(the CLIP BPE; TOKCACHE must already hold ``openai_clip-vit-large-patch14``, see make_tokenizer.py).

How small each part can be depends on what sd-scripts' loader reads from the file:

* The FLUX.1 loader takes the number of double/single blocks from the keys, so the transformer has
  1 + 1 blocks at the real width (3072): random, about 1.1 GB in bf16.
* SD3's loader takes everything from the shapes (width = 64 x depth): depth 2 is 128 wide.
* T5-XXL, CLIP-L, CLIP-G and the autoencoders have fixed configurations in sd-scripts, so they are
  written at full size. CLIP-L (123M) and the autoencoders are random. T5-XXL (4.7B) and CLIP-G
  (695M) are *hollow*: the token and position embeddings, the final norm (and CLIP-G's projection)
  are random, every other tensor is zero and is left as a hole in a sparse file, so T5-XXL takes
  17 MB of disk. Zero layers pass the residual stream through, so these encoders output the
  normalised embedding of each token. A hollow tensor costs memory only when it is read, as
  sd-scripts maps the file: encoding the captions reads all of T5-XXL, which shows as up to 19 GB
  of (clean, reclaimable) file-backed resident memory in fp32. Hollow files are written in the
  dtype the run computes in (``--hollow-dtype``, default fp32 for ``mixed_precision = "no"``):
  any other dtype makes sd-scripts cast them, which reads every hole into anonymous memory. Copy
  them with a sparse-aware tool (``cp``, ``rsync -S``).
* Chroma's loader builds 19 + 38 blocks whatever the file holds (and loads with strict=False), so
  no shrunk Chroma can train; its file here (1 + 1 blocks, hollow) shows how sd-scripts fails.

Adding a family: write ``def build_x(ctx: Context) -> dict[str, Any]`` that writes its files with
``write_safetensors`` / ``random_state`` / ``module_shapes`` and returns its ``model.json`` fields,
then add it to ``FAMILIES`` (a sibling script can instead import this module and call
``main(argv, {**FAMILIES, "x": build_x})``). Everything is seeded: a rerun writes the same bytes, and a file that
already exists is kept.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import shutil
import struct
import sys
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

SEED = 1234
DTYPES = {
    torch.bfloat16: "BF16",
    torch.float16: "F16",
    torch.float32: "F32",
    torch.float8_e4m3fn: "F8_E4M3",
}
T5_VOCAB = 32128  # rows of T5-XXL's embedding (sd-scripts' fixed config)
T5_RANDOM_ROWS = 1024  # rows a small tokenizer can reach; the rest of the table is a hole
HF_T5 = "google_t5-v1_1-xxl"  # tokenizer_cache_dir/<hf id with / as _>
HF_CLIP_L = "openai_clip-vit-large-patch14"
HF_CLIP_G = "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"

# The text the T5 sentencepiece model learns from, besides the captions.
CORPUS = """\
a photo of a cat sitting on a red chair in the morning light
an oil painting of a mountain lake with blue water and green trees
a portrait of a woman with long hair, highly detailed, sharp focus
a drawing of a small house next to a river under a cloudy sky
the quick brown fox jumps over the lazy dog
masterpiece, best quality, 1girl, solo, looking at viewer, smile
a watercolor of flowers in a glass vase on a wooden table
a black and white photograph of a city street at night with rain
"""


@dataclass
class Context:
    """Where a builder reads sd-scripts and writes its files."""

    sd_scripts: Path
    out: Path
    tokcache: Path
    captions: list[str] = field(default_factory=list)
    dtype: torch.dtype = torch.bfloat16  # random tensors (sd-scripts casts them on load)
    # Hollow files: the dtype the run computes in, so sd-scripts maps them without a cast (a cast
    # would read every hole into memory). fp32 for mixed_precision "no" (bf16 is slow on CPUs
    # without native bf16: measured 5x slower linears, 170x slower convolutions).
    hollow_dtype: torch.dtype = torch.float32

    @property
    def hollow_tag(self) -> str:
        return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[
            self.hollow_dtype
        ]

    def family_dir(self, name: str) -> Path:
        d = self.out / name
        d.mkdir(parents=True, exist_ok=True)
        return d


# ---------------------------------------------------------------------------------------------
# safetensors, written by hand so that zero tensors can be holes


@dataclass
class Entry:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    data: torch.Tensor | None  # None: all zero; fewer elements than the shape: the rest is zero

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()


def write_safetensors(path: Path, entries: Iterable[Entry], metadata: dict[str, str]) -> int:
    """Write a safetensors file; zero bytes are never written, so they stay holes. Returns bytes."""
    entries = sorted(entries, key=lambda e: e.name)
    header: dict[str, Any] = {"__metadata__": {"format": "pt", **metadata}}
    offset = 0
    for e in entries:
        header[e.name] = {
            "dtype": DTYPES[e.dtype],
            "shape": list(e.shape),
            "data_offsets": [offset, offset + e.nbytes],
        }
        offset += e.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    base = 8 + len(raw)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for e in entries:
            start = header[e.name]["data_offsets"][0]
            if e.data is not None:
                data = e.data.detach().to(e.dtype).contiguous().reshape(-1)
                f.seek(base + start)
                f.write(data.view(torch.uint8).numpy().tobytes())
        f.truncate(base + offset)
    partial.replace(path)  # a half-written model never looks finished
    return base + offset


# ---------------------------------------------------------------------------------------------
# shapes and random values


def module_shapes(factory: Callable[[], torch.nn.Module]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a module's state dict, built on the meta device (no memory)."""
    with torch.device("meta"):
        module = factory()
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _generator(name: str) -> torch.Generator:
    # One stream per tensor name: the values do not depend on the order or on other tensors.
    return torch.Generator().manual_seed(SEED + zlib.crc32(name.encode()))


NORM_SCALE = re.compile(r"(\.scale|norm\w*\.weight|\.ln_\w+\.weight)$", re.IGNORECASE)
TABLE = re.compile(r"(embedding\.weight|shared\.weight|pos_embed)$")


def random_tensor(name: str, shape: tuple[int, ...], rows: int | None = None) -> torch.Tensor:
    """Values that keep activations near unit size: norm scales 1, biases small, weights 1/sqrt(fan_in)."""
    if len(shape) <= 1:
        if NORM_SCALE.search(name):
            return torch.ones(shape)
        return torch.randn(shape, generator=_generator(name)) * 0.02
    n_rows = shape[0] if rows is None else min(rows, shape[0])
    std = 0.02 if TABLE.search(name) else 1.0 / math.sqrt(math.prod(shape[1:]))
    return torch.randn((n_rows, *shape[1:]), generator=_generator(name)) * std


def random_state(
    shapes: dict[str, tuple[int, ...]],
    dtype: torch.dtype,
    prefix: str = "",
    keep: Callable[[str], bool] = lambda _k: True,
    rows: Callable[[str], int | None] = lambda _k: None,
) -> list[Entry]:
    """Entries for a state dict: random where ``keep(name)``, a hole elsewhere."""
    out = []
    for k, shape in shapes.items():
        data = random_tensor(k, shape, rows(k)) if keep(k) else None
        out.append(Entry(prefix + k, shape, dtype, data))
    return out


def _once(path: Path, build: Callable[[Path], int]) -> Path:
    if path.exists():
        print(f"kept {path}")
    else:
        n = build(path)
        used = path.stat().st_blocks * 512
        print(f"wrote {path}: {n / 1e6:.0f} MB ({used / 1e6:.0f} MB on disk)")
    return path


def _sd_scripts_import(ctx: Context) -> None:
    if str(ctx.sd_scripts) not in sys.path:
        sys.path.insert(0, str(ctx.sd_scripts))


META = {"kohya_orchestrator": "random weights for tests (tests/lab/make_random_dit.py)"}


# ---------------------------------------------------------------------------------------------
# shared parts: text encoders and autoencoders (fixed configurations in sd-scripts)


def _t5xxl_config() -> Any:
    from transformers import T5Config

    return T5Config(
        vocab_size=T5_VOCAB,
        d_model=4096,
        d_kv=64,
        d_ff=10240,
        num_layers=24,
        num_heads=64,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
    )


def hollow_keep(name: str) -> bool:
    """The tensors a hollow text encoder keeps random: embeddings and the final norm."""
    return "embed" in name or name.startswith("shared.") or "final_layer_norm" in name


def t5xxl_hollow(ctx: Context) -> Path:
    """T5-XXL encoder at full size (4.7B), hollow: only the first embedding rows hold values."""

    def build(path: Path) -> int:
        from transformers import T5EncoderModel

        shapes = module_shapes(lambda: T5EncoderModel(_t5xxl_config()))
        shapes.pop("encoder.embed_tokens.weight", None)  # the same tensor as shared.weight
        entries = random_state(
            shapes,
            ctx.hollow_dtype,
            keep=hollow_keep,
            rows=lambda k: T5_RANDOM_ROWS if k == "shared.weight" else None,
        )
        return write_safetensors(path, entries, META)

    return _once(ctx.family_dir("common") / f"t5xxl_hollow_{ctx.hollow_tag}.safetensors", build)


def _clip_config(big: bool) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=1280 if big else 768,
        intermediate_size=5120 if big else 3072,
        num_hidden_layers=32 if big else 12,
        num_attention_heads=20 if big else 12,
        max_position_embeddings=77,
        hidden_act="gelu" if big else "quick_gelu",
        projection_dim=1280 if big else 768,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )


def clip_l_random(ctx: Context) -> Path:
    """CLIP ViT-L/14 text encoder (123M), all random: cheap enough to train a LoRA on for real."""

    def build(path: Path) -> int:
        from transformers import CLIPTextModelWithProjection

        shapes = module_shapes(lambda: CLIPTextModelWithProjection(_clip_config(big=False)))
        return write_safetensors(path, random_state(shapes, ctx.dtype), META)

    return _once(ctx.family_dir("common") / "clip_l.safetensors", build)


def clip_g_hollow(ctx: Context) -> Path:
    """CLIP ViT-bigG/14 text encoder (695M), hollow, with a random text projection."""

    def build(path: Path) -> int:
        from transformers import CLIPTextModelWithProjection

        shapes = module_shapes(lambda: CLIPTextModelWithProjection(_clip_config(big=True)))
        entries = random_state(
            shapes, ctx.hollow_dtype, keep=lambda k: hollow_keep(k) or k == "text_projection.weight"
        )
        return write_safetensors(path, entries, META)

    return _once(ctx.family_dir("common") / f"clip_g_hollow_{ctx.hollow_tag}.safetensors", build)


def flux_ae(ctx: Context) -> Path:
    """FLUX.1's autoencoder (84M, sd-scripts' fixed configuration), random."""

    def build(path: Path) -> int:
        _sd_scripts_import(ctx)
        from library import flux_models

        params = flux_models.configs["dev"].ae_params
        shapes = module_shapes(lambda: flux_models.AutoEncoder(params))
        return write_safetensors(path, random_state(shapes, ctx.dtype), META)

    return _once(ctx.family_dir("common") / "flux_ae.safetensors", build)


# ---------------------------------------------------------------------------------------------
# tokenizers (tokenizer_cache_dir/<hf id>), offline


def t5_tokenizer(ctx: Context) -> Path:
    """A T5 tokenizer folder: a small unigram sentencepiece model (pad 0, eos 1, unk 2) + 100 extra ids."""
    out = ctx.tokcache / HF_T5
    if (out / "tokenizer.json").exists():
        print(f"kept {out}")
        return out
    import sentencepiece as spm
    from transformers import T5Tokenizer, T5TokenizerFast

    tmp = ctx.tokcache / (HF_T5 + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lines = [*ctx.captions, *CORPUS.splitlines()]
    model = io.BytesIO()  # not model_prefix: that path would be stored inside the model
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines * 8),
        model_writer=model,
        vocab_size=200,
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    (tmp / "spiece.model").write_bytes(model.getvalue())
    slow = T5Tokenizer(vocab_file=str(tmp / "spiece.model"), extra_ids=100, legacy=True)
    slow.save_pretrained(str(tmp))
    # Converted once here, so the folder holds tokenizer.json and loading needs no conversion.
    fast = T5TokenizerFast.from_pretrained(str(tmp))
    fast.save_pretrained(str(tmp))
    config_file = tmp / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.pop("add_prefix_space", None)  # else every load converts the slow tokenizer again
    config["model_max_length"] = 512
    config_file.write_text(json.dumps(config, indent=2))
    fast = T5TokenizerFast.from_pretrained(str(tmp))
    ids = fast(lines[0]).input_ids
    if max(ids) >= T5_RANDOM_ROWS or len(fast) > T5_RANDOM_ROWS or ids[-1] != 1:
        raise SystemExit(f"T5 tokenizer out of range: {len(fast)} tokens, ids {ids}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    print(f"tokenizer: {len(fast)} tokens in {out}")
    return out


def clip_g_tokenizer(ctx: Context) -> Path:
    """CLIP-G's tokenizer: CLIP's BPE (as laion's bigG repo ships it), padding with '!'."""
    out = ctx.tokcache / HF_CLIP_G
    if out.exists():
        print(f"kept {out}")
        return out
    src = ctx.tokcache / HF_CLIP_L
    if not (src / "vocab.json").exists():
        raise SystemExit(f"{src} is missing: build it first with make_tokenizer.py")
    tmp = ctx.tokcache / (HF_CLIP_G + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        cfg = json.loads((tmp / name).read_text())
        cfg["pad_token"] = "!"
        (tmp / name).write_text(json.dumps(cfg, indent=2))
    tmp.replace(out)
    print(f"tokenizer: {out}")
    return out


# ---------------------------------------------------------------------------------------------
# families


def build_flux(ctx: Context) -> dict[str, Any]:
    """FLUX.1 dev with 1 double + 1 single block (sd-scripts reads the block counts from the keys)."""
    _sd_scripts_import(ctx)
    from library import flux_models

    params = replace(flux_models.configs["dev"].params, depth=1, depth_single_blocks=1)

    def build(path: Path) -> int:
        shapes = module_shapes(lambda: flux_models.Flux(params))
        return write_safetensors(path, random_state(shapes, ctx.dtype), META)

    dit = _once(ctx.family_dir("flux") / "flux1-dev-d1s1.safetensors", build)
    t5_tokenizer(ctx)
    return {
        "script": "flux_train_network.py",
        "network_module": "networks.lora_flux",
        "trains": True,
        "args": {
            "pretrained_model_name_or_path": str(dit),
            "clip_l": str(clip_l_random(ctx)),
            "t5xxl": str(t5xxl_hollow(ctx)),
            "ae": str(flux_ae(ctx)),
            "model_type": "flux",
        },
        "note": "FLUX.1 dev, 1+1 blocks at width 3072, random; T5-XXL hollow; CLIP-L and AE random",
    }


def build_chroma(ctx: Context) -> dict[str, Any]:
    """Chroma with 1 + 1 blocks, hollow: sd-scripts builds 19 + 38 and leaves the rest on 'meta'."""
    _sd_scripts_import(ctx)
    from library import chroma_models

    params = replace(chroma_models.chroma_params, depth=1, depth_single_blocks=1)

    def build(path: Path) -> int:
        shapes = module_shapes(lambda: chroma_models.Chroma(params))
        entries = random_state(shapes, ctx.hollow_dtype, keep=lambda _k: False)
        return write_safetensors(path, entries, META)

    dit = _once(
        ctx.family_dir("chroma") / f"chroma-d1s1-hollow_{ctx.hollow_tag}.safetensors", build
    )
    t5_tokenizer(ctx)
    return {
        "script": "flux_train_network.py",
        "network_module": "networks.lora_flux",
        "trains": False,
        "args": {
            "pretrained_model_name_or_path": str(dit),
            "t5xxl": str(t5xxl_hollow(ctx)),
            "ae": str(flux_ae(ctx)),
            "model_type": "chroma",
            "apply_t5_attn_mask": True,
        },
        "note": "Chroma's block counts are fixed in sd-scripts (19+38): this 1+1 file loads with "
        "missing keys and fails before training",
    }


def _sd3(
    ctx: Context, name: str, kind: str, qk_norm: bool, self_attn_layers: list[int], pos: int
) -> dict[str, Any]:
    """An SD3-family MMDiT of depth 2 (width 128) + the SD3 VAE in one file; text encoders apart."""
    _sd_scripts_import(ctx)
    from library import sd3_models

    depth = 2
    params = sd3_models.SD3Params(
        patch_size=2,
        depth=depth,
        num_patches=pos * pos,
        pos_embed_max_size=pos,
        adm_in_channels=2048,
        qk_norm="rms" if qk_norm else None,
        x_block_self_attn_layers=self_attn_layers,
        context_embedder_in_features=4096,
        context_embedder_out_features=64 * depth,
        model_type=kind,
    )

    def build(path: Path) -> int:
        mmdit = module_shapes(lambda: sd3_models.create_sd3_mmdit(params))
        vae = module_shapes(sd3_models.SDVAE)
        entries = random_state(mmdit, ctx.dtype, prefix="model.diffusion_model.")
        entries += random_state(vae, ctx.dtype, prefix="first_stage_model.")
        return write_safetensors(path, entries, META)

    ckpt = _once(ctx.family_dir(name) / f"{name}-d{depth}.safetensors", build)
    t5_tokenizer(ctx)
    clip_g_tokenizer(ctx)
    return {
        "script": "sd3_train_network.py",
        "network_module": "networks.lora_sd3",
        "trains": True,
        "args": {
            "pretrained_model_name_or_path": str(ckpt),
            "clip_l": str(clip_l_random(ctx)),
            "clip_g": str(clip_g_hollow(ctx)),
            "t5xxl": str(t5xxl_hollow(ctx)),
        },
        "note": f"MMDiT '{kind}', depth {depth} (width {64 * depth}), qk_norm={params.qk_norm}, "
        f"x-block self-attention in {self_attn_layers}; SD3 VAE random; CLIP-G and T5-XXL hollow",
    }


def build_sd3(ctx: Context) -> dict[str, Any]:
    """SD3 medium layout (no qk norm): sd-scripts names it 'medium'."""
    return _sd3(ctx, "sd3", "medium", qk_norm=False, self_attn_layers=[], pos=192)


def build_sd35m(ctx: Context) -> dict[str, Any]:
    """SD3.5 medium layout (qk norm, x-block self-attention, 384 positions): '5-medium'."""
    return _sd3(ctx, "sd35m", "5-medium", qk_norm=True, self_attn_layers=[0], pos=384)


def build_sd35l(ctx: Context) -> dict[str, Any]:
    """SD3.5 large layout (qk norm, no x-block self-attention): '5-large'."""
    return _sd3(ctx, "sd35l", "5-large", qk_norm=True, self_attn_layers=[], pos=192)


FAMILIES: dict[str, Callable[[Context], dict[str, Any]]] = {
    "flux": build_flux,
    "chroma": build_chroma,
    "sd3": build_sd3,
    "sd35m": build_sd35m,
    "sd35l": build_sd35l,
}


def build(
    ctx: Context, names: Iterable[str], families: dict[str, Callable[[Context], dict[str, Any]]]
) -> None:
    """Build the named families and write each one's model.json (also the entry point for siblings)."""
    torch.manual_seed(SEED)
    clip_l_tokenizer = ctx.tokcache / HF_CLIP_L  # every family here tokenizes with it
    if not (clip_l_tokenizer / "vocab.json").exists():
        raise SystemExit(f"{clip_l_tokenizer} is missing: build it with make_tokenizer.py")
    for name in names:
        info = families[name](ctx)
        (ctx.family_dir(name) / "model.json").write_text(json.dumps(info, indent=2) + "\n")
        print(f"{name}: {ctx.family_dir(name) / 'model.json'}")


def parse(
    argv: list[str] | None, families: dict[str, Callable[[Context], dict[str, Any]]]
) -> tuple[Context, list[str]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sd-scripts", required=True, type=Path)
    p.add_argument("--tokcache", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--captions", type=Path, help="a folder whose *.txt feed the T5 tokenizer")
    p.add_argument(
        "--hollow-dtype",
        choices=["fp32", "bf16"],
        default="fp32",
        help="dtype of the hollow files: the run's weight dtype (mixed_precision no: fp32)",
    )
    p.add_argument("family", nargs="+", choices=[*families, "all"])
    a = p.parse_args(argv)
    captions = []
    if a.captions:
        captions = [
            t.read_text(encoding="utf-8").strip() for t in sorted(a.captions.rglob("*.txt"))
        ]
    ctx = Context(a.sd_scripts.resolve(), a.out.resolve(), a.tokcache.resolve(), captions)
    ctx.hollow_dtype = torch.float32 if a.hollow_dtype == "fp32" else torch.bfloat16
    names = list(families) if "all" in a.family else list(dict.fromkeys(a.family))
    return ctx, names


def main(
    argv: list[str] | None = None,
    families: dict[str, Callable[[Context], dict[str, Any]]] | None = None,
) -> int:
    families = FAMILIES if families is None else families
    ctx, names = parse(argv, families)
    build(ctx, names, families)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
