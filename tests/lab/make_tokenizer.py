"""Write an offline CLIP tokenizer folder (what sd-scripts' tokenizer_cache_dir holds).

Run with the lab venv's Python:  python make_tokenizer.py OPEN_CLIP_WHEEL OUT_DIR [--pad TOKEN]

The BPE merges come from the vocabulary file that the open-clip-torch wheel carries
(open_clip/bpe_simple_vocab_16e6.txt.gz, OpenAI's CLIP vocabulary); the token ids follow CLIP's
layout: 256 byte symbols, the same 256 with the end-of-word mark, one token per merge, then the
start and end tokens (49408 in all). The result is checked against ids the real
openai/clip-vit-large-patch14 tokenizer gives.

SDXL's second tokenizer (laion/CLIP-ViT-bigG-14-laion2B-39B-b160k, OpenCLIP's) is the same
vocabulary with ``!`` (id 0) as its padding token: ``--pad '!'`` writes that one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import zipfile
from pathlib import Path

N_MERGES = 49152 - 256 - 2  # CLIP's vocabulary size less the byte symbols and the two specials
SPECIAL = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"}


def byte_symbols() -> list[str]:
    """The printable stand-in for each byte 0..255, in CLIP's (GPT-2's) order."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    order = list(printable)
    chars = [chr(b) for b in printable]
    shift = 0
    for b in range(256):
        if b not in printable:
            order.append(b)
            chars.append(chr(256 + shift))
            shift += 1
    return chars  # in `order` order: printable bytes first, then the rest


def main(wheel: Path, out: Path, pad: str | None = None) -> None:
    with zipfile.ZipFile(wheel) as z:
        text = gzip.decompress(z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")).decode("utf-8")
    merges = [tuple(line.split()) for line in text.split("\n")[1 : N_MERGES + 1]]
    symbols = byte_symbols()
    tokens = [*symbols, *(s + "</w>" for s in symbols), *("".join(m) for m in merges)]
    tokens += [SPECIAL["bos_token"], SPECIAL["eos_token"]]
    if len(tokens) != 49408:
        raise SystemExit(f"expected 49408 tokens, built {len(tokens)}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(
        json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8"
    )
    (out / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    special = {
        **SPECIAL,
        "unk_token": SPECIAL["eos_token"],
        "pad_token": pad or SPECIAL["eos_token"],
    }
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {
        **special,
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": True,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))

    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(out))
    ids = tokenizer("a photo of a cat").input_ids
    # The ids the real openai/clip-vit-large-patch14 tokenizer gives for this text.
    if ids != [49406, 320, 1125, 539, 320, 2368, 49407]:
        raise SystemExit(f"the tokenizer does not match CLIP's ids: {ids}")
    if pad is not None and tokenizer.pad_token_id != tokens.index(pad):
        raise SystemExit(
            f"pad token {pad!r} has id {tokenizer.pad_token_id}, not {tokens.index(pad)}"
        )
    print(f"tokenizer: {len(tokens)} tokens in {out}")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="Write an offline CLIP tokenizer folder.")
    cli.add_argument("wheel", type=Path, help="the open-clip-torch wheel")
    cli.add_argument("out", type=Path, help="the tokenizer folder to write")
    cli.add_argument("--pad", help="padding token (default: the end token; SDXL's second: '!')")
    args = cli.parse_args()
    main(args.wheel, args.out, args.pad)
