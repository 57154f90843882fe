"""`inspect_lora` and `lora inspect` on real sd-scripts/LyCORIS outputs
(tests/fixtures/sd-scripts: loras, lora-metadata) and on files without ss_* metadata."""

from __future__ import annotations

import json
from datetime import timezone
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.outputs.lora import LoraInfo, inspect_lora, lora_info_from_metadata

from .conftest import write_safetensors


class TestRealFiles:
    def test_lokr(self, loras: Path) -> None:
        info = inspect_lora(loras / "c_lokr_preset.safetensors")
        assert info.algo == "lokr" and info.network_module == "lycoris.kohya"
        assert (info.network_dim, info.network_alpha) == (4, 1.0)
        assert info.network_args["factor"] == "8" and info.network_args["preset"] == "attn-mlp"
        assert info.tensor_count == 1064 and info.dtypes == {"F16": 1064}
        assert {"lokr_w1", "lokr_w2_a", "lokr_w2_b"} <= set(info.tensor_suffixes)
        assert info.modules == {"text_encoder": 72, "unet": 194}
        assert info.file_size_bytes == 772292
        assert info.file_size_bytes == 8 + info.header_bytes + info.tensor_bytes  # type: ignore[operator]
        assert (info.epoch, info.num_epochs, info.steps, info.max_train_steps) == (2, 2, 8, 8)
        assert info.resolution == (64, 64)  # ss_datasets, not modelspec's default 512x512
        assert info.base_model_name == "sd15-random.safetensors"
        assert info.base_model_hash == "c6406a4c"
        assert info.base_model_sha256 is not None and len(info.base_model_sha256) == 64
        assert info.optimizer_name == "AdamW" and info.learning_rate == 1e-4
        assert info.unet_lr is None and info.text_encoder_lr is None  # "None" strings
        assert [(d.name, d.images, d.repeats) for d in info.dataset_dirs] == [
            ("2_oilpaint style", 4, 2)
        ]
        assert info.top_tags(1)[0].tag == "oilpaint style" and info.top_tags(1)[0].count == 4
        assert info.training_time_s == pytest.approx(48.47, abs=0.01)
        assert info.training_started_at is not None
        assert info.training_started_at.tzinfo == timezone.utc
        assert info.inferred == [] and info.uses_dim_alpha

    def test_lokr_epoch_file(self, loras: Path) -> None:
        info = inspect_lora(loras / "c_lokr_preset-000001.safetensors")
        assert (info.epoch, info.steps) == (1, 4)
        assert info.training_time_s == pytest.approx(32.16, abs=0.01)

    def test_ia3(self, loras: Path) -> None:
        info = inspect_lora(str(loras / "d_ia3_custompreset-000001.safetensors"))
        assert info.algo == "ia3" and not info.uses_dim_alpha
        assert "ia3 ignores network_dim and network_alpha" in info.notes
        assert info.learning_rate == 0.005
        assert set(info.tensor_suffixes) == {"on_input", "weight"}
        assert info.network_args["dropout"] is None  # injected by sd-scripts as JSON null

    def test_json_round_trip(self, loras: Path) -> None:
        info = inspect_lora(loras / "c_lokr_preset.safetensors")
        assert LoraInfo.model_validate_json(info.model_dump_json()) == info


@pytest.mark.parametrize(
    ("name", "algo", "optimizer", "lr"),
    [
        ("a_lora_accelerate.safetensors", "lora", "AdamW", 1e-4),
        ("b_loha_preset.safetensors", "loha", "AdamW", 1e-4),
        ("e_prodigy.safetensors", "lora", "Prodigy", 1.0),
        ("m_train_data_dir.safetensors", "lora", "AdamW", 1e-4),
    ],
)
def test_metadata_of_real_runs(
    lora_metadata: dict[str, dict[str, object]], name: str, algo: str, optimizer: str, lr: float
) -> None:
    meta = lora_metadata[name]["metadata"]
    assert isinstance(meta, dict)
    info = lora_info_from_metadata(meta)
    assert info.algo == algo and info.optimizer_name == optimizer and info.learning_rate == lr
    assert (info.network_dim, info.network_alpha, info.epoch, info.steps) == (4, 1.0, 2, 8)
    assert info.resolution == (64, 64)
    assert [(d.name, d.images, d.repeats) for d in info.dataset_dirs] == [
        ("2_oilpaint style", 4, 2)
    ]
    assert info.batch_size == 2
    assert info.top_tags(1)[0].tag == "oilpaint style"


def test_prodigy_optimizer_args(lora_metadata: dict[str, dict[str, object]]) -> None:
    meta = lora_metadata["e_prodigy.safetensors"]["metadata"]
    info = lora_info_from_metadata(meta)  # type: ignore[arg-type]
    assert info.optimizer_args == {
        "decouple": "True",
        "weight_decay": "0.01",
        "d_coef": "2",
        "use_bias_correction": "True",
        "safeguard_warmup": "True",
    }
    assert info.lr_scheduler == "cosine_with_restarts"


