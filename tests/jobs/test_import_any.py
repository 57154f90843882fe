"""`import-config` on the configs users bring from other machines and other tools.

Each format is written here from its documentation or the source that writes it (never a copied
file): sd-scripts' sectioned ``--config_file`` (docs/config_README-en.md), the Colab notebooks'
``training_config.toml`` + ``dataset_config.toml`` (the section names hollowstrawberry's
Lora_Trainer and Linaqruf's kohya-trainer write), LoRA_Easy_Training_Scripts' grouped TOML (what
its backend's ``utils/validation.py`` reads) and the kohya_ss GUI's saved config (its form keys).
Paths in them are another machine's (``D:\\...``, ``/content/drive/...``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from import_samples import COLAB_DATASET, COLAB_TRAINING, EASY, GUI_SAVED, WINDOWS_CONFIG
from PIL import Image

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.checks import check_paths
from kohya_orchestrator.jobs.gui_fields import loads_json_lenient
from kohya_orchestrator.jobs.import_any import import_config
from kohya_orchestrator.jobs.import_paths import LocalPaths, foreign_basename, localize_paths
from kohya_orchestrator.jobs.import_report import build_import_report
from kohya_orchestrator.render._writer import dumps


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(dumps(data), encoding="utf-8")
    return path


def _images(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (64, 64), (40 * i, 90, 10)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("zengxin oilpaint, a painting", encoding="utf-8")
    return folder


def _to_fill(job: Any) -> dict[str, str]:
    return {p.path: p.message for p in check_paths(job, placeholders="warning") if p.code}


def test_foreign_basenames() -> None:
    assert foreign_basename("D:\\lora\\img\\20_zengxin oilpaint") == "20_zengxin oilpaint"
    assert foreign_basename("/content/drive/MyDrive/Loras/x/dataset/") == "dataset"
    assert foreign_basename("C:/models/a.safetensors") == "a.safetensors"


def test_a_windows_config_imports_with_placeholders_and_validate_names_them(
    tmp_path: Path,
) -> None:
    result = import_config(_write(tmp_path / "config.toml", WINDOWS_CONFIG), local=LocalPaths())
    job = result.job
    assert job.model.pretrained_model_name_or_path == "<v1-5-pruned-emaonly.safetensors>"
    assert job.model.vae == "<vae-ft-mse-840000.safetensors>"
    assert job.training.output_dir == "<output>"
    assert job.training.logging_dir == "<output>/log"
    assert [s.image_dir for _, s in job.dataset.all_subsets()] == ["<data>"]
    assert set(_to_fill(job)) == {
        "model.pretrained_model_name_or_path",
        "model.vae",
        "training.output_dir",
        "dataset.subsets[0].image_dir",
    }
    # train refuses them all (errors before a launch)
    assert {p.path for p in check_paths(job) if p.severity == "error"} == set(_to_fill(job))
    report = build_import_report(result.data, result.problems, job)
    assert len(report.to_fill) == 4
    assert "D:\\models\\vae-ft-mse-840000.safetensors" in " ".join(
        p.message for p in report.to_fill
    )
    text = "\n".join(report.lines("config.toml", "job.toml"))
    assert "to fill in (4)" in text and "validate job.toml" in text


def test_data_model_and_output_fill_them_and_the_job_validates(tmp_path: Path) -> None:
    _images(tmp_path / "img" / "20_zengxin oilpaint")
    model = tmp_path / "v1-5.safetensors"
    model.write_bytes(b"")
    config = dict(WINDOWS_CONFIG)
    config["model_arguments"] = {"pretrained_model_name_or_path": "D:\\models\\v1-5.safetensors"}
    local = LocalPaths(data=tmp_path / "img", model=str(model), output=tmp_path / "out")
    job = import_config(_write(tmp_path / "config.toml", config), local=local).job
    (subset,) = [s for _, s in job.dataset.all_subsets()]
    assert subset.image_dir == str(tmp_path / "img" / "20_zengxin oilpaint")
    assert subset.effective_repeats == 20
    assert job.training.output_dir == str(tmp_path / "out")
    assert job.training.logging_dir == str(tmp_path / "out" / "log")
    assert job.model.pretrained_model_name_or_path == str(model)
    assert check_paths(job) == []


def test_a_windows_dataset_config_keeps_each_repeat_folder_name(tmp_path: Path) -> None:
    dataset = {
        "general": {"caption_extension": ".txt", "shuffle_caption": True},
        "datasets": [
            {
                "resolution": 512,
                "batch_size": 2,
                "subsets": [
                    {"image_dir": "D:\\lora\\img\\20_zengxin oilpaint"},
                    {"image_dir": "D:\\lora\\reg\\1_painting", "is_reg": True},
                ],
            }
        ],
    }
    config = {k: v for k, v in WINDOWS_CONFIG.items()}
    config["training_arguments"] = {
        k: v for k, v in WINDOWS_CONFIG["training_arguments"].items() if k != "train_data_dir"
    }
    cfg = _write(tmp_path / "config.toml", config)
    ds = _write(tmp_path / "dataset.toml", dataset)
    job = import_config(cfg, ds, local=LocalPaths()).job
    subsets = [s for _, s in job.dataset.all_subsets()]
    assert [s.image_dir for s in subsets] == ["<data>/20_zengxin oilpaint", "<data>/1_painting"]
    assert [s.effective_repeats for s in subsets] == [20, 1]
    assert subsets[0].effective_class_tokens == "zengxin oilpaint"
    # --data finds both folders by name
    _images(tmp_path / "data" / "20_zengxin oilpaint")
    _images(tmp_path / "data" / "1_painting")
    job = import_config(cfg, ds, local=LocalPaths(data=tmp_path / "data")).job
    assert [s.image_dir for _, s in job.dataset.all_subsets()] == [
        str(tmp_path / "data" / "20_zengxin oilpaint"),
        str(tmp_path / "data" / "1_painting"),
    ]


def test_colab_training_and_dataset_configs(tmp_path: Path) -> None:
    """hollowstrawberry's Lora_Trainer: two files, /content paths, dataset config passed apart;
    the notebook's dataset_config path is looked up beside the training config."""
    training, dataset = COLAB_TRAINING, COLAB_DATASET
    cfg = _write(tmp_path / "training_config.toml", training)
    _write(tmp_path / "dataset_config.toml", dataset)
    result = import_config(cfg, local=LocalPaths())
    job = result.job
    assert result.format == "sd-scripts config"
    assert any(p.path == "dataset_config" for p in result.problems)  # read beside, with a note
    (subset,) = [s for _, s in job.dataset.all_subsets()]
    assert subset.image_dir == "<data>/dataset" and subset.num_repeats == 10
    assert job.dataset.resolution == 512 and job.dataset.keep_tokens == 1
    assert job.training.output_dir == "<output>"
    assert job.network.algo == "lora" and job.network.conv_dim == 8
    assert job.optimizer.type == "AdamW8bit"
    assert job.scheduler.lr_scheduler == "cosine_with_restarts"
    assert job.model.clip_skip == 2


