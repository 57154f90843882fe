"""Block learning-rate weight rules (models/rules/lr_weights.py); tests/e2e/test_lr_weight_oracle.py
checks the same against sd-scripts' own reader."""

from __future__ import annotations

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models import job_warnings


def _job(family: str, **weights: str) -> dict[str, object]:
    return {
        "model": {"pretrained_model_name_or_path": "/m.safetensors", "family": family},
        "network": {"algo": "lora", **weights},
        "dataset": {"subsets": [{"image_dir": "/d/10_a"}]},
        "training": {"max_train_epochs": 1},
    }


@pytest.mark.parametrize(
    ("family", "weights", "message"),
    [
        ("sd15", {"down_lr_weight": "0.5"}, "is one number"),
        ("sd15", {"up_lr_weight": "sin"}, "unknown curve 'sin'"),
        ("sd15", {"up_lr_weight": "sine+x"}, "after '+' must be a number"),
        ("sd15", {"mid_lr_weight": "cosine"}, "'cosine' is not a number"),
        ("sd15", {"down_lr_weight": ",".join(["1"] * 13)}, "13 values; sd15 has 12 blocks"),
        ("sdxl", {"down_lr_weight": ",".join(["1"] * 12)}, "12 values; sdxl has 9 blocks"),
        ("sdxl", {"mid_lr_weight": "1,1,1,1"}, "4 values; sdxl has 3 mid blocks"),
        ("sd15", {"mid_lr_weight": "1,1"}, "2 values; sd15 has 1 mid blocks"),
        ("sd15", {"down_lr_weight": "1,-0.5"}, "negative weight is read as 0"),
    ],
)
def test_weights_sd_scripts_stops_on_or_reads_otherwise_are_refused(
    family: str, weights: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_job(_job(family, **weights))
    [problem] = info.value.problems
    assert problem.path == f"network.{next(iter(weights))}"
    assert message in problem.message and problem.hint


@pytest.mark.parametrize(
    ("family", "weights", "message"),
    [
        ("sd15", {"down_lr_weight": "1,0.5"}, "2 of 12 values; sd-scripts trains the other"),
        ("sdxl", {"mid_lr_weight": "1"}, "1 of 3 values"),
        ("sd15", {"up_lr_weight": "1,,1,1,1,1,1,1,1,1,1,1"}, "an empty item is weight 0.0"),
    ],
)
def test_weights_sd_scripts_pads_or_zeroes_are_warned(
    family: str, weights: dict[str, str], message: str
) -> None:
    warnings = job_warnings(validate_job(_job(family, **weights)))
    assert [w for w in warnings if message in w.message]


@pytest.mark.parametrize(
    ("family", "weights"),
    [
        ("sd15", {"down_lr_weight": ",".join(["0.5"] * 12), "mid_lr_weight": "2"}),
        ("sdxl", {"up_lr_weight": ",".join(["1"] * 9), "mid_lr_weight": "0,1,1"}),
        ("sd15", {"down_lr_weight": "sine+0.5", "up_lr_weight": "zeros"}),
    ],
)
def test_weights_read_as_written_pass_without_warning(family: str, weights: dict[str, str]) -> None:
    job = validate_job(_job(family, **weights))
    assert not [w for w in job_warnings(job) if "lr_weight" in w.path]
