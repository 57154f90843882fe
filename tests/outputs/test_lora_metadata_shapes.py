"""`inspect_lora` / `lora_info_from_metadata` on the less common shapes of real metadata.

Files are the real outputs in tests/fixtures/sd-scripts/loras, or safetensors headers built exactly
as the format defines them (8-byte little-endian header length, then the JSON header with
``__metadata__`` and one ``{"dtype", "shape", "data_offsets"}`` entry per tensor, then the data).
Metadata strings follow what sd-scripts writes (train_network.py ``ss_*`` keys, JSON in strings).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from kohya_orchestrator.outputs.lora import inspect_lora, lora_info_from_metadata

_DTYPE_BYTES = {"F16": 2, "F32": 4}


def _safetensors(path: Path, tensors: dict[str, list[int]], metadata: dict[str, str]) -> Path:
    """A safetensors file with F16 zero tensors of the given shapes."""
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name, shape in tensors.items():
        n = _DTYPE_BYTES["F16"]
        for dim in shape:
            n *= dim
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return path


def test_total_images_is_the_real_num_train_images(loras: Path) -> None:
    info = inspect_lora(loras / "c_lokr_preset.safetensors")
    assert info.total_images == int(info.metadata["ss_num_train_images"])
    assert info.total_images is not None and info.total_images > 0


def test_loha_tensors_give_algo_and_rank_sdxl_parts_and_others(tmp_path: Path) -> None:
    path = _safetensors(
        tmp_path / "loha.safetensors",
        {
            "lora_te2_text_model_q.hada_w1_a": [16, 8],
            "lora_te2_text_model_q.hada_w1_b": [8, 16],
            "lora_te2_text_model_q.alpha": [],
            "lora_unet_mid.hada_w1_a": [32, 8],
            "custom.scale": [1],
        },
        {},
    )
    info = inspect_lora(path)
    assert info.algo == "loha" and info.network_dim == 8
    assert info.inferred == ["algo", "network_dim"]
    assert info.modules == {"other": 1, "text_encoder_2": 1, "unet": 1}
    assert info.tensor_count == 5 and info.dtypes == {"F16": 5}


def test_lokr_rank_comes_from_the_second_dimension(tmp_path: Path) -> None:
    path = _safetensors(
        tmp_path / "lokr.safetensors",
        {"lora_unet_a.lokr_w1_a": [4, 2], "lora_unet_a.lokr_w2_a": [16, 2]},
        {"ss_network_module": "lycoris.kohya", "ss_network_args": '{"algo": "lokr"}'},
    )
    info = inspect_lora(path)
    assert info.algo == "lokr" and info.network_dim == 2 and info.inferred == ["network_dim"]


def test_unknown_tensors_infer_nothing(tmp_path: Path) -> None:
    path = _safetensors(
        tmp_path / "odd.safetensors", {"lora_unet_a.scale": [4], "lora_unet_a.bias": [4]}, {}
    )
    info = inspect_lora(path)
    assert info.algo is None and info.network_dim is None and info.inferred == []
    assert info.tensor_suffixes == ["bias", "scale"]


@pytest.mark.parametrize(
    ("module", "algo"),
    [
        ("networks.lora_flux", "lora"),
        ("networks.lora_sd3", "lora"),
        ("networks.lora_lumina", "lora"),
        ("networks.lora_hunyuan_image", "lora"),
        ("networks.lora_anima", "lora"),
        ("networks.dylora", "dylora"),
        ("networks.oft_flux", "oft"),
        ("my_pkg.custom_net", "custom_net"),
    ],
)
def test_algo_from_the_network_module(module: str, algo: str) -> None:
    assert lora_info_from_metadata({"ss_network_module": module}).algo == algo


def test_resolution_falls_back_past_unusable_values() -> None:
    # a scalar dataset resolution, then the legacy single-number --resolution
    info = lora_info_from_metadata(
        {"ss_datasets": json.dumps([{"resolution": 512}]), "ss_resolution": "512"}
    )
    assert info.resolution == (512, 512)
    # zero sizes everywhere and a modelspec value that is not WxH: unknown
    info = lora_info_from_metadata(
        {
            "ss_datasets": json.dumps([{"resolution": [0, 512]}]),
            "ss_resolution": "(0, 64)",
            "modelspec.resolution": "wide",
        }
    )
    assert info.resolution is None


def test_optimizer_args_without_a_value_are_skipped() -> None:
    info = lora_info_from_metadata(
        {"ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit(foo,weight_decay=0.1, =3)"}
    )
    assert info.optimizer_name == "AdamW8bit"
    assert info.optimizer_args == {"weight_decay": "0.1"}


def test_non_numeric_float_is_none() -> None:
    info = lora_info_from_metadata({"ss_learning_rate": "fast", "ss_network_alpha": "2.5"})
    assert info.learning_rate is None and info.network_alpha == 2.5


def test_dataset_dirs_fall_back_to_the_folder_tables() -> None:
    info = lora_info_from_metadata(
        {
            # subsets that name no folder, and one that is not a table
            "ss_datasets": json.dumps([{"subsets": ["x", {"num_repeats": 2}]}]),
            "ss_dataset_dirs": json.dumps({"5_cat": {"n_repeats": 5, "img_count": 3}, "7_x": 1}),
            "ss_reg_dataset_dirs": json.dumps({"1_reg": {"n_repeats": 1, "img_count": 10}}),
        }
    )
    assert [(d.name, d.repeats, d.images, d.is_reg) for d in info.dataset_dirs] == [
        ("5_cat", 5, 3, False),
        ("7_x", None, None, False),
        ("1_reg", 1, 10, True),
    ]


def test_tag_frequency_from_the_datasets_and_batch_size_fallback() -> None:
    info = lora_info_from_metadata(
        {
            "ss_datasets": json.dumps(
                [
                    {"tag_frequency": {"2_a": {"red": 3, "blue": "x"}, "3_b": "notatable"}},
                    {"tag_frequency": {"4_c": {"red": 1}}},
                    "notadataset",
                ]
            ),
            "ss_batch_size_per_device": "4",
        }
    )
    assert info.tag_frequency == {"2_a": {"red": 3}, "4_c": {"red": 1}}
    assert [(t.tag, t.count) for t in info.top_tags()] == [("red", 4)]
    assert info.batch_size == 4  # ss_datasets[0] has no batch_size_per_device


def test_timestamps_out_of_range_are_none() -> None:
    info = lora_info_from_metadata(
        {"ss_training_started_at": "1e20", "ss_training_finished_at": "1e20"}
    )
    assert info.training_started_at is None and info.training_finished_at is None
    assert info.training_time_s == 0.0


@pytest.mark.parametrize(
    ("version", "family"),
    [
        ("sd_v1", "sd15"),
        ("sd_v2", "sd2"),
        ("sdxl_base_v1-0", "sdxl"),
        ("flux1", "flux"),
        ("chroma", "chroma"),
        ("5-large", "sd3"),
        ("medium", "sd3"),
        ("lumina2", "lumina"),
        ("hunyuan-image-2.1", "hunyuan_image"),
        ("anima", "anima"),
        ("something_else", None),
    ],
)
def test_the_family_comes_from_ss_base_model_version(version: str, family: str | None) -> None:
    # the values each family's script writes (train_network.py:1027 with its load_target_model)
    assert lora_info_from_metadata({"ss_base_model_version": version}).family == family


def test_t5_lora_keys_are_their_own_part(tmp_path: Path) -> None:
    header = {
        "lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight": {
            "dtype": "F16",
            "shape": [4, 64],
            "data_offsets": [0, 512],
        },
        "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": {
            "dtype": "F16",
            "shape": [4, 64],
            "data_offsets": [512, 1024],
        },
    }
    blob = json.dumps(header).encode()
    path = tmp_path / "flux_lora.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(1024))
    assert inspect_lora(path).modules == {"text_encoder_3": 1, "unet": 1}