def test_a_lora_easy_training_scripts_toml(tmp_path: Path) -> None:
    result = import_config(_write(tmp_path / "easy.toml", EASY), local=LocalPaths())
    job = result.job
    assert result.format == "LoRA_Easy_Training_Scripts TOML"
    assert job.model.family == "sdxl"
    assert job.model.pretrained_model_name_or_path == "<sd_xl_base_1.0.safetensors>"
    assert job.network.algo == "locon"
    assert (job.network.network_dim, job.network.conv_dim) == (16, 8)
    assert job.scheduler.lr_warmup_steps == 0.05  # warmup_ratio: a share of the steps
    assert job.training.max_train_epochs == 8 and job.training.save_every_n_epochs == 2
    assert job.training.noise_offset == 0.0357
    assert job.dataset.resolution == 1024 and job.dataset.batch_size == 2
    assert job.dataset.max_bucket_reso == 2048
    (subset,) = [s for _, s in job.dataset.all_subsets()]
    assert subset.image_dir == "<data>/20_zengxin oilpaint" and subset.num_repeats == 20
    assert subset.shuffle_caption is True
    assert job.name == "zengxin-xl"


def test_a_gui_saved_config_json_and_toml_import_as_jobs(tmp_path: Path) -> None:
    gui = GUI_SAVED
    _images(tmp_path / "img" / "20_zengxin oilpaint")
    for path in (tmp_path / "saved.json", tmp_path / "saved.toml"):
        if path.suffix == ".json":
            path.write_text(json.dumps(gui), encoding="utf-8")
        else:
            _write(path, gui)
        result = import_config(path, local=LocalPaths(data=tmp_path / "img"))
        job = result.job
        assert result.format == "kohya_ss GUI config"
        assert job.network.algo == "lokr" and job.optimizer.type == "Prodigy"
        assert job.model.pretrained_model_name_or_path == "<v1-5-pruned-emaonly.safetensors>"
        assert job.training.output_dir == "<output>"
        (subset,) = [s for _, s in job.dataset.all_subsets()]
        assert subset.image_dir == str(tmp_path / "img" / "20_zengxin oilpaint")
        assert job.training.max_train_epochs == 10


def test_notes_not_refusals_where_sd_scripts_would_run(tmp_path: Path) -> None:
    config = {
        "model_arguments": {"pretrained_model_name_or_path": "runwayml/stable-diffusion-v1-5"},
        "additional_network_arguments": {
            "network_module": "networks.lora",
            "network_dim": 8,
            "network_args": ["use_rslora=True"],
        },
        "training_arguments": {
            "output_dir": str(tmp_path / "out"),
            "max_train_epochs": 0,
            "max_train_steps": 1200,
            "train_data_dir": str(_images(tmp_path / "img" / "10_x").parent),
        },
        "sample_prompt_arguments": {
            "sample_every_n_epochs": 2,
            "sample_every_n_steps": 100,
            "sample_prompts": str(tmp_path / "prompts.txt"),
        },
    }
    (tmp_path / "prompts.txt").write_text("a painting --w 512 --h 512\n", encoding="utf-8")
    result = import_config(_write(tmp_path / "c.toml", config), local=LocalPaths())
    job = result.job
    assert job.training.max_train_steps == 1200 and job.training.max_train_epochs is None
    assert job.sampling is not None
    assert job.sampling.sample_every_n_epochs == 2 and job.sampling.sample_every_n_steps is None
    codes = {p.path: p.code for p in result.problems}
    assert codes["max_train_epochs"] == "import-fixed"
    assert codes["sample_every_n_steps"] == "import-fixed"
    assert codes["network_args use_rslora"] == "import-dropped"
    report = build_import_report(result.data, result.problems, job)
    assert len(report.fixed) == 2 and len(report.dropped) == 1 and report.to_fill == []


