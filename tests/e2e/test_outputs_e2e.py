"""e2e: a real CPU training (2 epochs, a checkpoint and a 64 px sample every epoch, TensorBoard on),
then the outputs view, the pictures and `lora inspect` on what sd-scripts really wrote."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.environment.discovery import find_install
from kohya_orchestrator.events import RunStatus
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.outputs.collect import CONTACT_SHEET_PNG, LOSS_CURVE_PNG, run_outputs
from kohya_orchestrator.run import start
from kohya_orchestrator.ui.pictures import CurveLayout, SheetLayout

from .conftest import tiny_job

pytestmark = pytest.mark.e2e


def test_outputs_of_a_real_run(
    lab_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tiny_job(
        lab_env,
        tmp_path,
        "e2e_outputs",
        training={"logging_dir": str(tmp_path / "logs"), "log_prefix": "e2e_outputs"},
        sampling={
            "sample_every_n_epochs": 1,
            "prompts": [
                {
                    "prompt": "oilpaint style, a red circle",
                    "width": 64,
                    "height": 64,
                    "sample_steps": 2,
                    "seed": 1,
                }
            ],
        },
    )
    install = find_install(lab_env)
    assert install is not None
    run = start(validate_job(data), install=install, runs=tmp_path / "runs", probe=False)
    result = run.wait(900)
    assert result.status == RunStatus.SUCCEEDED, result.reason

    out = run_outputs(result.run_dir)
    assert [(c.name, c.epoch, c.step, c.final, c.exists) for c in out.checkpoints] == [
        ("e2e_outputs-000001.safetensors", 1, 4, False, True),
        ("e2e_outputs.safetensors", 2, 8, True, True),
    ]
    assert [(s.epoch, s.step, s.prompt_index, s.exists) for s in out.samples] == [
        (1, 4, 0, True),
        (2, 8, 0, True),
    ]
    assert {s.prompt for s in out.samples} == {"oilpaint style, a red circle"}
    assert out.epoch_end_steps == {1: 4, 2: 8}
    assert len(out.loss) == 8 and out.final_loss is not None
    # the job logs to TensorBoard: read with the tensorboard package (the test extra has it)
    assert list((tmp_path / "logs").rglob("events.out.tfevents.*"))
    if importlib.util.find_spec("tensorboard") is not None:
        assert out.loss_source == "tensorboard", out.notes
        assert all(p.current is not None for p in out.loss) and set(out.epoch_loss) == {1, 2}
    else:
        assert out.loss_source == "events" and "not installed" in out.notes[0]

    entries = out.by_epoch()
    assert [(e.epoch, e.checkpoint is not None, len(e.samples)) for e in entries] == [
        (1, True, 1),
        (2, True, 1),
    ]

    # the pictures, through the CLI
    assert main(["runs", "show", str(result.run_dir), "--sheet", "--loss-curve"]) == 0
    shown = capsys.readouterr().out
    assert "e2e_outputs-000001.safetensors" in shown and "e2e_outputs.safetensors" in shown
    with Image.open(result.run_dir / CONTACT_SHEET_PNG) as sheet:
        picture = out.contact_sheet()
        assert isinstance(picture.layout, SheetLayout)
        assert sheet.size == (picture.layout.width, picture.layout.height)
        assert sorted(picture.layout.cell_boxes) == [(0, 0), (0, 1)]
        assert picture.layout.missing == []
    with Image.open(result.run_dir / LOSS_CURVE_PNG) as curve:
        picture = out.loss_curve()
        assert isinstance(picture.layout, CurveLayout)
        assert curve.size == (picture.layout.width, picture.layout.height)
        assert len(picture.layout.checkpoint_points) == 2
        assert set(picture.layout.epoch_lines) == {1, 2}

    # what sd-scripts wrote into the file agrees with the job
    assert main(["lora", "inspect", str(out.checkpoints[0].path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["algo"], info["network_dim"], info["network_alpha"]) == ("lora", 4, 1.0)
    assert (info["epoch"], info["steps"], info["resolution"]) == (1, 4, [64, 64])
    assert info["dataset_dirs"][0]["repeats"] == 2
