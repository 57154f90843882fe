"""`run_outputs` (checkpoints, samples and loss per epoch), `compare_runs`, and the `runs` verbs,
on a run directory assembled from the real e_prodigy capture (see conftest.py)."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import datetime
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.outputs.run_outputs import (
    CONTACT_SHEET_PNG,
    LOSS_CURVE_PNG,
    TensorBoardMissing,
    compare_runs,
    find_tensorboard_dir,
    read_tensorboard_scalars,
    run_outputs,
)

from .conftest import build_prodigy_run, write_safetensors

TB_RUN = "e_prodigy20261124215359"


@pytest.fixture
def no_tensorboard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import tensorboard...` fail as when the optional extra is not installed."""
    for name in list(sys.modules):
        if name == "tensorboard" or name.startswith("tensorboard."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)


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


def test_tensorboard_reader(captures_dir: Path) -> None:
    pytest.importorskip("tensorboard")
    folder = captures_dir / "run-outputs" / "e_prodigy" / "tb" / TB_RUN / "network_train"
    scalars = read_tensorboard_scalars(folder)
    assert {"loss/current", "loss/average", "loss/epoch_average", "lr/unet"} <= set(scalars)
    assert [s for s, _ in scalars["loss/epoch_average"]] == [1, 2]  # logged at step = epoch
    assert len(scalars["loss/current"]) == 8


def test_tensorboard_reader_without_package(captures_dir: Path, no_tensorboard: None) -> None:
    with pytest.raises(TensorBoardMissing, match="kohya-orchestrator\\[tensorboard\\]"):
        read_tensorboard_scalars(captures_dir)


class TestFindTensorboardDir:
    def _tree(self, root: Path, names: list[str]) -> Path:
        for name in names:
            d = root / name / "network_train"
            d.mkdir(parents=True)
            (d / "events.out.tfevents.1.host.1.0").write_bytes(b"")
        return root

    def test_picks_the_first_folder_after_the_start(self, tmp_path: Path) -> None:
        root = self._tree(
            tmp_path, ["p20260101100000", "p20260101120005", "p20260101130000", "q20260101120010"]
        )
        got = find_tensorboard_dir(root, "p", datetime(2026, 1, 1, 12, 0, 0))
        assert got == root / "p20260101120005" / "network_train"

    def test_without_start_takes_the_newest(self, tmp_path: Path) -> None:
        root = self._tree(tmp_path, ["20260101100000", "20260101130000"])
        assert find_tensorboard_dir(root) == root / "20260101130000" / "network_train"

    def test_none(self, tmp_path: Path) -> None:
        assert find_tensorboard_dir(tmp_path / "missing") is None
        (tmp_path / "p20260101100000").mkdir()
        assert find_tensorboard_dir(tmp_path, "p") is None  # no event files

    def test_no_event_files_is_a_note(self, prodigy_run: Path, tmp_path: Path) -> None:
        job = json.loads((prodigy_run / "job.json").read_text())
        job["training"]["logging_dir"] = str(tmp_path / "empty-logs")
        (prodigy_run / "job.json").write_text(json.dumps(job))
        out = run_outputs(prodigy_run)
        assert out.loss_source == "events"
        assert out.notes == [f"no TensorBoard event files found under {tmp_path / 'empty-logs'}"]


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


