"""`runs pick`: the published copy's header, its tensors, the model card, and what it refuses.

The run is the real e_prodigy capture (tests/outputs/conftest.py: its events, sample images and
the metadata sd-scripts wrote); its checkpoints are rewritten here as complete safetensors files
(random tensor data of several dtypes, including BF16, under the real metadata), so the safetensors
library can open them and the tensor bytes can be compared.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
import struct
from pathlib import Path

import pytest
from PIL import Image
from safetensors import safe_open

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.outputs.lora import inspect_lora
from kohya_orchestrator.outputs.publish import (
    PublishOptions,
    pick_epoch,
    write_with_metadata,
)

from .conftest import build_prodigy_run

_TENSORS = (
    ("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", "F32", [4, 8], 4),
    ("lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", "BF16", [8, 4], 2),
    ("lora_unet_down_blocks_0_attentions_0_proj_in.alpha", "F16", [], 2),
)


def write_checkpoint(path: Path, metadata: dict[str, str]) -> Path:
    """A complete safetensors file: the metadata, then random bytes for each tensor."""
    header: dict[str, object] = {"__metadata__": metadata}
    rng = random.Random(path.name)  # arbitrary bytes (NaNs included), the same every run
    data = b""
    for name, dtype, shape, size in _TENSORS:
        n = size
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += rng.randbytes(n)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def tensor_bytes(path: Path) -> dict[str, bytes]:
    """Each tensor's data bytes, read through the file's own header offsets."""
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    header.pop("__metadata__", None)
    start = 8 + n
    return {
        k: blob[start + v["data_offsets"][0] : start + v["data_offsets"][1]]
        for k, v in header.items()
    }


@pytest.fixture
def run(captures_dir: Path, tmp_path: Path) -> Path:
    rd = build_prodigy_run(captures_dir, tmp_path, tensorboard=False)
    meta = json.loads((captures_dir / "lora-metadata" / "e_prodigy.json").read_text())
    for key, info in meta.items():
        write_checkpoint(tmp_path / "out" / "e_prodigy" / Path(key).name, info["metadata"])
    return rd


def _out(tmp_path: Path) -> Path:
    return tmp_path / "out" / "e_prodigy"


class TestPick:
    def test_copy_has_publish_metadata_and_identical_tensors(
        self, run: Path, tmp_path: Path
    ) -> None:
        source = _out(tmp_path) / "e_prodigy-000001.safetensors"
        before = source.read_bytes()
        options = PublishOptions(
            author="Ada", license="CreativeML-OpenRAIL-M", tags=("oil", "style")
        )
        result = pick_epoch(run, 1, options=options)

        assert source.read_bytes() == before  # the original is untouched
        assert result.file == _out(tmp_path) / "published" / "e_prodigy-000001" / source.name
        assert tensor_bytes(result.file) == tensor_bytes(source)
        with safe_open(str(result.file), framework="numpy") as f:
            meta = f.metadata()
            keys = set(f.keys())
        with safe_open(str(source), framework="numpy") as f:
            original = f.metadata()
            assert keys == set(f.keys())
        # sd-scripts' own keys are kept; the publish keys are added
        assert {
            k: v for k, v in meta.items() if k in original and not k.startswith("modelspec.")
        } == {k: v for k, v in original.items() if not k.startswith("modelspec.")}
        assert meta["modelspec.title"] == "e_prodigy"
        assert meta["modelspec.author"] == "Ada"
        assert meta["modelspec.license"] == "CreativeML-OpenRAIL-M"
        assert meta["modelspec.tags"] == "oil, style"
        assert meta["modelspec.trigger_phrase"] == "oilpaint style"  # the dataset's class tokens
        assert meta["modelspec.date"] == original["modelspec.date"]
        # the training resolution, not the 512x512 sd-scripts falls back to
        assert original["modelspec.resolution"] == "512x512"
        assert meta["modelspec.resolution"] == "64x64"
        assert "at epoch 1 of 2" in meta["modelspec.description"]
        prefix = "data:image/jpeg;base64,"
        assert meta["modelspec.thumbnail"].startswith(prefix)
        with Image.open(
            io.BytesIO(base64.b64decode(meta["modelspec.thumbnail"][len(prefix) :]))
        ) as im:
            assert im.format == "JPEG" and max(im.size) <= 256

    def test_tensors_equal_through_safetensors(self, run: Path) -> None:
        pytest.importorskip("numpy")  # safetensors' numpy reader (BF16 has no numpy type)
        result = pick_epoch(run, 2)
        with safe_open(str(result.file), "numpy") as a, safe_open(str(result.source), "numpy") as b:
            for key in (
                "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
                "lora_unet_down_blocks_0_attentions_0_proj_in.alpha",
            ):
                x, y = a.get_tensor(key), b.get_tensor(key)
                assert x.dtype == y.dtype and x.shape == y.shape
                assert x.tobytes() == y.tobytes()  # bitwise: the random data holds NaNs

    def test_final_file_is_the_last_epoch(self, run: Path, tmp_path: Path) -> None:
        result = pick_epoch(run, 2)
        assert result.source.name == "e_prodigy.safetensors"

    def test_model_card_and_samples(self, run: Path, tmp_path: Path) -> None:
        result = pick_epoch(run, 1)
        folder = result.file.parent
        assert [p.name for p in result.samples] == ["e_prodigy_e000001_00_20261124215422_1.png"]
        assert (folder / result.samples[0].name).read_bytes() == (
            _out(tmp_path) / "sample" / result.samples[0].name
        ).read_bytes()
        card = result.readme.read_text()
        for fragment in (
            "# e_prodigy",
            "| base model | sd15-random.safetensors (Stable Diffusion 1.x) |",
            "| network | lora (networks.lora), dim 4, alpha 1 |",
            "Prodigy (decouple=True, weight_decay=0.01",
            "| training | epoch 1 of 2, step 4 of 8 |",
            "| trigger words | `oilpaint style` |",
            "| dataset | 4 images in 1 folder(s); 8 per epoch with repeats |",
            "![oilpaint style, a red circle](e_prodigy_e000001_00_20261124215422_1.png)",
            "ComfyUI loads, Forge loads, A1111 loads",
        ):
            assert fragment in card, fragment
        assert str(tmp_path) not in card  # relative links only

    def test_never_overwrites(self, run: Path, tmp_path: Path) -> None:
        folder = tmp_path / "pub"
        folder.mkdir()
        (folder / "README.md").write_text("mine")
        with pytest.raises(ConfigError, match="already exists"):
            pick_epoch(run, 1, to=folder)
        assert (folder / "README.md").read_text() == "mine"
        assert sorted(p.name for p in folder.iterdir()) == ["README.md"]

    def test_to_a_file_path(self, run: Path, tmp_path: Path) -> None:
        target = tmp_path / "share" / "oilpaint-v1.safetensors"
        result = pick_epoch(run, 1, to=target, options=PublishOptions(trigger_phrase="zxq"))
        assert result.file == target and result.readme == target.parent / "README.md"
        assert inspect_lora(target).trigger_phrase == "zxq"

    def test_file_system_without_hard_links(
        self, run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def no_link(src: object, dst: object) -> None:
            raise PermissionError("hard links not supported")

        monkeypatch.setattr("kohya_orchestrator.outputs.publish.os.link", no_link)
        result = pick_epoch(run, 1, to=tmp_path / "pub")
        assert tensor_bytes(result.file) == tensor_bytes(result.source)
        before = result.file.read_bytes()
        with pytest.raises(ConfigError, match="already exists"):
            write_with_metadata(result.source, result.file, {"modelspec.title": "other"})
        assert result.file.read_bytes() == before

    def test_unknown_epoch_lists_the_saved_ones(self, run: Path) -> None:
        with pytest.raises(ConfigError) as err:
            pick_epoch(run, 5)
        problem = err.value.problems[0]
        assert "no checkpoint was saved for epoch 5" in problem.message
        assert problem.hint is not None and "1, 2" in problem.hint

    def test_not_a_complete_file_is_refused(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.safetensors"
        raw = json.dumps({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
        bad.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 32)  # 16 bytes too many
        with pytest.raises(ConfigError, match="not a readable safetensors file"):
            write_with_metadata(bad, tmp_path / "copy.safetensors", {"modelspec.title": "x"})
        assert not (tmp_path / "copy.safetensors").exists()


class TestCli:
    def test_pick_then_inspect(
        self, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        to = tmp_path / "pub"
        code = main(
            ["runs", "pick", str(run), "--epoch", "1", "--to", str(to), "--author", "Ada",
             "--license", "MIT", "--tags", "a, b", "--title", "Oil paint"]
        )  # fmt: skip
        assert code == 0
        out = capsys.readouterr().out
        assert "published epoch 1" in out and "modelspec.author = Ada" in out
        assert main(["lora", "inspect", str(to / "e_prodigy-000001.safetensors")]) == 0
        shown = capsys.readouterr().out
        for label, value in (
            ("title", "Oil paint"),
            ("trigger", "oilpaint style"),
            ("author", "Ada"),
            ("license", "MIT"),
            ("tags", "a, b"),
            ("thumbnail", "yes"),
            ("description", "lora for Stable Diffusion 1.x"),
        ):
            assert re.search(rf"^{label} +{re.escape(value)}", shown, re.M), label

    def test_exit_2_when_it_exists(
        self, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        to = tmp_path / "pub"
        assert main(["runs", "pick", str(run), "--epoch", "1", "--to", str(to)]) == 0
        capsys.readouterr()
        assert main(["runs", "pick", str(run), "--epoch", "1", "--to", str(to)]) == 2
        err = capsys.readouterr()
        assert "already exists" in err.out + err.err
        assert "Traceback" not in err.out + err.err

    def test_needs_an_epoch(self, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["runs", "pick", str(run)]) == 2
        err = capsys.readouterr()
        assert "--epoch N" in err.out + err.err


class TestEdges:
    def test_gone_checkpoint(self, run: Path, tmp_path: Path) -> None:
        (_out(tmp_path) / "e_prodigy-000001.safetensors").unlink()
        with pytest.raises(ConfigError) as err:
            pick_epoch(run, 1)
        assert "e_prodigy-000001.safetensors) is gone" in err.value.problems[0].message

    def test_no_samples_and_no_class_tokens(self, run: Path, tmp_path: Path) -> None:
        for png in (_out(tmp_path) / "sample").glob("*.png"):
            png.unlink()
        source = _out(tmp_path) / "e_prodigy-000001.safetensors"
        meta = json.loads(
            (
                Path(__file__).parents[1] / "fixtures/sd-scripts/lora-metadata/e_prodigy.json"
            ).read_text()
        )["out/e_prodigy/e_prodigy-000001.safetensors"]["metadata"]
        datasets = json.loads(meta["ss_datasets"])
        for ds in datasets:
            for sub in ds["subsets"]:
                sub["class_tokens"] = None
        write_checkpoint(source, {**meta, "ss_datasets": json.dumps(datasets)})
        result = pick_epoch(run, 1)
        assert "modelspec.thumbnail" not in result.metadata
        assert "modelspec.trigger_phrase" not in result.metadata
        assert result.notes == (
            "epoch 1 has no sample image: no thumbnail",
            "no class tokens recorded: no trigger phrase (pass --trigger)",
        )
        assert "| trigger words | none recorded |" in result.readme.read_text()
        assert result.samples == ()

    def test_a_failure_midway_leaves_nothing(
        self, run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(*args: object, **kwargs: object) -> str:
            raise RuntimeError("disk full")

        monkeypatch.setattr("kohya_orchestrator.outputs.publish.model_card", broken)
        folder = tmp_path / "pub"
        with pytest.raises(RuntimeError, match="disk full"):
            pick_epoch(run, 1, to=folder)
        assert list(folder.iterdir()) == []


class TestMetadataFallbacks:
    def test_class_tokens_from_the_job_skip_regularisation(self) -> None:
        from kohya_orchestrator.outputs.lora import lora_info_from_metadata
        from kohya_orchestrator.outputs.publish import publish_metadata

        info = lora_info_from_metadata({"ss_output_name": "x"})
        job = {
            "dataset": {
                "subsets": [
                    {"class_tokens": "zxq style"},
                    {"class_tokens": "painting", "is_reg": True},
                ],
                "datasets": [{"subsets": [{"class_tokens": "zxq style"}, {"class_tokens": "b"}]}],
            }
        }
        meta = publish_metadata(info, options=PublishOptions(), job=job)
        assert meta["modelspec.trigger_phrase"] == "zxq style, b"
        assert meta["modelspec.title"] == "x"
        assert "modelspec.resolution" not in meta  # nothing recorded: nothing written

    def test_dates(self) -> None:
        from datetime import datetime, timezone

        from kohya_orchestrator.outputs.lora import lora_info_from_metadata
        from kohya_orchestrator.outputs.publish import publish_metadata

        saved = lora_info_from_metadata({"ss_training_finished_at": "1764000000.5"})
        assert publish_metadata(saved, options=PublishOptions())["modelspec.date"] == (
            "2025-11-24T16:00:00"
        )
        now = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)
        bare = lora_info_from_metadata({})
        meta = publish_metadata(bare, options=PublishOptions(), now=now)
        assert meta["modelspec.date"] == "2026-12-07T10:00:00"
        assert meta["modelspec.description"] == (
            "network for its base model, trained with kohya-ss sd-scripts (kohya_orchestrator)"
        )


def test_cli_json(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    to = tmp_path / "pub"
    assert main(["runs", "pick", str(run), "--epoch", "2", "--to", str(to), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["file"] == str(to / "e_prodigy.safetensors")
    assert data["readme"] == str(to / "README.md")
    assert data["metadata"]["modelspec.trigger_phrase"] == "oilpaint style"
    assert data["metadata"]["modelspec.thumbnail"].startswith("data:image/jpeg;base64,")
    assert data["metadata"]["modelspec.thumbnail"].endswith(" chars)")  # shortened
    assert data["notes"] == []
