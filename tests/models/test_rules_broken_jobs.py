"""Cross-field rules and model validators not covered by test_rules.py.

Each rule gets a job that breaks it (the problem's key path, message and hint are checked) and a
valid neighbour that differs only in the offending value (no such problem).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest

from kohya_orchestrator.errors import ConfigError, Problem
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models import TrainingJob, job_warnings
from kohya_orchestrator.models.dataset import DreamBoothSubset, FineTuningSubset, _subset_kind
from kohya_orchestrator.models.optimizer import optimizer_tag

BASE: dict[str, Any] = {
    "model": {"pretrained_model_name_or_path": "/m/sd15.safetensors"},
    "dataset": {"subsets": [{"image_dir": "/d/img/20_zengxin oilpaint"}]},
    "training": {"max_train_epochs": 10, "save_every_n_epochs": 1},
}


def job(**sections: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(name), dict):
            data[name].update(values)
        else:
            data[name] = values
    return data


def errors(data: dict[str, Any]) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        validate_job(data)
    return list(info.value.problems)


def only(data: dict[str, Any], path: str) -> Problem:
    found = [p for p in errors(data) if p.path == path]
    assert len(found) == 1, found
    return found[0]


def warnings_at(data: dict[str, Any], path: str) -> list[Problem]:
    return [w for w in job_warnings(validate_job(data)) if w.path == path]


def test_base_job_is_valid_and_has_no_warnings() -> None:
    assert job_warnings(validate_job(job())) == []


# ----------------------------------------------------------------------------- errors


class TestSaving:
    def test_save_last_n_epochs_needs_save_every(self) -> None:
        data = job(training={"save_last_n_epochs": 3})
        del data["training"]["save_every_n_epochs"]
        p = only(data, "training.save_last_n_epochs")
        assert p.message == "save_last_n_epochs has no effect without save_every_n_epochs"
        assert p.hint == "set training.save_every_n_epochs"

    def test_save_last_n_epochs_with_save_every_ok(self) -> None:
        assert validate_job(job(training={"save_last_n_epochs": 3})).training.save_last_n_epochs


class TestPrecisionMore:
    def test_full_fp16_and_full_bf16(self) -> None:
        data = job(training={"full_fp16": True, "full_bf16": True, "mixed_precision": "bf16"})
        found = {(p.path, p.message) for p in errors(data)}
        assert ("training.full_bf16", "full_fp16 and full_bf16 are both on") in found
        # full_fp16 with bf16 is also wrong on its own
        assert (
            "training.full_fp16",
            'full_fp16 needs mixed_precision = "fp16" (it is "bf16")',
        ) in found

    def test_full_fp16_with_fp16_ok(self) -> None:
        data = job(training={"full_fp16": True, "mixed_precision": "fp16"})
        assert validate_job(data).training.full_fp16


class TestNoiseAndLoss:
    def test_adaptive_noise_scale_needs_noise_offset(self) -> None:
        p = only(job(training={"adaptive_noise_scale": 0.01}), "training.adaptive_noise_scale")
        assert p.message == "adaptive_noise_scale needs noise_offset"
        assert p.hint is not None and "noise_offset" in p.hint

    def test_adaptive_noise_scale_with_offset_ok(self) -> None:
        data = job(training={"adaptive_noise_scale": 0.01, "noise_offset": 0.05})
        assert validate_job(data).training.adaptive_noise_scale == 0.01

    def test_scale_v_pred_needs_v_model(self) -> None:
        data = job(training={"scale_v_pred_loss_like_noise_pred": True})
        p = only(data, "training.scale_v_pred_loss_like_noise_pred")
        assert p.message == "only applies to v-prediction models"

    def test_scale_v_pred_with_v_model_ok(self) -> None:
        data = job(
            model={"family": "sd2", "v_parameterization": True},
            training={"scale_v_pred_loss_like_noise_pred": True},
        )
        assert validate_job(data).training.scale_v_pred_loss_like_noise_pred

    def test_min_timestep_must_be_below_max(self) -> None:
        p = only(job(training={"min_timestep": 500, "max_timestep": 500}), "training.min_timestep")
        assert p.message == "min_timestep (500) must be below max_timestep (500)"

    def test_min_timestep_below_max_ok(self) -> None:
        t = validate_job(job(training={"min_timestep": 100, "max_timestep": 900})).training
        assert (t.min_timestep, t.max_timestep) == (100, 900)

    @pytest.mark.parametrize("log_with", ["tensorboard", "all"])
    def test_log_with_needs_logging_dir(self, log_with: str) -> None:
        p = only(job(training={"log_with": log_with}), "training.logging_dir")
        assert p.message == f'log_with = "{log_with}" needs a logging_dir'

    def test_log_with_and_logging_dir_ok(self) -> None:
        data = job(training={"log_with": "tensorboard", "logging_dir": "logs"})
        assert validate_job(data).training.logging_dir == "logs"

    @pytest.mark.parametrize("family", ["sd15", "sd2", "sdxl"])
    def test_no_half_vae_for_every_family(self, family: str) -> None:
        # train_network.py takes --no_half_vae for every family (issue 17 item 7).
        data = job(model={"family": family, "no_half_vae": True})
        assert validate_job(data).model.no_half_vae


class TestCachingMore:
    def test_te_cache_needs_unet_only(self) -> None:
        data = job(model={"family": "sdxl"}, training={"cache_text_encoder_outputs": True})
        p = only(data, "training.cache_text_encoder_outputs")
        assert p.message == "caching text-encoder outputs needs U-Net-only training"

    def test_te_cache_rejects_caption_dropout_in_a_subset(self) -> None:
        data = job(
            model={"family": "sdxl"},
            training={"cache_text_encoder_outputs": True},
            network={"network_train_unet_only": True},
        )
        data["dataset"]["subsets"][0]["caption_dropout_rate"] = 0.1
        p = only(data, "dataset.subsets[0].caption_dropout_rate")
        assert "text-encoder outputs cannot be cached" in p.message


class TestDatasetShapeMore:
    def test_subsets_and_datasets_both_set(self) -> None:
        data = job(dataset={"datasets": [{"subsets": [{"image_dir": "/d/5_other"}]}]})
        p = only(data, "dataset.datasets")
        assert p.message == "both dataset.subsets and dataset.datasets are set"

    def test_datasets_alone_ok(self) -> None:
        data = job(dataset={"subsets": [], "datasets": [{"subsets": [{"image_dir": "/d/5_o"}]}]})
        assert validate_job(data).dataset.datasets[0].subsets[0].effective_repeats == 5

    def test_dataset_num_repeats_covers_folders_without_prefix(self) -> None:
        data = job(dataset={"num_repeats": 4, "subsets": [{"image_dir": "/d/paintings"}]})
        j = validate_job(data)
        assert j.dataset.num_repeats == 4
        assert j.dataset.subsets[0].effective_repeats is None

    def test_block_num_repeats_covers_folders_without_prefix(self) -> None:
        data = job(
            dataset={
                "subsets": [],
                "datasets": [{"num_repeats": 4, "subsets": [{"image_dir": "/d/paintings"}]}],
            }
        )
        assert validate_job(data).dataset.datasets[0].num_repeats == 4

    def test_zero_repeats_folder_is_skipped_by_sd_scripts(self) -> None:
        data = job(dataset={"subsets": [{"image_dir": "/d/0_skipped"}]})
        p = only(data, "dataset.subsets[0].image_dir")
        assert p.message == "folder '0_skipped' means 0 repeats: sd-scripts skips it silently"

    def test_zero_repeats_folder_with_num_repeats_ok(self) -> None:
        data = job(dataset={"subsets": [{"image_dir": "/d/0_skipped", "num_repeats": 2}]})
        assert validate_job(data).dataset.subsets[0].effective_repeats == 2


class TestNetworkMore:
    def test_unet_only_and_te_only(self) -> None:
        data = job(
            network={"network_train_unet_only": True, "network_train_text_encoder_only": True}
        )
        p = only(data, "network.network_train_text_encoder_only")
        assert p.message == (
            "network_train_unet_only and network_train_text_encoder_only are both on"
        )

    def test_block_alphas_without_block_dims(self) -> None:
        p = only(job(network={"block_alphas": [1.0] * 25}), "network.block_alphas")
        assert p.message == "block_alphas needs block_dims with the same number of values"
        assert p.hint == "set block_dims and give both 25 values"

    def test_conv_block_alphas_length_mismatch_sdxl(self) -> None:
        data = job(
            model={"family": "sdxl"},
            network={"conv_block_dims": [4] * 23, "conv_block_alphas": [1.0] * 22},
        )
        p = only(data, "network.conv_block_alphas")
        assert p.hint == "set conv_block_dims and give both 23 values"

    def test_block_dims_and_alphas_ok(self) -> None:
        data = job(network={"block_dims": [4] * 25, "block_alphas": [2.0] * 25})
        n = validate_job(data).network
        assert len(n.block_dims) == 25 and len(n.block_alphas) == 25  # type: ignore[union-attr]

    def test_conv_alpha_without_conv_dim(self) -> None:
        p = only(job(network={"conv_alpha": 1.0}), "network.conv_alpha")
        assert (p.message, p.hint) == ("conv_alpha without conv_dim", "set network.conv_dim")

    def test_conv_alpha_with_conv_dim_ok(self) -> None:
        data = job(network={"conv_dim": 4, "conv_alpha": 1.0})
        assert validate_job(data).network.conv_alpha == 1.0  # type: ignore[union-attr]


class TestSchedulerMore:
    def test_adafactor_relative_step_without_warmup_ok(self) -> None:
        data = job(optimizer={"type": "AdaFactor"}, scheduler={"lr_scheduler": "cosine"})
        assert validate_job(data).optimizer.type == "AdaFactor"

    def test_adafactor_without_relative_step_takes_warmup(self) -> None:
        data = job(
            optimizer={"type": "AdaFactor", "relative_step": False},
            scheduler={"lr_scheduler": "cosine", "lr_warmup_steps": 10},
        )
        assert validate_job(data).scheduler.lr_warmup_steps == 10

    def test_warmup_stable_decay_needs_decay_steps(self) -> None:
        data = job(scheduler={"lr_scheduler": "warmup_stable_decay"})
        p = only(data, "scheduler.lr_decay_steps")
        assert p.message == "warmup_stable_decay needs lr_decay_steps"

    def test_warmup_stable_decay_with_decay_steps_ok(self) -> None:
        data = job(scheduler={"lr_scheduler": "warmup_stable_decay", "lr_decay_steps": "10%"})
        assert validate_job(data).scheduler.lr_decay_steps == pytest.approx(0.1)

    def test_piecewise_constant_needs_step_rules(self) -> None:
        data = job(scheduler={"lr_scheduler": "piecewise_constant"})
        p = only(data, "scheduler.lr_scheduler_args")
        assert p.message == "piecewise_constant needs step_rules"

    def test_piecewise_constant_with_step_rules_ok(self) -> None:
        data = job(
            scheduler={
                "lr_scheduler": "piecewise_constant",
                "lr_scheduler_args": {"step_rules": "1:10,0.1"},
            }
        )
        assert validate_job(data).scheduler.lr_scheduler_args == {"step_rules": "1:10,0.1"}

    def test_percent_that_is_not_a_number_is_rejected(self) -> None:
        data = job(scheduler={"lr_scheduler": "cosine", "lr_warmup_steps": "ten%"})
        assert any(p.path == "scheduler.lr_warmup_steps" for p in errors(data))


class TestExtraArgsMore:
    @pytest.mark.parametrize("key", ["network_module", "optimizer_type", "dataset_config"])
    def test_args_kohya_orchestrator_writes(self, key: str) -> None:
        p = only(job(extra_args={key: "x"}), f"extra_args.{key}")
        assert (p.message, p.hint) == (f"'{key}' is written by kohya_orchestrator", "remove it")

    def test_unknown_without_close_match(self) -> None:
        p = only(job(extra_args={"qqqqqqqq": 1}), "extra_args.qqqqqqqq")
        assert p.hint.startswith("check the name against train_network.py --help, or drop it;")
        assert "built-in list of sd-scripts 48d368fa" in p.message
        assert "--sd-scripts" in p.hint


class TestModelValidators:
    def test_resolution_side_below_64(self) -> None:
        p = only(job(dataset={"resolution": [512, 32]}), "dataset.resolution")
        assert "resolution side 32 is below 64 pixels" in p.message

    def test_unknown_shipped_lycoris_preset(self) -> None:
        data = job(network={"algo": "loha", "preset": "kohya_orchestrator:full-sd1"})
        p = only(data, "network.preset")
        assert "kohya_orchestrator ships no LyCORIS preset 'full-sd1'" in p.message
        assert "did you mean 'kohya_orchestrator:full-sd15'?" in p.message

    def test_unknown_shipped_lycoris_preset_without_close_match(self) -> None:
        data = job(network={"algo": "loha", "preset": "kohya_orchestrator:zzzzzz"})
        p = only(data, "network.preset")
        assert "did you mean" not in p.message
        assert "known: kohya_orchestrator:ia3-sd15, kohya_orchestrator:full-sd15" in p.message

    def test_shipped_lycoris_preset_ok(self) -> None:
        data = job(network={"algo": "loha", "preset": "kohya_orchestrator:full-sd15"})
        assert validate_job(data).network.preset == "kohya_orchestrator:full-sd15"  # type: ignore[union-attr]

    def test_custom_optimizer_needs_a_dotted_path(self) -> None:
        data = job(optimizer={"type": "pytorch_optimizer..CAME"})
        p = only(data, "optimizer.type")
        assert "is not a dotted class path" in p.message

    def test_custom_optimizer_ok(self) -> None:
        data = job(optimizer={"type": "pytorch_optimizer.CAME"})
        assert validate_job(data).optimizer.type == "pytorch_optimizer.CAME"

    def test_optimizer_tag_of_non_string_type_is_adamw(self) -> None:
        assert optimizer_tag({"type": 3}) == "AdamWOptimizer"
        assert optimizer_tag({}) == "AdamWOptimizer"
        assert optimizer_tag({"type": "lion"}) == "LionOptimizer"

    def test_subset_kind_of_model_instances(self) -> None:
        assert _subset_kind(FineTuningSubset(metadata_file="/d/m.json")) == "finetuning"
        assert _subset_kind(DreamBoothSubset(image_dir="/d/1_a")) == "dreambooth"
        assert _subset_kind({"kind": "finetuning", "image_dir": "/d"}) == "finetuning"

    def test_job_accepts_subset_instances(self) -> None:
        data = job()
        data["dataset"]["subsets"] = [FineTuningSubset(metadata_file="/d/m.json")]
        j = TrainingJob.model_validate(data)
        assert isinstance(j.dataset.subsets[0], FineTuningSubset)

    def test_display_name(self) -> None:
        assert validate_job(job(name="my run")).display_name == "my run"
        unnamed = validate_job(job(training={"output_name": "zengxin"}))
        assert unnamed.display_name == "zengxin"


# ----------------------------------------------------------------------------- warnings


class TestWarningsMore:
    def test_adaptive_without_split_lrs_is_quiet(self) -> None:
        assert warnings_at(job(optimizer={"type": "Prodigy"}), "optimizer.unet_lr") == []

    def test_adaptive_unet_lr_differing_from_learning_rate(self) -> None:
        data = job(optimizer={"type": "Prodigy", "learning_rate": 1.0, "unet_lr": 0.5})
        (w,) = warnings_at(data, "optimizer.unet_lr")
        assert w.severity == "warning"
        assert w.message.startswith("Prodigy uses only the first learning rate group")

    def test_adaptive_unet_lr_equal_to_learning_rate_is_quiet(self) -> None:
        data = job(optimizer={"type": "Prodigy", "learning_rate": 1.0, "unet_lr": 1.0})
        assert warnings_at(data, "optimizer.unet_lr") == []

    def test_loha_above_dim_32(self) -> None:
        (w,) = warnings_at(job(network={"algo": "loha", "network_dim": 64}), "network.network_dim")
        assert w.message == "LoHa above dim 32 is prone to NaN losses (LyCORIS guidance)"

    def test_loha_dim_32_is_quiet(self) -> None:
        assert (
            warnings_at(job(network={"algo": "loha", "network_dim": 32}), "network.network_dim")
            == []
        )

    def test_text_encoder_lr_with_unet_only(self) -> None:
        data = job(network={"network_train_unet_only": True}, optimizer={"text_encoder_lr": 1e-5})
        (w,) = warnings_at(data, "optimizer.text_encoder_lr")
        assert w.message == "text_encoder_lr is set but only the U-Net is trained"

    def test_text_encoder_lr_without_unet_only_is_quiet(self) -> None:
        data = job(optimizer={"text_encoder_lr": 1e-5})
        assert warnings_at(data, "optimizer.text_encoder_lr") == []

    def test_sd15_v_parameterization(self) -> None:
        (w,) = warnings_at(job(model={"v_parameterization": True}), "model.v_parameterization")
        assert w.message == "SD 1.5 models predict noise, not v"

    def test_sdxl_clip_skip(self) -> None:
        data = job(model={"family": "sdxl", "clip_skip": 2})
        (w,) = warnings_at(data, "model.clip_skip")
        assert (w.message, w.hint) == (
            "Stable Diffusion XL ignores clip_skip",
            "remove model.clip_skip",
        )

    def test_sd15_clip_skip_is_quiet(self) -> None:
        assert warnings_at(job(model={"clip_skip": 2}), "model.clip_skip") == []

    def test_saving_only_at_the_end(self) -> None:
        data = job(training={"save_every_n_epochs": 10})
        (w,) = warnings_at(data, "training.save_every_n_epochs")
        assert w.message.startswith("saving every 10 epochs in a 10-epoch run")

    def test_prompts_without_cadence(self) -> None:
        data = job(sampling={"prompts": [{"prompt": "a cat"}]})
        (w,) = warnings_at(data, "sampling.sample_every_n_epochs")
        assert w.message == "there are prompts but no sampling cadence, so no samples will be made"

    def test_prompts_with_cadence_is_quiet(self) -> None:
        data = job(sampling={"prompts": [{"prompt": "a cat"}], "sample_at_first": True})
        assert warnings_at(data, "sampling.sample_every_n_epochs") == []

    def test_samples_but_only_the_final_checkpoint(self) -> None:
        data = job(sampling={"prompts": [{"prompt": "a cat"}], "sample_every_n_epochs": 1})
        del data["training"]["save_every_n_epochs"]
        (w,) = warnings_at(data, "training.save_every_n_epochs")
        assert w.message == "samples are made but only the final checkpoint is saved"

    def test_samples_with_step_saving_is_quiet(self) -> None:
        data = job(sampling={"prompts": [{"prompt": "a cat"}], "sample_every_n_epochs": 1})
        del data["training"]["save_every_n_epochs"]
        data["training"]["save_every_n_steps"] = 100
        assert warnings_at(data, "training.save_every_n_epochs") == []

    def test_num_repeats_disagreeing_with_folder(self) -> None:
        data = job(dataset={"subsets": [{"image_dir": "/d/20_style", "num_repeats": 5}]})
        (w,) = warnings_at(data, "dataset.subsets[0].num_repeats")
        assert w.message == (
            "num_repeats = 5 but the folder says 20 ('20_style'); num_repeats wins"
        )

    def test_num_repeats_agreeing_with_folder_is_quiet(self) -> None:
        data = job(dataset={"subsets": [{"image_dir": "/d/20_style", "num_repeats": 20}]})
        assert warnings_at(data, "dataset.subsets[0].num_repeats") == []

    def test_num_repeats_with_plain_folder_is_quiet(self) -> None:
        data = job(dataset={"subsets": [{"image_dir": "/d/style", "num_repeats": 5}]})
        assert warnings_at(data, "dataset.subsets[0].num_repeats") == []

    def test_finetuning_subsets_are_skipped(self) -> None:
        data = job(dataset={"subsets": [{"metadata_file": "/d/meta.json", "num_repeats": 3}]})
        assert job_warnings(validate_job(data)) == []

    def test_explicit_class_tokens_without_num_repeats_is_quiet(self) -> None:
        data = job(dataset={"subsets": [{"image_dir": "/d/20_style", "class_tokens": "sks"}]})
        j = validate_job(data)
        assert j.dataset.subsets[0].effective_repeats == 20
        assert job_warnings(j) == []


@pytest.mark.skipif(os.sep != "/", reason="a backslash is a separator on Windows")
def test_a_backslash_in_a_folder_name_keeps_its_repeats_on_posix() -> None:
    from kohya_orchestrator.models.dataset import DreamBoothSubset

    # sd-scripts takes os.path.basename: on Linux '20_a\b' is one name with 20 repeats
    posix = DreamBoothSubset(image_dir="/data/img/20_a\\b")
    assert (posix.folder_name, posix.effective_repeats) == ("20_a\\b", 20)
    assert posix.effective_class_tokens == "a\\b"
    # a path written on Windows is read as one wherever the job is checked
    for written in ("D:\\datasets\\20_oil", "C:/datasets/20_oil", "\\\\nas\\share\\20_oil"):
        win = DreamBoothSubset(image_dir=written)
        assert (win.folder_name, win.effective_repeats) == ("20_oil", 20), written
