"""Random-weight checkpoints and offline tokenizers for Lumina 2, HunyuanImage 2.1 and Anima.

Run with the lab venv's Python:

    python make_random_dit2.py SD_SCRIPTS_DIR OUT_DIR [FAMILY ...] [--full-anima-dit]

FAMILY is any of lumina, hunyuan_image, anima (default: all three). Each family gets
OUT_DIR/<family>/ holding its model files, its tokenizers and ``args.json``: the sd-scripts
arguments (``pretrained_model_name_or_path``, ``gemma2``, ``ae``, ...) that point at them.

None of the three sd-scripts loaders (commit 48d368fa) reads a model's depth or widths from the
checkpoint: each builds the published architecture from a configuration written into the code and
then loads the file into it. A model with fewer blocks therefore cannot be trained; what these
files are for is driving the real training script up to (and through) model loading:

* lumina: the DiT keeps its first block of 26 and Gemma2 its first layer of 26, both at full width;
  the AutoEncoder is complete. sd-scripts loads both partial files with ``strict=False`` (it only
  logs the missing keys) and fails later, when the text encoder is used.
* hunyuan_image: every file holds only the small tensors (norms, biases) of its model. The first
  load (Qwen2.5-VL, ``strict=True``) fails and names the missing keys.
* anima: the Qwen3 text encoder is a real, tiny model folder (sd-scripts reads its config from the
  folder) and the VAE is complete, so latents and text-encoder outputs are cached for real; the DiT
  keeps its first block of 28 and the DiT load fails with "Missing keys in checkpoint".
  ``--full-anima-dit`` writes the whole 2.09B-parameter DiT instead (3.9 GiB in bf16; building it
  peaks near 10 GB of RAM, so run it under the machine's heavy-job lock), which sd-scripts loads
  and trains: on a 2-core CPU with ``mixed_precision = "no"``, about 3 s a step at 64 px and a
  peak of 9.6 GiB (bf16 halves the memory but, without native bf16 on the CPU, takes 186 s a step).

The tokenizers are small byte-level BPE models trained here with the ``tokenizers`` library, laid
out where sd-scripts looks for them with ``--tokenizer_cache_dir`` (lumina: a Hugging Face cache
for google/gemma-2-2b; hunyuan_image: ``Qwen_Qwen2.5-VL-7B-Instruct`` and ``google_byt5-small``
folders) or inside the Qwen3 folder (anima, whose T5 tokenizer sd-scripts ships in its configs/).
Seeded: the same files every time.
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

SEED = 1234
DTYPE = torch.bfloat16
CORPUS = [
    "oilpaint style, a painting of a house by a lake",
    "oilpaint style, a portrait of a woman with a red hat",
    "oilpaint style, a bowl of fruit on a wooden table",
    "oilpaint style, a mountain landscape at sunset",
    "a photo of a cat sitting on a sofa",
    "a drawing of a dog running in a park, high quality, detailed",
    "Describe the image by detailing the color, shape, size, texture, quantity, text, "
    "spatial relationships of the objects and background:",
    "You are an assistant designed to generate high-quality images based on user prompts.",
    "The quick brown fox jumps over the lazy dog. 0123456789",
]
# google/gemma-2-2b's snapshot name is arbitrary here: transformers only follows refs/main.
GEMMA_SNAPSHOT = "0" * 40


def _init_tensor(name: str, shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    """A random value for one parameter: ones for norm scales, zeros for biases, small noise else."""
    if len(shape) <= 1:
        if name.endswith("bias"):
            return torch.zeros(shape, dtype=DTYPE)
        return torch.ones(shape, dtype=DTYPE)
    return (torch.randn(shape, generator=gen) * 0.02).to(DTYPE)


def _random_state(
    named_shapes: Iterable[tuple[str, torch.Size]],
    keep: Callable[[str, torch.Size], bool],
    prefix: str = "",
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(SEED)
    return {prefix + k: _init_tensor(k, s, gen) for k, s in named_shapes if keep(k, s)}


def _param_shapes(model: torch.nn.Module) -> list[tuple[str, torch.Size]]:
    return [(k, p.shape) for k, p in model.named_parameters()]


def _save(sd: dict[str, torch.Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata={"format": "pt"})
    print(
        f"  {path.name}: {len(sd)} tensors, {sum(v.numel() for v in sd.values()):,} values",
        flush=True,
    )
    return path


def _config_literal(func: Callable[..., Any], name: str) -> dict[str, Any]:
    """The configuration an sd-scripts loader writes into its code (``NAME = {...}`` or a JSON string).

    Reading it from the function keeps one source for the shapes; entries whose value is not a
    literal (such as ``"attn_mode": attn_mode``) are left out.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return dict(json.loads(node.value.value))
            if isinstance(node.value, ast.Dict):
                out: dict[str, Any] = {}
                for k, v in zip(node.value.keys, node.value.values, strict=True):
                    try:
                        out[ast.literal_eval(k)] = ast.literal_eval(v)  # type: ignore[arg-type]
                    except ValueError:
                        continue
                return out
    raise SystemExit(
        f"{func.__qualname__} no longer defines {name}: the lab builder needs updating"
    )


