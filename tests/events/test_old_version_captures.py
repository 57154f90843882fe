"""The parser reads an older sd-scripts release as it reads the pinned commit (real captures).

tests/fixtures/sd-scripts/old-version-logs/v0.6.0/ holds the console output of sd-scripts v0.6.0
(2023-04-04) train_network.py, on its own 2023 pins (torch 1.12.1, accelerate 0.15.0, diffusers
0.10.2, transformers 4.26.0), launched as kohya_orchestrator launches it, on the lab's
random-weight SD1.5 (tests/lab/build_old_lab.py, tests/lab/capture_old.py; the folder's README
says how). Its output has the 2023 shapes: print() lines without log levels, the bar postfix
``loss=`` instead of ``avr_loss=``, the final model announced as ``save trained model to ...``,
and ``override steps. steps for 2 epochs is ...: 8`` before the banner.

The expected values below are read off the captures (the lines are quoted next to them).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from kohya_orchestrator.events import (
    Decoder,
    LogParser,
    classify_failure,
    parse_bytes_chunks,
    summarize,
)

TAG = "v0.6.0"
LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "sd-scripts" / "old-version-logs" / TAG
NAMES = ["lora_2epochs", "missing_dir", "nan_loss", "prodigy_unknown"]


def _events(name: str) -> list[Any]:
    decoder, parser = Decoder(), LogParser()
    events = list(parser.feed(decoder.decode((LOGS / name / "combined").read_bytes(), final=True)))
    return events + list(parser.close())


def _result(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((LOGS / name / "result.json").read_text("utf-8"))
    return result


def _of(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.kind == kind]


def _losses_by_step(events: list[Any]) -> dict[int, float | None]:
    """The last loss each step's bar showed."""
    return {e.step: e.avr_loss for e in _of(events, "step_progress") if e.step > 0}


