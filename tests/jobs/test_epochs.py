"""Epochs from data: the epochs a preset picks for your images, with the arithmetic behind them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kohya_orchestrator.datasets.plan import plan_job
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.epochs import StepTarget, choose_epochs
from kohya_orchestrator.jobs.presets import compose_preset, list_presets, preset_job

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MODEL = "/models/sd15.safetensors"


def _problems(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return "\n".join(p.format() for p in exc.value.problems)


class TestEpochsFromData:
    def test_oilpaint_picks_epochs_and_shows_the_arithmetic(self, paintings: Path) -> None:
        built = preset_job("oilpaint", data=paintings, model=MODEL)
        assert built.epochs is not None
        assert built.epochs.summary == (
            "40 images x 20 repeats / batch 2 = 400 steps per epoch; "
            "6 epochs -> 2400 steps (target 1500-3000)"
        )
        assert built.job.training.max_train_epochs == 6
        assert plan_job(built.job).total_steps == 2400 == built.epochs.total_steps
        origin = [layer.name for layer in built.layers]
        assert origin[0] == "preset 'oilpaint'"
        assert origin[1].startswith("epochs from data (target 1500-3000 steps")

    @pytest.mark.parametrize(
        ("override", "layer"),
        [
            ("training.max_train_epochs=3", "--set"),
            ("training.max_train_steps=1000", "--set"),
        ],
    )
    def test_an_explicit_length_wins(self, paintings: Path, override: str, layer: str) -> None:
        if "steps" in override:
            # a job needs exactly one length: clearing the preset's epochs is the user's call
            with pytest.raises(ConfigError) as info:
                preset_job("oilpaint", data=paintings, model=MODEL, overrides=[override])
            assert "both max_train_epochs and max_train_steps" in _problems(info)
            return
        built = preset_job("oilpaint", data=paintings, model=MODEL, overrides=[override])
        assert built.epochs is None
        assert built.job.training.max_train_epochs == 3
        assert built.epochs_note == (
            f"the training length comes from {layer}; epochs from data not used"
        )

    def test_a_job_file_layer_also_wins(self, paintings: Path) -> None:
        from kohya_orchestrator.jobs.layers import Layer

        built = preset_job(
            "oilpaint",
            data=paintings,
            model=MODEL,
            layers=[Layer("job file mine.toml", {"training": {"max_train_epochs": 4}})],
        )
        assert built.job.training.max_train_epochs == 4 and built.epochs is None

    def test_a_small_dataset_stops_at_the_presets_most_epochs(
        self, tmp_path: Path, images: Callable[..., Path]
    ) -> None:
        data = images(tmp_path / "img" / "10_tiny", 6)
        built = preset_job("oilpaint", data=data, model=MODEL)
        assert built.epochs is not None and built.job.training.max_train_epochs == 20
        assert built.epochs.summary.startswith(
            "6 images x 10 repeats / batch 2 = 30 steps per epoch; 20 epochs -> 600 steps "
            "(target 1500-3000); below the target even at the preset's 20 epochs"
        )

    def test_several_subsets_and_bucket_rounding_are_explained(
        self, tmp_path: Path, images: Callable[..., Path]
    ) -> None:
        images(tmp_path / "img" / "3_wide", 3, (128, 64))
        images(tmp_path / "img" / "3_tall", 3, (64, 128))
        built = preset_job("oilpaint", data=tmp_path / "img", model=MODEL)
        assert built.epochs is not None
        # 9 + 9 samples in two buckets of batch 2: 5 + 5 batches, not ceil(18 / 2) = 9
        assert built.epochs.arithmetic in (
            "3 images x 3 repeats + 3 images x 3 repeats / batch 2 = 10 steps per epoch "
            "(not 9: each aspect-ratio bucket rounds up to whole batches)",
        )

    def test_choose_epochs(self) -> None:
        target = StepTarget(1500, 3000, 2, 20)
        assert choose_epochs(600, target) == 4  # 2400, nearest the middle (2250)
        assert choose_epochs(5000, target) == 2  # above the range even at min_epochs
        assert choose_epochs(10, target) == 20  # below it even at max_epochs
        assert choose_epochs(1000, StepTarget(1500, 1800, 1, 10)) == 2  # 2000: closest outside

    def test_every_recipe_declares_a_sensible_target(self) -> None:
        for info in list_presets():
            raw = tomllib.loads(info.path.read_text(encoding="utf-8"))
            if info.overlay:
                assert "epochs_from_data" not in raw, info.name
                continue
            target = raw.get("epochs_from_data")
            if target is None:  # inherits it through extends
                assert raw.get("extends"), info.name
                continue
            low, high = target["target_steps"]
            assert 500 <= low < high <= 4000, info.name

    def test_bad_target_is_reported_with_its_file(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.toml"
        bad.write_text(
            'extends = ["oilpaint"]\n[epochs_from_data]\ntarget_steps = [3000, 100]\nfoo = 1\n',
            encoding="utf-8",
        )
        with pytest.raises(ConfigError) as info:
            compose_preset(str(bad))
        text = _problems(info)
        assert "epochs_from_data.target_steps: expected [low, high]" in text
        assert "(set by preset file bad.toml)" in text
        assert "epochs_from_data.foo: unknown key 'foo'" in text
