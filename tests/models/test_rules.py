"""Cross-field rules: one class per rule, a failing and a passing case each."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models import TrainingJob, job_warnings

BASE: dict[str, Any] = {
    "model": {"pretrained_model_name_or_path": "/m/sd15.safetensors"},
    "dataset": {"subsets": [{"image_dir": "/d/img/20_zengxin oilpaint"}]},
    "training": {"max_train_epochs": 10},
}


def job(**sections: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(name), dict):
            data[name].update(values)
        else:
            data[name] = values
    return data


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        validate_job(data)
    out: dict[str, str] = {}
    for p in info.value.problems:
        out[p.path] = f"{out[p.path]} | {p.message}" if p.path in out else p.message
    return out


def test_base_job_is_valid() -> None:
    j = validate_job(job())
    assert isinstance(j, TrainingJob)
    assert j.dataset.subsets[0].effective_repeats == 20


class TestLength:
    def test_neither(self) -> None:
        data = job(training={"max_train_epochs": None})
        del data["training"]["max_train_epochs"]
        assert "1600 steps" in problems(data)["training.max_train_epochs"]

    def test_both(self) -> None:
        msg = problems(job(training={"max_train_steps": 100}))["training.max_train_steps"]
        assert (
            msg
            == "both max_train_epochs and max_train_steps are set; sd-scripts silently uses epochs"
        )

    def test_steps_only(self) -> None:
        data = job(training={"max_train_steps": 100})
        del data["training"]["max_train_epochs"]
        assert validate_job(data).training.max_train_steps == 100


class TestSampling:
    def test_epochs_and_steps(self) -> None:
        s = {"sample_every_n_epochs": 1, "sample_every_n_steps": 10, "prompts": [{"prompt": "x"}]}
        assert "sampling.sample_every_n_steps" in problems(job(sampling=s))

    def test_cadence_without_prompts(self) -> None:
        assert "sampling.prompts" in problems(job(sampling={"sample_every_n_epochs": 1}))

    def test_ok(self) -> None:
        s = {"sample_every_n_epochs": 1, "prompts": [{"prompt": "x"}]}
        assert validate_job(job(sampling=s)).sampling.sample_every_n_epochs == 1

    def test_prompt_with_option_separator(self) -> None:
        s = {"sample_every_n_epochs": 1, "prompts": [{"prompt": "a --w 3"}]}
        assert "' --'" in problems(job(sampling=s))["sampling.prompts[0].prompt"]

    def test_prompt_multiline(self) -> None:
        s = {"sample_every_n_epochs": 1, "prompts": [{"prompt": "a\nb"}]}
        assert "single line" in problems(job(sampling=s))["sampling.prompts[0].prompt"]


class TestCaching:
    def test_color_aug_with_cache(self) -> None:
        data = job()
        data["dataset"]["subsets"][0]["color_aug"] = True
        assert "cannot be cached" in problems(data)["dataset.subsets[0].color_aug"]

    def test_random_crop_general(self) -> None:
        assert "dataset.random_crop" in problems(job(dataset={"random_crop": True}))

    def test_random_crop_without_cache(self) -> None:
        data = job(dataset={"random_crop": True}, training={"cache_latents": False})
        assert validate_job(data).dataset.random_crop is True

    def test_te_cache_needs_sdxl_unet_only_no_shuffle(self) -> None:
        data = job(training={"cache_text_encoder_outputs": True}, dataset={"shuffle_caption": True})
        found = problems(data)
        assert "Stable Diffusion 1.x cannot cache" in found["training.cache_text_encoder_outputs"]
        assert "dataset.shuffle_caption" in found

    def test_te_cache_ok(self) -> None:
        data = job(
            model={"family": "sdxl"},
            training={"cache_text_encoder_outputs": True},
            network={"network_train_unet_only": True},
        )
        assert validate_job(data).training.cache_text_encoder_outputs


class TestPrecision:
    def test_full_fp16_needs_fp16(self) -> None:
        msg = problems(job(training={"full_fp16": True, "mixed_precision": "bf16"}))
        assert (
            msg["training.full_fp16"] == 'full_fp16 needs mixed_precision = "fp16" (it is "bf16")'
        )

    def test_full_bf16_needs_bf16(self) -> None:
        assert "training.full_bf16" in problems(job(training={"full_bf16": True}))

    def test_fp8_needs_mixed(self) -> None:
        assert "training.fp8_base" in problems(
            job(training={"fp8_base": True, "mixed_precision": "no"})
        )

    def test_ok(self) -> None:
        assert validate_job(job(training={"full_bf16": True, "mixed_precision": "bf16"}))


class TestOptimizerRules:
    def test_prodigy_low_lr(self) -> None:
        msg = problems(job(optimizer={"type": "Prodigy", "learning_rate": 1e-4}))
        assert "around 1.0" in msg["optimizer.learning_rate"]

    def test_loraplus_with_prodigy(self) -> None:
        data = job(optimizer={"type": "Prodigy"}, network={"loraplus_lr_ratio": 16})
        assert "network.loraplus_lr_ratio" in problems(data)

    def test_constant_with_warmup(self) -> None:
        assert "scheduler.lr_warmup_steps" in problems(job(scheduler={"lr_warmup_steps": 10}))

    def test_adafactor_relative_step_warmup(self) -> None:
        data = job(
            optimizer={"type": "AdaFactor"},
            scheduler={"lr_scheduler": "cosine", "lr_warmup_steps": 10},
        )
        assert "Adafactor" in problems(data)["scheduler.lr_warmup_steps"]

    def test_float_warmup_above_one(self) -> None:
        data = job(scheduler={"lr_scheduler": "cosine", "lr_warmup_steps": 100.0})
        assert "write 100 for steps" in problems(data)["scheduler.lr_warmup_steps"]

    def test_percent_warmup(self) -> None:
        data = job(scheduler={"lr_scheduler": "cosine", "lr_warmup_steps": "10%"})
        assert validate_job(data).scheduler.lr_warmup_steps == pytest.approx(0.1)

    def test_min_lr_ratio_needed(self) -> None:
        assert "scheduler.lr_scheduler_min_lr_ratio" in problems(
            job(scheduler={"lr_scheduler": "cosine_with_min_lr"})
        )

    def test_prodigy_case_insensitive_ok(self) -> None:
        assert validate_job(job(optimizer={"type": "prodigy"})).optimizer.type == "Prodigy"


class TestBuckets:
    def test_sd15_needs_64(self) -> None:
        assert (
            "multiple of 64"
            in problems(job(dataset={"bucket_reso_steps": 32}))["dataset.bucket_reso_steps"]
        )

    def test_sdxl_32_ok(self) -> None:
        assert validate_job(job(model={"family": "sdxl"}, dataset={"bucket_reso_steps": 32}))

    def test_min_above_resolution(self) -> None:
        assert "dataset.min_bucket_reso" in problems(job(dataset={"min_bucket_reso": 768}))

    def test_max_below_resolution(self) -> None:
        assert "dataset.max_bucket_reso" in problems(job(dataset={"max_bucket_reso": 256}))


class TestDatasetShape:
    def test_no_subsets(self) -> None:
        assert "dataset.subsets" in problems(job(dataset={"subsets": []}))

    def test_folder_without_prefix(self) -> None:
        msg = problems(job(dataset={"subsets": [{"image_dir": "/d/paintings"}]}))
        assert (
            msg["dataset.subsets[0].num_repeats"]
            == "no repeat count: 'paintings' has no '<repeats>_' prefix"
        )

    def test_folder_without_prefix_with_repeats(self) -> None:
        j = validate_job(
            job(dataset={"subsets": [{"image_dir": "/d/paintings", "num_repeats": 5}]})
        )
        assert j.dataset.subsets[0].effective_repeats == 5

    def test_only_reg(self) -> None:
        subsets = [{"image_dir": "/d/1_reg", "is_reg": True}]
        assert "dataset.subsets" in problems(job(dataset={"subsets": subsets}))

    def test_mixed_kinds(self) -> None:
        subsets = [{"image_dir": "/d/1_a"}, {"metadata_file": "/d/m.json"}]
        assert "mixed" in problems(job(dataset={"subsets": subsets}))["dataset.subsets"]

    def test_negative_repeats(self) -> None:
        subsets = [{"image_dir": "/d/x", "num_repeats": -3}]
        assert (
            problems(job(dataset={"subsets": subsets}))["dataset.subsets[0].num_repeats"]
            == "must be >= 1 (got -3)"
        )

    def test_unicode_folder(self) -> None:
        j = validate_job(job(dataset={"subsets": [{"image_dir": "/d/30_曾鑫 油画"}]}))
        assert (
            j.dataset.subsets[0].effective_repeats,
            j.dataset.subsets[0].effective_class_tokens,
        ) == (30, "曾鑫 油画")


class TestNetworkRules:
    def test_block_dims_length(self) -> None:
        assert "25 blocks" in problems(job(network={"block_dims": [4, 4]}))["network.block_dims"]

    def test_dylora_conv(self) -> None:
        assert "network.conv_dim" in problems(
            job(network={"algo": "dylora", "network_dim": 16, "conv_dim": 8})
        )

    def test_dora_bypass(self) -> None:
        assert "network.bypass_mode" in problems(
            job(network={"algo": "loha", "dora_wd": True, "bypass_mode": True})
        )

    def test_ia3_has_no_dim(self) -> None:
        found = problems(job(network={"algo": "ia3", "network_dim": 4}))
        assert found["network.network_dim"] == "algo 'ia3' does not use 'network_dim'"


class TestExtraArgs:
    def test_unknown(self) -> None:
        msg = problems(job(extra_args={"huber_cc": 0.1}))
        assert "silently" in msg["extra_args.huber_cc"]

    def test_modelled(self) -> None:
        assert "set it as training.seed" in str(
            _hint(job(extra_args={"seed": 1}), "extra_args.seed")
        )

    def test_known(self) -> None:
        assert validate_job(job(extra_args={"huber_c": 0.2})).extra_args == {"huber_c": 0.2}

    @pytest.mark.parametrize(
        ("key", "variable"), [("wandb_api_key", "WANDB_API_KEY"), ("huggingface_token", "HF_TOKEN")]
    )
    def test_secrets_stay_out_of_job_files(self, key: str, variable: str) -> None:
        with pytest.raises(ConfigError) as info:
            validate_job(job(extra_args={key: "hf_abc123"}))
        (p,) = [p for p in info.value.problems if p.path == f"extra_args.{key}"]
        assert p.message.startswith("a secret in a job file would be written in clear")
        assert p.hint is not None and f"set {variable} in the environment" in p.hint
        assert "hf_abc123" not in str(info.value)  # the error does not repeat the secret


def _hint(data: dict[str, Any], path: str) -> str | None:
    with pytest.raises(ConfigError) as info:
        validate_job(data)
    return next(p.hint for p in info.value.problems if p.path == path)


class TestWarnings:
    def test_prodigy_split_lrs(self) -> None:
        j = validate_job(job(optimizer={"type": "Prodigy", "unet_lr": 1.0, "text_encoder_lr": 0.5}))
        assert any(w.path == "optimizer.unet_lr" for w in job_warnings(j))

    def test_conv_dim_with_attn_mlp(self) -> None:
        j = validate_job(job(network={"algo": "loha", "conv_dim": 4}))
        assert any(w.path == "network.conv_dim" for w in job_warnings(j))

    def test_ia3_default_preset(self) -> None:
        j = validate_job(job(network={"algo": "ia3", "preset": "ia3"}))
        assert any(w.path == "network.preset" for w in job_warnings(j))
        shipped = validate_job(job(network={"algo": "ia3"}))  # defaults to the shipped preset file
        assert not any(w.path == "network.preset" for w in job_warnings(shipped))

    def test_clean_job_has_no_warnings(self) -> None:
        assert job_warnings(validate_job(job(training={"save_every_n_epochs": 1}))) == []
