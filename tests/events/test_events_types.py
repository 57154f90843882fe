"""Event models: discriminated JSON round trips, immutability, and the sample-name helper."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pydantic
import pytest

from kohya_orchestrator.events import (
    ERROR_CATEGORIES,
    CheckpointSaved,
    ChildError,
    ChildWarning,
    EpochStarted,
    Event,
    EventAdapter,
    LogLine,
    LogParser,
    Phase,
    PhaseChanged,
    PlanDifference,
    PlanMismatch,
    PlanPredicted,
    ProgressBar,
    ResourceSample,
    RunFinished,
    RunStarted,
    RunStatus,
    SampleImageSaved,
    SamplePrompt,
    SampleSuspect,
    SamplingStarted,
    StateSaved,
    StepProgress,
    TrainingPlan,
    dump_events_jsonl,
    load_events_jsonl,
    parse_log,
    parse_sample_filename,
)
from kohya_orchestrator.events.types import trusted_constructor

ONE_OF_EACH: list[Event] = [
    RunStarted(seq=0, run_id="r1", argv=["accelerate", "launch", "train_network.py"], cwd="/sd"),
    PhaseChanged(seq=1, t=0.5, phase=Phase.LOADING_CONFIG),
    TrainingPlan(seq=2, epochs=2, batches_per_epoch=4, total_steps=8, batch_size_per_device=[2]),
    EpochStarted(seq=3, epoch=1, total_epochs=2),
    StepProgress(seq=4, step=1, total_steps=8, avr_loss=1.23, rate_it_s=0.28, eta_s=25.0),
    ProgressBar(seq=5, n=1, total=4, phase=Phase.CACHING_LATENTS),
    SamplingStarted(seq=6, step=4, epoch=1),
    SamplePrompt(seq=7, prompt="oilpaint style, a red circle", seed=1, scale=7.0),
    SampleImageSaved(seq=8, path="out/sample/x_e000001_00_20261124215422_1.png", epoch=1),
    CheckpointSaved(seq=9, path="out/x-000001.safetensors", epoch=1, final=False),
    StateSaved(seq=10, path="out/x-000001-state", epoch=1, step=4),
    ChildWarning(seq=11, message="Failed to get git commit hash, using fallback"),
    ChildError(seq=12, message="KeyError: 'ia3'", category="lycoris_ia3_keyerror"),
    LogLine(seq=13, text="use AdamW optimizer | {}", level="INFO", source="train_util.py:5096"),
    ResourceSample(seq=14, cpu_percent=180.0, rss_bytes=6 << 30, num_processes=2),
    RunFinished(seq=15, status=RunStatus.SUCCEEDED, returncode=0, duration_s=43.3),
    PlanPredicted(
        seq=16,
        train_images_with_repeats=8,
        batches_per_epoch=4,
        epochs=2,
        total_steps=8,
        exact=True,
    ),
    PlanMismatch(
        seq=17,
        differences=[PlanDifference(quantity="epochs", predicted=2, actual=3)],
        message="sd-scripts plans another run than predicted: epochs 3 (predicted 2)",
    ),
    SampleSuspect(
        seq=18,
        path="out/sample/x_e000002_00_20261124215434_1.png",
        problem="black",
        epoch=2,
        prompt_index=0,
        prompt="oilpaint style, a red circle",
        message="sample of epoch 2, prompt 0 is all black",
    ),
]


def test_every_kind_round_trips_through_jsonl() -> None:
    kinds = {e.kind for e in ONE_OF_EACH}
    assert len(kinds) == len(ONE_OF_EACH)  # one of each kind, and no kind forgotten below
    union_kinds = {m.model_fields["kind"].default for m in _union_members()}
    assert kinds == union_kinds
    assert load_events_jsonl(dump_events_jsonl(ONE_OF_EACH)) == ONE_OF_EACH
    for event in ONE_OF_EACH:
        assert EventAdapter.validate_json(event.model_dump_json()) == event


def _union_members() -> list[type[pydantic.BaseModel]]:
    from typing import get_args

    union = get_args(Event)[0]
    return list(get_args(union))


def test_events_are_frozen_and_strict() -> None:
    event = LogLine(seq=0, text="x")
    with pytest.raises(pydantic.ValidationError):
        event.text = "y"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        EventAdapter.validate_python({"kind": "log_line", "seq": 0, "text": "x", "colour": "red"})
    with pytest.raises(pydantic.ValidationError):
        EventAdapter.validate_python({"kind": "no_such_kind", "seq": 0})
    with pytest.raises(pydantic.ValidationError):
        ChildError(seq=0, message="x", category="not_a_category")  # type: ignore[arg-type]


def test_nan_loss_survives_json() -> None:
    event = StepProgress(seq=0, step=3, total_steps=8, avr_loss=math.nan)
    line = event.model_dump_json()
    assert '"avr_loss":"NaN"' in line
    back = EventAdapter.validate_json(line)
    assert isinstance(back, StepProgress)
    assert back.avr_loss is not None
    assert math.isnan(back.avr_loss)


def test_error_categories_cover_the_brief() -> None:
    assert set(ERROR_CATEGORIES) >= {
        "oom",
        "no_data",
        "missing_module",
        "lycoris_duplicated_name",
        "lycoris_ia3_keyerror",
        "lycoris_empty_params",
        "bad_argument",
        "fp16_no_gpu",
        "nan_loss",
        "config_not_found",
        "exception",
        "interrupted",
    }


def test_steps_per_epoch_rounds_up() -> None:
    assert (
        TrainingPlan(seq=0, batches_per_epoch=5, gradient_accumulation_steps=2).steps_per_epoch == 3
    )
    assert TrainingPlan(seq=0, batches_per_epoch=4).steps_per_epoch == 4
    assert TrainingPlan(seq=0).steps_per_epoch is None


def test_sample_names_of_a_real_run(captures_dir: Path) -> None:
    folder = captures_dir / "run-outputs" / "e_prodigy" / "sample"
    names = sorted(p.name for p in folder.glob("*.png"))
    assert [parse_sample_filename(n) for n in names] == [(1, None, 0), (2, None, 0)]
    assert parse_sample_filename(str(folder / names[0])) == (1, None, 0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # Layouts from sd-scripts train_util.py:6572-6577 (reference doc section 6).
        ("style_000010_00_20261124215422.png", (None, 10, 0)),
        ("style_000010_03_20261124215422_42.png", (None, 10, 3)),
        ("e000000_01_20261124215422.png", (0, None, 1)),  # --sample_at_first, no output_name
        ("my_run_2_e000012_00_20261124215422_7.png", (12, None, 0)),
        ("notes.txt", (None, None, None)),
        ("style_e000001.safetensors", (None, None, None)),
    ],
)
def test_sample_name_layouts(name: str, expected: tuple[int | None, ...]) -> None:
    assert parse_sample_filename(name) == expected


def test_parsed_events_equal_their_validated_copies(capture: Any) -> None:
    """The parser builds events without validation (``trusted_constructor``): each event it
    makes from a real capture must be exactly what validation would have made, down to the JSON
    (an int where a float is declared would still compare equal, but serialise differently)."""
    events = parse_log(capture.text)
    assert events, capture.name
    for event in events:
        dumped = event.model_dump_json()
        validated = EventAdapter.validate_json(dumped)
        assert validated == event, dumped
        assert validated.model_dump_json() == dumped
        again = EventAdapter.validate_python(event.model_dump(), strict=True)
        assert again.model_dump_json() == dumped


def test_trusted_constructor_fills_defaults_in_field_order() -> None:
    make = trusted_constructor(ChildError)
    first = make(seq=3, message="boom", category="oom")
    second = make(seq=4, message="boom", category="oom")
    expected = ChildError(seq=3, message="boom", category="oom")
    assert first == expected
    assert first.model_dump_json() == expected.model_dump_json()
    assert list(first.model_dump()) == list(ChildError.model_fields)
    assert first.traceback == [] and first.traceback is not second.traceback  # factory called
    assert first.model_fields_set == set(ChildError.model_fields)  # as when read from JSON
    with pytest.raises(TypeError):
        make(seq=1, message="no category")
    with pytest.raises(TypeError):
        make(seq=1, message="m", category="oom", colour="red")
    with pytest.raises(pydantic.ValidationError):  # still frozen
        first.seq = 5  # type: ignore[misc]
    assert first.model_copy(update={"seq": 9}).seq == 9


def test_an_integer_time_is_stored_as_a_float() -> None:
    """``t`` comes from the caller; unvalidated events must still hold the declared float."""
    parser = LogParser()
    events = parser.feed("epoch 1/2\n", t=3) + parser.close(t=4)
    assert events and all(type(e.t) is float for e in events)
    assert '"t":3.0' in events[0].model_dump_json()