def _small_tensors(model: torch.nn.Module, max_numel: int = 1 << 20) -> dict[str, torch.Tensor]:
    return _random_state(_param_shapes(model), lambda _k, s: s.numel() <= max_numel)


# -- tokenizers ------------------------------------------------------------------------------------


def _bpe(specials: list[str], vocab_size: int = 1000) -> Any:
    """A byte-level BPE tokenizer (the ``tokenizers`` library) trained on CORPUS, specials first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    return tok


def _qwen_tokenizer(out: Path, fast: bool) -> int:
    """A Qwen2-style tokenizer folder (vocab.json + merges.txt, and tokenizer.json when fast)."""
    from transformers import Qwen2Tokenizer, Qwen2TokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = _bpe(specials)
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "_bpe"
    raw.mkdir(exist_ok=True)
    tok.model.save(str(raw))  # vocab.json, merges.txt
    slow = Qwen2Tokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"))
    slow.add_special_tokens({"additional_special_tokens": specials[1:]})
    slow.save_pretrained(str(out))
    if fast:  # adds tokenizer.json, converted from the slow files
        Qwen2TokenizerFast.from_pretrained(str(out), from_slow=True).save_pretrained(str(out))
    for f in raw.iterdir():
        f.unlink()
    raw.rmdir()
    ids = (
        (Qwen2TokenizerFast if fast else Qwen2Tokenizer)
        .from_pretrained(str(out))("a photo of a cat")
        .input_ids
    )
    print(f"  tokenizer {out.name}: {len(slow)} tokens, 'a photo of a cat' -> {ids}", flush=True)
    return len(slow)


def _gemma_tokenizer(cache_dir: Path) -> Path:
    """google/gemma-2-2b's tokenizer as an offline Hugging Face cache entry (a tiny vocabulary)."""
    from tokenizers import processors
    from transformers import AutoTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]  # Gemma's ids 0..3
    tok = _bpe(specials)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 2)]
    )
    repo = cache_dir / "models--google--gemma-2-2b"
    snap = repo / "snapshots" / GEMMA_SNAPSHOT
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(GEMMA_SNAPSHOT)
    tok.save(str(snap / "tokenizer.json"))
    names = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}
    (snap / "special_tokens_map.json").write_text(json.dumps(names, indent=2))
    config = {
        **names,
        "tokenizer_class": "GemmaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
    }
    (snap / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    loaded = AutoTokenizer.from_pretrained(
        "google/gemma-2-2b", cache_dir=str(cache_dir), local_files_only=True
    )
    print(
        f"  tokenizer gemma-2-2b: {len(loaded)} tokens, {type(loaded).__name__}, ids {loaded('a cat').input_ids}"
    )
    return cache_dir


# -- families --------------------------------------------------------------------------------------


def build_lumina(sd_scripts: Path, out: Path, full: bool = False) -> dict[str, str]:
    from accelerate import init_empty_weights
    from library import flux_models, lumina_models, lumina_util
    from transformers import Gemma2Config, Gemma2Model

    with torch.device("meta"):
        dit = lumina_models.NextDiT_2B_GQA_patch2_Adaln_Refiner()
    blocks = ("layers.", "context_refiner.", "noise_refiner.")
    dit_sd = _random_state(
        _param_shapes(dit), lambda k, _s: not k.startswith(blocks) or k.startswith("layers.0.")
    )
    gemma_cfg = Gemma2Config(**_config_literal(lumina_util.load_gemma2, "GEMMA2_CONFIG"))
    with init_empty_weights():
        gemma = Gemma2Model._from_config(gemma_cfg)
    gemma_sd = _random_state(
        _param_shapes(gemma), lambda k, _s: k.startswith("layers.0.") or k == "norm.weight"
    )
    torch.manual_seed(SEED)
    ae = flux_models.AutoEncoder(flux_models.configs["schnell"].ae_params)
    return {
        "pretrained_model_name_or_path": str(
            _save(dit_sd, out / "lumina2_dit_1of26blocks.safetensors")
        ),
        "gemma2": str(_save(gemma_sd, out / "gemma2_2b_1of26layers.safetensors")),
        "ae": str(
            _save({k: v.to(DTYPE) for k, v in ae.state_dict().items()}, out / "ae.safetensors")
        ),
        "tokenizer_cache_dir": str(_gemma_tokenizer(out / "tokcache")),
    }


def build_hunyuan_image(sd_scripts: Path, out: Path, full: bool = False) -> dict[str, str]:
    import transformers
    from accelerate import init_empty_weights
    from library import hunyuan_image_models, hunyuan_image_text_encoder, hunyuan_image_vae
    from transformers import ByT5Tokenizer

    te = hunyuan_image_text_encoder
    vl_cfg = transformers.Qwen2_5_VLConfig(
        **_config_literal(te.load_qwen2_5_vl, "QWEN2_5_VL_CONFIG_JSON")
    )
    with init_empty_weights():
        vl = transformers.Qwen2_5_VLForConditionalGeneration._from_config(vl_cfg)
    # Checkpoint keys as the released file spells them (model.*, visual.*), which sd-scripts renames.
    vl_sd = {
        k.replace("model.language_model.", "model.", 1).replace("model.visual.", "visual.", 1): v
        for k, v in _small_tensors(vl, 1 << 14).items()
    }
    with init_empty_weights():
        dit = hunyuan_image_models.create_model("torch", False, DTYPE)
    with init_empty_weights():
        vae = hunyuan_image_vae.HunyuanVAE2D()
    # byT5: the embedding sd-scripts renames (shared.weight) and the final norm; no blocks.
    byt5_sd = {
        "shared.weight": torch.zeros(384, 1472, dtype=DTYPE),
        "encoder.final_layer_norm.weight": torch.ones(1472, dtype=DTYPE),
    }
    tok = out / "tokcache"
    _qwen_tokenizer(tok / "Qwen_Qwen2.5-VL-7B-Instruct", fast=False)
    ByT5Tokenizer().save_pretrained(str(tok / "google_byt5-small"))
    return {
        "pretrained_model_name_or_path": str(
            _save(_small_tensors(dit, 1 << 14), out / "hunyuan_image_dit_stub.safetensors")
        ),
        "text_encoder": str(_save(vl_sd, out / "qwen2_5_vl_7b_stub.safetensors")),
        "byt5": str(_save(byt5_sd, out / "byt5_stub.safetensors")),
        "vae": str(_save(_small_tensors(vae, 1 << 14), out / "vae_stub.safetensors")),
        "tokenizer_cache_dir": str(tok),
    }


ANIMA_QWEN3 = {  # hidden_size must stay 1024: the DiT's LLM adapter reads Qwen3-0.6B's hidden states
    "hidden_size": 1024,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
    "rope_theta": 1000000.0,
}


def build_anima(sd_scripts: Path, out: Path, full: bool = False) -> dict[str, str]:
    import transformers
    from accelerate import init_empty_weights
    from library import anima_models, anima_utils, qwen_image_autoencoder_kl

    qwen_dir = out / "qwen3_tiny"
    n_tokens = _qwen_tokenizer(qwen_dir, fast=True)
    vocab = (n_tokens + 63) // 64 * 64
    cfg = transformers.Qwen3Config(
        vocab_size=vocab, bos_token_id=None, eos_token_id=0, pad_token_id=0, **ANIMA_QWEN3
    )
    torch.manual_seed(SEED)
    transformers.Qwen3ForCausalLM(cfg).to(DTYPE).save_pretrained(str(qwen_dir))

    vae_cfg = _config_literal(qwen_image_autoencoder_kl.load_vae, "VAE_CONFIG_JSON")
    keys = ("base_dim", "z_dim", "dim_mult", "num_res_blocks", "attn_scales", "temperal_downsample", "dropout",
            "latents_mean", "latents_std")  # fmt: skip
    torch.manual_seed(SEED)
    vae = qwen_image_autoencoder_kl.AutoencoderKLQwenImage(**{k: vae_cfg[k] for k in keys})
    vae_sd = {k: v.to(DTYPE) if v.is_floating_point() else v for k, v in vae.state_dict().items()}

    dit_cfg = {
        **_config_literal(anima_utils.load_anima_model, "dit_config"),
        "attn_mode": "torch",
        "split_attn": False,
    }
    with init_empty_weights():
        dit = anima_models.Anima(**dit_cfg)
    if full:
        name, keep = "anima_dit_full.safetensors", (lambda _k, _s: True)
    else:
        name, keep = (
            "anima_dit_1of28blocks.safetensors",
            (lambda k, _s: not k.startswith("blocks.") or k.startswith("blocks.0.")),
        )
    return {
        "pretrained_model_name_or_path": str(
            _save(_random_state(_param_shapes(dit), keep, prefix="net."), out / name)
        ),
        "qwen3": str(qwen_dir),
        "vae": str(_save(vae_sd, out / "qwen_image_vae.safetensors")),
    }


BUILDERS: dict[str, Callable[..., dict[str, str]]] = {
    "lumina": build_lumina,
    "hunyuan_image": build_hunyuan_image,
    "anima": build_anima,
}


def main(argv: list[str]) -> None:
    full = "--full-anima-dit" in argv
    args = [a for a in argv if a != "--full-anima-dit"]
    if len(args) < 2:
        raise SystemExit(__doc__)
    sd_scripts, out = Path(args[0]).resolve(), Path(args[1]).resolve()
    families = args[2:] or list(BUILDERS)
    sys.path.insert(0, str(sd_scripts))
    for family in families:
        print(f"{family}:", flush=True)
        target = out / family
        paths = BUILDERS[family](sd_scripts, target, full=full)
        (target / "args.json").write_text(json.dumps(paths, indent=2) + "\n")
        print(f"  args.json: {paths}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
