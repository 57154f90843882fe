"""sd-scripts' own LoHa/LoKr (networks.loha / networks.lokr): what a job says and what it renders.

Read from sd-scripts at aff4a2e7 (networks/loha.py, networks/lokr.py, networks/network_base.py):
create_network reads conv_dim, conv_alpha, use_tucker, rank_dropout, module_dropout, factor
(LoKr), include/exclude patterns and the LoRA+ ratios; its architecture detection knows SDXL
and Anima and raises on anything else. That it trains is tests/e2e/test_native_networks_e2e.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from kohya_orchestrator.environment.lycoris import check_network_compat
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.arguments import check_job_arguments
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models.arguments import BUILTIN, Arguments
from kohya_orchestrator.render.toml import RenderPaths, training_config_dict

SDXL = {
    "family": "sdxl",
    "pretrained_model_name_or_path": "stabilityai/stable-diffusion-xl-base-1.0",
}


def job(network: dict[str, Any], model: dict[str, Any] = SDXL) -> dict[str, Any]:
    return {
        "model": model,
        "dataset": {"subsets": [{"image_dir": "/data/2_style"}]},
        "network": network,
        "training": {"max_train_epochs": 1, "output_dir": "/out"},
    }


def rendered(network: dict[str, Any]) -> dict[str, Any]:
    section = training_config_dict(validate_job(job(network)), RenderPaths("dataset.toml"))
    return section["network_arguments"]


def test_lokr_renders_sd_scripts_module_and_only_the_args_it_reads() -> None:
    net = rendered(
        {
            "algo": "lokr",
            "implementation": "sd-scripts",
            "network_dim": 8,
            "factor": 4,
            "conv_dim": 4,
            "conv_alpha": 2.0,
            "use_tucker": True,
            "rank_dropout": 0.1,
            "loraplus_lr_ratio": 16.0,
        }
    )
    assert net["network_module"] == "networks.lokr"
    assert net["network_args"] == [
        "conv_dim=4",
        "conv_alpha=2.0",
        "use_tucker=True",
        "rank_dropout=0.1",
        "factor=4",
        "loraplus_lr_ratio=16.0",
    ]


def test_loha_has_no_factor_and_no_preset() -> None:
    net = rendered({"algo": "loha", "implementation": "sd-scripts"})
    assert net["network_module"] == "networks.loha"
    assert (net["network_dim"], net["network_alpha"]) == (8, 4.0)
    assert "network_args" not in net  # nothing beyond the defaults: sd-scripts' own defaults hold


def test_lycoris_stays_the_default() -> None:
    net = rendered({"algo": "loha"})
    assert net["network_module"] == "lycoris.kohya"
    assert net["network_args"][:2] == ["algo=loha", "preset=attn-mlp"]


@pytest.mark.parametrize(
    ("model", "algo", "hint"),
    [
        ({"family": "sd15", "pretrained_model_name_or_path": "a/b"}, "loha", 'implementation = "lycoris"'),
        ({"family": "flux", "pretrained_model_name_or_path": "/m/flux.safetensors",
          "clip_l": "/m/c.safetensors", "t5xxl": "/m/t.safetensors", "ae": "/m/ae.safetensors"},
         "lokr", 'implementation = "lycoris"'),
        ({"family": "lumina", "pretrained_model_name_or_path": "/m/l.safetensors",
          "gemma2": "/m/g.safetensors", "ae": "/m/ae.safetensors"}, "loha", 'algo = "lora"'),
    ],
)  # fmt: skip
def test_families_its_architecture_detection_does_not_know_are_refused(
    model: dict[str, Any], algo: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        validate_job(job({"algo": algo, "implementation": "sd-scripts"}, model))
    (problem,) = [p for p in refused.value.problems if p.path == "network.implementation"]
    assert "trains Stable Diffusion XL, Anima only" in problem.message
    assert problem.hint == f"use {hint}"


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ({"dora_wd": True}, "network.dora_wd"),
        ({"bypass_mode": True}, "network.bypass_mode"),
        ({"train_norm": True}, "network.train_norm"),
        ({"decompose_both": True}, "network.decompose_both"),
        ({"preset": "full"}, "network.preset"),
    ],
)
def test_lycoris_only_settings_are_refused(setting: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as refused:
        validate_job(job({"algo": "lokr", "implementation": "sd-scripts", **setting}))
    assert [p.path for p in refused.value.problems] == [path]
    assert "networks.lokr" in refused.value.problems[0].message


def test_no_lycoris_needed_and_the_install_must_have_the_module() -> None:
    j = validate_job(job({"algo": "lokr", "implementation": "sd-scripts"}))
    assert check_network_compat(j, None) == []  # lycoris-lora not installed: fine
    old = Arguments(
        label="sd-scripts 48d368fa", fix="update, or drop the key", scripts=BUILTIN.scripts,
        networks=frozenset({"networks.lora"}),
    )  # fmt: skip
    (problem,) = check_job_arguments(j, old)
    assert problem.path == "network.implementation"
    assert problem.message == (
        "sd-scripts 48d368fa has no networks.lokr (sd-scripts' own LoHa and LoKr came after 0.10.1)"
    )
    assert problem.hint == 'update, or use implementation = "lycoris"'
    new = Arguments(
        label="new", fix="", scripts=BUILTIN.scripts, networks=frozenset({"networks.lokr"})
    )
    assert check_job_arguments(j, new) == []
    lycoris = validate_job(job({"algo": "lokr"}))
    assert check_job_arguments(lycoris, old) == []