def test_json_with_trailing_commas_is_read_with_a_note(tmp_path: Path) -> None:
    assert loads_json_lenient('{"a": [1, 2,], "b": "x,}",}') == ({"a": [1, 2], "b": "x,}"}, True)
    assert loads_json_lenient('{"a": 1}') == ({"a": 1}, False)
    path = tmp_path / "hand.json"
    path.write_text(
        '{\n  "LoRA_type": "Standard",\n  "network_dim": 16,\n  "epoch": 4,\n}\n', encoding="utf-8"
    )
    result = import_config(path, local=LocalPaths())
    assert result.job.network.network_dim == 16
    assert any("trailing commas" in p.message for p in result.problems)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("package.json", '{"name": "x", "version": "1.0.0", "dependencies": {}}'),
        ("pyproject.toml", '[project]\nname = "x"\nversion = "1"\n'),
    ],
)
def test_a_file_with_no_kohya_setting_is_not_a_kohya_config(
    tmp_path: Path, name: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="not a kohya config"):
        import_config(path, local=LocalPaths())
    assert main(["import-config", str(path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_cli_imports_a_foreign_config_with_exit_0_and_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _write(tmp_path / "config.toml", WINDOWS_CONFIG)
    out = tmp_path / "new" / "job.toml"
    assert main(["import-config", str(cfg), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "settings mapped" in err and "to fill in (4)" in err
    assert main(["validate", str(out)]) == 0
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert "4 placeholders to fill in" in err
    assert "<data> is a placeholder" in err
    # filled at import: the job validates with no placeholder left
    _images(tmp_path / "img" / "20_zengxin oilpaint")
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"")
    out2 = tmp_path / "job2.toml"
    argv = ["import-config", str(cfg), "--data", str(tmp_path / "img"), "--model", str(model)]
    argv += ["--output", str(tmp_path / "out"), "--set", f"model.vae={model}", "--out", str(out2)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["validate", str(out2)]) == 0
    captured = capsys.readouterr()
    assert "job is valid" in captured.out + captured.err
    assert "placeholder" not in captured.out + captured.err


def test_localize_leaves_paths_that_exist_alone(tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"")
    data = {
        "model": {"pretrained_model_name_or_path": str(model)},
        "training": {"output_dir": str(tmp_path / "out")},
        "dataset": {"subsets": [{"image_dir": str(tmp_path)}]},
    }
    assert localize_paths(data, LocalPaths(), origin="x") == (data, [])


def test_import_preset_reads_trailing_commas_gui_toml_and_refuses_other_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kohya_orchestrator.jobs.import_gui import import_gui_preset

    hand = tmp_path / "hand.json"
    hand.write_text(
        '{"LoRA_type": "LyCORIS/LoHa", "network_dim": 8, "epoch": 4,}', encoding="utf-8"
    )
    result = import_gui_preset(hand)
    assert result.job.network.algo == "loha"
    assert result.problems[0].code == "import-fixed"
    saved = _write(
        tmp_path / "saved.toml", {"LoRA_type": "Standard", "network_dim": 12, "epoch": 2}
    )
    assert import_gui_preset(saved).job.network.network_dim == 12
    other = tmp_path / "package.json"
    other.write_text('{"name": "x", "version": "1.0.0"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="not a kohya_ss GUI file"):
        import_gui_preset(other)
    assert main(["import-preset", str(other)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_data_is_a_subsets_own_image_folder_when_it_has_its_own_repeats(tmp_path: Path) -> None:
    """Colab's subset names ``.../dataset`` with ``num_repeats = 10``: ``--data`` holding the
    images themselves is that folder; a folder-convention subset still looks inside ``--data``."""
    cfg = _write(tmp_path / "training_config.toml", COLAB_TRAINING)
    _write(tmp_path / "dataset_config.toml", COLAB_DATASET)
    pictures = _images(tmp_path / "my pictures")
    job = import_config(cfg, local=LocalPaths(data=pictures)).job
    (subset,) = [s for _, s in job.dataset.all_subsets()]
    assert (subset.image_dir, subset.num_repeats) == (str(pictures), 10)
    # train_data_dir's repeat folders are looked for inside --data: a folder of bare images has
    # none, which sd-scripts would train nothing from; said, not guessed
    with pytest.raises(ConfigError, match="the dataset has no subsets"):
        import_config(
            _write(tmp_path / "config.toml", WINDOWS_CONFIG), local=LocalPaths(data=pictures)
        )
