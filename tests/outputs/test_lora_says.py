"""`lora inspect` shows what the file says (issue 18 item 7), and how it loads in each client.

The metadata is sd-scripts' own (tests/fixtures/sd-scripts: the real e_prodigy, d_ia3 and
n_locon_dora_cwd outputs). n_locon_dora_cwd is a real run on the lab's diffusers-folder model with
AdamW ``betas=(0.9, 0.99)``, ``lr_warmup_steps = 0.25`` and DoRA with ``wd_on_output = False``;
the other cases replace one key of e_prodigy by the string sd-scripts writes for it
(train_util.py: ``",".join(f"{k}={v}")`` for the optimizer arguments, ``args.lr_warmup_steps`` as
given).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.launch.rundir import RunDir
from kohya_orchestrator.outputs.lora import lora_info_from_metadata
from kohya_orchestrator.outputs.lora_header import check_run_outputs

from .conftest import write_safetensors


@pytest.fixture
def prodigy_meta(captures_dir: Path) -> dict[str, str]:
    dump = json.loads((captures_dir / "lora-metadata" / "e_prodigy.json").read_text())
    return dict(dump["out/e_prodigy/e_prodigy.safetensors"]["metadata"])


@pytest.fixture
def dora_meta(captures_dir: Path) -> dict[str, str]:
    dump = json.loads((captures_dir / "lora-metadata" / "n_locon_dora_cwd.json").read_text())
    return dict(dump["out/pub_cwd/pub_cwd.safetensors"]["metadata"])


class TestRealCapture:
    """The three things `lora inspect` misread, in a file sd-scripts really wrote."""

    def test_values(self, dora_meta: dict[str, str]) -> None:
        assert dora_meta["ss_optimizer"] == (
            "torch.optim.adamw.AdamW(weight_decay=0.01,betas=(0.9, 0.99))"
        )
        assert dora_meta["ss_lr_warmup_steps"] == "0.25"
        assert dora_meta["ss_sd_model_hash"] == "IsADirectory"
        info = lora_info_from_metadata(dora_meta)
        assert info.optimizer_args == {"weight_decay": "0.01", "betas": "(0.9, 0.99)"}
        assert info.lr_warmup_ratio == 0.25 and info.lr_warmup_steps is None
        assert info.base_model_folder and info.base_model_hash is None
        assert info.clients == {"ComfyUI": "full", "Forge": "full", "A1111": "full"}

    def test_shown(
        self, dora_meta: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = _inspect(tmp_path, dora_meta, capsys)
        assert "AdamW (weight_decay=0.01 betas=(0.9, 0.99))" in out
        assert "warmup 0.25 of the steps = 2 steps" in out  # int(0.25 * 8)
        assert (
            "sd15-random-diffusers sd_v1 (family sd15) hash not recorded (diffusers folder)" in out
        )
        assert "IsADirectory" not in out
        assert "dora_wd=True wd_on_output=False" in out
        assert "loads in ComfyUI loads, Forge loads, A1111 loads" in out
        # a run-directory preset copy is recorded by its name only (no user path)
        assert "preset=lycoris-full-sd15.toml" in out


def _inspect(tmp_path: Path, meta: dict[str, str], capsys: pytest.CaptureFixture[str]) -> str:
    path = write_safetensors(tmp_path / "x.safetensors", meta)
    assert main(["lora", "inspect", str(path)]) == 0
    return " ".join(capsys.readouterr().out.split())  # the table wraps at the console width


class TestOptimizerArgs:
    def test_tuple_value_is_kept_whole(self, prodigy_meta: dict[str, str]) -> None:
        prodigy_meta["ss_optimizer"] = (
            "torch.optim.adamw.AdamW(betas=(0.9, 0.99),weight_decay=0.01)"
        )
        info = lora_info_from_metadata(prodigy_meta)
        assert info.optimizer_args == {"betas": "(0.9, 0.99)", "weight_decay": "0.01"}

    def test_real_prodigy_args(self, prodigy_meta: dict[str, str]) -> None:
        info = lora_info_from_metadata(prodigy_meta)
        assert info.optimizer_args == {
            "decouple": "True",
            "weight_decay": "0.01",
            "d_coef": "2",
            "use_bias_correction": "True",
            "safeguard_warmup": "True",
        }

    def test_shown(
        self, prodigy_meta: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        prodigy_meta["ss_optimizer"] = (
            "torch.optim.adamw.AdamW(betas=(0.9, 0.99),weight_decay=0.01)"
        )
        out = _inspect(tmp_path, prodigy_meta, capsys)
        assert "AdamW (betas=(0.9, 0.99) weight_decay=0.01)" in out


class TestWarmup:
    def test_ratio(
        self, prodigy_meta: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        prodigy_meta["ss_lr_warmup_steps"] = "0.05"
        info = lora_info_from_metadata(prodigy_meta)
        assert info.lr_warmup_ratio == 0.05 and info.lr_warmup_steps is None
        out = _inspect(tmp_path, prodigy_meta, capsys)
        # 8 steps in this run: int(0.05 * 8) = 0 steps, as sd-scripts computes it
        assert "warmup 0.05 of the steps = 0 steps" in out

    def test_ratio_of_a_longer_run(self, prodigy_meta: dict[str, str]) -> None:
        prodigy_meta.update(ss_lr_warmup_steps="0.25", ss_max_train_steps="800")
        info = lora_info_from_metadata(prodigy_meta)
        assert info.lr_warmup_ratio == 0.25

    def test_steps(
        self, prodigy_meta: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        prodigy_meta["ss_lr_warmup_steps"] = "40"
        info = lora_info_from_metadata(prodigy_meta)
        assert info.lr_warmup_steps == 40 and info.lr_warmup_ratio is None
        assert re.search(r"warmup 40\b", _inspect(tmp_path, prodigy_meta, capsys))


class TestDiffusersFolderHash:
    def test_not_a_hash(
        self, prodigy_meta: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        prodigy_meta.update(
            ss_sd_model_name="sd15-random-diffusers",
            ss_sd_model_hash="IsADirectory",
            ss_new_sd_model_hash="IsADirectory",
        )
        info = lora_info_from_metadata(prodigy_meta)
        assert info.base_model_folder
        assert info.base_model_hash is None and info.base_model_sha256 is None
        out = _inspect(tmp_path, prodigy_meta, capsys)
        assert "hash not recorded (diffusers folder)" in out
        assert "IsADirectory" not in out

    def test_a_real_hash_is_shown(self, prodigy_meta: dict[str, str]) -> None:
        info = lora_info_from_metadata(prodigy_meta)
        assert not info.base_model_folder and info.base_model_hash == "c6406a4c"


class TestClients:
    def test_ia3_capture(self, loras: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["lora", "inspect", str(loras / "d_ia3_custompreset.safetensors")]) == 0
        out = capsys.readouterr().out
        assert re.search(
            r"^loads in +ComfyUI does NOT load, Forge does NOT load, A1111 loads", out, re.M
        )

    def test_json(self, loras: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["lora", "inspect", str(loras / "c_lokr_preset.safetensors"), "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["clients"] == {"ComfyUI": "full", "Forge": "full", "A1111": "full"}

    def test_dora_on_output_axis(self, prodigy_meta: dict[str, str]) -> None:
        prodigy_meta["ss_network_module"] = "lycoris.kohya"
        prodigy_meta["ss_network_args"] = json.dumps({"algo": "locon", "dora_wd": "True"})
        assert lora_info_from_metadata(prodigy_meta).clients["A1111"] == "wrong"
        prodigy_meta["ss_network_args"] = json.dumps(
            {"algo": "locon", "dora_wd": "True", "wd_on_output": "False"}
        )
        assert lora_info_from_metadata(prodigy_meta).clients["A1111"] == "full"


def test_output_check_warns_about_ia3(loras: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("d_ia3_custompreset-000001.safetensors", "d_ia3_custompreset.safetensors"):
        shutil.copy(loras / name, out / name)
    job = validate_job(
        {
            "model": {"pretrained_model_name_or_path": "/srv/kohya/models/sd15-random.safetensors"},
            "dataset": {
                "resolution": 64,
                "batch_size": 2,
                "enable_bucket": False,
                "subsets": [{"image_dir": "/srv/kohya/data/img/2_oilpaint style"}],
            },
            "network": {
                "algo": "ia3",
                "preset": "/srv/kohya/configs/lycoris_ia3_preset_fnmatch.toml",
            },
            "optimizer": {"learning_rate": 5e-3},
            "training": {
                "max_train_epochs": 2,
                "output_dir": str(out),
                "output_name": "d_ia3_custompreset",
            },
        }
    )
    run_dir = RunDir.create(tmp_path / "runs", "run")
    events = check_run_outputs(job, run_dir, [out / "d_ia3_custompreset-000001.safetensors"], None)
    messages = [e.message for e in events]
    assert messages[-1] == (
        "output check: IA3 files: ComfyUI does NOT load, Forge does NOT load, A1111 loads; "
        'instead: algo = "lokr" (small files) or "lora"'
    )
    report = json.loads((run_dir.path / "output_check.json").read_text())
    assert report["clients"].startswith("IA3 files")
