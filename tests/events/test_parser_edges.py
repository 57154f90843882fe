"""Parser paths the captures do not reach, fed text in the shapes the captures show.

Rich log records are built the way rich lays them out at 80 columns (time or 19 blanks, level
padded to 8, message from column 29, ``file.py:123`` right-aligned; see a_lora_accelerate); plain
lines are the ``--console_log_simple`` / print shapes of h_simplelog. Where sd-scripts prints a
line no capture has yet (``save train state to …``), the text follows docs/sd-scripts-reference.md.
"""

from __future__ import annotations

import re
from typing import Any

import pydantic
import pytest

from kohya_orchestrator.events import (
    ChildError,
    EpochStarted,
    Event,
    LogLine,
    LogParser,
    Phase,
    PhaseChanged,
    SamplePrompt,
    StateSaved,
    StepProgress,
    TrainingPlan,
    parse_log,
)
from kohya_orchestrator.events.failures import (
    FAILURE_RULES,
    FailureRule,
    _remedy,
    classify_exception,
)
from kohya_orchestrator.events.types import trusted_constructor

WIDTH = 80
TIME = "2026-11-24 21:53:38"


def rich(level: str, message: str, source: str, *, time: str = " " * 19) -> str:
    """One rich record row as sd-scripts writes it to a pipe (80 columns, padded)."""
    head = f"{time} {level:<8} {message}"
    row = head + " " * (WIDTH - len(head) - len(source)) + source
    assert len(row) == WIDTH
    return row


BANNER = [
    "running training / 学習開始",
    "  num train images * repeats / 学習画像の数×繰り返し回数: 8",
    "  num validation images * repeats / 学習画像の数×繰り返し回数: 0",
    "  num reg images / 正則化画像の数: 0",
    "  num batches per epoch / 1epochのバッチ数: 4",
    "  num epochs / epoch数: 2",
    "  batch size per device / バッチサイズ: 2",
    "  gradient accumulation steps / 勾配を合計するステップ数 = 1",
    "  total optimization steps / 学習ステップ数: 8",
]


