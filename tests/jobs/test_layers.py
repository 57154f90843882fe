"""Layers: merged in order with provenance, --set read as TOML, relative paths made absolute."""

from __future__ import annotations

from pathlib import Path

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.layers import Layer, compose_layers, deep_merge, parse_set_overrides
from kohya_orchestrator.jobs.loading import load_job


def test_deep_merge_merges_tables_and_replaces_the_rest() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}, "d": {"e": 2}}) == {
        "a": {"b": 1, "c": [3]},
        "d": {"e": 2},
    }
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # the inputs are left as they were


def test_compose_layers_records_which_layer_set_each_key(tmp_path: Path) -> None:
    composed = compose_layers(
        [
            Layer("preset", {"training": {"output_dir": "out", "seed": 1}}),
            Layer(
                "job file",
                {"training": {"seed": 2}, "dataset": {"subsets": [{"image_dir": "i"}]}},
                tmp_path,
            ),
        ]
    )
    assert composed.data["training"] == {"output_dir": "out", "seed": 2}
    assert composed.data["dataset"]["subsets"] == [{"image_dir": str(tmp_path / "i")}]
    assert composed.provenance["training.output_dir"] == "preset"
    assert composed.provenance["training.seed"] == "job file"
    assert composed.provenance["dataset.subsets[0].image_dir"] == "job file"


def test_set_overrides_parse_toml_values() -> None:
    assert parse_set_overrides(["a.b=1e-4", "a.c=true", "d=[768, 512]", "e=my style"]) == {
        "a": {"b": 1e-4, "c": True},
        "d": [768, 512],
        "e": "my style",
    }


def test_bad_set_override() -> None:
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        parse_set_overrides(["novalue"])


def test_relative_paths_resolve_against_the_job_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "job.toml"
    path.parent.mkdir()
    path.write_text(
        '[model]\npretrained_model_name_or_path = "../sd15.safetensors"\n'
        '[[dataset.subsets]]\nimage_dir = "img/10_a"\n[training]\nmax_train_epochs = 1\n'
        'output_dir = "out"\n',
        encoding="utf-8",
    )
    job = load_job(path)
    assert job.dataset.subsets[0].image_dir == str(path.parent.resolve() / "img/10_a")
    assert job.training.output_dir == str(path.parent.resolve() / "out")
    assert job.model.pretrained_model_name_or_path == str(
        path.parent.resolve() / "../sd15.safetensors"
    )


def test_hub_id_is_not_resolved(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text(
        '[model]\npretrained_model_name_or_path = "stable-diffusion-v1-5/stable-diffusion-v1-5"\n'
        '[[dataset.subsets]]\nimage_dir = "/d/10_a"\n[training]\nmax_train_epochs = 1\n',
        encoding="utf-8",
    )
    assert (
        load_job(path).model.pretrained_model_name_or_path
        == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    )
