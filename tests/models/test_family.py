"""The family profile is the one place a model family is described (models/family.py).

Every module reads the profile; none spells a family's name to switch on it. The scan below
fails when a module outside the profile compares with, or keys a table by, a family name.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models.family import DEFAULT_FAMILY, FAMILIES, Family, profile
from kohya_orchestrator.models.model import MODEL_SECTIONS

PACKAGE = Path(__file__).resolve().parents[2] / "kohya_orchestrator"
# Where a family name is data, not a switch: measured LyCORIS evidence (which family a row was
# tested on) and the kohya_ss GUI's own field names ("sdxl" is a GUI checkbox key).
ALLOWED = {
    "models/family.py": "the profiles themselves",
    "models/model.py": "each family's [model] section is tagged with its name (the union)",
    "environment/lycoris_table.py": "rows say which family each measurement was made on",
    "environment/lycoris.py": "describe_lycoris looks up the row measured on sd15",
    "jobs/gui_fields.py": "'sdxl' is the name of a kohya_ss GUI field",
}


def test_the_family_literal_and_the_profiles_agree() -> None:
    assert set(get_args(Family)) == set(FAMILIES)
    assert set(MODEL_SECTIONS) == set(FAMILIES)
    for name, section in MODEL_SECTIONS.items():
        assert section.model_fields["family"].default == name
    assert DEFAULT_FAMILY in FAMILIES
    assert all(name == p.name for name, p in FAMILIES.items())


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_profile_is_consistent(name: str) -> None:
    p = profile(name)
    assert p.script.endswith("train_network.py")
    assert p.default_resolution % p.bucket_step == 0
    assert p.base_model_versions and all(v for v in p.base_model_versions)
    assert set(p.memory_remedies) <= {"te_cache", "fp8_base", "blocks_to_swap"}
    assert ("blocks_to_swap" in p.memory_remedies) <= (p.swap_blocks > 0)
    assert ("blocks_to_swap" in p.memory_remedies) <= ("blocks_to_swap" in p.only_args)
    assert ("te_cache" in p.memory_remedies) <= p.caches_text_encoder_outputs


@pytest.mark.parametrize("name", list(FAMILIES))
def test_a_job_of_each_family_takes_its_script_and_flags_from_the_profile(name: str) -> None:
    job = validate_job(
        {
            "model": {"pretrained_model_name_or_path": "/m.safetensors", "family": name},
            "dataset": {"subsets": [{"image_dir": "/d/10_a"}]},
            "training": {"max_train_epochs": 1},
        }
    )
    assert job.model.script == profile(name).script
    assert job.model.v2 is profile(name).v2


def _family_literals(path: Path) -> list[int]:
    names = set(FAMILIES)
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and node.value in names:
            lines.append(node.lineno)
    return lines


def test_no_module_switches_on_a_family_name() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ALLOWED:
            continue
        if lines := _family_literals(path):
            found[rel] = lines
    assert found == {}, "read models/family.py's profile instead of naming a family"


def test_the_scan_finds_a_family_switch(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('def f(job):\n    return job.model.family == "sdxl"\n', encoding="utf-8")
    assert _family_literals(bad) == [2]


def _dit_job(family: str, **extra: object) -> dict:
    return {
        "model": {"family": family, "pretrained_model_name_or_path": "/m.safetensors"},
        "dataset": {"subsets": [{"image_dir": "/d/10_a"}]},
        "training": {"max_train_epochs": 1},
        **extra,
    }


def test_anima_per_layer_lrs_do_nothing_in_its_lora_script_and_are_refused() -> None:
    from kohya_orchestrator.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        validate_job(_dit_job("anima", extra_args={"self_attn_lr": 0.0}))
    (p,) = info.value.problems
    assert p.path == "extra_args.self_attn_lr" and "never reads it" in p.message


def test_a_key_of_the_family_section_is_not_an_extra_arg() -> None:
    from kohya_orchestrator.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        validate_job(_dit_job("flux", extra_args={"guidance_scale": 1.0}))
    (p,) = info.value.problems
    assert p.path == "extra_args.guidance_scale" and "model.guidance_scale" in (p.hint or "")


@pytest.mark.parametrize(
    ("family", "network", "key"),
    [
        ("lumina", {"algo": "loha"}, "network.algo"),
        ("flux", {"algo": "boft"}, "network.algo"),
        ("flux", {"algo": "lora", "block_dims": [4] * 25}, "network.block_dims"),
        ("flux", {"algo": "lora", "train_blocks": "transformer"}, "network.train_blocks"),
        ("sdxl", {"algo": "lora", "split_qkv": True}, "network.split_qkv"),
        ("anima", {"algo": "lora", "conv_dim": 4}, "network.conv_dim"),
    ],
)
def test_what_the_family_network_module_cannot_do_is_refused(
    family: str, network: dict, key: str
) -> None:
    from kohya_orchestrator.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        validate_job(_dit_job(family, network=network))
    assert key in [p.path for p in info.value.problems]


def test_text_encoder_lrs_follow_the_module() -> None:
    from kohya_orchestrator.errors import ConfigError

    job = validate_job(_dit_job("sd3", optimizer={"type": "AdamW", "text_encoder_lr": [1e-5] * 3}))
    assert job.optimizer.text_encoder_lr == [1e-5] * 3
    with pytest.raises(ConfigError) as info:
        validate_job(_dit_job("sdxl", optimizer={"type": "AdamW", "text_encoder_lr": [1e-5] * 2}))
    assert "reads 1" in info.value.problems[0].message


def test_fp8_base_where_the_script_turns_it_off_is_refused() -> None:
    from kohya_orchestrator.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        validate_job(
            _dit_job(
                "hunyuan_image",
                training={"max_train_epochs": 1, "fp8_base": True, "mixed_precision": "bf16"},
            )
        )
    (p,) = info.value.problems
    assert p.path == "training.fp8_base" and "model.fp8_scaled" in (p.hint or "")


def test_chroma_renders_its_model_type_and_the_t5_mask() -> None:
    from kohya_orchestrator.render.toml import RenderPaths, training_config_dict

    job = validate_job(_dit_job("chroma"))
    model = training_config_dict(job, RenderPaths("/r/dataset.toml"))["model_arguments"]
    assert model["model_type"] == "chroma" and model["apply_t5_attn_mask"] is True
    network = training_config_dict(job, RenderPaths("/r/dataset.toml"))["network_arguments"]
    assert network["network_module"] == "networks.lora_flux"


@pytest.mark.parametrize("family", ["flux", "sd3"])
@pytest.mark.parametrize("algo", ["locon", "loha", "lokr", "dylora", "diag-oft"])
def test_lycoris_algos_measured_on_a_dit_family_are_offered(family: str, algo: str) -> None:
    job = validate_job(_dit_job(family, network={"algo": algo}))
    assert job.network.algo == algo
    assert algo in profile(family).lycoris_algos


def test_an_unmeasured_lycoris_pair_is_refused_with_the_alternatives() -> None:
    from kohya_orchestrator.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        validate_job(_dit_job("flux", network={"algo": "boft"}))
    (problem,) = info.value.problems
    assert problem.path == "network.algo"
    assert "LyCORIS boft is not offered for FLUX.1" in problem.message
    assert (
        "Stable Diffusion 1.x, Stable Diffusion 2.x, Stable Diffusion XL: locon, loha"
        in problem.message
    )
    assert problem.hint == (
        "use one of: lora, " + ", ".join(profile("flux").lycoris_algos)
        + " (lora trains with networks.lora_flux)"
    )  # fmt: skip
    with pytest.raises(ConfigError) as lumina:
        validate_job(_dit_job("lumina", network={"algo": "lokr"}))
    assert (
        lumina.value.problems[0].hint == "use one of: lora (lora trains with networks.lora_lumina)"
    )


def test_ia3_on_a_dit_family_needs_a_preset_that_names_its_layers() -> None:
    from kohya_orchestrator.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        validate_job(_dit_job("flux", network={"algo": "ia3"}))  # default: the SD 1.5 file
    (problem,) = info.value.problems
    assert problem.path == "network.preset"
    assert "names SD 1.5 U-Net layers" in problem.message
    job = validate_job(_dit_job("flux", network={"algo": "ia3", "preset": "attn-mlp"}))
    assert job.network.algo == "ia3"
