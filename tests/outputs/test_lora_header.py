"""The safetensors header reader and verify_output, on real sd-scripts outputs.

Real files: tests/fixtures/sd-scripts/loras/ (LoKr preset attn-mlp and IA3 with a custom fnmatch
preset, lycoris-lora 4.1.3, sd-scripts 48d368fa). The metadata dumps of
tests/fixtures/sd-scripts/lora-metadata/ (LoRA, LoHa, Prodigy, the legacy folder run) are written
into minimal safetensors files here: the header is the same bytes sd-scripts would write for that
metadata.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from kohya_orchestrator.events import TrainingPlan
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.launch.rundir import RunDir
from kohya_orchestrator.models import TrainingJob
from kohya_orchestrator.outputs.lora_header import (
    HeaderError,
    check_run_outputs,
    read_header,
    verify_output,
)

PLAN = TrainingPlan(seq=0, epochs=2, total_steps=8, batches_per_epoch=4)


@pytest.fixture(scope="module")
def loras(captures_dir: Path) -> Path:
    return captures_dir / "loras"


def _job(network: dict[str, Any], **sections: Any) -> TrainingJob:
    data: dict[str, Any] = {
        "model": {"pretrained_model_name_or_path": "/srv/kohya/models/sd15-random.safetensors"},
        "dataset": {
            "resolution": 64,
            "batch_size": 2,
            "enable_bucket": False,
            "subsets": [{"image_dir": "/srv/kohya/data/img/2_oilpaint style"}],
        },
        "network": network,
        "training": {"max_train_epochs": 2, "output_name": "x"},
    }
    data.update(sections)
    return validate_job(data)


LOKR = {
    "algo": "lokr",
    "network_dim": 4,
    "network_alpha": 1.0,
    "conv_dim": 4,
    "conv_alpha": 1.0,
    "factor": 8,
    "preset": "attn-mlp",
}


def _write(path: Path, metadata: dict[str, str], header: bytes | None = None) -> Path:
    if header is None:
        table = {
            "__metadata__": metadata,
            "lora_unet_x.alpha": {"dtype": "F16", "shape": [], "data_offsets": [0, 2]},
        }
        header = json.dumps(table).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0")
    return path


def _dump(captures_dir: Path, name: str, which: int = -1) -> dict[str, str]:
    data = json.loads((captures_dir / "lora-metadata" / f"{name}.json").read_text())
    return dict(list(data.values())[which]["metadata"])


class TestReadHeader:
    def test_real_lokr_file(self, loras: Path) -> None:
        h = read_header(loras / "c_lokr_preset.safetensors")
        assert h.header_size == 143720
        assert len(h.tensors) == 1064
        assert h.metadata["ss_network_module"] == "lycoris.kohya"
        assert 8 + h.header_size + h.tensor_bytes == h.file_size
        some = next(iter(h.tensors.values()))
        assert some.dtype in ("F16", "F32") and len(some.data_offsets) == 2

    def test_real_ia3_file(self, loras: Path) -> None:
        h = read_header(loras / "d_ia3_custompreset.safetensors")
        assert len(h.tensors) == 232
        assert json.loads(h.metadata["ss_network_args"])["algo"] == "ia3"

    @pytest.mark.parametrize(
        ("data", "fragment"),
        [
            (b"", "not a safetensors file"),
            (struct.pack("<Q", 10**12) + b"{}", "does not fit"),
            (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
            (struct.pack("<Q", 3) + b"{x}", "not JSON"),
            (struct.pack("<Q", 26) + b'{"__metadata__": {"a": 1}}', "string-to-string"),
            (struct.pack("<Q", 10) + b'{"t": 123}', "bad entry"),
        ],
    )
    def test_broken_files(self, tmp_path: Path, data: bytes, fragment: str) -> None:
        path = tmp_path / "broken.safetensors"
        path.write_bytes(data)
        with pytest.raises(HeaderError, match=fragment):
            read_header(path)

    def test_truncated_tensor_data(self, tmp_path: Path, loras: Path) -> None:
        data = (loras / "d_ia3_custompreset.safetensors").read_bytes()
        path = tmp_path / "cut.safetensors"
        path.write_bytes(data[:-100])
        with pytest.raises(HeaderError, match="truncated"):
            read_header(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(HeaderError):
            read_header(tmp_path / "nope.safetensors")


class TestVerifyRealFiles:
    def test_lokr_matches_its_job(self, loras: Path) -> None:
        job = _job(LOKR)
        for name in ("c_lokr_preset-000001.safetensors", "c_lokr_preset.safetensors"):
            path = loras / name
            renamed = job.model_copy(
                update={
                    "training": job.training.model_copy(update={"output_name": "c_lokr_preset"})
                }
            )
            assert verify_output(renamed, path, PLAN) == []

    def test_lokr_mismatches(self, loras: Path) -> None:
        job = _job({**LOKR, "network_dim": 16, "factor": 4, "algo": "lokr"})
        found = {p.path: p.message for p in verify_output(job, loras / "c_lokr_preset.safetensors")}
        assert found == {
            "c_lokr_preset.safetensors: ss_network_args": "factor is '8', the job asked for '4'",
            "c_lokr_preset.safetensors: ss_network_dim": "is 4, the job asked for 16",
        }
        assert all(
            p.severity == "warning" for p in verify_output(job, loras / "c_lokr_preset.safetensors")
        )

    def test_wrong_algo_and_plan(self, loras: Path) -> None:
        job = _job({"algo": "loha", "network_dim": 4, "network_alpha": 1.0})
        plan = TrainingPlan(seq=0, epochs=3, total_steps=12, batches_per_epoch=4)
        problems = verify_output(job, loras / "c_lokr_preset.safetensors", plan)
        found = {p.path.split(": ")[1]: p.message for p in problems}
        assert [p.message for p in problems if p.path.endswith("ss_network_args")] == [
            "algo is 'lokr', the job asked for 'loha'",
            "has arguments the job did not ask for: conv_alpha, conv_dim, factor",
        ]
        assert found["ss_num_epochs"] == "is 2, the plan was 3 epochs"
        assert found["ss_max_train_steps"] == "is 8, the plan was 12 steps"

    def test_epoch_file_steps(self, loras: Path) -> None:
        job = _job(LOKR)
        plan = TrainingPlan(seq=0, epochs=2, total_steps=10, batches_per_epoch=5)
        found = {
            p.path.split(": ")[1]: p.message
            for p in verify_output(job, loras / "c_lokr_preset-000001.safetensors", plan)
        }
        assert found["ss_steps"] == "is 4 after epoch 1, the plan was 5 (5 per epoch)"

    def test_ia3_with_a_user_preset_file(self, loras: Path) -> None:
        preset = "/srv/kohya/configs/lycoris_ia3_preset_fnmatch.toml"
        job = _job(
            {"algo": "ia3", "preset": preset},
            optimizer={"type": "AdamW", "learning_rate": 5e-3},
        )
        assert verify_output(job, loras / "d_ia3_custompreset.safetensors", PLAN) == []

    def test_ia3_shipped_preset_is_matched_by_file_name(self, loras: Path) -> None:
        job = _job({"algo": "ia3"}, optimizer={"type": "AdamW", "learning_rate": 5e-3})
        found = verify_output(job, loras / "d_ia3_custompreset.safetensors", PLAN)
        assert [p.message for p in found] == [
            "preset is '/srv/kohya/configs/lycoris_ia3_preset_fnmatch.toml', the job asked for "
            "'lycoris-ia3-sd15.toml'"
        ]

    def test_resolution_lr_and_optimizer(self, loras: Path) -> None:
        job = _job(
            LOKR,
            dataset={"resolution": 128, "subsets": [{"image_dir": "/d/2_x"}]},
            optimizer={"type": "Lion", "learning_rate": 3e-5},
            scheduler={"lr_scheduler": "cosine"},
        )
        found = {
            p.path.split(": ")[1]: p.message
            for p in verify_output(job, loras / "c_lokr_preset.safetensors")
        }
        assert found["ss_datasets"] == "resolution [(64, 64)], the job asked for [(128, 128)]"
        assert found["ss_learning_rate"] == "is 0.0001, the job asked for 3e-05"
        assert found["ss_lr_scheduler"] == "is constant, the job asked for cosine"
        assert found["ss_optimizer"] == "is torch.optim.adamw.AdamW, the job asked for Lion"

    def test_family(self, loras: Path) -> None:
        job = _job(
            LOKR,
            model={"pretrained_model_name_or_path": "/m/xl.safetensors", "family": "sdxl"},
            dataset={
                "resolution": 64,
                "batch_size": 2,
                "enable_bucket": False,
                "bucket_reso_steps": 64,
                "subsets": [{"image_dir": "/d/2_x"}],
            },
        )
        found = {
            p.path.split(": ")[1]: p.message
            for p in verify_output(job, loras / "c_lokr_preset.safetensors")
        }
        assert found["ss_base_model_version"] == "is sd_v1, the job is sdxl"

    def test_unreadable_file_is_one_problem(self, tmp_path: Path) -> None:
        path = tmp_path / "x.safetensors"
        path.write_bytes(b"")
        (problem,) = verify_output(_job(LOKR), path)
        assert problem.path == "x.safetensors" and "cannot read" in problem.message


class TestVerifyMetadataDumps:
    def test_lora(self, captures_dir: Path, tmp_path: Path) -> None:
        path = _write(tmp_path / "x.safetensors", _dump(captures_dir, "a_lora_accelerate"))
        job = _job({"algo": "lora", "network_dim": 4, "network_alpha": 1.0})
        assert verify_output(job, path, PLAN) == []
        wrong = _job({"algo": "lora", "network_dim": 4, "network_alpha": 2.0, "conv_dim": 4})
        found = {p.path.split(": ")[1]: p.message for p in verify_output(wrong, path, PLAN)}
        assert found == {
            "ss_network_args": "missing; the job's network_args were {'conv_dim': '4'}",
            "ss_network_alpha": "is 1.0, the job asked for 2",
        }

    def test_lycoris_instead_of_lora(self, captures_dir: Path, tmp_path: Path) -> None:
        path = _write(tmp_path / "x.safetensors", _dump(captures_dir, "b_loha_preset"))
        job = _job({"algo": "lora", "network_dim": 4, "network_alpha": 1.0})
        found = {p.path.split(": ")[1]: p.message for p in verify_output(job, path, PLAN)}
        assert found["ss_network_module"] == (
            "is 'lycoris.kohya', the job asked for algo 'lora' (networks.lora)"
        )
        assert found["ss_network_args"] == (
            "has arguments the job did not ask for: algo, conv_alpha, conv_dim, preset"
        )

    def test_loha_with_dropout_added_by_sd_scripts(
        self, captures_dir: Path, tmp_path: Path
    ) -> None:
        path = _write(tmp_path / "x.safetensors", _dump(captures_dir, "b_loha_preset"))
        job = _job(
            {"algo": "loha", "network_dim": 4, "network_alpha": 1.0, "conv_dim": 4, "conv_alpha": 1}
        )
        assert verify_output(job, path, PLAN) == []

    def test_prodigy(self, captures_dir: Path, tmp_path: Path) -> None:
        path = _write(tmp_path / "x-000001.safetensors", _dump(captures_dir, "e_prodigy", 0))
        job = _job(
            {"algo": "lora", "network_dim": 4, "network_alpha": 1.0},
            optimizer={"type": "Prodigy", "learning_rate": 1.0, "decouple": True, "d_coef": 2},
            scheduler={"lr_scheduler": "cosine_with_restarts", "lr_scheduler_num_cycles": 2},
        )
        assert verify_output(job, path, PLAN) == []

    def test_legacy_folder_run_resolution(self, captures_dir: Path, tmp_path: Path) -> None:
        path = _write(tmp_path / "x.safetensors", _dump(captures_dir, "m_train_data_dir"))
        job = _job({"algo": "lora", "network_dim": 4, "network_alpha": 1.0})
        assert verify_output(job, path, PLAN) == []
        bigger = _job(
            {"algo": "lora", "network_dim": 4, "network_alpha": 1.0},
            dataset={"resolution": [96, 64], "subsets": [{"image_dir": "/d/2_x"}]},
        )
        (problem,) = verify_output(bigger, path, PLAN)
        assert problem.message == "is (64, 64), the job asked for (96, 64)"

    def test_no_metadata_is_not_a_mismatch(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "x.safetensors", {})
        assert verify_output(_job(LOKR), path, PLAN) == []


def test_check_run_outputs_writes_the_report(captures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dump = _dump(captures_dir, "a_lora_accelerate")
    _write(out / "run.safetensors", dump)
    _write(out / "run-000001.safetensors", {**dump, "ss_epoch": "1", "ss_steps": "4"})
    job = _job(
        {"algo": "lora", "network_dim": 8, "network_alpha": 1.0},
        training={"max_train_epochs": 2, "output_dir": str(out), "output_name": "run"},
    )
    run_dir = RunDir.create(tmp_path / "runs", "run")
    events = check_run_outputs(job, run_dir, [out / "run-000001.safetensors"], PLAN)
    report = json.loads((run_dir.path / "output_check.json").read_text())
    assert report["ok"] is False
    assert [Path(f["path"]).name for f in report["files"]] == [
        "run-000001.safetensors",
        "run.safetensors",
    ]
    assert [e.message for e in events] == [
        "output check: run-000001.safetensors: ss_network_dim: is 4, the job asked for 8",
        "output check: run.safetensors: ss_network_dim: is 4, the job asked for 8",
    ]
    assert {e.kind for e in events} == {"child_warning"}