def of(events: list[Event], cls: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


# ----------------------------------------------------------------------------- public API


def test_properties_follow_the_stream() -> None:
    parser = LogParser(start_seq=5)
    assert (parser.phase, parser.plan, parser.next_seq) == (None, None, 5)
    events = parser.feed("\n".join(BANNER) + "\n")
    (plan,) = of(events, TrainingPlan)
    assert parser.plan == plan and plan.total_steps == 8
    assert parser.phase is Phase.TRAINING
    assert parser.next_seq == 5 + len(events)
    assert [e.seq for e in events] == list(range(5, 5 + len(events)))


def test_close_takes_the_time_of_the_end() -> None:
    parser = LogParser()
    assert parser.feed("prepare optimizer, data loader etc.", t=1.0) == []
    events = parser.close(t=7.5)
    assert kinds(events) == ["phase_changed", "log_line"]
    assert [e.t for e in events] == [7.5, 7.5]
    assert parser.close(t=9.0) == []


# ----------------------------------------------------------------------------- segments


def test_a_segment_of_only_cursor_moves_is_nothing() -> None:
    # a_lora_accelerate: the sampling bar moves the cursor up with ESC [A on its own segment.
    events = parse_log("\x1b[A\r\x1b[A\nepoch 1/2\n")
    assert kinds(events) == ["phase_changed", "epoch_started"]
    assert of(events, LogLine) == []


# ----------------------------------------------------------------------------- messages


def test_warning_word_without_file_and_line_is_a_log_line() -> None:
    line = "FutureWarning: `resume_download` is deprecated and will be removed in version 1.0.0."
    (event,) = parse_log(line + "\n")
    assert isinstance(event, LogLine)
    assert (event.text, event.level) == (line, None)


def test_python_warning_still_makes_a_warning_block() -> None:
    text = (
        "/srv/kohya/venv/lib/python3.11/site-packages/x.py:12: UserWarning: careful\n"
        "  warnings.warn('careful')\n"
    )
    (event,) = parse_log(text)
    assert event.kind == "child_warning"
    assert event.source == "x.py:12"  # type: ignore[union-attr]


@pytest.mark.parametrize("level", ["ERROR", "CRITICAL"])
def test_unclassified_error_record_is_a_logged_error(level: str) -> None:
    row = rich(level, "could not load the VAE", "train_util.py:5530", time=TIME)
    (event,) = parse_log(row + "\n")
    assert isinstance(event, ChildError)
    assert event.category == "logged_error"
    assert event.message == "could not load the VAE"
    assert event.remedy is None
    assert event.source == "train_util.py:5530"


def test_classified_error_record_keeps_its_category() -> None:
    row = rich("ERROR", "No data found. Please verify", "train_network.py:576")
    (event,) = parse_log(row + "\n")
    assert isinstance(event, ChildError) and event.category == "no_data"


def test_info_record_is_a_log_line_with_level_and_source() -> None:
    (event,) = parse_log(rich("INFO", "Using v1 tokenizer", "strategy_sd.py:26", time=TIME) + "\n")
    assert isinstance(event, LogLine)
    assert (event.text, event.level, event.source) == (
        "Using v1 tokenizer",
        "INFO",
        "strategy_sd.py:26",
    )


@pytest.mark.parametrize("message", ["saving state at epoch 1", "saving last state."])
def test_saving_state_is_the_saving_phase(message: str) -> None:
    events = parse_log(rich("INFO", message, "train_util.py:5941") + "\n")
    assert kinds(events) == ["phase_changed", "log_line"]
    assert events[0].phase is Phase.SAVING  # type: ignore[union-attr]
    assert events[1].text == message  # type: ignore[union-attr]


def test_other_saving_message_is_only_a_log_line() -> None:
    (event,) = parse_log("saving the metadata cache\n")
    assert isinstance(event, LogLine) and event.text == "saving the metadata cache"


def test_train_state_saved() -> None:
    message = "save train state to /out/run/run-000001-state/train_state.json at epoch 1 step 4"
    # the record wraps at 80 columns; the parser joins the rows back into one message
    head = rich("INFO", "save train state to", "train_network.py:946", time=TIME)
    rows = [
        head,
        " " * 29 + "/out/run/run-000001-state/train_state.json".ljust(WIDTH - 29),
        " " * 29 + "at epoch 1 step 4".ljust(WIDTH - 29),
    ]
    (event,) = parse_log("\n".join(rows) + "\n")
    assert isinstance(event, StateSaved)
    assert (event.path, event.epoch, event.step, event.text) == (
        "/out/run/run-000001-state",
        1,
        4,
        message,
    )


def test_state_saved_with_windows_path() -> None:
    text = "save train state to C:\\out\\run-state\\train_state.json at epoch 2 step 10\n"
    (event,) = parse_log(text)
    assert isinstance(event, StateSaved) and event.path == "C:\\out\\run-state"


def test_other_save_message_is_a_log_line() -> None:
    (event,) = parse_log("save the config to /out/run/config.toml\n")
    assert isinstance(event, LogLine)


def test_running_without_the_banner_is_a_log_line() -> None:
    (event,) = parse_log("running on cpu\n")
    assert isinstance(event, LogLine) and event.text == "running on cpu"


# ----------------------------------------------------------------------------- blocks


def test_banner_line_with_an_unknown_label_is_kept_in_the_text() -> None:
    extra = "  num workers / ワーカー数: 2"
    lines = [*BANNER[:5], extra, *BANNER[5:]]
    (plan,) = parse_log("\n".join(lines) + "\n")[1:]
    assert isinstance(plan, TrainingPlan)
    assert plan.text.splitlines() == lines
    assert (plan.epochs, plan.batch_size_per_device, plan.total_steps) == (2, [2], 8)


def test_sample_prompt_values_that_are_not_numbers() -> None:
    # h_simplelog prints one line per setting; values sd-scripts passes through unparsed
    text = (
        "generating sample images at step / サンプル画像生成 ステップ: 4\n"
        "prompt: oilpaint style, a red circle\n"
        "width: 512px\n"
        "sample_steps: 2\n"
        "scale: high\n"
        "seed: 42\n"
        "epoch 2/2\n"
    )
    events = parse_log(text)
    (prompt,) = of(events, SamplePrompt)
    assert (prompt.prompt, prompt.width, prompt.sample_steps, prompt.scale, prompt.seed) == (
        "oilpaint style, a red circle",
        None,
        2,
        None,
        42,
    )
    assert "width: 512px" in prompt.text and "scale: high" in prompt.text
    assert (prompt.step, prompt.prompt_index) == (4, 0)


# ----------------------------------------------------------------------------- tqdm


def test_postfix_items_without_a_value_are_dropped() -> None:
    bar = "steps:  12%|█▎        | 1/8 [00:04<00:28,  4.01s/it, avr_loss=1.23, lr, grad=0.5]"
    (step,) = of(parse_log(bar + "\n"), StepProgress)
    assert step.avr_loss == 1.23
    assert step.postfix == {"grad": "0.5"}


def test_avr_loss_that_is_not_a_number() -> None:
    bar = "steps:  12%|█▎        | 1/8 [00:04<00:28,  4.01s/it, avr_loss=n/a]"
    events = parse_log(bar + "\n")
    (step,) = of(events, StepProgress)
    assert step.avr_loss is None
    assert of(events, ChildError) == []


def test_step_without_rate_has_no_epoch_eta() -> None:
    lines = [
        *BANNER,
        "epoch 1/2",
        "steps:   0%|          | 0/8 [00:00<?, ?it/s]",
        "steps:  12%|█▎        | 1/8 [00:04<00:28,  4.01s/it, avr_loss=1.23]",
    ]
    first, second = of(parse_log("\n".join(lines) + "\n"), StepProgress)
    assert (first.step, first.epoch, first.epoch_step, first.epoch_total_steps) == (0, 1, 0, 4)
    assert (first.rate_it_s, first.epoch_eta_s) == (None, None)
    assert second.epoch_step == 1
    assert second.epoch_eta_s == pytest.approx(3 * 4.01)


def test_resumed_bar_is_offset_by_the_plan() -> None:
    # resuming at step 4 of 8: tqdm counts 0..4 of max_train_steps - initial_step
    lines = [
        *BANNER,
        "epoch 2/2",
        "steps:  25%|██▌       | 1/4 [00:02<00:06,  2.00s/it, avr_loss=1.10]",
    ]
    (step,) = of(parse_log("\n".join(lines) + "\n"), StepProgress)
    assert (step.step, step.total_steps, step.epoch_step) == (1, 4, 1)


def test_banner_cut_short_by_a_log_record_has_no_total() -> None:
    # stdout (banner print) and stderr (rich log) share the pipe: a record can land inside it.
    lines = [
        *BANNER[:-1],
        rich("INFO", "unet dtype: torch.float32", "train_network.py:1347", time=TIME),
        BANNER[-1],
        "epoch 1/2",
        "steps:  12%|█▎        | 1/8 [00:04<00:28,  4.01s/it, avr_loss=1.23]",
    ]
    events = parse_log("\n".join(lines) + "\n")
    (plan,) = of(events, TrainingPlan)
    assert (plan.total_steps, plan.steps_per_epoch) == (None, 4)
    # the late total line is not lost: it becomes a log line of its own
    assert [e.text for e in of(events, LogLine)] == ["unet dtype: torch.float32", BANNER[-1]]
    (step,) = of(events, StepProgress)
    assert (step.epoch, step.epoch_step, step.epoch_total_steps) == (1, 1, 4)
    assert of(events, EpochStarted)[0].total_epochs == 2
    assert of(events, PhaseChanged)[0].phase is Phase.TRAINING


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("module", ["library.train_util", "networks"])
def test_missing_sd_scripts_package_means_wrong_working_directory(module: str) -> None:
    category, remedy = classify_exception(f"ModuleNotFoundError: No module named '{module}'")
    top = module.split(".")[0]
    assert category == "missing_module"
    assert remedy is not None and remedy.startswith(f"'{top}' is sd-scripts' own package")


def test_missing_pip_module_names_its_package() -> None:
    _, remedy = classify_exception("ModuleNotFoundError: No module named 'cv2'")
    assert remedy is not None and "pip install opencv-python" in remedy


def test_every_shipped_rule_has_a_remedy() -> None:
    assert all(rule.remedy for rule in FAILURE_RULES)


def test_rule_without_a_remedy_gives_none() -> None:
    # No shipped rule lacks a remedy (above); the helper still honours the declared type.
    rule = FailureRule(
        category="exception",
        pattern=re.compile(r"boom"),
        remedy=None,
        example="boom",
        scope="exception",
    )
    match = rule.pattern.search("boom")
    assert match is not None
    assert _remedy(rule, match) is None


# ----------------------------------------------------------------------------- types


def test_trusted_constructor_refuses_field_names_that_clash() -> None:
    class Clashing(pydantic.BaseModel):
        new: int

    with pytest.raises(ValueError, match=r"Clashing\.new: not a plain field name"):
        trusted_constructor(Clashing)