class TestCompare:
    def test_runs_and_files(self, prodigy_run: Path, loras: Path) -> None:
        pytest.importorskip("tensorboard")
        result = compare_runs(
            [
                prodigy_run,
                loras / "c_lokr_preset.safetensors",
                loras / "d_ia3_custompreset.safetensors",
            ]
        )
        prodigy, lokr, ia3 = result.rows
        assert (prodigy.name, prodigy.algo, prodigy.optimizer, prodigy.learning_rate) == (
            "e_prodigy",
            "lora",
            "Prodigy",
            1.0,
        )
        assert (prodigy.network_dim, prodigy.network_alpha, prodigy.steps) == (4, 1.0, 8)
        assert prodigy.time_s == 41.5 and prodigy.status == "succeeded"
        assert prodigy.final_loss == pytest.approx(1.1007, abs=1e-4)
        assert prodigy.epoch_loss == pytest.approx(1.1007, abs=1e-4)
        assert prodigy.file_size_bytes == 4832752
        assert prodigy.file is not None and prodigy.file.name == "e_prodigy.safetensors"
        assert (lokr.algo, lokr.network_dim, lokr.file_size_bytes) == ("lokr", 4, 772292)
        assert lokr.final_loss is None and lokr.time_s == pytest.approx(48.47, abs=0.01)
        assert (ia3.algo, ia3.network_dim, ia3.network_alpha, ia3.learning_rate) == (
            "ia3",
            None,
            None,
            0.005,
        )

    def test_run_without_files_uses_the_job(self, prodigy_run: Path) -> None:
        out_dir = run_outputs(prodigy_run).output_dir
        assert out_dir is not None
        shutil.rmtree(out_dir)
        (row,) = compare_runs([prodigy_run]).rows
        assert (row.algo, row.network_dim, row.optimizer, row.learning_rate) == (
            "lora",
            4,
            "Prodigy",
            1.0,
        )
        assert row.file is None and row.steps == 8 and row.epochs == 2


class TestRunsCli:
    def test_show_lists_outputs_and_writes_pictures(
        self, prodigy_run: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["runs", "show", str(prodigy_run), "--sheet", "--loss-curve"]) == 0
        out = capsys.readouterr().out
        assert "e_prodigy-000001.safetensors" in out and "e_prodigy.safetensors" in out
        assert "lowest loss is not the best epoch" in out
        assert (prodigy_run / CONTACT_SHEET_PNG).is_file()
        assert (prodigy_run / LOSS_CURVE_PNG).is_file()

    def test_show_json(self, prodigy_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["runs", "show", str(prodigy_run), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["status"] == "succeeded" and len(info["checkpoints"]) == 2
        outputs = info["outputs"]
        assert [c["epoch"] for c in outputs["checkpoints"]] == [1, 2]
        assert [s["epoch"] for s in outputs["samples"]] == [1, 2]
        assert info["pictures"] == []
        assert not (prodigy_run / CONTACT_SHEET_PNG).exists()

    def test_pictures(self, prodigy_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
        runs = str(prodigy_run.parent)
        assert main(["runs", "pictures", "latest", "--runs", runs]) == 0
        assert "contact_sheet.png" in capsys.readouterr().out
        assert (prodigy_run / CONTACT_SHEET_PNG).is_file()
        (prodigy_run / CONTACT_SHEET_PNG).unlink()
        assert main(["runs", "pictures", prodigy_run.name, "--runs", runs, "--loss-curve"]) == 0
        assert not (prodigy_run / CONTACT_SHEET_PNG).exists()

    def test_compare(
        self, prodigy_run: Path, loras: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ia3 = str(loras / "d_ia3_custompreset.safetensors")
        assert main(["runs", "compare", str(prodigy_run), ia3]) == 0
        out = capsys.readouterr().out
        for fragment in ("e_prodigy", "d_ia3_custompreset", "Prodigy", "ia3", "4/1", "0.005"):
            assert fragment in out, fragment
        assert main(["runs", "compare", str(prodigy_run), ia3, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["rows"]
        assert [r["algo"] for r in rows] == ["lora", "ia3"]

    def test_usage_errors(self, prodigy_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["runs", "compare"]) == 2
        assert main(["runs", "show", str(prodigy_run), str(prodigy_run)]) == 2
        assert "runs compare" in capsys.readouterr().err

    def test_pictures_without_samples(
        self, captures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run = build_prodigy_run(captures_dir, tmp_path, tensorboard=False)
        out_dir = run_outputs(run).output_dir
        assert out_dir is not None
        shutil.rmtree(out_dir / "sample")
        events = [
            line
            for line in (run / "events.jsonl").read_text().splitlines()
            if '"sample_image_saved"' not in line
        ]
        (run / "events.jsonl").write_text("\n".join(events) + "\n")
        assert main(["runs", "pictures", str(run)]) == 0
        assert "no contact sheet" in capsys.readouterr().out
        assert not (run / CONTACT_SHEET_PNG).exists() and (run / LOSS_CURVE_PNG).is_file()


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
