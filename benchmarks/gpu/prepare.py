"""Gather what the GPU benchmark needs on a machine with no internet: ``python benchmarks/gpu/prepare.py``.

Run here (where pip reaches PyPI), once; it fills ``benchmarks/gpu/carry/`` (ignored by git, sent
along with the device tool's ``carry``), about 33 MiB:

* ``wheels/``: the Python packages the GPU image lacks or holds at a version sd-scripts does not
  run with (sd-scripts' pins: transformers 4.54.1 and its tokenizers / huggingface-hub,
  diffusers 0.32.1, accelerate 1.6.0, ...), LyCORIS, Prodigy, bitsandbytes for AdamW8bit (cut
  down to the CUDA 13 libraries: the full wheel is 43 MB), and the orchestrator's own pydantic
  and tomli-w. Built for CPython 3.12 on x86-64 Linux, the GPU image's Python
  (/work/.library/device/KINDS.md); torch, numpy, safetensors, opencv, einops, rich, tensorboard
  and the rest are the image's own.
* ``sd-scripts.tar.gz``: the kohya-ss sd-scripts source tree at the pinned commit, from the e2e
  lab's checkout (``--lab``) or from a git directory (``--sd-scripts-git``, e.g. a mirror),
  with ``.snapshot-commit`` inside so the product reads its commit without ``.git``.
* ``tokenizer/``: the offline CLIP ViT-L/14 tokenizer the lab built (tests/lab/make_tokenizer.py).
* ``manifest.json``: what is there, with sizes.

``--check`` then installs the wheels into a scratch folder for CPython 3.12 (pip's
``--python-version``), which proves the set is complete in names and has one version of each.
A rerun keeps the wheels already downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from base64 import urlsafe_b64encode
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from kohya_orchestrator.installer import PINNED_COMMIT  # noqa: E402

DEFAULT_LAB = Path.home() / ".cache" / "kohya_orchestrator" / "e2e"
DEFAULT_MIRROR = Path("/work/.mirror/kohya-ss+sd-scripts/repo")
CARRY = HERE / "carry"
PYTHON_VERSION = "3.12"
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
# sd-scripts' requirements.txt at the pinned commit, where the image's version differs or the
# image has none; tokenizers and huggingface-hub as transformers 4.54.1 needs them.
TRAINER_WHEELS = (
    "transformers==4.54.1",
    "tokenizers==0.21.4",
    "huggingface-hub==0.34.3",
    "diffusers==0.32.1",
    "accelerate==1.6.0",
    "toml==0.10.2",
    "voluptuous==0.15.2",
    "imagesize==1.4.1",
    "ftfy==6.3.1",
    "wcwidth==0.9.5",
    "prodigyopt==1.1.2",
    "lycoris-lora==4.1.3",
)
BITSANDBYTES = "bitsandbytes==0.50.2"
# The orchestrator's own runtime needs that the image lacks (pyproject.toml's dependencies).
ORCHESTRATOR_WHEELS = (
    "pydantic==2.13.4",
    "pydantic-core==2.46.4",
    "annotated-types==0.7.0",
    "typing-inspection==0.4.2",
    "tomli-w==1.2.0",
)
# Folders of the sd-scripts tree that no benchmark job reads (Windows DLLs; the mirror lacks them).
SKIP_TREE = ("bitsandbytes_windows/",)
TOKENIZER = "openai_clip-vit-large-patch14"
TRAVEL_LIMIT_MIB = 64


def wheel_distribution(filename: str) -> str:
    """The normalised distribution name of a wheel file (``Foo_Bar-1.0-py3-none-any.whl`` -> foo-bar)."""
    return filename.split("-", 1)[0].lower().replace("_", "-").replace(".", "-")


def duplicate_distributions(filenames: list[str]) -> list[str]:
    """Distributions with more than one wheel (two versions stop ``pip install`` there)."""
    seen: dict[str, int] = {}
    for name in filenames:
        if name.endswith(".whl"):
            dist = wheel_distribution(name)
            seen[dist] = seen.get(dist, 0) + 1
    return sorted(d for d, n in seen.items() if n > 1)


def keep_bnb_member(member: str, cuda: tuple[str, ...]) -> bool:
    """Whether a bitsandbytes wheel member stays: all but the native libraries of other backends."""
    name = member.rsplit("/", 1)[-1]
    if not (name.startswith("libbitsandbytes_") and name.endswith(".so")):
        return True
    backend = name[len("libbitsandbytes_") : -len(".so")]
    return backend == "cpu" or backend in {f"cuda{c}" for c in cuda}


def _record_hash(data: bytes) -> str:
    digest = urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest},{len(data)}"


def slim_wheel(src: Path, dst: Path, cuda: tuple[str, ...]) -> tuple[int, int]:
    """Copy a bitsandbytes wheel without the native libraries of other CUDA/ROCm/XPU versions.

    The RECORD is rewritten to list exactly what stays. Returns (members kept, members dropped).
    """
    kept = dropped = 0
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        record_name = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
        lines: list[str] = []
        for info in zin.infolist():
            if info.filename == record_name:
                continue
            if not keep_bnb_member(info.filename, cuda):
                dropped += 1
                continue
            data = zin.read(info.filename)
            zout.writestr(info, data)
            lines.append(f"{info.filename},{_record_hash(data)}")
            kept += 1
        lines.append(f"{record_name},,")
        zout.writestr(record_name, "\n".join(lines) + "\n")
    return kept, dropped


def _pip_download(specs: list[str], dest: Path, python_version: str) -> None:
    argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    argv += ["--python-version", python_version, "--implementation", "cp"]
    for platform in PLATFORMS:
        argv += ["--platform", platform]
    subprocess.run([*argv, "-d", str(dest), *specs], check=True)


def _have(dest: Path, spec: str) -> bool:
    name, _, version = spec.partition("==")
    dist = name.lower().replace("_", "-")
    return any(
        wheel_distribution(w.name) == dist and w.name.split("-")[1] == version
        for w in dest.glob("*.whl")
    )


def gather_wheels(dest: Path, python_version: str, cuda: tuple[str, ...]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    missing = [s for s in (*TRAINER_WHEELS, *ORCHESTRATOR_WHEELS) if not _have(dest, s)]
    if missing:
        print(f"[wheels] downloading {len(missing)}: {' '.join(missing)}", flush=True)
        _pip_download(missing, dest, python_version)
    if not _have(dest, BITSANDBYTES):
        with tempfile.TemporaryDirectory() as tmp:
            _pip_download([BITSANDBYTES], Path(tmp), python_version)
            (full,) = Path(tmp).glob("bitsandbytes-*.whl")
            _kept, dropped = slim_wheel(full, dest / full.name, cuda)
            print(
                f"[wheels] {full.name}: {full.stat().st_size / 2**20:.1f} MiB -> "
                f"{(dest / full.name).stat().st_size / 2**20:.1f} MiB "
                f"(kept cpu + cuda {', '.join(cuda)}; {dropped} other libraries dropped)",
                flush=True,
            )
    dupes = duplicate_distributions([w.name for w in dest.glob("*.whl")])
    if dupes:
        raise SystemExit(f"two versions of {', '.join(dupes)} in {dest}: delete the old ones")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)


def _tree_from_checkout(checkout: Path, commit: str) -> list[tuple[str, bytes]] | None:
    """Tracked files of a checkout at ``commit`` as they are on disk (None: wrong commit)."""
    head = _git(checkout, "rev-parse", "HEAD").stdout.decode().strip()
    if head != commit:
        return None
    names = _git(checkout, "ls-files", "-z").stdout.decode("utf-8").split("\0")
    files = []
    for name in names:
        path = checkout / name
        if name and not name.startswith(SKIP_TREE) and path.is_file():
            files.append((name, path.read_bytes()))
    return files


def _tree_from_git(git_dir: Path, commit: str) -> list[tuple[str, bytes]]:
    """Blobs of ``commit`` in a (possibly partial) git directory; missing blobs are left out."""
    listing = _git(git_dir, "ls-tree", "-r", "-z", commit)
    if listing.returncode != 0:
        raise SystemExit(f"{git_dir}: no commit {commit}: {listing.stderr.decode().strip()}")
    files = []
    for entry in listing.stdout.decode("utf-8").split("\0"):
        if not entry:
            continue
        meta, name = entry.split("\t", 1)
        _mode, kind, sha = meta.split()
        if kind != "blob" or name.startswith(SKIP_TREE):
            continue
        blob = _git(git_dir, "cat-file", "blob", sha)
        if blob.returncode == 0:
            files.append((name, blob.stdout))
    return files


def write_tree_archive(files: list[tuple[str, bytes]], commit: str, dest: Path) -> None:
    """A gzipped tar of ``sd-scripts/<file>`` plus ``sd-scripts/.snapshot-commit``."""
    partial = dest.with_name(dest.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        for name, data in [*files, (".snapshot-commit", f"{commit}\n".encode())]:
            info = tarfile.TarInfo(f"sd-scripts/{name}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    partial.replace(dest)


def gather_sd_scripts(lab: Path, git_dir: Path | None, commit: str, dest: Path) -> str:
    files = None
    source = ""
    if (lab / "sd-scripts").is_dir():
        files = _tree_from_checkout(lab / "sd-scripts", commit)
        source = f"the lab's checkout {lab / 'sd-scripts'}"
    if files is None:
        if git_dir is None or not git_dir.exists():
            raise SystemExit(
                f"no sd-scripts checkout at {commit[:8]} in {lab} and no --sd-scripts-git"
            )
        files = _tree_from_git(git_dir, commit)
        source = f"git {git_dir}"
    if not any(name == "train_network.py" for name, _ in files):
        raise SystemExit(f"{source}: no train_network.py at {commit[:8]}")
    write_tree_archive(files, commit, dest)
    return f"{len(files)} files from {source}"


def check_wheels(wheels: Path, python_version: str) -> None:
    """Install every wheel for CPython ``python_version`` into a scratch folder (no index)."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
        argv += ["--no-compile", "--only-binary=:all:", "--target", tmp]
        argv += ["--python-version", python_version, "--implementation", "cp"]
        for platform in PLATFORMS:
            argv += ["--platform", platform]
        subprocess.run([*argv, *map(str, sorted(wheels.glob("*.whl")))], check=True)
        installed = sorted(p.name for p in Path(tmp).glob("*.dist-info"))
    print(f"[check] {len(installed)} wheels install for CPython {python_version}: ok", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--lab", type=Path, default=DEFAULT_LAB, help="the e2e lab (tokenizer, checkout)"
    )
    p.add_argument(
        "--sd-scripts-git",
        type=Path,
        default=DEFAULT_MIRROR if DEFAULT_MIRROR.exists() else None,
        help="a git directory of kohya-ss/sd-scripts, when the lab's checkout is not at the commit",
    )
    p.add_argument("--commit", default=PINNED_COMMIT, help="sd-scripts commit (the product's pin)")
    p.add_argument("--out", type=Path, default=CARRY, help="where it goes (benchmarks/gpu/carry)")
    p.add_argument("--python-version", default=PYTHON_VERSION, help="the GPU image's Python")
    p.add_argument(
        "--bnb-cuda",
        default="130,132",
        help="bitsandbytes CUDA libraries to keep (torch.version.cuda without the dot)",
    )
    p.add_argument(
        "--check", action="store_true", help="then install the wheels into a scratch dir"
    )
    args = p.parse_args(argv)
    start = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cuda = tuple(c.strip() for c in args.bnb_cuda.split(",") if c.strip())

    gather_wheels(out / "wheels", args.python_version, cuda)
    print("[sd-scripts] archiving the source tree", flush=True)
    detail = gather_sd_scripts(
        args.lab, args.sd_scripts_git, args.commit, out / "sd-scripts.tar.gz"
    )
    print(f"[sd-scripts] {detail} at {args.commit[:8]}", flush=True)
    tok_src = args.lab / "tokcache" / TOKENIZER
    if not (tok_src / "vocab.json").is_file():
        raise SystemExit(f"no tokenizer at {tok_src}: build the lab (tests/lab/build_lab.py)")
    shutil.copytree(tok_src, out / "tokenizer", dirs_exist_ok=True)

    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    sizes = {str(f.relative_to(out)): f.stat().st_size for f in files}
    manifest = {
        "sd_scripts_commit": args.commit,
        "python_version": args.python_version,
        "bitsandbytes_cuda": list(cuda),
        "files": sizes,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    total = sum(sizes.values()) / 2**20
    print(f"[carry] {len(files)} files, {total:.1f} MiB in {out}", flush=True)
    if total > TRAVEL_LIMIT_MIB - 10:
        print(f"[carry] warning: with the repository this nears the {TRAVEL_LIMIT_MIB} MiB limit")
    if args.check:
        check_wheels(out / "wheels", args.python_version)
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
