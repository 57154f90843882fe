"""kohya_ss GUI files: value coercion (numbers and booleans as the GUI writes them), the less
common form fields, and every error and warning the importer reports.

The GUI objects are written from the GUI's preset JSON format (docs/presets.md, "Importing kohya_ss
GUI presets"): form field names as keys, numbers as numbers or strings, options as one
space-separated string.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kohya_orchestrator.errors import ConfigError, Problem
from kohya_orchestrator.jobs.import_gui import gui_to_job_dict, import_gui_preset

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"


def _notes(problems: list[Problem]) -> dict[str, str]:
    return {p.path: p.message for p in problems}


def _errors(gui: dict[str, Any]) -> dict[str, Problem]:
    with pytest.raises(ConfigError) as info:
        gui_to_job_dict(gui)
    assert info.value.source == "the kohya_ss GUI file"
    return {p.path: p for p in info.value.problems if p.severity == "error"}


# ----------------------------------------------------------------------------- value coercion
class TestValues:
    def test_numbers_as_the_gui_writes_them(self) -> None:
        data, _ = gui_to_job_dict(
            {
                "train_batch_size": "2.0",  # a whole number written as a float string
                "min_snr_gamma": False,  # an unchecked box where a number goes: off
                "seed": True,  # a checked box: 1
                "learning_rate": " 0.0001 ",
                "vae_batch_size": " ",
            }
        )
        assert data["dataset"]["batch_size"] == 2
        assert "min_snr_gamma" not in data["training"]
        assert data["training"]["seed"] == 1
        assert data["optimizer"]["learning_rate"] == 0.0001
        assert "vae_batch_size" not in data["training"]

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ([2], "expected a number, got [2]"),
            (2.5, "expected a whole number, got 2.5"),
            ("2.5", "expected a whole number, got '2.5'"),
        ],
    )
    def test_a_batch_size_that_is_not_a_whole_number(self, value: Any, message: str) -> None:
        problem = _errors({"train_batch_size": value})["train_batch_size"]
        assert (problem.message, problem.hint) == (message, "fix the value in the GUI file")

    @pytest.mark.parametrize(
        ("value", "expected"), [("True", True), (" false ", None), (1, True), (0, None), ("", None)]
    )
    def test_booleans_as_the_gui_writes_them(self, value: Any, expected: bool | None) -> None:
        data, _ = gui_to_job_dict({"flip_aug": value, "epoch": 1})
        assert data.get("dataset", {}).get("flip_aug") is expected

    def test_flags_keep_false(self) -> None:
        data, _ = gui_to_job_dict({"shuffle_caption": "False", "enable_bucket": 0, "epoch": 1})
        assert data["dataset"]["shuffle_caption"] is False
        assert data["dataset"]["enable_bucket"] is False

    def test_a_boolean_that_is_neither(self) -> None:
        problem = _errors({"flip_aug": "yes"})["flip_aug"]
        assert problem.message == "expected true or false, got 'yes'"

    def test_an_error_in_a_file_names_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"train_batch_size": "two", "epoch": 1}), encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            import_gui_preset(path)
        assert info.value.source == str(path)
        assert str(info.value).startswith(f"3 problems in {path}:\n- train_batch_size: ")
        errors = [p.path for p in info.value.problems if p.severity == "error"]
        assert errors == ["train_batch_size"]


# ----------------------------------------------------------------------------- model
class TestModel:
    def test_sd15_keeps_a_clip_skip(self) -> None:
        data, _ = gui_to_job_dict({"clip_skip": "2", "epoch": 1})
        assert data["model"] == {"pretrained_model_name_or_path": SD15, "clip_skip": 2}

    def test_sd2_has_no_default_model(self) -> None:
        data, problems = gui_to_job_dict({"v2": True, "v_parameterization": True, "epoch": 1})
        assert data["model"] == {"family": "sd2", "v_parameterization": True}
        assert "pretrained_model_name_or_path" not in _notes(problems)

    def test_sdxl_text_encoder_output_cache(self) -> None:
        data, _ = gui_to_job_dict(
            {
                "sdxl": True,
                "sdxl_no_half_vae": False,
                "sdxl_cache_text_encoder_outputs": True,
                "epoch": 1,
            }
        )
        assert "no_half_vae" not in data["model"]
        assert data["training"]["cache_text_encoder_outputs"] is True

    def test_the_sdxl_panel_counts_only_for_sdxl(self) -> None:
        data, _ = gui_to_job_dict(
            {"sdxl_no_half_vae": True, "sdxl_cache_text_encoder_outputs": True, "epoch": 1}
        )
        assert data["model"] == {"pretrained_model_name_or_path": SD15}
        assert "cache_text_encoder_outputs" not in data["training"]

    def test_extra_sd_scripts_arguments(self) -> None:
        data, _ = gui_to_job_dict(
            {"masked_loss": True, "save_last_n_epochs_state": "3", "dim_from_weights": False}
        )
        assert data["extra_args"] == {"masked_loss": True, "save_last_n_epochs_state": 3}


# ----------------------------------------------------------------------------- dataset / attention
class TestResolutionAndAttention:
    @pytest.mark.parametrize("text", ["512,abc", "512,512,512"])
    def test_a_resolution_that_is_not_one_or_two_sides(self, text: str) -> None:
        problem = _errors({"max_resolution": text})["max_resolution"]
        assert problem.format() == (
            f"max_resolution: expected '512,512', got '{text}'\n  hint: fix the value"
        )

    def test_one_side(self) -> None:
        data, _ = gui_to_job_dict({"max_resolution": "1024", "epoch": 1})
        assert data["dataset"]["resolution"] == 1024

    def test_mem_eff_attn_when_xformers_is_off(self) -> None:
        data, problems = gui_to_job_dict({"xformers": False, "mem_eff_attn": True, "epoch": 1})
        assert data["training"]["attention"] == "mem_eff_attn"
        assert "xformers" not in _notes(problems)

    def test_no_attention_kernel_is_reported(self) -> None:
        data, problems = gui_to_job_dict({"xformers": "none", "mem_eff_attn": False, "epoch": 1})
        assert data["training"]["attention"] == "none"
        assert _notes(problems)["xformers"] == (
            "no attention kernel chosen (xformers off, no sdpa): imported as attention = 'none', "
            "which is slow and memory-hungry on a GPU"
        )


# ----------------------------------------------------------------------------- length / schedule
class TestLengthAndSchedule:
    def test_epochs_win_over_steps(self) -> None:
        data, problems = gui_to_job_dict(
            {"max_train_epochs": "10", "max_train_steps": "1600", "epoch": 1}
        )
        assert data["training"]["max_train_epochs"] == 10
        assert "max_train_steps" not in data["training"]
        assert _notes(problems)["max_train_steps"] == (
            "both max_train_epochs and max_train_steps are set; sd-scripts uses the epochs, so "
            "the steps were not imported"
        )
        assert "epoch" not in _notes(problems)

    def test_epochs_alone(self) -> None:
        data, problems = gui_to_job_dict({"max_train_epochs": 5, "max_train_steps": 0})
        assert data["training"] == {"max_train_epochs": 5}
        assert not {"epoch", "max_train_steps"} & set(_notes(problems))

    def test_warmup_steps_win_over_the_percentage(self) -> None:
        data, _ = gui_to_job_dict(
            {"lr_scheduler": "cosine", "lr_warmup_steps": 50, "lr_warmup": 10, "epoch": 1}
        )
        assert data["scheduler"] == {"lr_scheduler": "cosine", "lr_warmup_steps": 50}

    def test_a_warmup_of_all_the_steps_is_an_error(self) -> None:
        problem = _errors({"lr_scheduler": "cosine", "lr_warmup": 100})["lr_warmup"]
        assert (problem.message, problem.hint) == ("100.0% of the steps", "use a value below 100")

    def test_scheduler_args(self) -> None:
        data, _ = gui_to_job_dict(
            {"lr_scheduler": "cosine", "lr_scheduler_args": "T_max=100 eta_min=1e-6", "epoch": 1}
        )
        assert data["scheduler"]["lr_scheduler_args"] == {"T_max": 100, "eta_min": 1e-6}

    def test_a_scheduler_arg_without_equals(self) -> None:
        problem = _errors({"lr_scheduler_args": "T_max=100 warmup"})["lr_scheduler_args"]
        assert (problem.message, problem.hint) == ("'warmup' has no '='", "write key=value")


# ----------------------------------------------------------------------------- optimizer / LRs
class TestOptimizer:
    def test_optimizer_args_without_a_name_keep_the_forms_type(self) -> None:
        data, _ = gui_to_job_dict({"optimizer_args": "weight_decay=0.05", "epoch": 1})
        assert data["optimizer"] == {"weight_decay": 0.05}

    def test_an_optimizer_arg_without_equals_is_an_error(self) -> None:
        errors = _errors({"optimizer": "AdamW", "optimizer_args": "decouple weight_decay=0.1"})
        (problem,) = errors.values()
        assert problem.message == "'decouple' has no '=': sd-scripts would fail on it"
        assert problem.hint == "write key=value"

    def test_an_optimizer_arg_error_names_the_key_once(self) -> None:
        errors = _errors({"optimizer": "AdamW", "optimizer_args": "decouple weight_decay=0.1"})
        assert list(errors) == ["optimizer_args"]

    def test_a_text_encoder_lr_that_is_not_a_number(self) -> None:
        problem = _errors({"text_encoder_lr": "fast"})["text_encoder_lr"]
        assert (problem.message, problem.hint) == ("expected a number, got 'fast'", "fix the value")

    def test_an_empty_text_encoder_lr_list(self) -> None:
        data, _ = gui_to_job_dict({"text_encoder_lr": [], "unet_lr": 0.0001, "epoch": 1})
        assert data["optimizer"] == {"unet_lr": 0.0001}

    def test_the_unet_only_checkbox_wins_over_the_learning_rates(self) -> None:
        data, _ = gui_to_job_dict(
            {
                "network_train_unet_only": True,
                "network_train_text_encoder_only": False,
                "unet_lr": 0.0001,
                "text_encoder_lr": 0.00005,
                "epoch": 1,
            }
        )
        assert data["network"]["network_train_unet_only"] is True
        assert "network_train_text_encoder_only" not in data["network"]
        assert data["optimizer"] == {"unet_lr": 0.0001}

    def test_a_zero_unet_lr_trains_the_text_encoder_only(self) -> None:
        data, _ = gui_to_job_dict({"unet_lr": 0, "text_encoder_lr": "0.00005", "epoch": 1})
        assert data["network"]["network_train_text_encoder_only"] is True
        assert data["optimizer"] == {"text_encoder_lr": 0.00005}


# ----------------------------------------------------------------------------- noise / loss
class TestNoiseAndLoss:
    def test_huber_loss_and_its_options(self) -> None:
        data, _ = gui_to_job_dict(
            {"loss_type": "huber", "huber_c": "0.1", "huber_schedule": "snr", "epoch": 1}
        )
        assert data["training"]["loss_type"] == "huber"
        assert data["extra_args"] == {"huber_c": 0.1, "huber_schedule": "snr"}

    def test_another_loss_without_options_adds_no_extra_args(self) -> None:
        data, _ = gui_to_job_dict({"loss_type": "smooth_l1", "epoch": 1})
        assert data["training"]["loss_type"] == "smooth_l1"
        assert "extra_args" not in data

    def test_the_l2_default_and_gui_defaults_are_left_out(self) -> None:
        data, _ = gui_to_job_dict(
            {
                "loss_type": "l2",
                "prior_loss_weight": 1.0,
                "max_timestep": 1000,
                "log_with": "",
                "epoch": 1,
            }
        )
        assert data["training"] == {"max_train_epochs": 1}

    def test_non_default_values_are_kept(self) -> None:
        data, _ = gui_to_job_dict(
            {"prior_loss_weight": "0.5", "max_timestep": 900, "log_with": "wandb", "epoch": 1}
        )
        t = data["training"]
        assert (t["prior_loss_weight"], t["max_timestep"], t["log_with"]) == (0.5, 900, "wandb")

    def test_stop_text_encoder_training_is_not_imported(self) -> None:
        data, problems = gui_to_job_dict({"stop_text_encoder_training": 50, "epoch": 1})
        assert "stop_text_encoder_training" not in str(data)
        assert _notes(problems)["stop_text_encoder_training"] == (
            "50%: train_network.py has no such option (sd-scripts ignores it); not imported"
        )


# ----------------------------------------------------------------------------- network
class TestNetwork:
    def test_lokr_with_decompose_both_checked(self) -> None:
        data, problems = gui_to_job_dict(
            {"LoRA_type": "LyCORIS/LoKr", "decompose_both": True, "factor": 8, "epoch": 1}
        )
        assert data["network"]["decompose_both"] is True and data["network"]["factor"] == 8
        assert "decompose_both" not in _notes(problems)

    def test_rank_dropout_scale_is_not_imported(self) -> None:
        data, problems = gui_to_job_dict(
            {"LoRA_type": "LyCORIS/LoCon", "rank_dropout_scale": True, "epoch": 1}
        )
        assert "rank_dropout_scale" not in data["network"]
        assert _notes(problems)["rank_dropout_scale"] == (
            "LyCORIS' kohya entry point does not read rank_dropout_scale; not imported"
        )

    def test_a_lycoris_option_on_standard_lora_is_reported(self) -> None:
        data, problems = gui_to_job_dict({"LoRA_type": "Standard", "use_scalar": True, "epoch": 1})
        assert "use_scalar" not in data["network"]
        assert _notes(problems)["use_scalar"] == "algo lora does not use 'use_scalar'; not imported"

    def test_block_dims_that_are_not_numbers(self) -> None:
        problem = _errors({"LoRA_type": "Standard", "block_dims": "2,4,x"})["block_dims"]
        assert problem.message == "expected comma-separated numbers, got '2,4,x'"

    def test_network_args(self) -> None:
        data, _ = gui_to_job_dict(
            {
                "LoRA_type": "LyCORIS/LoCon",
                "network_args": 'algo=locon preset=attn-only use_scalar=True "rank_dropout=0.1"',
                "epoch": 1,
            }
        )
        net = data["network"]
        assert net["algo"] == "locon"
        assert (net["preset"], net["use_scalar"], net["rank_dropout"]) == ("attn-only", True, 0.1)

    def test_a_network_arg_without_equals(self) -> None:
        problem = _errors({"LoRA_type": "LyCORIS/LoCon", "network_args": "algo=locon dora"})[
            "network_args"
        ]
        assert (problem.message, problem.hint) == ("'dora' has no '='", "write key=value")


# ----------------------------------------------------------------------------- data / prompts
class TestDataAndPrompts:
    def test_a_dataset_config_is_not_imported(self) -> None:
        data, problems = gui_to_job_dict({"dataset_config": "/data/ds.toml", "epoch": 1})
        assert "subsets" not in data.get("dataset", {})
        assert _notes(problems)["dataset_config"] == "the dataset TOML it names is not imported"

    def test_a_missing_image_folder(self, tmp_path: Path) -> None:
        missing = tmp_path / "img"
        data, problems = gui_to_job_dict({"train_data_dir": str(missing), "epoch": 1})
        assert "dataset" not in data
        (problem,) = [p for p in problems if p.path == "train_data_dir"]
        assert problem.format() == (
            f"train_data_dir: folder not found: {missing} (no subsets imported from it)\n"
            "  hint: give the images with --data DIR when running the preset"
        )
        assert problem.severity == "warning"

    def test_prompt_comments_and_blank_lines_are_skipped(self) -> None:
        data, _ = gui_to_job_dict(
            {
                "sample_prompts": "# my prompts\n\na harbour --w 512 --h 768\n",
                "sample_every_n_epochs": 1,
                "epoch": 1,
            }
        )
        assert data["sampling"] == {
            "sample_every_n_epochs": 1,
            "prompts": [{"prompt": "a harbour", "width": 512, "height": 768}],
        }

    def test_additional_parameters_that_cannot_be_split(self) -> None:
        problem = _errors({"additional_parameters": '--caption_prefix "oil'})[
            "additional_parameters"
        ]
        assert problem.message == "cannot split it: No closing quotation"

    def test_a_bare_word_in_additional_parameters(self) -> None:
        data, problems = gui_to_job_dict(
            {"additional_parameters": "fast --caption_prefix 'oil, '", "epoch": 1}
        )
        assert data["dataset"]["caption_prefix"] == "oil, "
        assert _notes(problems)["additional_parameters"] == "'fast' is not an option; not imported"
