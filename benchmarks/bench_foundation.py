"""Foundation benchmarks: CLI start-up vs bare Python, and rendering 1,000 jobs.

    python benchmarks/bench_foundation.py

Targets (issue 2): `python -m kohya_orchestrator --help` within 3x of `python -c pass`;
rendering 1,000 jobs (training config + dataset config + prompts) in under 1 s.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _wall(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench_startup(runs: int = 31) -> tuple[float, float]:
    # interleave the two commands so machine noise hits both alike
    bare, cli = [], []
    for _ in range(runs):
        bare.append(_wall([sys.executable, "-c", "pass"], 1))
        cli.append(_wall([sys.executable, "-m", "kohya_orchestrator", "--help"], 1))
    return statistics.median(bare), statistics.median(cli)


def bench_render(n: int = 1000) -> float:
    from kohya_orchestrator.jobs.loading import load_job
    from kohya_orchestrator.render.toml import RenderPaths, render_job

    cases = sorted((REPO / "tests" / "golden" / "render").glob("*/job.toml"))
    jobs = [load_job(p) for p in cases]
    paths = RenderPaths("/run/dataset.toml", "/run/sample_prompts.txt")
    start = time.perf_counter()
    for i in range(n):
        render_job(jobs[i % len(jobs)], paths)
    return time.perf_counter() - start


def main() -> int:
    bare, cli = bench_startup()
    ratio = cli / bare
    print(f"python -c pass                  {bare * 1000:7.1f} ms (median of 31)")
    print(
        f"python -m kohya_orchestrator -h {cli * 1000:7.1f} ms  ratio {ratio:.2f}x (target <= 3x)"
    )
    seconds = bench_render()
    print(f"render 1,000 jobs               {seconds * 1000:7.1f} ms  (target < 1000 ms)")
    return 0 if ratio <= 3 and seconds < 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
