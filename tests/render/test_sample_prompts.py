"""The sample prompt file: numbers sd-scripts reads back exactly (issue 17 item 1) and
no_half_vae rendered for every family (item 7).

sd-scripts reads ``--l`` with the pattern ``[\\d.]+`` and then float(), so a scale must never be
written in exponent form; tests/e2e/test_prompt_oracle.py runs sd-scripts' own reader on it.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models import TrainingJob
from kohya_orchestrator.render.toml import (
    RenderPaths,
    _plain_number,
    render_sample_prompts,
    training_config_dict,
)

BASE: dict[str, Any] = {
    "model": {"pretrained_model_name_or_path": "/m/sd15.safetensors"},
    "dataset": {"subsets": [{"image_dir": "/d/img/20_style"}]},
    "training": {"max_train_epochs": 2},
}


def make_job(prompts: list[dict[str, Any]], **sampling: Any) -> TrainingJob:
    data = copy.deepcopy(BASE)
    data["sampling"] = {"sample_every_n_epochs": 1, "prompts": prompts, **sampling}
    return validate_job(data)


def lines(job: TrainingJob) -> list[str]:
    text = render_sample_prompts(job)
    assert text is not None
    return text.splitlines()[1:]


class TestPlainNumber:
    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (5e-05, "0.00005"),
            (1e-07, "0.0000001"),
            (7.0, "7.0"),
            (7.5, "7.5"),
            (0.1, "0.1"),
            (1e16, "10000000000000000"),
            (1e22, "10000000000000000000000"),
            (123456789.123, "123456789.123"),
        ],
    )
    def test_examples(self, value: float, text: str) -> None:
        assert _plain_number(value) == text

    @given(st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False))
    def test_reads_back_exactly_through_sd_scripts_pattern(self, value: float) -> None:
        text = _plain_number(value)
        # What sd-scripts takes: the longest run of digits and dots after "l " (all of it here).
        assert re.fullmatch(r"[\d.]+", text)
        assert float(text) == value and math.copysign(1, float(text)) == 1


class TestPromptLines:
    def test_scale_in_exponent_form_is_written_out(self) -> None:
        assert lines(make_job([{"prompt": "a cat", "scale": 5e-05}])) == [
            "a cat --w 512 --h 512 --l 0.00005"
        ]

    def test_section_defaults_and_ints(self) -> None:
        job = make_job(
            [{"prompt": "a cat"}, {"prompt": "a dog", "seed": 7, "sample_sampler": "ddim"}],
            negative_prompt="n lowres",
            width=768,
            height=504,
            sample_steps=20,
            seed=0,
            scale=7,
        )
        assert lines(job) == [
            "a cat --n n lowres --w 768 --h 504 --s 20 --d 0 --l 7.0",
            "a dog --n n lowres --w 768 --h 504 --s 20 --d 7 --l 7.0 --ss ddim",
        ]

    def test_empty_negative_turns_the_section_default_off(self) -> None:
        job = make_job([{"prompt": "a cat", "negative_prompt": ""}], negative_prompt="lowres")
        assert lines(job) == ["a cat --w 512 --h 512"]

    def test_non_square_resolution_is_the_default_size(self) -> None:
        data = copy.deepcopy(BASE)
        data["dataset"]["resolution"] = [768, 512]
        data["sampling"] = {"sample_every_n_epochs": 1, "prompts": [{"prompt": "a cat"}]}
        assert lines(validate_job(data)) == ["a cat --w 768 --h 512"]


@pytest.mark.parametrize("family", ["sd15", "sd2", "sdxl"])
def test_no_half_vae_is_rendered_for_every_family(family: str) -> None:
    data = copy.deepcopy(BASE)
    data["model"].update(family=family, no_half_vae=True)
    config = training_config_dict(validate_job(data), RenderPaths("/r/dataset.toml"))
    assert config["model_arguments"]["no_half_vae"] is True
