"""kohya_ss GUI presets and saved configs (JSON) imported as presets: key mapping, the GUI's traps
fixed and reported, unmapped keys reported, and the result runs as `preset FILE.toml`.

The GUI files here are written for these tests from the GUI's preset JSON format (form field
names as keys; the mapping is in docs/presets.md, "Importing kohya_ss GUI presets"), not copied
from the GUI.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.import_gui import gui_to_job_dict, import_gui_preset
from kohya_orchestrator.jobs.layers import Layer
from kohya_orchestrator.jobs.presets import compose_preset
from kohya_orchestrator.render.toml import RenderPaths, render_job

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# The 20 keys every GUI preset has, plus the LoKr form fields, as the GUI saves them: numbers
# as numbers or strings, the warmup in percent, optimizer_args as one string.
LOKR: dict[str, Any] = {
    "LoRA_type": "LyCORIS/LoKr",
    "LyCORIS_preset": "attn-mlp",
    "caption_dropout_rate": 0,
    "gradient_accumulation_steps": 1.0,
    "gradient_checkpointing": True,
    "keep_tokens": "1",
    "learning_rate": 1.0,
    "lr_scheduler": "cosine",
    "lr_warmup": 10,
    "min_snr_gamma": 5,
    "network_alpha": 1,
    "network_dim": 100000,
    "noise_offset": 0,
    "optimizer": "Prodigy",
    "optimizer_args": "decouple=True weight_decay=0.01 d_coef=2 use_bias_correction=True "
    "safeguard_warmup=True betas=0.9,0.99",
    "seed": 0,
    "shuffle_caption": True,
    "text_encoder_lr": 1.0,
    "train_batch_size": 2,
    "training_comment": "trigger: zengxin oilpaint",
    "unet_lr": 1.0,
    "clip_skip": "1",
    "conv_alpha": 1,
    "conv_dim": 1,
    "decompose_both": False,
    "epoch": 12,
    "factor": -1,
    "max_resolution": "512,512",
    "mixed_precision": "bf16",
    "use_cp": True,
    "use_tucker": False,
    "xformers": "sdpa",
    "train_norm": False,
    "rank_dropout": 0,
    "module_dropout": 0,
    "rank_dropout_scale": False,
    "bypass_mode": False,
    "dora_wd": False,
    "use_scalar": False,
    "max_grad_norm": 1,
    "model_list": "custom",
    "num_cpu_threads_per_process": 2,
}
DATA = {
    "model": {"pretrained_model_name_or_path": "/models/sd15.safetensors"},
    "dataset": {"subsets": [{"image_dir": "/data/img/20_zengxin oilpaint"}]},
}


def _write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def _notes(problems: list[Any]) -> dict[str, str]:
    return {p.path: p.message for p in problems}


def _network_args(data: dict[str, Any]) -> list[str]:
    from kohya_orchestrator.jobs.layers import compose_layers
    from kohya_orchestrator.jobs.loading import validate_job

    job = validate_job(compose_layers([Layer("gui", data), Layer("data", DATA)]).data)
    files = render_job(job, RenderPaths("/run/dataset.toml", "/run/sample_prompts.txt"))
    return list(tomllib.loads(files.config_toml)["network_arguments"].get("network_args", []))


class TestLokrPreset:
    def test_keys_are_mapped(self) -> None:
        data, _ = gui_to_job_dict(LOKR)
        assert data["network"] == {
            "algo": "lokr",
            "preset": "attn-mlp",
            "network_dim": 100000,
            "network_alpha": 1.0,
            "factor": -1,
        }
        assert data["optimizer"] == {
            "type": "Prodigy",
            "learning_rate": 1.0,
            "unet_lr": 1.0,
            "text_encoder_lr": 1.0,
            "max_grad_norm": 1,
            "d_coef": 2,
            "decouple": True,
            "weight_decay": 0.01,
            "use_bias_correction": True,
            "safeguard_warmup": True,
            "betas": [0.9, 0.99],
        }
        assert data["scheduler"] == {"lr_scheduler": "cosine", "lr_warmup_steps": 0.1}
        assert data["dataset"]["resolution"] == 512 and data["dataset"]["keep_tokens"] == 1
        assert data["dataset"]["batch_size"] == 2
        t = data["training"]
        assert t["max_train_epochs"] == 12 and t["attention"] == "sdpa"
        assert t["gradient_accumulation_steps"] == 1 and t["min_snr_gamma"] == 5.0
        # clip_skip "1" is sd-scripts' default; GUI presets leave the model path out
        assert data["model"] == {
            "pretrained_model_name_or_path": "stable-diffusion-v1-5/stable-diffusion-v1-5"
        }
        assert "noise_offset" not in t and "caption_dropout_rate" not in data["dataset"]

    def test_the_gui_traps_are_fixed_and_reported(self) -> None:
        data, problems = gui_to_job_dict(LOKR)
        notes = _notes(problems)
        assert "decompose_both=False, which LyCORIS reads as TRUE" in notes["decompose_both"]
        assert "LyCORIS lets the old name win" in notes["use_cp"]
        assert "imported as use_tucker = False, the checkbox" in notes["use_cp"]
        assert "seed = 0" in notes["seed"] and data["training"]["seed"] == 0
        assert "ignores bucketing" in notes["epoch"]
        assert "trains no conv layers" in notes["conv_dim"]
        args = _network_args(data)
        assert args == ["algo=lokr", "preset=attn-mlp", "factor=-1"]  # no decompose_both/use_cp

    def test_gui_only_keys_are_silent_and_unknown_keys_reported(self) -> None:
        _, problems = gui_to_job_dict({**LOKR, "learning_rat": 1.0})
        notes = {p.path: p for p in problems}
        assert "model_list" not in notes and "num_cpu_threads_per_process" not in notes
        assert notes["learning_rat"].hint == "did you mean 'learning_rate'?"
        assert all(p.severity == "warning" for p in problems)


class TestStandardLora:
    GUI: dict[str, Any] = {
        "LoRA_type": "Standard",
        "network_dim": 32,
        "network_alpha": 16,
        "conv_dim": 8,
        "optimizer": "AdamW8bit",
        "optimizer_args": "",
        "learning_rate": 0.0001,
        "unet_lr": 0.0001,
        "text_encoder_lr": 0,
        "lr_scheduler": "constant",
        "lr_warmup": 5,
        "max_grad_norm": 0,
        "max_resolution": "768,512",
        "xformers": True,
        "block_dims": "2,4,4,4,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,2",
        "epoch": 0,
        "max_train_epochs": "",
        "max_train_steps": 1600,
        "noise_offset_type": "Multires",
        "multires_noise_iterations": 6,
        "multires_noise_discount": 0.3,
        "noise_offset": 0.05,
        "sdxl": False,
        "flip_aug": True,
    }

    def test_zero_learning_rate_trains_the_other_side_only(self) -> None:
        data, _ = gui_to_job_dict(self.GUI)
        assert data["network"]["network_train_unet_only"] is True
        assert "text_encoder_lr" not in data["optimizer"]
        assert data["optimizer"]["type"] == "AdamW8bit"

    def test_meaningful_zero_is_kept_and_reported(self) -> None:
        data, problems = gui_to_job_dict(self.GUI)
        assert data["optimizer"]["max_grad_norm"] == 0
        assert "the GUI drops zeros" in _notes(problems)["max_grad_norm"]

    def test_other_values(self) -> None:
        data, problems = gui_to_job_dict(self.GUI)
        assert "conv_dim" not in data["network"]  # Standard LoRA has no convs
        assert len(data["network"]["block_dims"]) == 25
        assert data["dataset"]["resolution"] == [768, 512] and data["dataset"]["flip_aug"]
        assert data["training"]["attention"] == "xformers"
        assert data["training"]["max_train_steps"] == 1600
        assert "max_train_epochs" not in data["training"]
        assert data["training"]["multires_noise_iterations"] == 6
        assert "noise_offset" not in data["training"]  # Multires, not Original
        assert "warmup" not in str(data.get("scheduler"))
        assert "takes no warmup" in _notes(problems)["lr_warmup"]
        assert "family" not in data["model"]  # sdxl = false: the default family

    def test_additional_parameters(self) -> None:
        gui = {
            **self.GUI,
            "additional_parameters": "--max_grad_norm 0.5 --weighted_captions --bogus_flag 3",
        }
        data, problems = gui_to_job_dict(gui)
        assert data["optimizer"]["max_grad_norm"] == 0.5
        assert data["extra_args"] == {"weighted_captions": True}
        bogus = next(p for p in problems if "--bogus_flag" in p.message)
        assert bogus.path == "additional_parameters"


class TestOtherTypes:
    def test_ia3_drops_what_lycoris_ignores(self) -> None:
        gui = {
            "LoRA_type": "LyCORIS/iA3",
            "LyCORIS_preset": "full",
            "network_dim": 8,
            "network_alpha": 1,
            "conv_dim": 4,
            "conv_alpha": 1,
            "train_on_input": True,
            "optimizer": "AdamW",
            "learning_rate": 0.005,
        }
        data, problems = gui_to_job_dict(gui)
        assert data["network"] == {"algo": "ia3"}
        notes = _notes(problems)
        assert "does not read train_on_input" in notes["train_on_input"]
        assert "writes conv_dim/conv_alpha for iA3" in notes["conv_dim"]
        assert "gives iA3 nothing to train" in notes["LyCORIS_preset"]

    def test_an_old_file_with_only_use_cp(self) -> None:
        data, problems = gui_to_job_dict(
            {"LoRA_type": "LyCORIS/LoHa", "use_cp": True, "conv_dim": 4, "conv_alpha": 2}
        )
        assert data["network"]["use_tucker"] is True and data["network"]["conv_dim"] == 4
        assert "use_cp" not in _notes(problems)
        assert "no training length" in _notes(problems)["epoch"]

    def test_kohya_locon_and_dylora(self) -> None:
        data, _ = gui_to_job_dict({"LoRA_type": "Kohya LoCon", "conv_dim": 8, "conv_alpha": 4})
        assert data["network"] == {"algo": "lora", "conv_dim": 8, "conv_alpha": 4.0}
        data, problems = gui_to_job_dict(
            {"LoRA_type": "Kohya DyLoRA", "network_dim": 16, "unit": 4}
        )
        assert data["network"]["algo"] == "dylora" and data["network"]["block_size"] == 4
        assert "LyCORIS' dylora" in _notes(problems)["LoRA_type"]

    def test_sdxl_and_a_text_encoder_lr_pair(self) -> None:
        data, problems = gui_to_job_dict(
            {
                "sdxl": True,
                "clip_skip": 2,
                "sdxl_no_half_vae": True,
                "text_encoder_lr": [0.0001, 0.0001],
                "unet_lr": 0.0002,
            }
        )
        assert data["model"] == {
            "pretrained_model_name_or_path": "stabilityai/stable-diffusion-xl-base-1.0",
            "family": "sdxl",
            "no_half_vae": True,
        }
        assert data["optimizer"] == {"unet_lr": 0.0002, "text_encoder_lr": 0.0001}
        assert "SDXL ignores it" in _notes(problems)["clip_skip"]

    @pytest.mark.parametrize("lora_type", ["LoRA-FA", "LyCORIS/GLoRA"])
    def test_unsupported_types_are_errors(self, lora_type: str) -> None:
        with pytest.raises(ConfigError) as info:
            gui_to_job_dict({"LoRA_type": lora_type})
        (problem,) = [p for p in info.value.problems if p.severity == "error"]
        assert problem.path == "LoRA_type" and "not supported" in problem.message

    def test_a_bad_value_names_its_key(self) -> None:
        with pytest.raises(ConfigError) as info:
            gui_to_job_dict({"train_batch_size": "two"})
        assert info.value.problems[0].format() == (
            "train_batch_size: expected a number, got 'two'\n  hint: fix the value in the GUI file"
        )


class TestFiles:
    def test_an_invalid_value_names_the_gui_file(self, tmp_path: Path) -> None:
        path = _write(tmp_path, "bad.json", {**LOKR, "network_alpha": 0})
        with pytest.raises(ConfigError) as info:
            import_gui_preset(path)
        assert "network.network_alpha: must be > 0.0 (got 0.0) (set by bad.json)" in [
            p.format().split("\n")[0] for p in info.value.problems
        ]

    def test_not_json(self, tmp_path: Path) -> None:
        path = tmp_path / "x.json"
        path.write_text("{nope", encoding="utf-8")
        with pytest.raises(ConfigError, match="not a readable JSON file"):
            import_gui_preset(path)
        path.write_text("[1, 2]", encoding="utf-8")
        with pytest.raises(ConfigError):
            import_gui_preset(path)

    def test_a_saved_config_with_paths_is_a_complete_job(self, tmp_path: Path) -> None:
        folder = tmp_path / "img" / "10_zengxin oilpaint"
        folder.mkdir(parents=True)
        Image.new("RGB", (64, 64)).save(folder / "a.png")
        (tmp_path / "img" / "misc").mkdir()
        gui = {
            **LOKR,
            "pretrained_model_name_or_path": "/models/sd15.safetensors",
            "train_data_dir": str(tmp_path / "img"),
            "reg_data_dir": "",
            "output_dir": str(tmp_path / "out"),
            "output_name": "zengxin",
            "sample_prompts": "zengxin oilpaint, a harbour --w 512 --h 512 --d 1 --zz 3\n",
            "sample_every_n_epochs": 1,
        }
        result = import_gui_preset(_write(tmp_path, "saved.json", gui))
        assert result.complete
        job = result.job
        assert job.name == "zengxin" and job.training.output_dir == str(tmp_path / "out")
        (subset,) = job.dataset.subsets
        assert subset.image_dir == str(folder)  # type: ignore[union-attr]
        (prompt,) = job.sampling.prompts
        assert (prompt.width, prompt.height, prompt.seed) == (512, 512, 1)
        notes = _notes(result.problems)
        assert "sd-scripts skips this folder" in notes[str(tmp_path / "img" / "misc")]
        assert "--zz not imported" in notes["sample_prompts"]
        assert "train saved.toml" in result.to_toml("saved.toml")

    def test_a_cadence_without_prompts_is_dropped(self) -> None:
        data, problems = gui_to_job_dict({"sample_every_n_epochs": 2, "sample_prompts": ""})
        assert "sampling" not in data or not data["sampling"]
        assert "without sample prompts" in _notes(problems)["sample_every_n_epochs"]


def test_cli_writes_a_preset_that_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gui = _write(tmp_path, "my_lokr.json", LOKR)
    out = tmp_path / "my_lokr.toml"
    assert main(["import-preset", str(gui), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert (
        "settings mapped" in captured.err
        and "fixed (" in captured.err
        and "decompose_both" in captured.err
    )
    assert f"preset {out} --data DIR" in captured.out
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# my_lokr: imported from the kohya_ss GUI file my_lokr.json")
    assert f"preset {out} --data img" in text and "--set" in text
    assert main(["import-preset", str(gui), "--out", str(out)]) == 2  # never overwrites
    assert main(["import-preset", str(gui), "--out", str(out), "--force"]) == 0
    capsys.readouterr()

    # the written file is a preset: `preset FILE.toml --data DIR` resolves and plans it
    folder = tmp_path / "img" / "20_zengxin oilpaint"
    folder.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (64, 64)).save(folder / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KOHYA_SD_SCRIPTS", str(tmp_path / "none"))
    built = compose_preset(
        str(out), layers=[Layer("data", {"dataset": {"subsets": [{"image_dir": str(folder)}]}})]
    )
    assert built.job.network.algo == "lokr" and built.job.preset == "my_lokr.toml"
    rc = main(["preset", str(out), "--data", str(tmp_path / "img"), "--dry-run"])
    assert rc == 0
    assert 'network_args = ["algo=lokr", "preset=attn-mlp", "factor=-1"]' in capsys.readouterr().out


def test_cli_prints_without_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gui = _write(tmp_path, "x.json", {"LoRA_type": "LyCORIS/LoHa", "network_dim": 8})
    assert main(["import-preset", str(gui)]) == 0
    data = tomllib.loads(capsys.readouterr().out)
    assert data["network"] == {"algo": "loha", "network_dim": 8}
    assert main(["import-preset", str(tmp_path / "missing.json")]) == 2


# ---- the GUI's shipped presets' traps (issue 16), written from the GUI's form and lora_gui.py
def test_bucket_reso_steps_the_script_refuses_becomes_the_familys_step() -> None:
    for family_box, step in (({}, 64), ({"sdxl": True}, 32)):
        data, problems = gui_to_job_dict({**LOKR, **family_box, "bucket_reso_steps": 1})
        assert data["dataset"]["bucket_reso_steps"] == step
        note = _notes(problems)["bucket_reso_steps"]
        assert note.startswith("1: ") and f"multiple of {step}" in note
        assert f"imported as {step}" in note
    data, problems = gui_to_job_dict({**LOKR, "bucket_reso_steps": 128})
    assert data["dataset"]["bucket_reso_steps"] == 128
    assert "bucket_reso_steps" not in _notes(problems)


def test_additional_parameters_with_several_values_and_network_switches() -> None:
    extra = (
        '--lr_scheduler_type "CosineAnnealingLR" --lr_scheduler_args "T_max=1000" "eta_min=0e-0" '
        "--network_train_unet_only"
    )
    data, problems = gui_to_job_dict({**LOKR, "additional_parameters": extra})
    assert data["scheduler"]["lr_scheduler_args"] == {"T_max": 1000, "eta_min": 0.0}
    assert data["extra_args"]["lr_scheduler_type"] == "CosineAnnealingLR"
    assert data["network"]["network_train_unet_only"] is True
    assert "not an option" not in " ".join(_notes(problems).values())  # eta_min was not dropped
    with pytest.raises(ConfigError) as info:
        gui_to_job_dict({**LOKR, "additional_parameters": "--lr_scheduler_args T_max"})
    assert "has no '='" in info.value.problems[0].message


def test_the_adafactor_schedule_with_the_adafactor_optimizer() -> None:
    from kohya_orchestrator.jobs.layers import compose_layers
    from kohya_orchestrator.jobs.loading import validate_job

    gui = {**LOKR, "optimizer": "Adafactor", "optimizer_args": "", "lr_scheduler": "adafactor"}
    gui |= {"lr_warmup": 0, "learning_rate": 1e-4, "unet_lr": 1e-4, "text_encoder_lr": 1e-4}
    data, _ = gui_to_job_dict(gui)
    assert data["scheduler"]["lr_scheduler"] == "adafactor"
    job = validate_job(compose_layers([Layer("gui", data), Layer("data", DATA)]).data)
    assert job.scheduler.lr_scheduler == "adafactor"
    base = {**DATA, "training": {"max_train_epochs": 1}, "scheduler": {"lr_scheduler": "adafactor"}}
    with pytest.raises(ConfigError) as info:  # sd-scripts asserts the Adafactor optimizer
        validate_job({**base, "optimizer": {"type": "AdamW"}})
    assert "works only with the AdaFactor optimizer" in info.value.problems[0].message
    no_relative = {"type": "AdaFactor", "learning_rate": 1e-4, "relative_step": False}
    with pytest.raises(ConfigError) as relative:
        validate_job({**base, "optimizer": no_relative})
    assert "relative_step" in relative.value.problems[0].message


def test_adaptive_noise_scale_with_multires_never_reached_sd_scripts() -> None:
    gui = {**LOKR, "adaptive_noise_scale": 0.005, "noise_offset_type": "Multires"}
    gui |= {"multires_noise_iterations": 10, "multires_noise_discount": 0.3}
    data, problems = gui_to_job_dict(gui)
    assert "adaptive_noise_scale" not in data["training"]
    assert data["training"]["multires_noise_iterations"] == 10
    assert "only with noise_offset_type 'Original'" in _notes(problems)["adaptive_noise_scale"]
    original, _ = gui_to_job_dict(
        {
            **LOKR,
            "adaptive_noise_scale": 0.005,
            "noise_offset": 0.05,
            "noise_offset_type": "Original",
        }
    )
    assert original["training"]["adaptive_noise_scale"] == 0.005


def test_a_flux1_gui_file_is_a_flux_job_with_its_components() -> None:
    from kohya_orchestrator.jobs.layers import compose_layers
    from kohya_orchestrator.jobs.loading import validate_job

    gui = {
        "LoRA_type": "Flux1",
        "flux1_checkbox": True,
        "pretrained_model_name_or_path": "put the full path to flux1-dev.safetensors here",
        "ae": "put the full path to ae.sft here",
        "clip_l": "/models/clip_l.safetensors",
        "t5xxl": "/models/t5xxl_fp16.safetensors",
        "train_blocks": "single",
        "flux1_cache_text_encoder_outputs": True,
        "guidance_scale": 1,
        "timestep_sampling": "sigmoid",
        "max_token_length": 75,
        "network_dim": 16,
        "network_alpha": 16,
        "optimizer": "AdamW",
        "learning_rate": 3e-4,
        "unet_lr": 3e-4,
        "text_encoder_lr": 0,  # the GUI's way of saying U-Net only (cached T5 outputs need it)
        "epoch": 1,
    }
    data, problems = gui_to_job_dict(gui)
    model = data["model"]
    assert model["family"] == "flux"
    assert model["pretrained_model_name_or_path"] == "<flux1-dev.safetensors>"  # a placeholder
    assert model["ae"] == "<ae.sft>"
    assert (model["clip_l"], model["t5xxl"]) == (
        "/models/clip_l.safetensors",
        "/models/t5xxl_fp16.safetensors",
    )
    assert (model["guidance_scale"], model["timestep_sampling"]) == (1, "sigmoid")
    assert "max_token_length" not in model
    assert data["network"]["train_blocks"] == "single"
    assert data["training"]["cache_text_encoder_outputs"] is True
    notes = _notes(problems)
    assert "imported as the placeholder <ae.sft>" in notes["ae"]
    assert "FLUX.1 has no use for it" in notes["max_token_length"]
    assert "train_blocks" not in notes and "flux1_cache_text_encoder_outputs" not in notes
    flux_data = {"dataset": DATA["dataset"]}
    job = validate_job(compose_layers([Layer("gui", data), Layer("data", flux_data)]).data)
    assert job.model.family == "flux"
    assert job.network.train_blocks == "single"  # type: ignore[union-attr]
