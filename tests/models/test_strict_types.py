"""Strict types (issue 17, item 11): a value is taken only in its own type.

``learning_rate = true`` once rendered ``learning_rate = 1.0`` and trained; ``batch_size = true``
became 1; ``network_dim = "16"`` was accepted. Each is now a problem naming the key and the value.
"""

from __future__ import annotations

from typing import Any

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import validate_job

BASE: dict[str, Any] = {
    "model": {"pretrained_model_name_or_path": "/m.safetensors"},
    "dataset": {"subsets": [{"image_dir": "/d/10_a"}]},
    "training": {"max_train_epochs": 2},
}


def _with(section: str, key: str, value: Any) -> dict[str, Any]:
    data = {k: dict(v) for k, v in BASE.items()}
    data.setdefault(section, {})[key] = value
    return data


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("optimizer", "learning_rate", True, "expected a number"),
        ("dataset", "batch_size", True, "expected an integer"),
        ("network", "network_dim", "16", "expected an integer"),
        ("network", "network_alpha", "8.0", "expected a number"),
        ("training", "max_train_epochs", 2.0, "expected an integer"),
        ("training", "gradient_checkpointing", 1, "expected true or false"),
        ("training", "gradient_checkpointing", "true", "expected true or false"),
        ("dataset", "resolution", [512, True], "expected"),
    ],
)
def test_a_value_of_another_type_is_a_problem(
    section: str, key: str, value: Any, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_job(_with(section, key, value))
    [problem] = [p for p in info.value.problems if p.path.startswith(f"{section}.{key}")]
    assert expected in problem.message


@pytest.mark.parametrize(
    ("section", "key", "value", "read"),
    [
        ("optimizer", "learning_rate", 1, 1.0),  # an integer is a valid number
        ("network", "network_alpha", 8, 8.0),
        ("dataset", "resolution", [512, 768], (512, 768)),  # a TOML array for a tuple
        ("dataset", "resolution", 640, 640),
    ],
)
def test_values_in_their_own_type_are_taken(section: str, key: str, value: Any, read: Any) -> None:
    job = validate_job(_with(section, key, value))
    got = getattr(getattr(job, section), key)
    assert got == read and type(got) is type(read)


def test_optimizer_betas_come_from_a_toml_array_and_stay_strict_inside() -> None:
    ok = validate_job(_with("optimizer", "betas", [0.9, 0.99]))
    assert ok.optimizer.betas == (0.9, 0.99)  # type: ignore[union-attr]
    with pytest.raises(ConfigError):
        validate_job(_with("optimizer", "betas", [True, 0.99]))