def test_every_scenario_was_captured() -> None:
    assert sorted(p.name for p in LOGS.iterdir() if p.is_dir()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_a_capture_holds_both_streams_and_its_result(name: str) -> None:
    d = LOGS / name
    combined = (d / "combined").read_bytes()
    assert len(combined) == len((d / "stdout").read_bytes()) + len((d / "stderr").read_bytes())
    rows = [json.loads(line) for line in (d / "chunks.jsonl").read_text("utf-8").splitlines()]
    assert "".join(r["text"] for r in rows).encode() == combined
    result = _result(name)
    assert (result["tag"], result["commit"][:8]) == (TAG, "8eb60baf")
    assert "accelerate.commands.launch" in result["argv"]


@pytest.mark.parametrize("name", NAMES)
def test_the_reads_as_they_came_give_the_same_events(name: str) -> None:
    rows = (LOGS / name / "chunks.jsonl").read_text("utf-8").splitlines()
    reads = [(float(r["t"]), r["text"].encode()) for r in map(json.loads, rows)]
    by_reads = [e.model_dump_json(exclude={"t"}) for e in parse_bytes_chunks(reads)]
    assert by_reads == [e.model_dump_json(exclude={"t"}) for e in _events(name)]


class TestLoraRun:
    """lora_2epochs: 4 images x 2 repeats, batch 2, 2 epochs, a checkpoint every epoch; rc 0."""

    def test_the_plan(self) -> None:
        # override steps. steps for 2 epochs is / 指定エポックまでのステップ数: 8
        # running training / 学習開始 ... num batches per epoch / 1epochのバッチ数: 4
        (plan,) = _of(_events("lora_2epochs"), "training_plan")
        assert plan.train_images_with_repeats == 8
        assert plan.reg_images == 0
        assert plan.batches_per_epoch == 4
        assert plan.epochs == 2
        assert plan.batch_size_per_device == [2]
        assert plan.gradient_accumulation_steps == 1
        assert plan.total_steps == 8

    def test_the_epochs_and_steps(self) -> None:
        events = _events("lora_2epochs")
        assert [(e.epoch, e.total_epochs) for e in _of(events, "epoch_started")] == [(1, 2), (2, 2)]
        steps = _of(events, "step_progress")
        assert {e.total_steps for e in steps} == {8}
        assert sorted({e.step for e in steps}) == list(range(9))
        assert {e.step: e.epoch for e in steps if e.step in (4, 5)} == {4: 1, 5: 2}
        # steps:  12%|█▎        | 1/8 [00:07<00:50,  7.26s/it]
        first = next(e for e in steps if e.step == 1)
        assert first.rate_it_s == pytest.approx(1 / 7.26)

    def test_the_loss_postfix_of_2023(self) -> None:
        # steps:  12%|█▎        | 1/8 [00:07<00:50,  7.26s/it, loss=1.17] ... every step redraws
        # with the loss of that step: 1.17 1.17 1.15 1.17 | 1.21 1.22 1.19 1.18
        events = _events("lora_2epochs")
        assert _losses_by_step(events) == {
            1: 1.17,
            2: 1.17,
            3: 1.15,
            4: 1.17,
            5: 1.21,
            6: 1.22,
            7: 1.19,
            8: 1.18,
        }
        assert summarize(events).losses == _losses_by_step(events)

    def test_both_checkpoints_and_the_2023_final_wording(self) -> None:
        # saving checkpoint: /tmp/kohya-old-capture/v0.6.0/lora_2epochs/out/lora_2epochs-000001...
        # save trained model to /tmp/kohya-old-capture/v0.6.0/lora_2epochs/out/lora_2epochs...
        events = _events("lora_2epochs")
        saved = _of(events, "checkpoint_saved")
        assert [(Path(e.path).name, e.epoch, e.final) for e in saved] == [
            ("lora_2epochs-000001.safetensors", 1, False),
            ("lora_2epochs.safetensors", None, True),
        ]
        assert sorted(Path(e.path).name for e in saved) == _result("lora_2epochs")["outputs"]
        folded = summarize(events).checkpoints
        assert [(c.step, c.epoch) for c in folded] == [(4, 1), (8, 2)]

    def test_no_failure(self) -> None:
        events = _events("lora_2epochs")
        assert _result("lora_2epochs")["rc"] == 0
        assert not _of(events, "child_error")
        assert classify_failure(events) is None
        assert summarize(events).phase == "finished"

    def test_lines_without_levels_stay_plain_lines(self) -> None:
        # git's stderr (the release was unpacked without .git) and diffusers 0.10's notes about
        # config keys it does not know: printed with no level, so neither a warning nor an error.
        texts = [e.text for e in _of(_events("lora_2epochs"), "log_line")]
        assert "fatal: not a git repository (or any of the parent directories): .git" in texts
        assert sum("were passed to" in t and "will be ignored" in t for t in texts) == 4


def test_a_missing_image_folder_is_no_data() -> None:
    # not directory: /tmp/kohya-old-capture/v0.6.0/missing_dir/no-such-folder/2_oilpaint style
    # No data found. Please verify arguments (train_data_dir must be the parent of folders ...
    events = _events("missing_dir")
    failure = classify_failure(events)
    assert failure is not None
    assert failure.category == "no_data"
    assert failure.message.startswith("No data found. Please verify arguments")
    assert not _of(events, "training_plan")
    assert not _of(events, "checkpoint_saved")
    assert _result("missing_dir")["rc"] == 0  # sd-scripts returns normally


def test_an_optimizer_the_release_lacks_is_a_bad_argument_with_the_fix() -> None:
    # use Prodigy | {}
    # AttributeError: module 'torch.optim' has no attribute 'Prodigy'
    # ... then accelerate's subprocess.CalledProcessError (exit status 1)
    events = _events("prodigy_unknown")
    errors = _of(events, "child_error")
    assert [e.category for e in errors] == ["bad_argument", "launcher_failed"]
    failure = classify_failure(events)
    assert failure is not None
    assert failure.message == "AttributeError: module 'torch.optim' has no attribute 'Prodigy'"
    assert failure.category == "bad_argument"
    assert failure.remedy is not None
    assert failure.remedy.startswith("This sd-scripts does not know optimizer Prodigy")
    assert failure.traceback[0] == "Traceback (most recent call last):"
    assert failure.traceback[-2].strip() == (
        "optimizer_class = getattr(optimizer_module, optimizer_type)"
    )
    assert summarize(events).phase == "preparing_optimizer"
    assert not _of(events, "training_plan")
    assert _result("prodigy_unknown")["rc"] == 1


def test_a_nan_loss_in_the_old_postfix() -> None:
    # steps:  25%|██▌       | 2/8 [00:33<01:40, 16.82s/it, loss=nan]  (then nan to step 8)
    events = _events("nan_loss")
    losses = _losses_by_step(events)
    assert losses[1] == 1.17
    assert all(v is not None and math.isnan(v) for s, v in losses.items() if s >= 2)
    assert sorted(losses) == list(range(1, 9))
    failure = classify_failure(events)
    assert failure is not None
    assert failure.category == "nan_loss"
    assert failure.message == "loss is nan at step 2/8"
    # sd-scripts v0.6.0 trains on and saves both files: the parser still reports them.
    assert [(Path(e.path).name, e.final) for e in _of(events, "checkpoint_saved")] == [
        ("nan_loss-000001.safetensors", False),
        ("nan_loss.safetensors", True),
    ]
    assert _result("nan_loss")["rc"] == 0
