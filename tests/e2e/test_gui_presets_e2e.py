"""e2e: every LoRA preset the kohya_ss GUI ships becomes a job that sd-scripts reads as meant.

The presets are read from a kohya_ss checkout found at test time (``$KOHYA_SS_DIR``, else
``<lab>/kohya_ss`` that tests/lab/build_lab.py exports); they are never copied into this
repository. Each converts (``import-preset``'s code) to a validated job; its rendered files are
then read by sd-scripts' own parser, ``read_config_from_file``, ``verify_training_args`` and
dataset blueprint in the lab (one subprocess for all): no key ignored, nothing refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lab_oracle import run_lab_oracle

from kohya_orchestrator.jobs.import_gui import import_gui_preset
from kohya_orchestrator.render.toml import RenderPaths, render_dataset_toml, render_training_toml

pytestmark = pytest.mark.e2e
ORACLE = Path(__file__).with_name("_sd_schema_oracle.py")


def _presets(lab: Path) -> list[Path]:
    root = Path(os.environ.get("KOHYA_SS_DIR") or lab / "kohya_ss")
    folder = root / "presets" / "lora"
    found = sorted(p for p in folder.glob("*.json"))
    if not found:
        pytest.skip(
            f"no kohya_ss checkout with presets/lora/*.json at {root}: set KOHYA_SS_DIR, or "
            "rerun tests/lab/build_lab.py (it exports the GUI's presets into <lab>/kohya_ss)"
        )
    return found


def test_every_shipped_gui_preset_converts_and_sd_scripts_reads_it(
    e2e_lab: Path, tmp_path: Path
) -> None:
    presets = _presets(e2e_lab)
    assert len(presets) >= 31, [p.name for p in presets]
    cases = []
    for i, preset in enumerate(presets):
        job = import_gui_preset(preset).job  # raises ConfigError, naming the file, on failure
        folder = tmp_path / f"{i:02d}"
        folder.mkdir()
        paths = RenderPaths(dataset_config=str(folder / "dataset.toml"))
        (folder / "config.toml").write_text(render_training_toml(job, paths), encoding="utf-8")
        (folder / "dataset.toml").write_text(render_dataset_toml(job), encoding="utf-8")
        cases.append(
            {
                "name": preset.name,
                "script": job.model.script,
                "config": str(folder / "config.toml"),
                "dataset": str(folder / "dataset.toml"),
            }
        )
    manifest = tmp_path / "cases.json"
    manifest.write_text(json.dumps(cases), encoding="utf-8")
    results = run_lab_oracle(e2e_lab, ORACLE, manifest, timeout_s=900)
    for case, got in zip(cases, results, strict=True):
        assert "error" not in got, (case["name"], got.get("error"))
        assert got["ignored"] == [], (case["name"], got["ignored"])
        assert got["verify"] is None, (case["name"], got["verify"])
    scripts = {c["script"] for c in cases}
    assert {"train_network.py", "sdxl_train_network.py", "flux_train_network.py"} <= scripts
