"""e2e: every LoRA preset the kohya_ss GUI ships becomes a job that sd-scripts reads as meant.

The presets are read from a kohya_ss checkout found at test time (``$KOHYA_SS_DIR``, else
``<lab>/kohya_ss`` that tests/lab/build_lab.py exports); they are never copied into this
repository. Each converts (``import-preset``'s code) to a validated job; its rendered files are
then read by sd-scripts' own parser, ``read_config_from_file``, ``verify_training_args`` and
dataset blueprint in the lab (one subprocess for all): no key ignored, nothing refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lab_oracle import render_case, run_schema_oracle

from kohya_orchestrator.jobs.import_gui import import_gui_preset

pytestmark = pytest.mark.e2e


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
    cases = [
        render_case(import_gui_preset(p).job, tmp_path / f"{i:02d}", name=p.name)[0]
        for i, p in enumerate(presets)  # import raises ConfigError, naming the file, on failure
    ]
    results = run_schema_oracle(e2e_lab, cases, tmp_path)
    for case, got in zip(cases, results, strict=True):
        assert "error" not in got, (case["name"], got.get("error"))
        assert got["ignored"] == [], (case["name"], got["ignored"])
        assert got["verify"] is None, (case["name"], got["verify"])
    scripts = {c["script"] for c in cases}
    assert {"train_network.py", "sdxl_train_network.py", "flux_train_network.py"} <= scripts
