"""validate, render, schema and import-config verbs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import toml
from fake_runs import add_image

from kohya_orchestrator.cli.main import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "oilpaint.toml"


@pytest.fixture
def job_file(tmp_path: Path) -> Path:
    add_image(tmp_path / "img" / "20_zengxin oilpaint")
    (tmp_path / "sd15.safetensors").write_bytes(b"")
    path = tmp_path / "job.toml"
    path.write_text(
        '[model]\npretrained_model_name_or_path = "sd15.safetensors"\n'
        '[dataset]\nbatch_size = 2\n[[dataset.subsets]]\nimage_dir = "img/20_zengxin oilpaint"\n'
        '[network]\nalgo = "loha"\n[training]\nmax_train_epochs = 4\nsave_every_n_epochs = 1\n'
        'output_dir = "out"\n[sampling]\nsample_every_n_epochs = 1\n'
        '[[sampling.prompts]]\nprompt = "zengxin oilpaint, a boat"\n',
        encoding="utf-8",
    )
    return path


def test_validate_ok(job_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(job_file)]) == 0
    assert "job is valid" in capsys.readouterr().out


def test_validate_missing_image_dir(job_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(job_file.parent / "img" / "20_zengxin oilpaint")
    assert main(["validate", str(job_file)]) == 2
    err = capsys.readouterr().err
    assert "dataset.subsets[0].image_dir" in err and "image folder does not exist" in err


def test_validate_with_set(job_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(job_file), "--set", "network.algo=locom"]) == 2
    assert "did you mean 'locon'" in capsys.readouterr().err


def test_render_writes_three_files(job_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    assert main(["render", str(job_file), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "config.toml",
        "dataset.toml",
        "sample_prompts.txt",
    ]
    config = toml.load(out / "config.toml")
    assert config["dataset_arguments"]["dataset_config"] == str((out / "dataset.toml").resolve())
    assert config["sample_prompt_arguments"]["sample_prompts"] == str(
        (out / "sample_prompts.txt").resolve()
    )
    dataset = toml.load(out / "dataset.toml")
    assert dataset["datasets"][0]["subsets"][0]["num_repeats"] == 20


def test_render_refuses_to_overwrite(
    job_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rendered"
    out.mkdir()
    (out / "config.toml").write_text("mine", encoding="utf-8")
    assert main(["render", str(job_file), "--out", str(out)]) == 2
    assert (out / "config.toml").read_text() == "mine"
    assert not (out / "dataset.toml").exists()
    assert "--force" in capsys.readouterr().err
    assert main(["render", str(job_file), "--out", str(out), "--force"]) == 0
    assert (out / "config.toml").read_text() != "mine"


def test_render_bad_job_writes_nothing(job_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    assert (
        main(["render", str(job_file), "--out", str(out), "--set", "network.network_dim=-1"]) == 2
    )
    assert not out.exists()


def test_schema_is_json_and_checked_in_copy_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "model" in schema["properties"]
    assert main(["schema", "--check", str(REPO / "docs" / "job.schema.json")]) == 0


def test_example_job_in_docs_is_valid() -> None:
    assert main(["validate", str(EXAMPLE), "--no-paths"]) == 0


def test_import_config_reports_ignored_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[model_arguments]\npretrained_model_name_or_path = "/m.safetensors"\n'
        '[training_arguments]\nresolution = "512,512"\ntrain_data_dir = "nowhere"\n'
        "max_train_epochs = 3\ntext_encoder_lr1 = 1e-5\nhuber_c = 0.2\n"
        '[network_arguments]\nnetwork_module = "lycoris.kohya"\n'
        'network_args = ["algo=lokr", "decompose_both=False", "use_cp=True", "factor=8"]\n',
        encoding="utf-8",
    )
    (tmp_path / "img" / "5_a").mkdir(parents=True)
    text = cfg.read_text().replace('"nowhere"', json.dumps(str(tmp_path / "img")))
    cfg.write_text(text, encoding="utf-8")
    out = tmp_path / "job.toml"
    assert main(["import-config", str(cfg), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "text_encoder_lr1" in err and "silently ignores" in err
    assert "decompose_both=False is read as TRUE" in err
    job = toml.load(out)
    assert job["network"]["algo"] == "lokr" and job["network"]["use_tucker"] is True
    assert "decompose_both" not in job["network"]
    assert job["extra_args"] == {"huber_c": 0.2}
    assert job["dataset"]["subsets"][0]["image_dir"].endswith("5_a")


def test_import_config_of_real_fixture_catches_bad_args(
    captures_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = captures_dir / "sd-scripts-logs" / "_configs"
    rc = main(
        [
            "import-config",
            str(configs / "train_f_badargs_lora.toml"),
            "--dataset",
            str(configs / "dataset.toml"),
        ]
    )
    assert rc == 2
    assert "network.conv_dim: expected an integer, got 'notanumber'" in capsys.readouterr().err


def test_validate_refuses_what_plan_refuses(
    job_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = job_file.parent / "img" / "20_zengxin oilpaint"
    (folder / "a.png").unlink()  # an empty folder: sd-scripts would exit 0 having trained nothing
    assert main(["validate", str(job_file)]) == 2
    assert "no images to train on" in capsys.readouterr().err
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(["validate", str(job_file)]) == 2
    err = capsys.readouterr().err
    assert "broken.jpg: cannot read the image size" in err
    assert main(["validate", str(job_file), "--no-paths"]) == 0  # the opt-out skips the disk


def test_validate_refuses_and_render_warns_about_earlier_outputs(
    job_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = job_file.parent / "out"
    out.mkdir()
    (out / "lora.safetensors").write_bytes(b"x")  # the output name defaults to "lora"
    assert main(["validate", str(job_file)]) == 2
    assert "would be overwritten" in capsys.readouterr().err
    rendered = job_file.parent / "rendered"
    assert main(["render", str(job_file), "--out", str(rendered)]) == 0
    err = capsys.readouterr().err
    assert "would be overwritten" in err
    assert (rendered / "config.toml").is_file()
