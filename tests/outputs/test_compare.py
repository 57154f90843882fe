"""`compare_runs`: run directories and LoRA files side by side."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kohya_orchestrator.outputs.collect import run_outputs
from kohya_orchestrator.outputs.compare import compare_runs


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
