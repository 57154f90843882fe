"""RichProgressSink as a new user sees it (issue 18 item 8): the time left is the trainer's own,
the epoch bar knows its size from the plan, and the step line names the last save."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from kohya_orchestrator.events import (
    CheckpointSaved,
    EpochStarted,
    LogParser,
    StepProgress,
    TrainingPlan,
)
from kohya_orchestrator.ui.progress import RichProgressSink


def _sink() -> tuple[RichProgressSink, io.StringIO]:
    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=False, color_system=None)
    return RichProgressSink(console), buf


def _last_line(sink: RichProgressSink, buf: io.StringIO, bar: str) -> str:
    sink.close()
    return next(line for line in reversed(buf.getvalue().splitlines()) if line.startswith(bar))


def test_slow_steps_show_the_trainers_time_left(captures_dir: Path) -> None:
    # the real e_prodigy bar, each step 2-3 s apart: rich's own estimate would still say -:--:--
    parser = LogParser()
    steps: list[StepProgress] = []
    chunks = captures_dir / "sd-scripts-logs" / "e_prodigy" / "chunks.jsonl"
    for line in chunks.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        steps += [e for e in parser.feed(row["text"], t=row["t"]) if isinstance(e, StepProgress)]
    at_3 = next(e for e in steps if e.step == 3)
    assert at_3.eta_s == 13.0  # "3/8 [00:08<00:13"
    sink, buf = _sink()
    sink.handle(steps[0])
    sink.handle(at_3)
    assert _last_line(sink, buf, "steps").endswith("0:00:13")


def test_the_time_left_is_unknown_until_the_trainer_says_it() -> None:
    sink, buf = _sink()
    sink.handle(StepProgress(seq=0, step=0, total_steps=8))
    assert _last_line(sink, buf, "steps").endswith("-:--:--")


def test_the_epoch_bar_has_the_plans_size_before_its_first_step() -> None:
    sink, buf = _sink()
    sink.handle(
        TrainingPlan(
            seq=0, batches_per_epoch=9, epochs=2, gradient_accumulation_steps=2, total_steps=10
        )
    )
    sink.handle(EpochStarted(seq=1, epoch=1, total_epochs=2))
    assert [(t.description, t.total) for t in sink._progress.tasks] == [
        ("steps", 10),
        ("epoch 1/2", 5),  # 9 batches, 2 per optimizer step: 5 steps
    ]
    assert "0/5" in _last_line(sink, buf, "epoch 1/2")


def test_the_step_line_names_the_last_save_even_after_the_last_step() -> None:
    sink, buf = _sink()
    sink.handle(CheckpointSaved(seq=0, path="/out/style-000001.safetensors", epoch=1, final=False))
    sink.handle(StepProgress(seq=1, step=8, total_steps=8, avr_loss=0.0912, eta_s=0.0))
    sink.handle(CheckpointSaved(seq=2, path="/out/style.safetensors", final=True))
    line = _last_line(sink, buf, "steps")
    assert "loss 0.0912  saved style.safetensors " in line and "000001" not in line
