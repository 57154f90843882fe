"""e2e: the caption length warning never claims more CLIP tokens than CLIP's own tokenizer counts.

``datasets.report.clip_token_floor`` counts CLIP's pre-tokenizer pieces (BPE only splits them
further), so ``dataset inspect`` warns only about captions that really are cut at 75 tokens. Checked
against the lab's CLIP ViT-L/14 tokenizer (transformers' CLIPTokenizer, offline) on 600 seeded
random captions: tags, weights, digits, CJK, accents, underscores, punctuation runs.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from kohya_orchestrator.datasets.report import CLIP_TOKENS, clip_token_floor

pytestmark = pytest.mark.e2e

COUNT = """
import json, sys
from transformers import CLIPTokenizer
tok = CLIPTokenizer.from_pretrained(sys.argv[1])
caps = json.loads(sys.stdin.read())
print(json.dumps([len(tok(c, add_special_tokens=False)["input_ids"]) for c in caps]))
"""

PIECES = [
    "zengxin oilpaint", "a boat", "on the river", "1girl", "blue_hair", "masterpiece",
    "(best quality:1.2)", "don't", "it's", "8k", "photo-realistic", "日本の風景", "café",
    "!!", "---", "3.5", "x_y_z", "BREAK", "[red:blue:0.5]", "Ünïcödé", "emoji 🎨", "a,b,,c",
]  # fmt: skip


def test_the_floor_never_exceeds_clips_count(e2e_lab: Path) -> None:
    tok = e2e_lab / "tokcache" / "openai_clip-vit-large-patch14"
    if not (tok / "vocab.json").is_file():
        pytest.skip(f"the e2e lab has no CLIP tokenizer at {tok}: rerun tests/lab/build_lab.py")
    rng = random.Random(20261207)
    captions = [
        rng.choice([", ", " ", ",", " , "]).join(
            rng.choice(PIECES) for _ in range(rng.randint(1, 70))
        )
        for _ in range(600)
    ]
    done = subprocess.run(
        [str(e2e_lab / "venv" / "bin" / "python"), "-c", COUNT, str(tok)],
        input=json.dumps(captions),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=True,
    )
    real = json.loads(done.stdout.strip().splitlines()[-1])
    over = [
        (c, clip_token_floor(c), r)
        for c, r in zip(captions, real, strict=True)
        if clip_token_floor(c) > r
    ]
    assert over == []
    # and it is a useful floor: most captions CLIP cuts are flagged
    cut = [c for c, r in zip(captions, real, strict=True) if r > CLIP_TOKENS]
    flagged = [c for c in cut if clip_token_floor(c) > CLIP_TOKENS]
    assert len(cut) > 100
    assert len(flagged) >= 0.7 * len(cut), (len(flagged), len(cut))
