"""The run-summary fold (events/summary.py): one fold of a run's events, and the plan line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kohya_orchestrator.events import (
    CheckpointSaved,
    ChildError,
    ChildWarning,
    EpochStarted,
    Event,
    LogLine,
    Phase,
    PhaseChanged,
    RunFinished,
    RunStarted,
    RunStatus,
    RunSummary,
    SampleImageSaved,
    SamplePrompt,
    SamplingStarted,
    SavedCheckpoint,
    StepProgress,
    SummaryFold,
    TrainingPlan,
    classify_failure,
    parse_log,
    plan_line,
    summarize,
)


def test_a_real_run(load_capture: Any) -> None:
    s = summarize(parse_log(load_capture("a_lora_accelerate").text))
    assert s.events == 105 and s.warnings == 4 and s.errors == () and s.failure is None
    assert s.plan is not None and s.plan.total_steps == 8
    assert s.phase is Phase.FINISHED
    assert s.epoch_started is not None and s.epoch_started.epoch == 2
    assert s.last_step is not None and (s.last_step.step, s.last_step.avr_loss) == (8, 1.09)
    names = [(Path(c.event.path).name, c.step, c.epoch) for c in s.checkpoints]
    assert names == [
        ("a_lora_accelerate-000001.safetensors", 4, 1),
        ("a_lora_accelerate.safetensors", 8, 2),
    ]
    assert s.checkpoint_events == tuple(c.event for c in s.checkpoints)
    assert dict(s.epoch_end_steps) == {1: 4, 2: 8}
    assert list(s.losses.items())[-1] == (8, 1.09) and len(s.losses) == 8
    assert dict(s.prompts) == {0: "oilpaint style, a red circle"}
    assert [(r.step, r.epoch) for r in s.sampling] == [(4, 1), (8, 2)]
    assert s.sampling_step_by_epoch == {1: 4, 2: 8}
    assert s.sampling_epoch_by_step == {4: 1, 8: 2}
    # Not finished: the runner adds run_finished, the console has none.
    assert (s.started, s.finished, s.status, s.duration_s, s.reason) == (None,) * 5


def test_an_interrupted_run_names_its_cause(load_capture: Any) -> None:
    s = summarize(parse_log(load_capture("g_sigint_accelerate_group").text))
    assert len(s.errors) == 2 and s.checkpoints == ()
    assert s.failure == classify_failure(s.errors)
    assert s.failure is not None and s.failure.category == "interrupted"


def _every_kind() -> list[Event]:
    return [
        RunStarted(seq=0, run_id="r", argv=["x"], cwd="/"),
        PhaseChanged(seq=1, phase=Phase.TRAINING),
        StepProgress(seq=2, step=0, total_steps=4, avr_loss=9.0),  # step 0: no loss point
        CheckpointSaved(
            seq=3, path="/o/s-step00000000.safetensors", step=0, final=False
        ),  # before epoch 1
        EpochStarted(seq=4, epoch=1, total_epochs=2),
        StepProgress(seq=5, step=2, total_steps=4, epoch=1, avr_loss=0.5),
        StepProgress(seq=6, step=2, total_steps=4, epoch=1, avr_loss=0.4),  # the last one wins
        StepProgress(seq=7, step=1, total_steps=4, epoch=1),  # a resumed bar: the max stays
        CheckpointSaved(seq=8, path="/o/s-000001.safetensors", epoch=1, final=False),
        StepProgress(seq=9, step=3, total_steps=4, avr_loss=0.3),  # no epoch on the bar
        SamplingStarted(seq=10, step=3, epoch=None),
        SamplingStarted(seq=11, step=4, epoch=2),
        SamplingStarted(seq=12, step=5, epoch=2),  # epoch 2 keeps its first round
        SamplePrompt(seq=13, prompt="a cat", prompt_index=0),
        SamplePrompt(seq=14, prompt="a dog", prompt_index=0),  # the first text wins
        SamplePrompt(seq=15, prompt="no index"),
        SampleImageSaved(seq=16, path="/o/sample/s_000004_00_20260101000000.png", step=4),
        ChildWarning(seq=17, message="careful"),
        ChildError(seq=18, message="boom", category="exception"),
        ChildError(seq=19, message="oom", category="oom"),
        LogLine(seq=20, text="other kinds count, nothing else"),
        RunFinished(seq=21, status=RunStatus.FAILED, duration_s=3.5, reason="oom"),
    ]


def test_every_kind_is_folded() -> None:
    events = _every_kind()
    s = summarize(events)
    assert s.events == len(events)
    assert s.started == events[0] and s.finished == events[-1]
    assert (s.status, s.duration_s, s.reason) == (RunStatus.FAILED, 3.5, "oom")
    assert s.phase is Phase.TRAINING and s.plan is None
    assert s.last_step == events[9]
    assert dict(s.losses) == {2: 0.4, 3: 0.3}
    assert dict(s.epoch_end_steps) == {1: 2}
    assert s.checkpoints == (
        SavedCheckpoint(events[3], 0, None),  # type: ignore[arg-type]
        SavedCheckpoint(events[8], 1, 1),  # type: ignore[arg-type]
    )
    assert [r.seq for r in s.sampling] == [10, 11, 12]
    assert s.sampling_step_by_epoch == {2: 4}
    assert s.sampling_epoch_by_step == {4: 2, 5: 2}
    assert dict(s.prompts) == {0: "a cat"}
    assert [e.seq for e in s.samples] == [16]
    assert s.warnings == 1
    assert [e.seq for e in s.errors] == [18, 19]
    assert s.failure is not None and s.failure.category == "oom"


def test_a_summary_is_a_snapshot() -> None:
    fold = SummaryFold()
    assert not fold.sampling_started
    before = fold.add_all(_every_kind()[:5]).summary()
    fold.add_all(_every_kind()[5:])
    after = fold.summary()
    assert fold.sampling_started
    assert before.events == 5 and after.events == 22
    assert dict(before.losses) == {} and dict(after.losses) == {2: 0.4, 3: 0.3}
    assert len(before.checkpoints) == 1 and len(after.checkpoints) == 2
    with pytest.raises(TypeError):
        before.losses[1] = 1.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        before.events = 0  # type: ignore[misc]


def test_the_empty_summary() -> None:
    assert summarize([]) == RunSummary()
    empty = RunSummary()
    assert (empty.status, empty.duration_s, empty.reason, empty.failure) == (None,) * 4
    assert dict(empty.losses) == dict(empty.epoch_end_steps) == dict(empty.prompts) == {}
    assert empty.sampling_step_by_epoch == empty.sampling_epoch_by_step == {}


def test_a_successful_run_has_no_reason() -> None:
    done = RunFinished(seq=0, status=RunStatus.SUCCEEDED, returncode=0, duration_s=1.0)
    s = summarize([done])
    assert (s.status, s.duration_s, s.reason) == (RunStatus.SUCCEEDED, 1.0, None)


PLAN = TrainingPlan(
    seq=0,
    train_images_with_repeats=8,
    batches_per_epoch=4,
    epochs=2,
    batch_size_per_device=[2],
    gradient_accumulation_steps=1,
    total_steps=8,
)


def test_the_plan_line() -> None:
    assert plan_line(PLAN) == "8 images x repeats, 4 batches/epoch, 2 epochs, 8 steps"
    assert plan_line(PLAN, detailed=True) == (
        "8 steps = 2 epochs x 4 steps/epoch (batch size 2, gradient accumulation 1); "
        "8 images x repeats"
    )


def test_the_plan_line_with_unknown_values() -> None:
    unknown = TrainingPlan(seq=0, train_images_with_repeats=0)
    # The live display has always printed None for a value the banner did not show.
    assert plan_line(unknown) == "0 images x repeats, None batches/epoch, None epochs, None steps"
    assert plan_line(unknown, detailed=True) == (
        "? steps = ? epochs x ? steps/epoch (batch size ?, gradient accumulation ?); "
        "0 images x repeats"
    )
    several = PLAN.model_copy(update={"batch_size_per_device": [2, 1]})
    assert "(batch size 2, 1, " in plan_line(several, detailed=True)


def test_step_zero_ends_no_epoch_and_has_no_loss() -> None:
    s = summarize([StepProgress(seq=0, step=0, total_steps=4, epoch=1, avr_loss=1.0)])
    assert dict(s.epoch_end_steps) == {} and dict(s.losses) == {}
    assert s.last_step is not None and s.last_step.epoch == 1
