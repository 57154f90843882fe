"""Build a lab for an older sd-scripts release: its source and a venv with its own pins, on a CPU.

    python tests/lab/build_old_lab.py [--tag v0.6.0] [--git DIR] [--dir DIR] [--python PY]

The e2e lab (``tests/lab/build_lab.py``) runs the pinned sd-scripts commit. This one adds a
release from the same git history, as users of a 2023 install have it, so that its console output
can be captured (``tests/lab/capture_old.py``) and read back by the parser's tests:

- ``<dir>/sd-scripts-<tag>/``: the tag's files, taken with ``git archive`` from a local git
  directory of kohya-ss/sd-scripts (``--git``, else ``$SD_SCRIPTS_GIT_DIR``). Blobs the git
  directory lacks (a partial mirror leaves out the large Windows DLLs of ``bitsandbytes_windows/``)
  are left out and listed in ``<dir>/sd-scripts-<tag>.json``, with the tag, commit and date.
- ``<dir>/venv-<tag>/``: Python 3.10 (the release's README asks for 3.10.6) with the release's
  ``requirements.txt`` pins for what ``train_network.py`` imports, torch from pip's own index (its
  Linux wheels are CUDA builds; they run on the CPU), and the few pins the release left open but
  which have since broken it (``RELEASES`` says which and why). ``pip freeze`` goes to
  ``<dir>/venv-<tag>.freeze.txt``; ``<dir>/venv-<tag>/READY`` is written last.

- ``<dir>/models/sd15-random-diffusers-old/``: the e2e lab's random-weight SD1.5 (diffusers
  folder) in the layout old diffusers reads. diffusers 0.10.x names the VAE's mid-block attention
  ``query``/``key``/``value``/``proj_attn`` where today's writes ``to_q``/``to_k``/``to_v``/
  ``to_out.0`` (``AttributeError: 'AttentionBlock' object has no attribute 'to_k'`` otherwise), so
  the VAE's weights file is copied with those keys renamed (the tensors' bytes are unchanged); the
  other components are symbolic links to the e2e lab's.

The tokenizer cache and images are used from the e2e lab as they are (``$KOHYA_E2E_DIR``, default
``~/.cache/kohya_orchestrator/e2e``). Idempotent: a rerun checks what is there and skips it.
No sd-scripts file is changed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path.home() / ".cache" / "kohya_orchestrator" / "e2e-old"
E2E_DIR = Path(os.environ.get("KOHYA_E2E_DIR") or Path.home() / ".cache/kohya_orchestrator/e2e")
OLD_MODEL = "sd15-random-diffusers-old"
# Today's diffusers name -> diffusers 0.10's, for the VAE's attention blocks.
VAE_RENAMES = (
    (".attentions.0.to_q.", ".attentions.0.query."),
    (".attentions.0.to_k.", ".attentions.0.key."),
    (".attentions.0.to_v.", ".attentions.0.value."),
    (".attentions.0.to_out.0.", ".attentions.0.proj_attn."),
)
DEFAULT_GIT = Path("/work/.mirror/kohya-ss+sd-scripts/repo")
PIP = "pip==24.0"  # the newest pip that still reads every old sdist's metadata


@dataclass(frozen=True)
class Release:
    """What one release needs: its Python and the pins that make its train_network.py run."""

    python: str
    torch: tuple[str, ...]
    requirements: tuple[str, ...]
    extra: tuple[str, ...]
    why_extra: str


RELEASES: dict[str, Release] = {
    # 2023-04-04: the first release with --config_file (what kohya_orchestrator launches with).
    "v0.6.0": Release(
        python="3.10",
        # README: torch 1.12.1 (+cu116 on Windows); pip's Linux wheel bundles CUDA 10.2.
        torch=("torch==1.12.1", "torchvision==0.13.1"),
        # requirements.txt of v0.6.0, the lines train_network.py needs (not gradio, tensorflow,
        # BLIP's timm/fairscale, pytorch-lightning, nor bitsandbytes: imported only for 8-bit
        # optimizers).
        requirements=(
            "accelerate==0.15.0",
            "transformers==4.26.0",
            "ftfy==6.1.1",
            "albumentations==1.3.0",
            "opencv-python==4.7.0.68",
            "einops==0.6.0",
            "diffusers[torch]==0.10.2",
            "tensorboard==2.10.1",
            "safetensors==0.2.6",
            "toml==0.10.2",
            "voluptuous==0.13.1",
            "requests==2.28.2",
            "huggingface-hub==0.12.0",
        ),
        extra=("numpy==1.23.5", "pillow==9.4.0", "six"),
        why_extra="numpy 2 breaks torch 1.12; Pillow 10 dropped Image.LINEAR "
        "(library/lpw_stable_diffusion.py); torch 1.12's tensorboard writer imports six",
    ),
}


def _say(text: str) -> None:
    print(text, flush=True)


def _run(argv: list[str], **kw: object) -> None:
    _say("      $ " + " ".join(argv))
    subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]


def _git(git_dir: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True, text=True
    )
    return out.stdout


def _git_dir(path: Path) -> Path:
    """The git directory of a bare mirror or of a checkout."""
    return path / ".git" if (path / ".git").exists() else path


def _missing_blobs(git_dir: Path, commit: str) -> list[str]:
    """Paths of the commit's files whose blob is not in the git directory."""
    rows = _git(git_dir, "ls-tree", "-r", "-z", commit).split("\0")
    blobs: list[tuple[str, str]] = []
    for row in rows:
        if not row:
            continue
        meta, path = row.split("\t", 1)
        _mode, kind, oid = meta.split()
        if kind == "blob":
            blobs.append((oid, path))
    query = "".join(f"{oid}\n" for oid, _ in blobs)
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "--batch-check"],
        input=query,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return [path for (_oid, path), line in zip(blobs, out, strict=True) if line.endswith("missing")]


