"""Launch overhead: orchestrated `train` vs the same command run directly, alternating.

    python benchmarks/bench_launch.py [--pairs 3] [--epochs 1]

Needs the real-sd-scripts lab (../shared/lab/setup-e2e.sh; $KOHYA_E2E_DIR or
~/.cache/kohya_orchestrator/e2e). Each pair runs the same tiny CPU training twice: once as
`python -m kohya_orchestrator train job.toml --no-probe --jsonl` (parsing, run directory, JSONL,
resource monitor) and once as the bare argv from that run's command.json with its environment.
Reports the wall-time ratio (target <= 1.01) and the orchestrator process's peak RSS (its own
memory, not the trainer's; target <= 80 MB). The environment probe (one extra Python that imports
torch) is timed separately, since `--no-probe` skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
LAB = Path(os.environ.get("KOHYA_E2E_DIR", Path.home() / ".cache" / "kohya_orchestrator" / "e2e"))


def _job_toml(tmp: Path, name: str, epochs: int) -> Path:
    data = tmp / "img"
    if not data.exists():
        shutil.copytree(LAB / "data" / "img", data)
    text = f"""name = "{name}"
[model]
pretrained_model_name_or_path = "{LAB / "models" / "sd15-random-diffusers"}"
tokenizer_cache_dir = "{LAB / "tokcache"}"
[dataset]
resolution = 64
batch_size = 2
enable_bucket = false
[[dataset.subsets]]
image_dir = "{data / "2_oilpaint style"}"
[network]
algo = "lora"
network_dim = 4
network_alpha = 1.0
[training]
output_dir = "{tmp / ("out_" + name)}"
output_name = "{name}"
max_train_epochs = {epochs}
mixed_precision = "no"
attention = "none"
max_data_loader_n_workers = 0
"""
    path = tmp / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _orchestrated(
    tmp: Path, name: str, epochs: int, env: dict[str, str]
) -> tuple[float, int, Path]:
    job = _job_toml(tmp, name, epochs)
    argv = [
        sys.executable,
        "-m",
        "kohya_orchestrator",
        "train",
        str(job),
        "--no-probe",
        "--jsonl",
        "--runs",
        str(tmp / "runs"),
        "--sd-scripts",
        str(LAB),
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    me = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, me.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"orchestrated run failed (rc {proc.returncode})")
    run_dir = max((tmp / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    return wall, peak, run_dir


def _direct(run_dir: Path, tmp: Path, name: str, epochs: int, env: dict[str, str]) -> float:
    """The same command as the orchestrated run, on a job identical but for its output folder."""
    command = json.loads((run_dir / "command.json").read_text())
    job = _job_toml(tmp, name, epochs)
    rendered = tmp / f"rendered_{name}"
    subprocess.run(
        [sys.executable, "-m", "kohya_orchestrator", "render", str(job), "--out", str(rendered)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    argv = [*command["argv"][:-1], str(rendered.resolve() / "config.toml")]
    start = time.perf_counter()
    with (tmp / f"{name}.log").open("wb") as log:
        rc = subprocess.run(
            argv,
            cwd=command["cwd"],
            env={**env, **command["env"]},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        ).returncode
    wall = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"direct run failed (rc {rc}); see {tmp / (name + '.log')}")
    return wall


def _probe_seconds() -> float:
    from kohya_orchestrator.environment import find_install, probe_environment

    install = find_install(LAB)
    assert install is not None
    start = time.perf_counter()
    probe_environment(install)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    if not (LAB / "READY").is_file():
        print(f"no e2e lab at {LAB}: run ../shared/lab/setup-e2e.sh first")
        return 2
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    ratios, orch, direct, peaks = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp_name:
        tmp = Path(tmp_name)
        env["HF_HOME"] = str(tmp / "hf")
        for i in range(args.pairs):
            o_wall, peak, run_dir = _orchestrated(tmp, f"o{i}", args.epochs, env)
            d_wall = _direct(run_dir, tmp, f"d{i}", args.epochs, env)
            orch.append(o_wall)
            direct.append(d_wall)
            peaks.append(peak)
            ratios.append(o_wall / d_wall)
            print(
                f"pair {i + 1}: orchestrated {o_wall:6.2f} s  direct {d_wall:6.2f} s  "
                f"ratio {o_wall / d_wall:.3f}  orchestrator peak RSS {peak / 2**20:.1f} MiB"
            )
    print(
        f"median ratio {statistics.median(ratios):.3f} (target <= 1.01); "
        f"orchestrated {statistics.median(orch):.2f} s vs direct {statistics.median(direct):.2f} s"
    )
    print(f"orchestrator peak RSS {max(peaks) / 2**20:.1f} MiB (target <= 80 MB)")
    print(f"environment probe (skipped above with --no-probe): {_probe_seconds():.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