def test_folder_convention_resolution(lora_metadata: dict[str, dict[str, object]]) -> None:
    # --train_data_dir runs store the legacy ss_resolution "(64, 64)" and no ss_datasets
    meta = lora_metadata["m_train_data_dir-000001.safetensors"]["metadata"]
    assert isinstance(meta, dict) and "ss_datasets" not in meta
    info = lora_info_from_metadata(meta)
    assert info.resolution == (64, 64) and info.batch_size == 2
    assert info.dataset_dirs[0].repeats == 2 and not info.dataset_dirs[0].is_reg


def test_bad_values_become_none() -> None:
    info = lora_info_from_metadata(
        {
            "ss_network_dim": "many",
            "ss_network_alpha": "nan",
            "ss_epoch": "None",
            "ss_datasets": "{not json",
            "ss_tag_frequency": "[1, 2]",
            "ss_v2": "maybe",
            "ss_network_args": "null",
            "ss_resolution": "(512,",
            "modelspec.resolution": "768x512",
        }
    )
    assert info.network_dim is None and info.network_alpha is None and info.epoch is None
    assert info.v2 is None and info.network_args == {} and info.tag_frequency == {}
    assert info.resolution == (768, 512)


class TestNoMetadata:
    def test_algo_and_rank_from_tensor_names(self, tmp_path: Path) -> None:
        path = write_safetensors(tmp_path / "bare.safetensors", {}, tensors=3)
        info = inspect_lora(path)
        assert not info.has_training_metadata
        assert info.algo == "lora" and info.network_dim == 4
        assert info.inferred == ["algo", "network_dim"]
        assert any("no ss_* training metadata" in n for n in info.notes)
        assert info.modules == {"unet": 3}

    def test_empty_header(self, tmp_path: Path) -> None:
        path = tmp_path / "empty.safetensors"
        path.write_bytes((2).to_bytes(8, "little") + b"{}")
        info = inspect_lora(path)
        assert info.tensor_count == 0 and info.algo is None and info.metadata == {}

    @pytest.mark.parametrize(
        "data", [b"", b"\x00" * 4, b"\xff" * 16, (4).to_bytes(8, "little") + b"[1] "]
    )
    def test_not_safetensors(self, tmp_path: Path, data: bytes) -> None:
        path = tmp_path / "x.safetensors"
        path.write_bytes(data)
        with pytest.raises(ConfigError) as info:
            inspect_lora(path)
        assert "not a readable safetensors file" in info.value.problems[0].message

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError):
            inspect_lora(tmp_path / "nope.safetensors")

    def test_sparse_2gb_file_reads_header_only(self, tmp_path: Path) -> None:
        path = write_safetensors(
            tmp_path / "big.safetensors", {"ss_network_dim": "8"}, size=2 << 30
        )
        info = inspect_lora(path)
        assert info.file_size_bytes == 2 << 30 and info.network_dim == 8


class TestCli:
    def test_text(self, loras: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["lora", "inspect", str(loras / "c_lokr_preset.safetensors")]) == 0
        out = capsys.readouterr().out
        for fragment in (
            "lokr (lycoris.kohya)",
            "dim 4",
            "alpha 1",
            "factor=8",
            "sd15-random.safetensors",
            "resolution 64x64",
            "epoch 2/2",
            "steps 8/8",
            "AdamW",
            "lr 0.0001",
            "2_oilpaint style: 4 images x 2 repeats",
            "oilpaint style (4)",
            "1064 tensors (F16 x1064)",
        ):
            assert fragment in out, fragment

    def test_ia3_has_no_dim(self, loras: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["lora", "inspect", str(loras / "d_ia3_custompreset.safetensors")]) == 0
        out = capsys.readouterr().out
        assert "ia3 (lycoris.kohya)" in out and "dim 4" not in out and "ignores" in out

    def test_json_and_raw(self, loras: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = str(loras / "d_ia3_custompreset.safetensors")
        assert main(["lora", "inspect", path, "--json", "--tags", "2"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["algo"] == "ia3" and data["tensor_count"] == 232
        assert data["metadata"]["ss_output_name"] == "d_ia3_custompreset"
        assert [t["tag"] for t in data["top_tags"]] == ["oilpaint style", "a green square"]
        assert main(["lora", "inspect", path, "--raw"]) == 0
        assert "ss_seed = 42" in capsys.readouterr().out

    def test_bad_file_exit_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        bad = tmp_path / "notes.txt"
        bad.write_text("hello world, not a model")
        assert main(["lora", "inspect", str(bad)]) == 2
        err = capsys.readouterr().err
        assert "not a readable safetensors file" in err and "Traceback" not in err

    def test_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as info:
            main(["lora", "--help"])
        assert info.value.code == 0
        assert "python -m kohya_orchestrator lora inspect" in capsys.readouterr().out
