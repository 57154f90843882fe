"""e2e: configs from other machines and tools, imported with this machine's paths, are read by
sd-scripts' own readers as the job says.

Each format of tests/import_samples.py (sd-scripts' sectioned config made on Windows, a Colab
notebook's two files, a LoRA_Easy_Training_Scripts TOML, a kohya_ss GUI saved config) is imported
with ``--data``/``--model``/``--output`` pointing at the lab; the job's rendered files then go
through sd-scripts' parser, ``read_config_from_file``, ``verify_training_args`` and its dataset
blueprint (one subprocess for all, tests/e2e/_sd_schema_oracle.py): no key ignored, nothing
refused, and the subsets are the lab's repeat folders.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from import_samples import COLAB_DATASET, COLAB_TRAINING, EASY, GUI_SAVED, WINDOWS_CONFIG
from lab_oracle import render_case, run_schema_oracle

from kohya_orchestrator.jobs.checks import check_paths
from kohya_orchestrator.jobs.import_any import import_config
from kohya_orchestrator.jobs.import_paths import LocalPaths
from kohya_orchestrator.render._writer import dumps

pytestmark = pytest.mark.e2e


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(dumps(data), encoding="utf-8")
    return path


def test_imported_configs_of_every_format_are_read_by_sd_scripts(
    e2e_lab: Path, tmp_path: Path
) -> None:
    data = tmp_path / "img"
    shutil.copytree(e2e_lab / "data" / "img", data)  # 2_oilpaint style/
    sdxl = str(e2e_lab / "models" / "sdxl-random.safetensors")
    sd15 = str(e2e_lab / "models" / "sd15-random-diffusers")
    colab = tmp_path / "colab"
    colab.mkdir()
    _write(colab / "dataset_config.toml", COLAB_DATASET)
    gui = tmp_path / "saved.json"
    gui.write_text(json.dumps(GUI_SAVED), encoding="utf-8")
    files = {
        "windows": (_write(tmp_path / "config.toml", WINDOWS_CONFIG), sd15),
        "colab": (_write(colab / "training_config.toml", COLAB_TRAINING), sd15),
        "easy": (_write(tmp_path / "easy.toml", EASY), sdxl),
        "gui": (gui, sd15),
    }
    cases = []
    for name, (path, model) in files.items():
        # the folder of repeat folders; or, for a subset with its own num_repeats, the images
        given = data if name in ("windows", "gui") else data / "2_oilpaint style"
        local = LocalPaths(data=given, model=model, output=tmp_path / "out" / name)
        overrides: dict[str, Any] = {"model": {"tokenizer_cache_dir": str(e2e_lab / "tokcache")}}
        if name == "windows":
            overrides["model"]["vae"] = str(e2e_lab / "models" / "sd15-random-diffusers" / "vae")
        job = import_config(path, local=local, overrides=overrides).job
        assert [p.path for p in check_paths(job)] == [], name
        cases.append(render_case(job, tmp_path / "rendered" / name, name=name)[0])
    results = run_schema_oracle(e2e_lab, cases, tmp_path, timeout_s=600)
    for case, got in zip(cases, results, strict=True):
        assert "error" not in got, (case["name"], got.get("error"))
        assert got["ignored"] == [], (case["name"], got["ignored"])
        assert got["verify"] is None, (case["name"], got["verify"])
    assert [c["script"] for c in cases] == [
        "train_network.py",
        "train_network.py",
        "sdxl_train_network.py",
        "train_network.py",
    ]
    by_name = {c["name"]: got for c, got in zip(cases, results, strict=True)}
    assert by_name["easy"]["values"]["network_module"] == "lycoris.kohya"
    assert by_name["easy"]["network_kwargs"]["algo"] == "locon"
    assert by_name["gui"]["values"]["optimizer_type"] == "Prodigy"
    assert by_name["colab"]["values"]["max_train_epochs"] == 10
    folder = str(data / "2_oilpaint style")
    for name, got in by_name.items():
        subsets = [s for d in got["datasets"] for s in d["subsets"]]
        assert [s["image_dir"] for s in subsets] == [folder], name
    # repeats: the lab folder's 2 (folder convention), Colab's and LoRA_Easy's own num_repeats
    repeats = {n: got["datasets"][0]["subsets"][0]["num_repeats"] for n, got in by_name.items()}
    assert repeats == {"windows": 2, "colab": 10, "easy": 20, "gui": 2}
