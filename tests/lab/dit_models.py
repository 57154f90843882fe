"""The DiT families' lab models: build them, then describe each as a job's ``[model]`` section.

    python tests/lab/dit_models.py LAB [FAMILY ...]

Runs the builders in the lab's venv (``make_random_dit.py``: FLUX.1, Chroma, SD3;
``make_random_dit2.py``: Lumina, HunyuanImage, Anima) into ``LAB/models/<family>/`` and writes
``LAB/models/<family>/lab-model.json`` beside each: ``model`` (the job's ``[model]`` keys for the
files built, with short token limits so a CPU step stays cheap), ``trains`` (whether sd-scripts'
loader takes the model: those that do not are kept to show the product's report of missing
weights) and ``note``. ``tests/e2e/test_dit_e2e.py`` reads the manifests. make_random_dit.py writes its families into
``LAB/models/dit1-build/`` (parts they share once, under ``common/``; T5-XXL and CLIP-G as sparse
"hollow" files) and the tokenizers it makes into ``LAB/tokcache``. The Anima build needs
10 GB of memory for a minute: on a shared machine run it alone. Idempotent: a family whose
manifest exists is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# family -> (builder, extra builder arguments, trains, extra [model] keys, note). Measured in the
# lab on a 2-core CPU at 64 px (see docs/e2e-lab.md).
DIT2: dict[str, tuple[list[str], bool, dict[str, Any], str]] = {
    "anima": (
        ["--full-anima-dit"],
        True,
        {"qwen3_max_token_length": 64, "t5_max_token_length": 64},
        "full-size random DiT (2.09B), tiny Qwen3 folder, full VAE: trains (~3 s/step, 9.6 GiB)",
    ),
    "lumina": (
        [],
        False,
        {"gemma2_max_token_length": 64},
        "DiT block 0 of 26, Gemma2 layer 0 of 26: the loader builds the full 2B model and fails "
        "(Cannot copy out of meta tensor)",
    ),
    "hunyuan_image": (
        [],
        False,
        {},
        "stub files (small tensors only): the strict Qwen2.5-VL load fails (Missing key(s))",
    ),
}


def build_dit2(lab: Path, families: list[str]) -> None:
    """Lumina, HunyuanImage and Anima through make_random_dit2.py."""
    py = str(lab / "venv" / "bin" / "python")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    for family in families:
        target = lab / "models" / family
        if (target / "lab-model.json").is_file():
            continue
        extra, trains, keys, note = DIT2[family]
        argv = [py, str(HERE / "make_random_dit2.py"), str(lab / "sd-scripts"), str(lab / "models"),
                family, *extra]  # fmt: skip
        if not (target / "args.json").is_file():  # args.json is written last
            print("      $ " + " ".join(argv), flush=True)
            subprocess.run(argv, check=True, cwd=lab / "sd-scripts", env=env)
        args = json.loads((target / "args.json").read_text(encoding="utf-8"))
        manifest = {"family": family, "trains": trains, "model": {**args, **keys}, "note": note}
        tmp = target / "lab-model.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        tmp.replace(target / "lab-model.json")


# family -> (make_random_dit.py's name for it, extra [model] keys). FLUX.1 reads its depth from
# the file (1 + 1 blocks train); SD3 its width and depth (depth 2); Chroma's loader builds all
# 19 + 38 blocks whatever the file holds, so its shrunk file only shows how the load fails.
DIT1: dict[str, tuple[str, dict[str, Any]]] = {
    "flux": ("flux", {"t5xxl_max_token_length": 64, "guidance_scale": 1.0}),
    "chroma": ("chroma", {"t5xxl_max_token_length": 64}),
    "sd3": ("sd35m", {"t5xxl_max_token_length": 64}),
}


def build_dit1(lab: Path, families: list[str]) -> None:
    """FLUX.1, Chroma and SD3 through make_random_dit.py (its model.json -> lab-model.json)."""
    py = str(lab / "venv" / "bin" / "python")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    out = lab / "models" / "dit1-build"
    for family in families:
        target = lab / "models" / family
        if (target / "lab-model.json").is_file():
            continue
        name, keys = DIT1[family]
        built = out / name / "model.json"
        if not built.is_file():
            argv = [py, str(HERE / "make_random_dit.py"), "--sd-scripts", str(lab / "sd-scripts"),
                    "--tokcache", str(lab / "tokcache"), "--out", str(out), name]  # fmt: skip
            print("      $ " + " ".join(argv), flush=True)
            subprocess.run(argv, check=True, cwd=lab / "sd-scripts", env=env)
        info = json.loads(built.read_text(encoding="utf-8"))
        args = {k: v for k, v in info["args"].items() if k != "model_type"}  # Chroma: the family
        model = {**args, "tokenizer_cache_dir": str(lab / "tokcache"), **keys}
        manifest = {"family": family, "trains": bool(info["trains"]), "model": model,
                    "note": info.get("note", "")}  # fmt: skip
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / "lab-model.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        tmp.replace(target / "lab-model.json")


def main(argv: list[str]) -> int:
    lab = Path(argv[0]).expanduser().resolve()
    families = argv[1:] or [*DIT1, *DIT2]
    build_dit1(lab, [f for f in families if f in DIT1])
    build_dit2(lab, [f for f in families if f in DIT2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
