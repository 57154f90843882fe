"""Build the real-trainer lab the e2e tests run on (``pytest -m e2e``), on a CPU.

    python tests/lab/build_lab.py [--from GIT] [--dir DIR]

It is ``python -m kohya_orchestrator install`` (the same code: sd-scripts at the tested commit, a
venv with CPU torch, sd-scripts' requirements, lycoris-lora, onnxruntime) into
``$KOHYA_E2E_DIR`` (default ``~/.cache/kohya_orchestrator/e2e``), plus what a test needs and no
machine without a network has: offline CLIP tokenizers (``tokcache/``: CLIP ViT-L/14, and
OpenCLIP bigG's for SDXL), random-weight full-size models (SD1.5:
``models/sd15-random-diffusers/``; SDXL: ``models/sdxl-random.safetensors``) and a tiny
captioned dataset (``data/img/2_oilpaint style/``), and the DiT families' models
(``tests/lab/dit_models.py``). ``READY`` is written last and lists the versions. Idempotent: a
rerun skips what is done (about 20 s). About 20 GB of disk; the SDXL and Anima steps need 10-15
GB of memory for a minute (on a shared machine run the whole script alone, e.g. under
``flock``).

``--from`` takes a git URL or a local git directory of kohya-ss/sd-scripts (default: GitHub; also
read from ``$SD_SCRIPTS_GIT_DIR``). ``--kohya-ss-from`` (or ``$KOHYA_SS_GIT_DIR``; default: GitHub)
is where the kohya_ss GUI's shipped presets come from (``kohya_ss/presets/``, read by
tests/e2e/test_gui_presets_e2e.py; never copied into the repository); that step is skipped with
a note when the source cannot be read. Torch: the CPU build from download.pytorch.org; where that
cannot be reached, the torch on pip's own index (``--torch-packages``/``--torch-index`` choose).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing the package

from kohya_orchestrator.errors import SetupError  # noqa: E402
from kohya_orchestrator.installer import (  # noqa: E402
    DEFAULT_SOURCE,
    PINNED_COMMIT,
    InstallOptions,
    StepReport,
    run_install,
)

DEFAULT_DIR = Path.home() / ".cache" / "kohya_orchestrator" / "e2e"
OPEN_CLIP = "open-clip-torch==3.3.0"  # carries CLIP's BPE vocabulary (the tokenizer's source)
# Where download.pytorch.org is out of reach: pip's own index, this torch (runs on the CPU).
FALLBACK_TORCH = ("torch==2.14.1", "torchvision==0.29.1")
# A second sd-scripts beside the pinned one: the first commit with sd-scripts' own LoHa and LoKr
# (networks/loha.py, networks/lokr.py; branch feat-support-lokr-loha, on top of v0.10.1). It runs
# with the lab's venv; tests/e2e/test_native_networks_e2e.py trains with it.
NATIVE_COMMIT = "aff4a2e732ce3fb916fb4f53dcb484a80a5fa488"
KOHYA_SS_SOURCE = "https://github.com/bmaltais/kohya_ss.git"


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=8):
            return True
    except OSError:
        return False


def _show(r: StepReport) -> None:
    if r.status == "start":
        print(f"[{r.index}/{r.total}] {r.step}: {r.detail}", flush=True)
    elif r.status != "progress":
        print(f"      {r.status}: {r.detail}", flush=True)


def _run(argv: list[str], **kw: object) -> None:
    print("      $ " + " ".join(argv), flush=True)
    subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]


def _export_commit(clone: Path, source: str, into: Path) -> None:
    """Write NATIVE_COMMIT's files into ``into`` (with a ``.snapshot-commit``), from ``clone``.

    A mirror may lack a few large blobs (DLLs, tokenizer files): those files are left out, as
    the installer does for the pinned checkout.
    """
    git = ["git", "-C", str(clone)]
    have = subprocess.run([*git, "cat-file", "-e", f"{NATIVE_COMMIT}^{{commit}}"], check=False)
    if have.returncode != 0:
        _run([*git, "fetch", "-q", source, NATIVE_COMMIT])
    tree = subprocess.run(
        [*git, "ls-tree", "-r", NATIVE_COMMIT], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    blobs = [(line.split()[2], line.split("\t", 1)[1]) for line in tree if " blob " in line]
    checked = subprocess.run(
        [*git, "cat-file", "--batch-check=%(objectname) %(objecttype)"],
        input="".join(f"{sha}\n" for sha, _ in blobs),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    missing = [path for (sha, path), line in zip(blobs, checked, strict=True) if "missing" in line]
    if missing:
        print(f"  left out {len(missing)} file(s) the source lacks: {', '.join(missing)}")
    partial = into.with_name(into.name + ".partial")
    if partial.exists():
        subprocess.run(["rm", "-rf", str(partial)], check=True)
    partial.mkdir(parents=True)
    archive = subprocess.run(
        [*git, "archive", "--format=tar", NATIVE_COMMIT, "--", ".",
         *(f":(exclude){p}" for p in missing)],
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(partial)], input=archive, check=True)
    (partial / ".snapshot-commit").write_text(NATIVE_COMMIT + "\n", encoding="utf-8")
    partial.replace(into)


def _export_gui_presets(source: str, into: Path) -> None:
    """The kohya_ss GUI's ``presets/`` folder (its HEAD) into ``into/presets``; a failure is a
    note, not a stop: only the GUI-preset e2e test needs it, and it skips without it."""
    partial = into.with_name(into.name + ".partial")
    subprocess.run(["rm", "-rf", str(partial)], check=True)
    try:
        if Path(source).is_dir():
            git_dir = Path(source)
        else:
            git_dir = partial / "git"
            _run(["git", "clone", "-q", "--bare", "--depth", "1", source, str(git_dir)])
        archive = subprocess.run(
            ["git", "-C", str(git_dir), "archive", "--format=tar", "HEAD", "presets"],
            capture_output=True,
            check=True,
        ).stdout
        partial.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-x", "-C", str(partial)], input=archive, check=True)
        subprocess.run(["rm", "-rf", str(partial / "git")], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"      skipped: kohya_ss presets from {source} could not be read ({exc})")
        subprocess.run(["rm", "-rf", str(partial)], check=False)
        return
    subprocess.run(["rm", "-rf", str(into)], check=True)
    partial.replace(into)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--from", dest="source", default=os.environ.get("SD_SCRIPTS_GIT_DIR"))
    p.add_argument("--dir", default=os.environ.get("KOHYA_E2E_DIR") or str(DEFAULT_DIR))
    p.add_argument("--ref", default=PINNED_COMMIT)
    p.add_argument("--kohya-ss-from", dest="kohya_ss", default=os.environ.get("KOHYA_SS_GIT_DIR"))
    p.add_argument("--lycoris", default="4.1.3", metavar="VERSION", help="lycoris-lora version")
    p.add_argument("--torch-packages", default=None)
    p.add_argument("--torch-index", default=None)
    args = p.parse_args(argv)
    lab = Path(args.dir).expanduser().resolve()

    packages: tuple[str, ...] = tuple((args.torch_packages or "").split())
    index = args.torch_index
    if not packages and index is None and not _reachable("https://download.pytorch.org/whl/cpu/"):
        packages, index = FALLBACK_TORCH, "pypi"
        print(f"download.pytorch.org cannot be reached: {' '.join(packages)} from pip's index")
    options = InstallOptions(
        target=lab,
        source=args.source or DEFAULT_SOURCE,
        ref=args.ref,
        torch_build="cpu",
        torch_packages=packages,
        torch_index=index,
        extras=(f"lycoris-lora=={args.lycoris}", "onnx", "onnxruntime"),
        register=False,
    )
    try:
        result = run_install(options, _show)
    except SetupError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    py = str(result.python)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}

    print("[lab] CLIP tokenizer", flush=True)
    tok = lab / "tokcache" / "openai_clip-vit-large-patch14"
    if not (tok / "vocab.json").is_file():
        _run([py, "-m", "pip", "download", "-q", "--no-deps", "-d", str(lab / "dl"), OPEN_CLIP])
        (wheel,) = (lab / "dl").glob("open_clip_torch-*.whl")
        _run([py, str(HERE / "make_tokenizer.py"), str(wheel), str(tok)], env=env)

    print("[lab] random-weight SD1.5 model", flush=True)
    model = lab / "models" / "sd15-random-diffusers"
    if not (model / "model_index.json").is_file():
        model.parent.mkdir(parents=True, exist_ok=True)
        _run([py, str(HERE / "make_random_sd15.py"), str(tok), str(model)], env=env)

    print("[lab] SDXL's second tokenizer (OpenCLIP bigG: CLIP's vocabulary, pad '!')", flush=True)
    tok2 = lab / "tokcache" / "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"
    if not (tok2 / "tokenizer_config.json").is_file():
        (wheel,) = (lab / "dl").glob("open_clip_torch-*.whl")
        _run([py, str(HERE / "make_tokenizer.py"), str(wheel), str(tok2), "--pad", "!"], env=env)

    print("[lab] random-weight SDXL model (15 GB of memory for a minute)", flush=True)
    sdxl = lab / "models" / "sdxl-random.safetensors"
    if not sdxl.is_file():
        _run(
            [py, str(HERE / "make_random_sdxl.py"), str(result.sd_scripts_dir), str(sdxl)], env=env
        )

    print("[lab] tiny dataset", flush=True)
    if not (lab / "data" / "img" / "2_oilpaint style").is_dir():
        _run([py, str(HERE / "make_dataset.py"), str(lab / "data"), "64"])

    print("[lab] DiT families: FLUX.1, Chroma, SD3, Lumina, HunyuanImage, Anima", flush=True)
    _run([sys.executable, str(HERE / "dit_models.py"), str(lab)], env=env)

    print("[lab] second sd-scripts: sd-scripts' own LoHa/LoKr (sd-scripts-native/)", flush=True)
    native = lab / "sd-scripts-native"
    if not (native / "networks" / "lokr.py").is_file():
        _export_commit(result.sd_scripts_dir, str(args.source or DEFAULT_SOURCE), native)
    if not (native / "venv").exists():  # the lab's venv runs it: `--sd-scripts` finds it there
        (native / "venv").symlink_to(result.python.parents[1], target_is_directory=True)

    print("[lab] the kohya_ss GUI's shipped presets (kohya_ss/presets/)", flush=True)
    if not (lab / "kohya_ss" / "presets" / "lora").is_dir():
        _export_gui_presets(args.kohya_ss or KOHYA_SS_SOURCE, lab / "kohya_ss")

    ready = {
        "sd_scripts_commit": result.commit,
        "native_networks_commit": NATIVE_COMMIT,
        "torch_build": result.torch.build,
        **{k: v for k, v in result.versions.items()},
    }
    tmp = lab / "READY.tmp"
    tmp.write_text(json.dumps(ready, indent=2) + "\n", encoding="utf-8")
    tmp.replace(lab / "READY")
    print(f"lab ready at {lab}: " + ", ".join(f"{k} {v}" for k, v in ready.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
