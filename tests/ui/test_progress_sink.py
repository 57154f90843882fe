"""RichProgressSink, event by event: what each event kind prints and how the bars move.

Events are built by hand here (the sink parses nothing); test_progress_sink_renders_a_real_run feeds
it a whole real run. Output goes to ``Console(file=StringIO(), width=100, color_system=None)``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from kohya_orchestrator.events import (
    CheckpointSaved,
    ChildError,
    ChildWarning,
    EpochStarted,
    EventAdapter,
    Phase,
    PhaseChanged,
    RunFinished,
    RunStatus,
    SampleImageSaved,
    StepProgress,
    TrainingPlan,
)
from kohya_orchestrator.ui.progress import RichProgressSink

GOLDEN_EVENTS = Path(__file__).resolve().parents[1] / "golden" / "events"


def _sink() -> tuple[RichProgressSink, io.StringIO]:
    buf = io.StringIO()
    console = Console(file=buf, width=100, force_terminal=False, color_system=None)
    return RichProgressSink(console), buf


def _tasks(sink: RichProgressSink) -> list[tuple[str, float, float | None]]:
    return [(t.description, t.completed, t.total) for t in sink._progress.tasks]


def test_steps_without_a_plan_make_their_own_bar() -> None:
    sink, buf = _sink()
    sink.handle(StepProgress(seq=0, step=3, total_steps=8, avr_loss=0.123456))
    assert _tasks(sink) == [("steps", 3, 8)]
    sink.handle(StepProgress(seq=1, step=4, total_steps=8, avr_loss=float("nan")))
    assert _tasks(sink) == [("steps", 4, 8)]
    sink.close()
    final = buf.getvalue().splitlines()[-1]
    assert "4/8" in final and "loss NaN" in final


def test_loss_and_last_checkpoint_share_the_info_column() -> None:
    sink, buf = _sink()
    sink.handle(CheckpointSaved(seq=0, path="/out/style-000001.safetensors", epoch=1, final=False))
    sink.handle(StepProgress(seq=1, step=5, total_steps=8, avr_loss=0.0912))
    sink.close()
    out = buf.getvalue()
    assert "✓ checkpoint /out/style-000001.safetensors" in out
    assert "loss 0.0912  saved style-000001.safetensors" in out.splitlines()[-1]


def test_step_without_loss_shows_no_loss() -> None:
    sink, buf = _sink()
    sink.handle(StepProgress(seq=0, step=1, total_steps=2))
    sink.close()
    assert "1/2" in buf.getvalue() and "loss" not in buf.getvalue()


def test_a_plan_after_the_bar_exists_adds_no_second_bar() -> None:
    sink, buf = _sink()
    sink.handle(StepProgress(seq=0, step=1, total_steps=8))
    sink.handle(
        TrainingPlan(
            seq=1, train_images_with_repeats=8, batches_per_epoch=4, epochs=2, total_steps=8
        )
    )
    assert _tasks(sink) == [("steps", 1, 8)]
    sink.close()
    assert "plan: 8 images x repeats, 4 batches/epoch, 2 epochs, 8 steps" in buf.getvalue()


def test_a_plan_without_total_steps_adds_no_bar() -> None:
    sink, buf = _sink()
    sink.handle(TrainingPlan(seq=0, train_images_with_repeats=0))
    assert _tasks(sink) == []
    sink.close()
    assert "plan: 0 images x repeats, None batches/epoch" in buf.getvalue()


def test_epochs_replace_each_other_and_follow_the_epoch_step() -> None:
    sink, _ = _sink()
    sink.handle(PhaseChanged(seq=0, phase=Phase.TRAINING))
    sink.handle(EpochStarted(seq=1, epoch=1, total_epochs=2))
    sink.handle(StepProgress(seq=2, step=4, total_steps=8, epoch_step=4, epoch_total_steps=4))
    sink.handle(EpochStarted(seq=3, epoch=2, total_epochs=2))
    sink.handle(StepProgress(seq=4, step=5, total_steps=8, epoch_step=1, epoch_total_steps=4))
    assert _tasks(sink) == [("steps", 5, 8), ("epoch 2/2", 1, 4)]
    sink.close()


def test_samples_errors_and_warnings() -> None:
    sink, buf = _sink()
    sink.handle(SampleImageSaved(seq=0, path="/out/sample/style_e000001_00_20260101.png"))
    sink.handle(ChildWarning(seq=1, message="xformers is not installed"))
    sink.handle(
        ChildError(
            seq=2,
            message="torch.OutOfMemoryError: CUDA out of memory.",
            category="oom",
            remedy="Lower train_batch_size.",
        )
    )
    sink.handle(ChildError(seq=3, message="ValueError: bad", category="exception"))
    sink.close()
    assert [line for line in buf.getvalue().splitlines() if line.strip()] == [
        "✓ sample /out/sample/style_e000001_00_20260101.png",
        "⨯ oom: torch.OutOfMemoryError: CUDA out of memory.",
        "  hint: Lower train_batch_size.",
        "⨯ exception: ValueError: bad",
    ]


@pytest.mark.parametrize(
    ("status", "reason", "line", "colour"),
    [
        (RunStatus.SUCCEEDED, None, "succeeded in 12 s", "\x1b[32m"),
        (RunStatus.CANCELED, "canceled", "canceled in 12 s: canceled", "\x1b[33m"),
        (RunStatus.FAILED, "exit code 1", "failed in 12 s: exit code 1", "\x1b[31m"),
    ],
)
def test_run_finished_line_and_colour(
    status: RunStatus, reason: str | None, line: str, colour: str
) -> None:
    plain, buf = _sink()
    plain.handle(RunFinished(seq=0, status=status, returncode=0, duration_s=11.6, reason=reason))
    assert buf.getvalue() == line + "\n"
    ansi = io.StringIO()
    coloured = RichProgressSink(
        Console(file=ansi, width=100, force_terminal=True, color_system="standard")
    )
    coloured.handle(RunFinished(seq=0, status=status, returncode=0, duration_s=11.6, reason=reason))
    assert ansi.getvalue().startswith(colour)


def test_run_finished_stops_the_display_and_close_is_idempotent() -> None:
    sink, buf = _sink()
    sink.handle(StepProgress(seq=0, step=8, total_steps=8))
    assert sink._progress.live.is_started
    sink.handle(RunFinished(seq=1, status=RunStatus.SUCCEEDED, returncode=0, duration_s=1.0))
    assert not sink._progress.live.is_started
    sink.close()
    sink.close()
    assert buf.getvalue().splitlines()[-1] == "succeeded in 1 s"


def test_progress_sink_renders_a_real_run() -> None:
    buf = io.StringIO()
    sink = RichProgressSink(Console(file=buf, width=100, force_terminal=False, color_system=None))
    lines = (
        (GOLDEN_EVENTS / "a_lora_accelerate.events.jsonl").read_text(encoding="utf-8").splitlines()
    )
    events = [EventAdapter.validate_json(x) for x in lines if x.strip()]
    for event in events:
        sink.handle(event)
    sink.close()
    out = buf.getvalue()
    assert "plan: 8 images x repeats, 4 batches/epoch, 2 epochs, 8 steps" in out
    assert "checkpoint /srv/kohya/out/a_lora_accelerate/a_lora_accelerate-000001.safetensors" in out
    assert out.count("checkpoint ") == 2


def test_a_hint_repeated_by_launcher_and_trainer_is_shown_once() -> None:
    sink, buf = _sink()
    hint = "The trainer was interrupted (SIGINT)."
    for seq, who in ((0, "trainer"), (1, "launcher")):
        sink.handle(
            ChildError(
                seq=seq, message=f"KeyboardInterrupt ({who})", category="interrupted", remedy=hint
            )
        )
    sink.close()
    text = buf.getvalue()
    assert text.count("KeyboardInterrupt") == 2  # both errors are shown
    assert text.count(hint) == 1  # their shared hint once
