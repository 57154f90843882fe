"""Importing kohya TOML files: network_args, optimizer and scheduler arguments, folder-convention
datasets, dataset configs with several blocks, and the problems reported on the way.

The configs have the shapes of the real ones sd-scripts was given for the captures in
tests/fixtures/sd-scripts/sd-scripts-logs/_configs/ (sectioned, network_args as a list of
key=value).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.errors import ConfigError, Problem
from kohya_orchestrator.jobs.import_toml import import_kohya_config, job_dict_from_kohya

# The real configs in the repository (tests/conftest.py's SD_LOGS / "_configs").
CONFIGS = (
    Path(__file__).resolve().parents[1] / "fixtures" / "sd-scripts" / "sd-scripts-logs" / "_configs"
)
MODEL = {"pretrained_model_name_or_path": "/srv/kohya/models/sd15-random.safetensors"}


def _config(network: dict[str, Any] | None = None, **sections: dict[str, Any]) -> dict[str, Any]:
    """A sectioned train_network.py config like the captured ones."""
    return {
        "model_arguments": MODEL,
        "network_arguments": network or {"network_module": "networks.lora", "network_dim": 4},
        "training_arguments": {"max_train_epochs": 2, "output_name": "x"},
        **sections,
    }


def _by_path(problems: list[Problem]) -> dict[str, Problem]:
    return {p.path: p for p in problems}


# ----------------------------------------------------------------------------- network
def test_a_network_arg_without_equals_is_an_error() -> None:
    data, problems = job_dict_from_kohya(
        _config({"network_module": "networks.lora", "network_args": ["conv_dim4"]})
    )
    problem = _by_path(problems)["network_args"]
    assert problem.format() == (
        "network_args: 'conv_dim4' has no '=': sd-scripts would fail on it\n  hint: write key=value"
    )
    assert problem.severity == "error"
    assert "conv_dim" not in data["network"]


def test_an_unknown_lycoris_algo_is_an_error() -> None:
    data, problems = job_dict_from_kohya(
        _config({"network_module": "lycoris.kohya", "network_args": ["algo=glora"]})
    )
    assert data["network"]["algo"] == "glora"
    assert _by_path(problems)["network_args"].message == "algo=glora is not supported"


@pytest.mark.parametrize(("dropout", "expected"), [("0.1", 0.1), ("0", None), ("None", None)])
def test_lycoris_dropout_becomes_network_dropout(dropout: str, expected: float | None) -> None:
    data, problems = job_dict_from_kohya(
        _config(
            {
                "network_module": "lycoris.kohya",
                "network_dim": 4,
                "network_alpha": 1.0,
                "network_args": ["algo=loha", "conv_dim=4", "conv_alpha=1", f"dropout={dropout}"],
            }
        )
    )
    net = data["network"]
    assert net.get("network_dropout") == expected
    assert "dropout" not in net
    assert (net["algo"], net["conv_dim"], net["conv_alpha"], net["preset"]) == (
        "loha",
        4,
        1,
        "full",
    )
    assert not [p for p in problems if p.severity == "error"]


def test_gui_only_lycoris_args_are_dropped_with_a_warning() -> None:
    data, problems = job_dict_from_kohya(
        _config(
            {
                "network_module": "lycoris.kohya",
                "network_args": ["algo=ia3", "train_on_input=True", "rank_dropout_scale=False"],
            }
        )
    )
    assert data["network"] == {"algo": "ia3"}
    notes = _by_path(problems)
    for key in ("train_on_input", "rank_dropout_scale"):
        problem = notes[f"network_args {key}"]
        assert problem.message == "LyCORIS' kohya entry point ignores it; dropped"
        assert problem.severity == "warning"


def test_an_unsupported_network_module_is_an_error() -> None:
    _, problems = job_dict_from_kohya(_config({"network_module": "networks.oft"}))
    assert _by_path(problems)["network_module"].format() == (
        "network_module: 'networks.oft' is not supported\n"
        "  hint: use networks.lora or lycoris.kohya"
    )


def test_block_dims_and_alphas_become_lists() -> None:
    args = [
        "block_dims=2,4,4,8",
        "block_alphas=1,2,2,4",
        "conv_block_dims=1,1,2,2",
        "conv_block_alphas=0.5,1,1,1",
        "down_lr_weight=sine",
    ]
    data, problems = job_dict_from_kohya(
        _config({"network_module": "networks.lora", "network_args": args})
    )
    net = data["network"]
    assert net["block_dims"] == [2, 4, 4, 8] and net["conv_block_dims"] == [1, 1, 2, 2]
    assert net["block_alphas"] == [1.0, 2.0, 2.0, 4.0]
    assert net["conv_block_alphas"] == [0.5, 1.0, 1.0, 1.0]
    assert net["down_lr_weight"] == "sine"
    assert problems == []


# ----------------------------------------------------------------------------- optimizer
def test_several_text_encoder_lrs_keep_the_first() -> None:
    opt = {"optimizer_type": "AdamW", "learning_rate": 1e-4, "text_encoder_lr": [1e-5, 2e-5]}
    data, problems = job_dict_from_kohya(_config(optimizer_arguments=opt))
    assert data["optimizer"]["text_encoder_lr"] == 1e-5
    problem = _by_path(problems)["text_encoder_lr"]
    assert (problem.message, problem.severity) == (
        "several values; sd-scripts' networks use only the first",
        "warning",
    )


def test_an_empty_text_encoder_lr_list_is_left_out() -> None:
    opt = {"optimizer_type": "AdamW", "learning_rate": 1e-4, "text_encoder_lr": []}
    data, problems = job_dict_from_kohya(_config(optimizer_arguments=opt))
    assert "text_encoder_lr" not in data["optimizer"]
    assert problems == []


def test_use_8bit_adam_is_adamw8bit() -> None:
    opt = {"learning_rate": 1e-4, "use_8bit_adam": True}
    data, _ = job_dict_from_kohya(_config(optimizer_arguments=opt))
    assert data["optimizer"]["type"] == "AdamW8bit"
    assert "extra_args" not in data  # use_8bit_adam is accounted for, not passed through


def test_scheduler_args_are_read_as_literals() -> None:
    opt = {
        "optimizer_type": "AdamW",
        "lr_scheduler": "cosine_with_restarts",
        "lr_scheduler_args": ["T_max=100", "eta_min=1e-6", "mode=triangular"],
    }
    data, problems = job_dict_from_kohya(_config(optimizer_arguments=opt))
    assert data["scheduler"] == {
        "lr_scheduler": "cosine_with_restarts",
        "lr_scheduler_args": {"T_max": 100, "eta_min": 1e-6, "mode": "triangular"},
    }
    assert problems == []


# ----------------------------------------------------------------------------- dataset
def _folders(root: Path, *names: str) -> None:
    for name in names:
        (root / name).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(root / name / "a.png")


def test_folder_convention_with_reg_images_and_flat_dataset_keys(tmp_path: Path) -> None:
    _folders(tmp_path / "img", "10_oilpaint style", "notes")
    _folders(tmp_path / "reg", "1_style")
    data, problems = job_dict_from_kohya(
        _config(
            dataset_arguments={
                "train_data_dir": str(tmp_path / "img"),
                "reg_data_dir": str(tmp_path / "reg"),
                "shuffle_caption": True,
                "keep_tokens": 1,
                "enable_bucket": True,
                "min_bucket_reso": 256,
                "resolution": [512, 768],
                "train_batch_size": 2,
            }
        )
    )
    ds = data["dataset"]
    assert ds["subsets"] == [
        {"image_dir": str(tmp_path / "img" / "10_oilpaint style")},
        {"image_dir": str(tmp_path / "reg" / "1_style"), "is_reg": True},
    ]
    assert (ds["shuffle_caption"], ds["keep_tokens"]) == (True, 1)
    assert (ds["enable_bucket"], ds["min_bucket_reso"]) == (True, 256)
    assert (ds["resolution"], ds["batch_size"]) == ([512, 768], 2)
    skipped = _by_path(problems)[str(tmp_path / "img" / "notes")]
    assert skipped.format() == (
        f"{tmp_path / 'img' / 'notes'}: sd-scripts skips this folder (no <repeats>_ prefix)\n"
        "  hint: rename it, e.g. '10_notes'"
    )
    assert skipped.severity == "warning"


def test_a_missing_train_data_dir_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    data, problems = job_dict_from_kohya(
        _config(dataset_arguments={"train_data_dir": str(missing), "resolution": 512})
    )
    assert data["dataset"]["subsets"] == []
    assert data["dataset"]["resolution"] == 512
    assert _by_path(problems)["train_data_dir"].format() == (
        f"train_data_dir: folder not found: {missing}\n  hint: fix the path"
    )


def test_dataset_config_with_several_blocks_and_caption_fallbacks() -> None:
    dataset = {
        "general": {"caption_extension": ".txt", "flip_aug": True, "shuffle_tags": True},
        "datasets": [
            {"resolution": 512, "subsets": [{"image_dir": "/srv/kohya/data/img/2_a"}]},
            {"resolution": 768, "subsets": [{"image_dir": "/srv/kohya/data/img/3_b"}]},
        ],
    }
    config = _config(dataset_arguments={"keep_tokens": 2, "train_batch_size": 4})
    data, problems = job_dict_from_kohya(config, dataset)
    ds = data["dataset"]
    assert ds["datasets"] == [
        {"resolution": 512, "subsets": [{"image_dir": "/srv/kohya/data/img/2_a"}]},
        {"resolution": 768, "subsets": [{"image_dir": "/srv/kohya/data/img/3_b"}]},
    ]
    assert "subsets" not in ds
    # sd-scripts falls back to the --config_file caption options for every subset
    assert (ds["caption_extension"], ds["keep_tokens"], ds["batch_size"]) == (".txt", 2, 4)
    assert ds["flip_aug"] is True
    problem = _by_path(problems)["dataset general.shuffle_tags"]
    assert (problem.message, problem.severity) == ("not a dataset config key", "error")


# ----------------------------------------------------------------------------- training
def test_several_attention_switches_keep_the_first() -> None:
    data, problems = job_dict_from_kohya(
        _config(training_arguments={"max_train_epochs": 1, "sdpa": True, "xformers": True})
    )
    assert data["training"]["attention"] == "sdpa"
    problem = _by_path(problems)["sdpa/xformers"]
    assert problem.message == "several attention switches on (sdpa, xformers); kept sdpa"
    assert problem.severity == "warning"


# ----------------------------------------------------------------------------- family
@pytest.mark.parametrize(
    ("extra", "family"),
    [
        ({"cache_text_encoder_outputs": False}, "sdxl"),  # only SDXL's script has the key
        ({"v2": True}, "sd2"),
        ({"v2": False}, "sd15"),
        ({}, "sd15"),
    ],
)
def test_the_family_is_read_from_the_config(extra: dict[str, Any], family: str) -> None:
    config = _config()
    config["training_arguments"] = {**config["training_arguments"], **extra}
    data, _ = job_dict_from_kohya(config)
    assert data["model"]["family"] == family


def test_the_family_given_wins() -> None:
    data, _ = job_dict_from_kohya(_config(), family="sd2")
    assert data["model"]["family"] == "sd2"


# ----------------------------------------------------------------------------- files
def test_the_dataset_config_named_in_the_file_is_read(tmp_path: Path) -> None:
    """A real captured config pair: train_a_lora.toml names dataset.toml by path."""
    shutil.copy(CONFIGS / "dataset.toml", tmp_path / "dataset.toml")
    shutil.copy(CONFIGS / "prompts.txt", tmp_path / "prompts.txt")
    text = (CONFIGS / "train_a_lora.toml").read_text(encoding="utf-8")
    text = text.replace("/srv/kohya/configs/prompts.txt", str(tmp_path / "prompts.txt"))
    text += f'\n[extra]\ndataset_config = "{tmp_path / "dataset.toml"}"\n'
    cfg = tmp_path / "train_a_lora.toml"
    cfg.write_text(text, encoding="utf-8")
    result = import_kohya_config(cfg)
    job = result.job
    (subset,) = job.dataset.subsets
    assert subset.image_dir == "/srv/kohya/data/img/2_oilpaint style"  # type: ignore[union-attr]
    assert (job.dataset.resolution, job.dataset.batch_size) == (64, 2)
    (prompt,) = job.sampling.prompts
    assert (prompt.prompt, prompt.width, prompt.seed) == ("oilpaint style, a red circle", 64, 1)
    assert job.training.max_train_epochs == 2


def test_errors_stop_the_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        (CONFIGS / "train_a_lora.toml")
        .read_text(encoding="utf-8")
        .replace('network_module = "networks.lora"', 'network_module = "networks.oft"'),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        import_kohya_config(cfg)
    assert [p.path for p in info.value.problems] == ["network_module"]
    assert main(["import-config", str(cfg)]) == 2
    assert "'networks.oft' is not supported" in capsys.readouterr().err


def test_a_dataset_config_that_is_not_there_falls_back_to_the_folders(tmp_path: Path) -> None:
    _folders(tmp_path / "img", "2_oilpaint style")
    text = (CONFIGS / "train_a_lora.toml").read_text(encoding="utf-8")
    text = text.replace('sample_prompts = "/srv/kohya/configs/prompts.txt"\n', "")
    text = text.replace(
        "[dataset_arguments]\n",
        f'[dataset_arguments]\ndataset_config = "{tmp_path / "gone.toml"}"\n'
        f'train_data_dir = "{tmp_path / "img"}"\nresolution = "64,64"\n',
    )
    cfg = tmp_path / "train.toml"
    cfg.write_text(text, encoding="utf-8")
    job = import_kohya_config(cfg).job
    (subset,) = job.dataset.subsets
    assert subset.image_dir == str(tmp_path / "img" / "2_oilpaint style")  # type: ignore[union-attr]
    assert job.dataset.resolution == (64, 64)


def test_secrets_are_not_imported() -> None:
    data, problems = job_dict_from_kohya(
        _config(
            logging_arguments={"wandb_api_key": "abc123", "wandb_run_name": "oil"},
            huggingface_arguments={"huggingface_token": "hf_xyz"},
        )
    )
    found = _by_path(problems)
    assert found["wandb_api_key"].severity == "warning"
    assert found["wandb_api_key"].hint == "set WANDB_API_KEY in the environment the trainer runs in"
    assert (
        found["huggingface_token"].hint is not None
        and "HF_TOKEN" in found["huggingface_token"].hint
    )
    assert data["extra_args"] == {"wandb_run_name": "oil"}
    assert "abc123" not in str(data) and "hf_xyz" not in str(data)