def build_source(git_dir: Path, tag: str, lab: Path) -> Path:
    """Extract the tag's files into ``<lab>/sd-scripts-<tag>``; returns that folder."""
    dest = lab / f"sd-scripts-{tag}"
    record = lab / f"sd-scripts-{tag}.json"
    commit = _git(git_dir, "rev-parse", f"{tag}^{{commit}}").strip()
    if dest.is_dir() and record.is_file():
        if json.loads(record.read_text(encoding="utf-8")).get("commit") == commit:
            _say(f"      done: {dest} holds {tag} ({commit[:8]})")
            return dest
    missing = _missing_blobs(git_dir, commit)
    pathspec = [".", *(f":(exclude){p}" for p in missing)]
    data = subprocess.run(
        ["git", "--git-dir", str(git_dir), "archive", "--format=tar", commit, "--", *pathspec],
        check=True,
        capture_output=True,
    ).stdout
    tmp = lab / f".sd-scripts-{tag}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp, filter="data")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.replace(dest)
    info = {
        "tag": tag,
        "commit": commit,
        "date": _git(git_dir, "log", "-1", "--format=%cs", commit).strip(),
        "left_out_missing_blobs": missing,
    }
    record.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    _say(f"      extracted {tag} ({commit[:8]}, {info['date']}) into {dest}")
    if missing:
        _say(f"      left out (blob not in the git directory): {', '.join(missing)}")
    return dest


def _find_python(version: str, given: str | None) -> str:
    if given:
        return given
    pyenv = Path.home() / ".pyenv" / "versions"
    if pyenv.is_dir():
        found = sorted(
            (p for p in pyenv.iterdir() if p.name.startswith(version + ".")),
            key=lambda p: [int(x) for x in p.name.split(".") if x.isdigit()],
        )
        if found:
            return str(found[-1] / "bin" / "python")
    which = shutil.which(f"python{version}")
    if which:
        return which
    raise SystemExit(f"no Python {version} found: give one with --python")


