"""Rules that follow how sd-scripts reads a value (issue 17, items 9 and 10).

Each case was read from sd-scripts at the pinned commit: ``networks/lora.py`` reads
``conv_block_dims`` only with ``block_dims`` or block LR weights; ``get_scheduler_fix`` returns
``piecewise_constant`` without the warmup; torch's SGD with ``nesterov=True`` refuses momentum 0;
``int_or_float`` reads ``100%`` as 1.0 (every step warms up); the dataset schema reads bucket sizes
only with ``enable_bucket``.
"""

from __future__ import annotations

from typing import Any

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import validate_job


def _job(**sections: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": {"pretrained_model_name_or_path": "/m.safetensors"},
        "dataset": {"subsets": [{"image_dir": "/d/10_a"}]},
        "training": {"max_train_epochs": 1},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return data


def _problem(data: dict[str, Any]) -> Any:
    with pytest.raises(ConfigError) as info:
        validate_job(data)
    [problem] = info.value.problems
    return problem


def test_conv_block_dims_alone_would_train_no_conv_layer() -> None:
    problem = _problem(_job(network={"algo": "lora", "conv_block_dims": [4] * 25}))
    assert problem.path == "network.conv_block_dims"
    assert "no conv layer would train" in problem.message and "25 values" in problem.hint
    with_dims = _job(network={"algo": "lora", "block_dims": [8] * 25, "conv_block_dims": [4] * 25})
    assert validate_job(with_dims).network.conv_block_dims == [4] * 25  # type: ignore[union-attr]
    with_weights = _job(
        network={"algo": "lora", "down_lr_weight": "sine", "conv_block_dims": [4] * 25}
    )
    assert validate_job(with_weights)


def test_piecewise_constant_takes_no_warmup() -> None:
    scheduler = {
        "lr_scheduler": "piecewise_constant",
        "lr_scheduler_args": {"step_rules": "1:10,0.1"},
    }
    problem = _problem(_job(scheduler={**scheduler, "lr_warmup_steps": 10}))
    assert problem.path == "scheduler.lr_warmup_steps" and "ignores" in problem.message
    assert validate_job(_job(scheduler=scheduler))


def test_nesterov_needs_momentum() -> None:
    problem = _problem(_job(optimizer={"type": "SGDNesterov", "momentum": 0}))
    assert problem.path == "optimizer.momentum"
    assert validate_job(_job(optimizer={"type": "SGDNesterov", "momentum": 0.9}))


@pytest.mark.parametrize(("written", "read"), [("100%", 1.0), ("50%", 0.5), (1.0, 1.0), (10, 10)])
def test_warmup_up_to_every_step_is_taken(written: Any, read: Any) -> None:
    job = validate_job(
        _job(scheduler={"lr_scheduler": "constant_with_warmup", "lr_warmup_steps": written})
    )
    assert job.scheduler.lr_warmup_steps == read


def test_warmup_above_every_step_is_refused() -> None:
    problem = _problem(
        _job(scheduler={"lr_scheduler": "constant_with_warmup", "lr_warmup_steps": "150%"})
    )
    assert "fraction of all steps" in problem.message


def test_bucket_sizes_are_checked_only_when_bucketing() -> None:
    sizes = {"resolution": 512, "min_bucket_reso": 640}
    off = validate_job(_job(dataset={**sizes, "enable_bucket": False}))
    assert off.dataset.min_bucket_reso == 640  # sd-scripts ignores it without bucketing
    problem = _problem(_job(dataset=sizes))  # the job format buckets by default
    assert problem.path.endswith("min_bucket_reso")


@pytest.mark.parametrize(
    ("section", "where"),
    [
        (
            {"optimizer": {"type": "AdamW", "extra_args": {"note": "a=b"}}},
            "optimizer.extra_args.note",
        ),
        (
            {"scheduler": {"lr_scheduler": "cosine", "lr_scheduler_args": {"x": ["k=1", "y"]}}},
            "scheduler.lr_scheduler_args.x",
        ),
    ],
)
def test_an_argument_value_holding_equals_is_refused(section: dict[str, Any], where: str) -> None:
    problem = _problem(_job(**section))
    assert problem.path == where and "splits these arguments on every '='" in problem.message


def test_argument_values_without_equals_pass() -> None:
    ok = _job(optimizer={"type": "AdamW", "extra_args": {"foreach": False, "note": "a:b"}})
    assert validate_job(ok)


def test_fine_tuning_subsets_take_the_datasets_repeat_count() -> None:
    job = validate_job(
        _job(dataset={"num_repeats": 3, "subsets": [{"metadata_file": "/d/meta.json"}]})
    )
    assert job.dataset.subsets[0].num_repeats is None  # rendered without: sd-scripts uses 3


@pytest.mark.parametrize(
    ("block", "where"),
    [
        (
            {"caption_extension": ".txt", "subsets": [{"metadata_file": "/m.json"}]},
            "dataset.datasets[0].caption_extension",
        ),
        (
            {"subsets": [{"metadata_file": "/m.json", "caption_extension": ".txt"}]},
            "dataset.datasets[0].subsets[0].caption_extension",
        ),
    ],
)
def test_caption_extension_on_fine_tuning_is_refused(block: dict[str, Any], where: str) -> None:
    data = _job()
    data["dataset"] = {"datasets": [block]}
    problem = _problem(data)
    assert problem.path == where and "refuses the whole dataset config" in problem.message


def test_caption_extension_on_dataset_applies_to_dreambooth_only() -> None:
    data = _job()
    data["dataset"] = {
        "caption_extension": ".caption",
        "datasets": [{"subsets": [{"metadata_file": "/m.json"}]}],
    }
    assert validate_job(data)  # [general] caption_extension: sd-scripts accepts it
