"""TensorBoard logs: reading a run's scalars, finding its folder under `logging_dir`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from kohya_orchestrator.outputs.collect import run_outputs
from kohya_orchestrator.outputs.tensorboard import (
    TensorBoardMissing,
    find_tensorboard_dir,
    read_tensorboard_scalars,
)

TB_RUN = "e_prodigy20261124215359"


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
