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


SCHEMA_ORACLE = Path(__file__).resolve().parent / "e2e" / "_sd_schema_oracle.py"


def render_case(job: Any, folder: Path, name: str | None = None) -> tuple[dict[str, str], Any]:
    """Write ``job``'s config.toml and dataset.toml into ``folder`` (made here): one case of
    tests/e2e/_sd_schema_oracle.py, and the render paths used."""
    from kohya_orchestrator.render.toml import (
        RenderPaths,
        render_dataset_toml,
        render_training_toml,
    )

    folder.mkdir(parents=True)
    paths = RenderPaths(dataset_config=str(folder / "dataset.toml"))
    (folder / "config.toml").write_text(render_training_toml(job, paths), encoding="utf-8")
    (folder / "dataset.toml").write_text(render_dataset_toml(job), encoding="utf-8")
    case = {
        "script": job.model.script,
        "config": str(folder / "config.toml"),
        "dataset": str(folder / "dataset.toml"),
    }
    return ({"name": name, **case} if name is not None else case), paths


def run_schema_oracle(
    lab: Path, cases: list[dict[str, str]], folder: Path, timeout_s: float = 900
) -> list[dict[str, Any]]:
    """What sd-scripts' own readers make of every case, in one subprocess of the lab's Python."""
    manifest = folder / "cases.json"
    manifest.write_text(json.dumps(cases), encoding="utf-8")
    results: list[dict[str, Any]] = run_lab_oracle(
        lab, SCHEMA_ORACLE, manifest, timeout_s=timeout_s
    )
    assert len(results) == len(cases)
    return results
