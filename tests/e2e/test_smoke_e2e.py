"""e2e: `train JOB --smoke` on the lab: 2 real steps, one sample, one save, into a scratch folder.

The job (2 epochs of 4 steps, a sample and a save every epoch) must come back as a report with a
measured s/step and a projected time for its 8 steps, and its own output folder must stay
untouched (here: never created, and a file put there beforehand unchanged).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.events import CheckpointSaved, SampleImageSaved, StepProgress, read_events

from .conftest import tiny_job

pytestmark = pytest.mark.e2e


def test_smoke_run_reports_speed_and_projection_and_leaves_the_output_alone(
    lab_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tiny_job(
        lab_env,
        tmp_path,
        "e2e_smoke",
        sampling={
            "sample_every_n_epochs": 1,
            "prompts": [
                {"prompt": "oilpaint style, a red circle", "width": 64, "height": 64,
                 "sample_steps": 2, "seed": 1},
                {"prompt": "oilpaint style, a blue square", "width": 64, "height": 64,
                 "sample_steps": 2, "seed": 2},
            ],
        },
    )  # fmt: skip
    out = Path(data["training"]["output_dir"])
    out.mkdir()
    keep = out / "notes.txt"  # the real output folder holds something of the user's
    keep.write_text("mine\n", encoding="utf-8")
    job = tmp_path / "e2e_smoke.toml"
    from kohya_orchestrator.render._writer import dumps

    job.write_text(dumps(data), encoding="utf-8")
    runs = tmp_path / "runs"

    rc = main(["train", str(job), "--smoke", "--runs", str(runs), "--no-probe"])
    printed = capsys.readouterr()
    assert rc == 0, printed.out + printed.err

    # the job's own output folder: untouched
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert keep.read_text(encoding="utf-8") == "mine\n"

    # the smoke run: 2 steps, one sample (the first prompt), the final file, all in the scratch
    (scratch,) = (runs / "smoke-outputs").iterdir()
    (run_dir,) = (p for p in runs.iterdir() if p.name != "smoke-outputs")
    assert json.loads((run_dir / "job.json").read_text())["training"]["output_dir"] == str(scratch)
    events = read_events(run_dir)
    assert max(e.step for e in events if isinstance(e, StepProgress)) == 2
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert [Path(e.path).name for e in saved] == ["e2e_smoke.safetensors"]
    assert (scratch / "e2e_smoke.safetensors").is_file()
    samples = [e for e in events if isinstance(e, SampleImageSaved)]
    assert [(e.step, e.prompt_index) for e in samples] == [(2, 0)]
    assert Path(samples[0].path).parent == scratch / "sample"

    # the report: what passed, the measured speed and memory, the projection for 8 steps
    lines = printed.out.splitlines()
    assert "loads: yes   steps: 2/2   saves: yes   samples: yes" in lines
    speed = next(line for line in lines if line.startswith("speed: "))
    per_step = float(re.search(r"([\d.]+) s/step", speed).group(1))  # type: ignore[union-attr]
    assert 0.0 < per_step < 120.0
    memory = next(line for line in lines if line.startswith("memory: "))
    assert re.fullmatch(r"memory: peak RAM \d+\.\d GiB(, peak VRAM \d+\.\d GiB)?", memory), memory
    projected = next(line for line in lines if line.startswith("projected full run: "))
    assert "(8 steps, 2 epochs, 2 x 2 samples)" in projected, projected
    assert any(line.startswith("✓ smoke run passed: e2e_smoke loads") for line in lines)
