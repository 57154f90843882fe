"""The client table (how a file loads in ComfyUI, Forge, A1111) and the rules that read it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from fake_runs import add_image

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models import job_warnings
from kohya_orchestrator.models.clients import CLIENT_TABLE, CLIENTS, client_line, client_row
from kohya_orchestrator.models.network import ALGOS
from kohya_orchestrator.render.toml import network_args

BASE: dict[str, Any] = {
    "model": {"pretrained_model_name_or_path": "/m/sd15.safetensors"},
    "dataset": {"subsets": [{"image_dir": "/d/img/20_zengxin oilpaint"}]},
    "training": {"max_train_epochs": 10},
}


def job(network: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["network"] = network
    return data


class TestTable:
    def test_every_algo_has_a_row(self) -> None:
        keys = {row.key for row in CLIENT_TABLE}
        assert set(ALGOS) <= keys

    def test_ia3_loads_in_a1111_only(self) -> None:
        row = client_row("ia3")
        assert dict(zip(CLIENTS, row.support, strict=True)) == {
            "ComfyUI": "none",
            "Forge": "none",
            "A1111": "full",
        }
        assert client_line(row, "sd15") == (
            'ComfyUI does NOT load, Forge does NOT load, A1111 loads; instead: algo = "lokr" '
            '(small files) or "lora"'
        )

    def test_dora_depends_on_the_axis(self) -> None:
        assert client_row("locon", dora_wd=True, wd_on_output=True).support == (
            "approximate",
            "approximate",
            "wrong",
        )
        assert client_row("locon", dora_wd=True, wd_on_output=False).support == ("full",) * 3

    def test_other_families_say_they_were_not_measured(self) -> None:
        assert "sdxl may differ" in client_line(client_row("lora"), "sdxl")
        assert "may differ" not in client_line(client_row("lora"), "sd15")

    def test_unknown_algo(self) -> None:
        assert client_row("glora").support == ("unknown",) * 3


class TestIA3Warning:
    def test_warns(self) -> None:
        warnings = job_warnings(validate_job(job({"algo": "ia3"})))
        found = [w for w in warnings if w.path == "network.algo"]
        assert len(found) == 1
        assert "do nothing in ComfyUI, Forge and reForge" in found[0].message
        assert "A1111" in found[0].message
        assert (
            found[0].hint
            == 'for ComfyUI or Forge users train algo = "lokr" (small files) or "lora" instead'
        )

    def test_lokr_does_not(self) -> None:
        warnings = job_warnings(validate_job(job({"algo": "lokr"})))
        assert not [w for w in warnings if w.path == "network.algo"]

    def test_validate_prints_it(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        add_image(tmp_path / "img" / "20_x")
        (tmp_path / "sd15.safetensors").write_bytes(b"")
        path = tmp_path / "job.toml"
        path.write_text(
            '[model]\npretrained_model_name_or_path = "sd15.safetensors"\n'
            '[dataset]\n[[dataset.subsets]]\nimage_dir = "img/20_x"\n'
            '[network]\nalgo = "ia3"\n[optimizer]\nlearning_rate = 5e-3\n'
            "[training]\nmax_train_epochs = 1\n"
        )
        assert main(["validate", str(path)]) == 0
        out = capsys.readouterr()
        assert "IA3 files do nothing in ComfyUI" in out.out + out.err


class TestDoraAxis:
    def test_default_renders_false(self) -> None:
        j = validate_job(job({"algo": "locon", "dora_wd": True}))
        assert "wd_on_output=False" in network_args(j)
        assert not [w for w in job_warnings(j) if w.path == "network.wd_on_output"]

    def test_true_renders_true_and_warns(self) -> None:
        j = validate_job(job({"algo": "lokr", "dora_wd": True, "wd_on_output": True}))
        assert "wd_on_output=True" in network_args(j)
        (w,) = [w for w in job_warnings(j) if w.path == "network.wd_on_output"]
        assert "6-11x" in w.message

    def test_without_dora_nothing_is_rendered(self) -> None:
        j = validate_job(job({"algo": "loha", "wd_on_output": True}))
        assert not any(a.startswith("wd_on_output") for a in network_args(j))

    def test_ia3_has_no_such_key(self) -> None:
        from kohya_orchestrator.errors import ConfigError

        with pytest.raises(ConfigError):
            validate_job(job({"algo": "ia3", "wd_on_output": False}))


def test_docs_show_the_table() -> None:
    from kohya_orchestrator.models.clients import markdown_table

    docs = Path(__file__).resolve().parents[2] / "docs" / "networks.md"
    assert markdown_table() in docs.read_text(encoding="utf-8")
