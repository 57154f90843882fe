"""Run every benchmark in turn with its defaults: ``python benchmarks/run_all.py [NAME ...]``.

NAME picks some of them (``foundation``, ``parser``, ``dataset``, ``lora_inspect``, ``launch``).
Each benchmark prints its own figures and targets (see benchmarks/README.md). ``launch`` needs
the real-sd-scripts lab and says so when it is missing; it takes ~10 minutes on 2 cores.
Exit status: 0 when every benchmark ran, 1 when one failed or could not run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ("foundation", "parser", "dataset", "lora_inspect", "launch")


def main(argv: list[str]) -> int:
    names = argv or list(ORDER)
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ORDER)}")
        return 2
    failed: list[str] = []
    for name in names:
        print(f"== {name} ({HERE / f'bench_{name}.py'})", flush=True)
        start = time.perf_counter()
        rc = subprocess.run(
            [sys.executable, str(HERE / f"bench_{name}.py")], check=False
        ).returncode
        print(f"== {name}: exit {rc} after {time.perf_counter() - start:.0f} s\n", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"did not complete: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
