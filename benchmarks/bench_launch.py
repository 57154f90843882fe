"""Launch overhead: orchestrated `train` vs the same command run directly, alternating.

    python benchmarks/bench_launch.py [--pairs 4] [--epochs 1 4] [--probe]

Needs the real-sd-scripts lab (built as docs/e2e-lab.md says; $KOHYA_E2E_DIR or
~/.cache/kohya_orchestrator/e2e). Each pair runs the same tiny CPU training (64 px, batch 2,
4 images x 2 repeats, LoRA dim 4) twice: once as
`python -m kohya_orchestrator train job.toml --no-probe --jsonl` (parsing, run directory, JSONL,
resource monitor) and once as the bare argv from a command.json with its environment, output to
a file. Pairs alternate which run goes first (ABBA); a warm-up run is not counted. For each
training length (`--epochs`, one epoch is ~17 s here) it reports the median wall-time ratio
(target <= 1.01) with the ratio of the median walls, and the trainer's own speed (seconds per
step from the training bar, read with our parser) in both arms; for all runs, the orchestrator's
own time before the trainer process appears and after it exits (seen from outside), and the
orchestrator process's peak RSS (its own memory, not the trainer's; target <= 80 MB). On a
shared 2-core machine single runs of the same training vary by +-0.5 s or more: use several
pairs and read the fixed costs and the per-step speed along with the ratio. The environment
probe (one extra Python that imports torch, before the launch) is timed separately unless
`--probe` includes it in the runs. The package is byte-compiled first (into __pycache__, as
`pip install` does).
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
TARGET = 1.01


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
    tmp: Path, name: str, epochs: int, env: dict[str, str], probe: bool
) -> tuple[float, int, Path, float, float]:
    """One orchestrated run: wall time, peak RSS, run dir, and the orchestrator's own time
    before the trainer process started and after it was gone (seen from outside; the second to
    within one 50 ms poll)."""
    job = _job_toml(tmp, name, epochs)
    argv = [
        sys.executable,
        "-m",
        "kohya_orchestrator",
        "train",
        str(job),
        "--jsonl",
        "--runs",
        str(tmp / "runs"),
        "--sd-scripts",
        str(LAB),
    ]
    if not probe:
        argv.append("--no-probe")
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    me = psutil.Process(proc.pid)
    peak = 0
    trainer: psutil.Process | None = None
    before: float | None = None
    gone: float | None = None
    # Light polling (every 50 ms; listing children scans /proc, so only until the trainer is
    # found): heavier polling measurably slows the trainer on a 2-core machine.
    while proc.poll() is None:
        try:
            peak = max(peak, me.memory_info().rss)
            if trainer is None:
                kids = me.children()
                if kids:
                    trainer = kids[0]
                    # Both start times come from /proc on the same clock (10 ms ticks).
                    before = trainer.create_time() - me.create_time()
            elif gone is None and not trainer.is_running():
                gone = time.perf_counter()
        except psutil.Error:
            pass
        time.sleep(0.05)
    end = time.perf_counter()
    if proc.returncode != 0:
        raise SystemExit(f"orchestrated run failed (rc {proc.returncode})")
    run_dir = max((tmp / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    if before is None:
        before = end - start
    after = end - (gone or end)
    return end - start, peak, run_dir, before, after


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


def _seconds_per_step(console_log: Path) -> float | None:
    """The training bar's last rate, read with our own parser: the trainer's own speed."""
    from kohya_orchestrator.events import StepProgress, parse_log

    text = console_log.read_bytes().decode("utf-8", "replace")
    rates = [e.rate_it_s for e in parse_log(text) if isinstance(e, StepProgress) and e.rate_it_s]
    return 1.0 / rates[-1] if rates else None


def _probe_seconds() -> float:
    from kohya_orchestrator.environment.discovery import find_install
    from kohya_orchestrator.environment.probe import probe_environment

    install = find_install(LAB)
    assert install is not None
    start = time.perf_counter()
    probe_environment(install)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=4, help="pairs per length (default 4)")
    parser.add_argument(
        "--epochs", type=int, nargs="+", default=[1, 4], help="training lengths (default 1 4)"
    )
    parser.add_argument(
        "--probe", action="store_true", help="orchestrated runs probe the environment first"
    )
    args = parser.parse_args()
    if not (LAB / "READY").is_file():
        print(f"no e2e lab at {LAB}: build it first (docs/e2e-lab.md)")
        return 2
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    # Run from byte-compiled modules, as an installed package does (pip compiles on install;
    # with PYTHONDONTWRITEBYTECODE set, every start would otherwise compile ~80 modules again).
    package = str(REPO / "kohya_orchestrator")
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True)
    peaks: list[int] = []
    befores: list[float] = []
    afters: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp_name:
        tmp = Path(tmp_name)
        env["HF_HOME"] = str(tmp / "hf")
        # Warm-up (not counted): disk caches, the tokenizer cache, byte-compiled files.
        _, _, template, _, _ = _orchestrated(tmp, "warm", 1, env, args.probe)
        for epochs in args.epochs:
            ratios, orch, direct = [], [], []
            o_rates: list[float] = []
            d_rates: list[float] = []
            for i in range(args.pairs):
                # Alternate which goes first (ABBA), so drift over the session cancels out.
                name = f"e{epochs}_{i}"
                d_first = i % 2 == 1
                if d_first:
                    d_wall = _direct(template, tmp, "d" + name, epochs, env)
                o_wall, peak, run_dir, before, after = _orchestrated(
                    tmp, "o" + name, epochs, env, args.probe
                )
                if not d_first:
                    d_wall = _direct(template, tmp, "d" + name, epochs, env)
                o_rate = _seconds_per_step(run_dir / "console.log")
                d_rate = _seconds_per_step(tmp / f"d{name}.log")
                o_rates += [o_rate] if o_rate else []
                d_rates += [d_rate] if d_rate else []
                orch.append(o_wall)
                direct.append(d_wall)
                peaks.append(peak)
                befores.append(before)
                afters.append(after)
                ratios.append(o_wall / d_wall)
                print(
                    f"{epochs} epoch(s), pair {i + 1} ({'direct' if d_first else 'orch.'} first):"
                    f" orchestrated {o_wall:6.2f} s  direct {d_wall:6.2f} s  "
                    f"ratio {o_wall / d_wall:.3f}  (orchestrator alone: {before:.2f} s before "
                    f"the trainer, {after:.2f} s after; s/step {o_rate} vs {d_rate})",
                    flush=True,
                )
            ratio = statistics.median(ratios)
            of_medians = statistics.median(orch) / statistics.median(direct)
            print(
                f"{epochs} epoch(s): median ratio {ratio:.3f} "
                f"({'met' if ratio <= TARGET else 'NOT met'}: target <= {TARGET}); "
                f"ratio of the median walls {of_medians:.3f} ({statistics.median(orch):.2f} s vs "
                f"{statistics.median(direct):.2f} s); pair ratios {min(ratios):.3f}-"
                f"{max(ratios):.3f}",
                flush=True,
            )
            if o_rates and d_rates:
                print(
                    f"{epochs} epoch(s): the trainer's own speed (training bar): median "
                    f"{statistics.median(o_rates):.3f} s/step orchestrated vs "
                    f"{statistics.median(d_rates):.3f} s/step direct",
                    flush=True,
                )
    print(
        f"orchestrator's own time: median {statistics.median(befores):.2f} s before the trainer "
        f"starts (start-up, validation, rendering, run directory"
        f"{', environment probe' if args.probe else ''}), "
        f"{statistics.median(afters):.2f} s after it exits"
    )
    print(f"orchestrator peak RSS {max(peaks) / 2**20:.1f} MiB (target <= 80 MB)")
    if not args.probe:
        print(f"environment probe (skipped above, --no-probe): {_probe_seconds():.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
