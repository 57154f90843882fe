"""Problem messages: where, what and how to fix; did-you-mean; discriminator tags never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import load_job, validate_job

BASE = {
    "model": {"pretrained_model_name_or_path": "/m.safetensors"},
    "dataset": {"subsets": [{"image_dir": "/d/10_a"}]},
    "training": {"max_train_epochs": 1},
}


def _problems(data: dict) -> list:
    with pytest.raises(ConfigError) as info:
        validate_job(data)
    return info.value.problems


def test_unknown_key_did_you_mean() -> None:
    (p,) = _problems({**BASE, "network": {"algo": "lora", "netwrok_dim": 4}})
    assert (p.path, p.message, p.hint) == (
        "network.netwrok_dim",
        "unknown key 'netwrok_dim'",
        "did you mean 'network_dim'?",
    )


def test_unknown_algo_did_you_mean() -> None:
    (p,) = _problems({**BASE, "network": {"algo": "locom"}})
    assert p.path == "network.algo"
    assert p.hint is not None and p.hint.startswith("did you mean 'locon'?")


def test_unknown_enum_value() -> None:
    (p,) = _problems({**BASE, "model": {"pretrained_model_name_or_path": "x", "family": "sd1.5"}})
    assert p.path == "model.family" and "did you mean 'sd15'" in (p.hint or "")


def test_unknown_optimizer() -> None:
    (p,) = _problems({**BASE, "optimizer": {"type": "Prodgy"}})
    assert p.path == "optimizer.type" and "did you mean 'Prodigy'" in (p.hint or "")


def test_discriminator_tag_is_stripped_from_paths() -> None:
    found = _problems({**BASE, "network": {"algo": "lokr", "factor": "big"}})
    assert [p.path for p in found] == ["network.factor"]
    found = _problems({**BASE, "optimizer": {"type": "Prodigy", "d_coef": "x"}})
    assert [p.path for p in found] == ["optimizer.d_coef"]
    found = _problems(
        {**BASE, "dataset": {"subsets": [{"image_dir": "/d/1_a", "keep_tokens": "x"}]}}
    )
    assert [p.path for p in found] == ["dataset.subsets[0].keep_tokens"]


def test_all_problems_at_once() -> None:
    found = _problems(
        {
            **BASE,
            "network": {"algo": "ia3", "network_dim": 4},
            "dataset": {"batch_size": "two", "subsets": [{"image_dir": "/d/1_a", "num_repets": 2}]},
        }
    )
    assert {p.path for p in found} == {
        "network.network_dim",
        "dataset.batch_size",
        "dataset.subsets[0].num_repets",
    }


def test_resolution_union_is_one_problem() -> None:
    found = _problems(
        {**BASE, "dataset": {"resolution": [512, "a"], "subsets": [{"image_dir": "/d/1_a"}]}}
    )
    assert [(p.path, p.message) for p in found] == [
        ("dataset.resolution", "expected 512 or [width, height], got [512, 'a']")
    ]


def test_problem_names_the_layer(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text(
        '[model]\npretrained_model_name_or_path = "/m.safetensors"\n'
        '[[dataset.subsets]]\nimage_dir = "/d/10_a"\n[training]\nmax_train_epochs = 1\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_job(path, overrides=["network.algo=ia3", "network.network_dim=4"])
    (p,) = info.value.problems
    assert p.message.endswith("(set by --set)")


def test_verbatim_config_error_text() -> None:
    with pytest.raises(ConfigError) as info:
        validate_job({**BASE, "network": {"algo": "locom"}}, source="job.toml")
    assert str(info.value) == (
        "1 problem in job.toml:\n"
        "- network.algo: unknown algo 'locom'\n"
        "    hint: did you mean 'locon'? allowed: lora, locon, loha, lokr, ia3, dylora, full, "
        "diag-oft, boft"
    )


def test_a_lone_surrogate_says_what_and_how_to_fix() -> None:
    data = {
        "model": {"pretrained_model_name_or_path": "/m/x.safetensors"},
        "dataset": {"subsets": [{"image_dir": "/d/img/20_x"}]},
        "network": {"algo": "lora"},
        "training": {"output_dir": "/o", "output_name": "x"},
        "sampling": {"prompts": [{"prompt": "a\ud800"}]},
    }
    with pytest.raises(ConfigError) as info:
        validate_job(data)
    (problem,) = info.value.problems
    assert problem.path == "sampling.prompts[0].prompt"
    assert problem.message == (
        "contains a character that cannot be written as UTF-8 (a lone surrogate)"
    )
    assert problem.hint is not None and problem.hint.startswith("remove it")
