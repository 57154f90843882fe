"""Which family a model file is (issue 14, item 6): from real headers, no weights read."""

from __future__ import annotations

import gzip
import json
import shutil
import struct
from pathlib import Path

import pytest

from kohya_orchestrator.jobs.checks import check_paths
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.jobs.model_file import detect_family, read_safetensors_header
from kohya_orchestrator.jobs.presets import preset_job

HEADERS = Path(__file__).parent / "fixtures" / "model_headers"
SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "I64": 8, "I32": 4, "U8": 1}
FAMILY_FILES = ["sdxl", "flux", "chroma", "sd3", "lumina", "hunyuan_image", "anima"]
REPO = Path(__file__).resolve().parents[2]


def sparse_safetensors(name: str, folder: Path) -> Path:
    """A .safetensors file with the captured header and a hole where the weights would be."""
    header = json.loads(gzip.decompress((HEADERS / f"{name}.json.gz").read_bytes()))
    offset = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        n = SIZES[info["dtype"]]
        for dim in info["shape"]:
            n *= dim
        info["data_offsets"] = [offset, offset + n]
        offset += n
    blob = json.dumps(header).encode()
    path = folder / f"{name}.safetensors"
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        f.truncate(8 + len(blob) + offset)
    return path


@pytest.mark.parametrize("family", FAMILY_FILES)
def test_each_family_is_known_from_its_checkpoint(family: str, tmp_path: Path) -> None:
    found = detect_family(sparse_safetensors(family, tmp_path))
    assert found.family == family, found.evidence


def test_a_text_encoder_alone_is_no_family(tmp_path: Path) -> None:
    assert detect_family(sparse_safetensors("none_clip_l", tmp_path)).family is None


def test_a_diffusers_folder_says_its_pipeline(tmp_path: Path) -> None:
    folder = tmp_path / "sd15"
    shutil.copytree(HEADERS / "sd15-diffusers", folder)
    assert detect_family(folder).family == "sd15"
    config = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    config["cross_attention_dim"] = 1024
    (folder / "unet" / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert detect_family(folder).family == "sd2"


def test_modelspec_architecture_wins(tmp_path: Path) -> None:
    path = sparse_safetensors("flux", tmp_path)
    header = read_safetensors_header(path)
    header["__metadata__"] = {"modelspec.architecture": "flux-1-dev/lora"}
    blob = json.dumps(header).encode()
    other = tmp_path / "spec.safetensors"
    other.write_bytes(struct.pack("<Q", len(blob)) + blob)
    found = detect_family(other)
    assert found.family == "flux" and "modelspec" in found.evidence


@pytest.mark.parametrize(
    "content", [b"", b"\x01\x02", b"\xff" * 8 + b"{}", b"\x02\x00\x00\x00\x00\x00\x00\x00[]"]
)
def test_broken_files_are_unknown_not_a_crash(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    assert detect_family(path).family is None


def test_a_pickle_is_never_opened(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"not read")
    found = detect_family(path)
    assert found.family is None and "not read" in found.evidence


def _job(model: Path, family: str, tmp_path: Path) -> dict:
    img = tmp_path / "img" / "10_a"
    img.mkdir(parents=True, exist_ok=True)
    return {
        "model": {"family": family, "pretrained_model_name_or_path": str(model)},
        "dataset": {"subsets": [{"image_dir": str(img)}]},
        "training": {"output_dir": str(tmp_path / "out"), "max_train_epochs": 1},
    }


def test_a_job_whose_family_disagrees_with_its_file_is_refused(tmp_path: Path) -> None:
    # An SDXL checkpoint with family = "flux" would fail inside sd-scripts after loading.
    model = sparse_safetensors("sdxl", tmp_path)
    job = validate_job(_job(model, "flux", tmp_path))
    (p,) = check_paths(job)
    assert p.path == "model.pretrained_model_name_or_path"
    assert "Stable Diffusion XL" in p.message and 'family = "sdxl"' in (p.hint or "")
    assert check_paths(validate_job(_job(model, "sdxl", tmp_path))) == []


def test_a_u_net_preset_takes_the_family_of_the_file(tmp_path: Path) -> None:
    model = sparse_safetensors("sdxl", tmp_path)
    job = preset_job("lora-character", data=REPO / "docs" / "examples" / "img", model=model).job
    assert job.model.family == "sdxl"
    assert check_paths(job) == []


def test_an_imported_config_takes_the_family_of_its_model_file(tmp_path: Path) -> None:
    from kohya_orchestrator.jobs.import_toml import job_dict_from_kohya

    model = sparse_safetensors("sdxl", tmp_path)
    data, _ = job_dict_from_kohya({"pretrained_model_name_or_path": str(model)})
    assert data["model"]["family"] == "sdxl"


@pytest.mark.parametrize(
    ("config", "family"),
    [
        ({"t5xxl": "t5.safetensors", "ae": "ae.safetensors"}, "flux"),
        ({"t5xxl": "t5.safetensors", "ae": "a", "model_type": "chroma"}, "chroma"),
        ({"clip_g": "g.safetensors"}, "sd3"),
        ({"gemma2": "g.safetensors"}, "lumina"),
        ({"byt5": "b.safetensors"}, "hunyuan_image"),
        ({"qwen3": "q.safetensors"}, "anima"),
    ],
)
def test_an_imported_dit_config_is_known_by_its_own_arguments(config: dict, family: str) -> None:
    # A Flux config used to import as family = "sdxl" (it caches text-encoder outputs too).
    from kohya_orchestrator.jobs.import_toml import job_dict_from_kohya

    flat = {"pretrained_model_name_or_path": "/m/x.safetensors", "cache_text_encoder_outputs": True}
    data, _ = job_dict_from_kohya({**flat, **config})
    assert data["model"]["family"] == family
