"""Dataset benchmarks: the step plan and the dataset report against bare loops, and memory.

Usage: python benchmarks/bench_dataset.py [--n 10000] [--repeat 3] [--cache DIR]

Generates N small captioned images once (PNG, JPEG and WebP, 64-256 px, many aspect ratios) in
four `<repeats>_<name>` folders under the cache folder, then measures, warm and best of --repeat:

- plan:   plan_dataset() (list folders, read every size from its header, choose buckets, count
          batches and steps) vs a loop that only reads each image's size from its header
          (read_size over a ready-made list of paths). Target ratio <= 1.3.
- report: inspect_dataset() (hash, header, truncation, mode and caption checks, tag counts) vs a
          loop that reads and blake2b-hashes every file of the tree (images and captions).
          Target ratio <= 2.
- memory: peak RSS of a fresh process running plan + report on 2.5k, 5k and 10k images (scaled
          with --n); it should stay flat as the set grows.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PLAN_OPTIONS = {
    "resolution": 128,
    "min_bucket_reso": 64,
    "max_bucket_reso": 256,
    "bucket_reso_steps": 32,
    "batch_size": 4,
    "max_train_epochs": 10,
}
SUBSETS = 4


def generate(root: Path, n: int) -> Path:
    """N images in SUBSETS folders (created once; a READY file marks a complete set)."""
    ready = root / "READY"
    if ready.is_file() and ready.read_text() == str(n):
        return root
    from PIL import Image

    rnd = random.Random(n)
    per = n // SUBSETS
    formats = [("PNG", ".png"), ("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp")]
    t0 = time.perf_counter()
    for s in range(SUBSETS):
        folder = root / "all" / f"{10 + s}_bench subset {s}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per if s < SUBSETS - 1 else n - per * (SUBSETS - 1)):
            w, h = rnd.randrange(64, 257), rnd.randrange(64, 257)
            fmt, ext = formats[i % len(formats)]
            img = Image.new("RGB", (w, h), (rnd.randrange(256), i % 256, s * 60))
            buf = io.BytesIO()
            img.save(buf, fmt)
            (folder / f"img{i:05d}{ext}").write_bytes(buf.getvalue())
            (folder / f"img{i:05d}.txt").write_text(
                f"bench subset {s}, tag{i % 17}, tag{i % 5}, common\n", encoding="utf-8"
            )
    # parents holding the first 1, 2 and 4 subsets (symlinks), for the memory runs
    for k in (1, 2, 4):
        parent = root / f"first{k}"
        parent.mkdir(exist_ok=True)
        for s in range(k):
            link = parent / f"{10 + s}_bench subset {s}"
            if not link.exists():
                link.symlink_to(root / "all" / link.name, target_is_directory=True)
    ready.write_text(str(n))
    print(f"generated {n} images in {time.perf_counter() - t0:.1f} s")
    return root


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def all_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


def bench_times(root: Path, repeat: int) -> list[tuple[str, float, float, float | None]]:
    from kohya_orchestrator.datasets.imageheaders import read_size
    from kohya_orchestrator.datasets.plan import plan_dataset
    from kohya_orchestrator.datasets.report import inspect_dataset
    from kohya_orchestrator.datasets.tree import IMAGE_EXTENSIONS

    tree = root / "all"
    folders = sorted(str(p) for p in tree.iterdir())
    files = all_files(tree)
    images = [f for f in files if os.path.splitext(f)[1] in IMAGE_EXTENSIONS]

    # The bare loops find their files the plain way (os.scandir of each folder), as any script
    # must; the "list given" variants get a ready-made list instead (information only).
    def header_loop() -> None:
        for folder in folders:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if os.path.splitext(entry.name)[1] in IMAGE_EXTENSIONS:
                        read_size(os.path.join(folder, entry.name))

    def header_loop_listed() -> None:
        for path in images:
            read_size(path)

    def hash_loop() -> None:
        for folder in folders:
            with os.scandir(folder) as entries:
                for entry in entries:
                    with open(os.path.join(folder, entry.name), "rb") as f:
                        hashlib.blake2b(f.read(), digest_size=16).digest()

    def hash_loop_listed() -> None:
        for path in files:
            with open(path, "rb") as f:
                hashlib.blake2b(f.read(), digest_size=16).digest()

    def plan() -> None:
        result = plan_dataset(tree, **PLAN_OPTIONS)  # type: ignore[arg-type]
        assert result.samples_per_epoch > 0
        assert not result.errors

    def report() -> None:
        result = inspect_dataset(tree, resolution=PLAN_OPTIONS["resolution"])  # type: ignore[arg-type]
        assert result.image_count == len(images)
        assert not result.errors

    hash_loop()  # warm the page cache
    rows: list[tuple[str, float, float, float | None]] = []
    for name, ours, base, target in (
        ("plan vs header loop", plan, header_loop, 1.3),
        ("  (header loop over a given list)", plan, header_loop_listed, None),
        ("report vs read+hash loop", report, hash_loop, 2.0),
        ("  (read+hash loop over a given list)", report, hash_loop_listed, None),
    ):
        b = best(base, repeat)
        o = best(ours, repeat)
        rows.append((name, o, b, target))
    return rows


_CHILD = """
import resource, sys, json, tracemalloc
sys.path.insert(0, {repo!r})
from kohya_orchestrator.datasets.plan import plan_dataset
from kohya_orchestrator.datasets.report import inspect_dataset
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
plan = plan_dataset({tree!r}, **{options!r})
report = inspect_dataset({tree!r}, resolution={res})
traced = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"images": report.image_count, "before_kb": before, "after_kb": after,
                  "traced_peak": traced}}))
"""


def bench_memory(root: Path, n: int) -> list[dict[str, int]]:
    out = []
    for k in (1, 2, 4):
        code = _CHILD.format(
            repo=str(REPO),
            tree=str(root / f"first{k}"),
            options=PLAN_OPTIONS,
            res=PLAN_OPTIONS["resolution"],
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="images (default 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "kohya_orchestrator" / "bench-dataset",
        help="where the generated images are kept between runs",
    )
    args = parser.parse_args(argv)
    root = generate(args.cache / f"n{args.n}", args.n)
    size = sum(os.path.getsize(f) for f in all_files(root / "all"))
    print(f"dataset: {args.n} images + {args.n} captions, {size / 1e6:.1f} MB, {root / 'all'}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, best of {args.repeat}\n")
    rows = bench_times(root, args.repeat)
    print(f"{'benchmark':40} {'ours':>8} {'baseline':>9} {'ratio':>6}  target")
    failed = False
    for name, ours, base, target in rows:
        ratio = ours / base
        verdict = ""
        if target is not None:
            verdict = f"<= {target} " + ("ok" if ratio <= target else "OVER")
            failed |= ratio > target
        print(f"{name:40} {ours:7.3f}s {base:8.3f}s {ratio:6.2f}  {verdict}")
    print("\nmemory of a fresh process running plan + report:")
    mem = bench_memory(root, args.n)
    for m in mem:
        print(
            f"  {m['images']:>6} images: peak RSS {m['after_kb'] / 1024:6.1f} MiB "
            f"(after imports {m['before_kb'] / 1024:.1f} MiB); "
            f"Python allocations during the work peak at {m['traced_peak'] / 2**20:.1f} MiB"
        )
    growth = (mem[-1]["after_kb"] - mem[0]["after_kb"]) / 1024
    print(
        f"  peak RSS growth from {mem[0]['images']} to {mem[-1]['images']} images: {growth:+.1f} MiB"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
