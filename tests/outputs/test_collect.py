"""`run_outputs` (checkpoints, samples and loss per epoch) on a run directory assembled from the
real e_prodigy capture (see conftest.py), and on runs that crashed or left only files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.outputs.collect import LOSS_CURVE_PNG, run_outputs

from .conftest import write_safetensors

TB_RUN = "e_prodigy20261124215359"


class TestProdigyRun:
    def test_checkpoints_per_epoch(self, prodigy_run: Path) -> None:
        pytest.importorskip("tensorboard")
        out = run_outputs(prodigy_run)
        assert out.job_name == "e_prodigy" and out.status == "succeeded"
        assert (out.epochs, out.total_steps, out.duration_s) == (2, 8, 41.5)
        assert out.epoch_end_steps == {1: 4, 2: 8}
        first, final = out.checkpoints
        assert (first.name, first.epoch, first.step, first.final) == (
            "e_prodigy-000001.safetensors",
            1,
            4,
            False,
        )
        assert (final.name, final.epoch, final.step, final.final) == (
            "e_prodigy.safetensors",
            2,
            8,
            True,
        )
        assert first.exists and first.size_bytes == 4832752
        assert first.trigger == "epoch" and final.trigger == "final"
        assert out.final_checkpoint == final

    def test_samples_per_epoch_and_prompt(self, prodigy_run: Path) -> None:
        out = run_outputs(prodigy_run)
        assert [(s.epoch, s.step, s.prompt_index, s.exists) for s in out.samples] == [
            (1, 4, 0, True),
            (2, 8, 0, True),
        ]
        assert {s.prompt for s in out.samples} == {"oilpaint style, a red circle"}
        assert out.prompts == ["oilpaint style, a red circle"]

    def test_loss_from_tensorboard(self, prodigy_run: Path) -> None:
        pytest.importorskip("tensorboard")
        out = run_outputs(prodigy_run)
        assert out.loss_source == "tensorboard"
        assert out.tensorboard_dir is not None and out.tensorboard_dir.name == "network_train"
        assert [p.step for p in out.loss] == list(range(1, 9))
        assert out.loss[1].current == pytest.approx(1.0552, abs=1e-4)
        assert out.loss[1].average == pytest.approx(1.1422, abs=1e-4)
        assert out.epoch_loss == pytest.approx({1: 1.1805, 2: 1.1007}, abs=1e-4)
        first, final = out.checkpoints
        assert first.loss == pytest.approx(1.1805, abs=1e-4)
        assert final.epoch_loss == pytest.approx(1.1007, abs=1e-4)
        assert out.notes == []

    def test_loss_from_events_when_tensorboard_is_missing(
        self, prodigy_run: Path, no_tensorboard: None
    ) -> None:
        out = run_outputs(prodigy_run)
        assert out.loss_source == "events" and out.tensorboard_dir is None
        assert [p.average for p in out.loss] == [1.23, 1.14, 1.16, 1.18, 1.15, 1.17, 1.13, 1.1]
        assert all(p.current is None for p in out.loss)
        assert out.epoch_loss == {1: 1.18, 2: 1.1}
        (note,) = out.notes
        assert "tensorboard package is not installed" in note
        assert "kohya-orchestrator[tensorboard]" in note and TB_RUN in note

    def test_use_tensorboard_false(self, prodigy_run: Path) -> None:
        out = run_outputs(prodigy_run, use_tensorboard=False)
        assert out.loss_source == "events" and out.notes == []

    def test_by_epoch(self, prodigy_run: Path) -> None:
        rows = run_outputs(prodigy_run, use_tensorboard=False).by_epoch()
        assert [(r.epoch, r.step, r.loss) for r in rows] == [(1, 4, 1.18), (2, 8, 1.1)]
        assert [r.checkpoint.name for r in rows if r.checkpoint] == [
            "e_prodigy-000001.safetensors",
            "e_prodigy.safetensors",
        ]
        assert [len(r.samples) for r in rows] == [1, 1]

    def test_json(self, prodigy_run: Path) -> None:
        out = run_outputs(prodigy_run, use_tensorboard=False)
        again = type(out).model_validate_json(out.model_dump_json())
        assert again == out

    def test_missing_checkpoint_file(self, prodigy_run: Path) -> None:
        out_dir = run_outputs(prodigy_run).output_dir
        assert out_dir is not None
        (out_dir / "e_prodigy-000001.safetensors").unlink()
        first = run_outputs(prodigy_run, use_tensorboard=False).checkpoints[0]
        assert first.epoch == 1 and not first.exists and first.size_bytes is None


class TestOtherRuns:
    def test_crashed_run_without_anything(self, tmp_path: Path) -> None:
        run = tmp_path / "20260101-000000-crashed"
        run.mkdir()
        (run / "job.json").write_text('{"name": "crashed"}')
        (run / "events.jsonl").write_text('{"kind": "run_star')
        out = run_outputs(run)
        assert out.job_name == "crashed" and out.checkpoints == [] and out.samples == []
        assert out.loss_source == "none" and out.by_epoch() == []
        assert out.write_pictures() == [run / LOSS_CURVE_PNG]  # no samples: no sheet

    def test_files_without_events(self, tmp_path: Path) -> None:
        out_dir = tmp_path / "out"
        (out_dir / "sample").mkdir(parents=True)
        for name in ("s-000002.safetensors", "s-step00000010.safetensors", "s.safetensors"):
            write_safetensors(out_dir / name, {})
        (out_dir / "other.safetensors").write_bytes(b"")
        for name in ("s_e000002_00_20260101000000.png", "s_000010_01_20260101000000_7.png"):
            (out_dir / "sample" / name).write_bytes(b"")
        run = tmp_path / "runs" / "20260101-000000-s"
        run.mkdir(parents=True)
        job = {"training": {"output_dir": str(out_dir), "output_name": "s"}}
        (run / "job.json").write_text(json.dumps(job))
        (run / "sample_prompts.txt").write_text("# comment\na cat --w 64 --h 64\na dog\n")
        out = run_outputs(run)
        assert out.job_name == "s"
        assert [(c.name, c.epoch, c.step, c.trigger) for c in out.checkpoints] == [
            ("s-000002.safetensors", 2, None, "epoch"),
            ("s-step00000010.safetensors", None, 10, "step"),
            ("s.safetensors", None, None, "final"),
        ]
        assert [(s.epoch, s.step, s.prompt, s.trigger) for s in out.samples] == [
            (2, None, "a cat", "epoch"),
            (None, 10, "a dog", "step"),
        ]
        points = [(e.epoch, e.step) for e in out.by_epoch()]
        assert (None, 10) in points and (2, None) in points


def test_nan_loss_stays_valid_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kohya_orchestrator.events import StepProgress, dump_events_jsonl

    run = tmp_path / "20260101-000000-nan"
    run.mkdir()
    steps = [
        StepProgress(seq=i, step=i + 1, total_steps=4, epoch=1, avr_loss=v)
        for i, v in enumerate([0.5, float("nan")])
    ]
    (run / "events.jsonl").write_text(dump_events_jsonl(steps))
    out = run_outputs(run)
    assert out.final_loss == 0.5 and out.epoch_loss == {}
    assert out.loss_curve().layout.checkpoint_points == []
    assert main(["runs", "show", str(run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)  # strict JSON: no bare NaN
    assert info["outputs"]["loss"][1]["average"] == "NaN"