def _pins_key(release: Release) -> str:
    text = json.dumps([release.python, release.torch, release.requirements, release.extra])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_venv(tag: str, release: Release, lab: Path, python: str | None) -> Path:
    """Create ``<lab>/venv-<tag>`` with the release's pins; returns its python."""
    venv = lab / f"venv-{tag}"
    py = venv / "bin" / "python"
    ready = venv / "READY"
    key = _pins_key(release)
    if ready.is_file() and ready.read_text(encoding="utf-8").strip() == key:
        _say(f"      done: {venv} (pins {key})")
        return py
    base = _find_python(release.python, python)
    shutil.rmtree(venv, ignore_errors=True)
    _run([base, "-m", "venv", str(venv)])
    _run([str(py), "-m", "pip", "install", "-q", PIP])
    constraints = lab / f"constraints-{tag}.txt"
    pinned = [p for p in (*release.torch, *release.extra) if "==" in p]
    constraints.write_text("\n".join(pinned) + "\n", encoding="utf-8")
    pip = [str(py), "-m", "pip", "install", "-q", "-c", str(constraints)]
    _run([*pip, *release.torch, *release.extra])
    _run([*pip, *release.requirements])
    freeze = subprocess.run(
        [str(py), "-m", "pip", "freeze"], check=True, capture_output=True, text=True
    ).stdout
    (lab / f"venv-{tag}.freeze.txt").write_text(freeze, encoding="utf-8")
    ready.write_text(key + "\n", encoding="utf-8")
    return py


def _rename_safetensors_keys(src: Path, dest: Path, renames: tuple[tuple[str, str], ...]) -> int:
    """Copy a .safetensors file with tensor names rewritten; returns how many were renamed.

    The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
    data offsets) and the tensor bytes; only the header changes.
    """
    with src.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        renamed = 0
        new: dict[str, object] = {}
        for name, meta in header.items():
            for old, repl in renames:
                if old in name:
                    name = name.replace(old, repl)
                    renamed += 1
                    break
            new[name] = meta
        raw = json.dumps(new, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        tmp = dest.with_suffix(".tmp")
        with tmp.open("wb") as out:
            out.write(len(raw).to_bytes(8, "little"))
            out.write(raw)
            shutil.copyfileobj(f, out, 1 << 22)
    tmp.replace(dest)
    return renamed


def build_model(lab: Path) -> Path:
    """The e2e lab's random SD1.5 in diffusers 0.10's layout; returns its folder."""
    src = E2E_DIR / "models" / "sd15-random-diffusers"
    dest = lab / "models" / OLD_MODEL
    weights = dest / "vae" / "diffusion_pytorch_model.safetensors"
    if weights.is_file():
        _say(f"      done: {dest}")
        return dest
    if not (src / "model_index.json").is_file():
        raise SystemExit(f"no e2e lab model at {src}: run tests/lab/build_lab.py first")
    (dest / "vae").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "model_index.json", dest / "model_index.json")
    for part in ("scheduler", "text_encoder", "tokenizer", "unet"):
        link = dest / part
        if not link.is_symlink():
            link.symlink_to(src / part, target_is_directory=True)
    shutil.copyfile(src / "vae" / "config.json", dest / "vae" / "config.json")
    n = _rename_safetensors_keys(
        src / "vae" / "diffusion_pytorch_model.safetensors", weights, VAE_RENAMES
    )
    _say(f"      wrote {dest} (VAE: {n} tensors renamed; the rest linked to {src})")
    return dest


def check_imports(py: Path, source: Path) -> None:
    """``train_network.py --help`` must run: every import resolves."""
    env = {**os.environ, "PYTHONPATH": ".", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [str(py), "train_network.py", "--help"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"train_network.py --help failed:\n{out.stderr[-3000:]}")
    _say(f"      ok: train_network.py --help ({len(out.stdout.splitlines())} lines)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tag", default="v0.6.0", choices=sorted(RELEASES))
    p.add_argument("--git", default=os.environ.get("SD_SCRIPTS_GIT_DIR") or str(DEFAULT_GIT))
    p.add_argument("--dir", default=str(DEFAULT_DIR))
    p.add_argument("--python", default=None, help="the base Python (default: pyenv's 3.10)")
    args = p.parse_args(argv)
    lab = Path(args.dir).expanduser().resolve()
    lab.mkdir(parents=True, exist_ok=True)
    release = RELEASES[args.tag]

    _say(f"[1/4] sd-scripts {args.tag} from {args.git}")
    source = build_source(_git_dir(Path(args.git)), args.tag, lab)
    _say(f"[2/4] venv for {args.tag} (Python {release.python}, {' '.join(release.torch)})")
    _say(f"      beyond requirements.txt: {' '.join(release.extra)} ({release.why_extra})")
    py = build_venv(args.tag, release, lab, args.python)
    _say("[3/4] imports")
    check_imports(py, source)
    _say("[4/4] random SD1.5 in diffusers 0.10's layout")
    build_model(lab)
    _say(f"old lab ready: {source} with {py}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
