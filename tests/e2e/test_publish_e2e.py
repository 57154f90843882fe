"""e2e: a real IA3 run (the shipped preset file, a 64 px sample per epoch), then `runs pick` on its
real output, the output check's client warning, and whether a user's path travels in the file."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from safetensors import safe_open

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.environment.discovery import find_install
from kohya_orchestrator.events import ChildWarning, RunStatus, read_events
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.outputs.lora_header import read_header
from kohya_orchestrator.run import start

from .conftest import tiny_job

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ia3_run(e2e_lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("publish")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HOME", str(tmp / "hf"))
        data = tiny_job(
            e2e_lab,
            tmp,
            "e2e_publish",
            optimizer={"type": "AdamW", "learning_rate": 5e-3},
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
        data["network"] = {"algo": "ia3"}  # preset: the shipped kohya_orchestrator:ia3-sd15 file
        install = find_install(e2e_lab)
        assert install is not None
        run = start(validate_job(data), install=install, runs=tmp / "runs", probe=False)
        result = run.wait(900)
        assert result.status == RunStatus.SUCCEEDED, result.reason
        yield result.run_dir


def _tensor_data(path: Path) -> bytes:
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    return blob[8 + n :]


def test_pick_a_real_epoch(
    ia3_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ia3_run.parent.parent / "out"
    source = out / "e2e_publish-000001.safetensors"
    before = source.read_bytes()
    to = tmp_path / "pub"
    assert (
        main(["runs", "pick", str(ia3_run), "--epoch", "1", "--to", str(to), "--author", "Ada"])
        == 0
    )
    copy = to / source.name
    assert source.read_bytes() == before
    # the tensor table and data are the original's; only the metadata grew
    assert _tensor_data(copy) == _tensor_data(source)
    assert read_header(copy).tensors == read_header(source).tensors
    with safe_open(str(copy), framework="numpy") as f:
        meta = f.metadata()
    assert meta["modelspec.author"] == "Ada"
    assert meta["modelspec.trigger_phrase"] == "oilpaint style"
    assert meta["modelspec.resolution"] == "64x64"
    assert meta["modelspec.thumbnail"].startswith("data:image/jpeg;base64,")
    assert meta["ss_epoch"] == "1"
    card = (to / "README.md").read_text()
    assert "ComfyUI does NOT load" in card and "![oilpaint style, a red circle](" in card
    assert len(list(to.glob("*.png"))) == 1
    capsys.readouterr()
    assert main(["runs", "pick", str(ia3_run), "--epoch", "1", "--to", str(to)]) == 2


def test_output_check_warns_about_the_clients(ia3_run: Path) -> None:
    warnings = [e.message for e in read_events(ia3_run) if isinstance(e, ChildWarning)]
    assert (
        "output check: IA3 files: ComfyUI does NOT load, Forge does NOT load, A1111 loads; "
        'instead: algo = "lokr" (small files) or "lora"'
    ) in warnings
    report = json.loads((ia3_run / "output_check.json").read_text())
    assert report["clients"].startswith("IA3 files")


def test_no_user_path_in_the_metadata(ia3_run: Path) -> None:
    out = ia3_run.parent.parent / "out"
    meta = read_header(out / "e2e_publish.safetensors").metadata
    args = json.loads(meta["ss_network_args"])
    assert args["preset"] == "lycoris-ia3-sd15.toml"
    home = str(Path.home())
    assert not [k for k, v in meta.items() if home in v or str(ia3_run.parent) in v]
