"""Run one of the tests' oracle scripts with the e2e lab's Python, inside sd-scripts.

The oracle scripts (tests/e2e/_sd_oracle.py, _sd_prompt_oracle.py,
tests/datasets/_sd_dataset_oracle.py) import sd-scripts' own readers and print one line
``ORACLE <json>``: what sd-scripts made of the files they were given.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any


def run_lab_oracle(lab: Path, script: Path, *args: object, timeout_s: float = 300) -> Any:
    """The JSON the oracle ``script`` printed, run as sd-scripts runs (cwd and imports there)."""
    sd = lab / "sd-scripts"
    env = {**os.environ, "PYTHONPATH": str(sd), "HF_HUB_OFFLINE": "1", "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [str(lab / "venv" / "bin" / "python"), str(script), *map(str, args)],
        cwd=sd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("ORACLE ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("ORACLE ") :])


def collect_examples(strategy: Any, count: int) -> list[Any]:
    """``count`` examples of a hypothesis ``strategy``, reproducible (derandomized, no database).

    The oracle tests draw every example first and then ask sd-scripts about all of them in ONE
    subprocess: starting the lab's Python per example would cost seconds each.
    """
    from hypothesis import HealthCheck, given, settings

    out: list[Any] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        out.append(example)

    collect()
    return out
