"""`lora inspect` on a 2 GB safetensors file: header only, target under 50 ms.

Usage: python benchmarks/bench_lora_inspect.py [--size-gb 2] [--tensors 2048] [--repeat 20]
                                                [--dir DIR] [--cli]

Writes a valid safetensors file of --size-gb GiB: a real header (the ss_* metadata of the LoKr
output in tests/fixtures/sd-scripts/loras, or a synthetic table if that is missing, and --tensors
F16 tensor entries that exactly cover the data section) followed by zero data made with truncate (a
sparse file: no 2 GB written to disk). Then measures ``inspect_lora(path)`` in-process: the first
call and the median/best of --repeat calls. The tensor data is never read, so the time depends on
the header (JSON size, number of tensors), not on the file size. With --cli it also times the whole
``python -m kohya_orchestrator lora inspect FILE --json`` process (interpreter start-up and imports
included; informational, not the 50 ms target).
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kohya_orchestrator.outputs.lora import inspect_lora  # noqa: E402

REAL_LOKR = REPO / "tests" / "fixtures" / "sd-scripts" / "loras" / "c_lokr_preset.safetensors"
TARGET_MS = 50.0


def _metadata() -> dict[str, str]:
    if REAL_LOKR.is_file():
        raw = REAL_LOKR.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        meta = json.loads(raw[8 : 8 + n]).get("__metadata__", {})
        return {str(k): str(v) for k, v in meta.items()}
    return {"ss_network_module": "networks.lora", "ss_network_dim": "32", "ss_epoch": "10"}


def make_file(path: Path, size_bytes: int, n_tensors: int) -> Path:
    """A valid safetensors file of exactly 8 + header + size_bytes bytes (sparse zero data)."""
    per = size_bytes // n_tensors // 2 * 2  # F16 elements are 2 bytes
    header: dict[str, object] = {"__metadata__": _metadata()}
    offset = 0
    for i in range(n_tensors):
        nbytes = per if i < n_tensors - 1 else size_bytes - offset
        header[f"lora_unet_down_blocks_{i // 8}_attn_{i % 8}.lora_down.weight"] = {
            "dtype": "F16",
            "shape": [nbytes // 2],
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.truncate(8 + len(raw) + size_bytes)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--tensors", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the file")
    parser.add_argument("--cli", action="store_true", help="also time the CLI process")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = make_file(Path(tmp) / "big.safetensors", int(args.size_gb * (1 << 30)), args.tensors)
        size = path.stat().st_size
        t0 = time.perf_counter()
        info = inspect_lora(path)
        first_ms = (time.perf_counter() - t0) * 1000
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            inspect_lora(path)
            times.append((time.perf_counter() - t0) * 1000)
        median, best = statistics.median(times), min(times)
        header_kib = (info.header_bytes or 0) / 1024
        print(
            f"file {size / (1 << 30):.2f} GiB, header {header_kib:.0f} KiB, "
            f"{info.tensor_count} tensors, algo {info.algo}"
        )
        print(
            f"inspect_lora: first {first_ms:.1f} ms, median {median:.1f} ms, best {best:.1f} ms "
            f"over {args.repeat} (target < {TARGET_MS:.0f} ms)"
        )
        if args.cli:
            cmd = [sys.executable, "-m", "kohya_orchestrator", "lora", "inspect", str(path)]
            walls = []
            for _ in range(5):
                t0 = time.perf_counter()
                subprocess.run([*cmd, "--json"], check=True, capture_output=True, cwd=REPO)
                walls.append((time.perf_counter() - t0) * 1000)
            print(
                f"CLI process (start-up + imports + inspect + JSON): median "
                f"{statistics.median(walls):.0f} ms"
            )
    ok = median < TARGET_MS
    print("OK" if ok else "TOO SLOW")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
