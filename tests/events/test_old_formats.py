"""Console output of other sd-scripts versions, launchers and wrappers (issue 15, item 3).

Fixtures: tests/fixtures/sd-scripts/old-formats/ (its README says, for each file, whether it was
captured or written from a format, and from which source). Every shape is checked twice: on the
parser's events, and through ``python -m kohya_orchestrator replay --jsonl`` (the CLI entry point,
its stdout read back as events), which must report the steps, the total, the loss, the
checkpoints, and the failure's category with its own exception line.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.events import (
    CheckpointSaved,
    ChildError,
    ChildWarning,
    Decoder,
    EpochStarted,
    Event,
    EventAdapter,
    LogLine,
    LogParser,
    StepProgress,
    TrainingPlan,
    classify_failure,
    parse_log,
    summarize,
)
from kohya_orchestrator.events.failures import classify_traceback, describe_exit_status
from kohya_orchestrator.events.records import level_prefix, open_record

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "sd-scripts" / "old-formats"
LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "sd-scripts" / "sd-scripts-logs"
FIXTURES = sorted(p.name for p in OLD.glob("*.log"))


def events_of(name: str) -> list[Event]:
    """Parse a fixture as the runner does: raw bytes, incremental decoding."""
    decoder, parser = Decoder(), LogParser()
    events = parser.feed(decoder.decode((OLD / name).read_bytes(), final=True))
    return events + parser.close()


def of(events: list[Event], cls: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def replay_jsonl(path: Path, capsys: pytest.CaptureFixture[str]) -> list[Event]:
    """``python -m kohya_orchestrator replay --jsonl PATH``, its stdout read back as events."""
    capsys.readouterr()
    assert main(["replay", "--jsonl", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(json.loads(line)["kind"] for line in lines)
    return [EventAdapter.validate_json(line) for line in lines]


def facts(events: list[Event]) -> dict[str, Any]:
    """What a user reads off a replay: steps, total, loss, checkpoints, the failure."""
    summary = summarize(events)
    step = summary.last_step
    failure = summary.failure
    total = step.total_steps if step else summary.plan.total_steps if summary.plan else None
    return {
        "step": step.step if step else None,
        "total": total,
        "loss": step.avr_loss if step else None,
        "checkpoints": [(c.path.rsplit("/", 1)[-1], c.final) for c in summary.checkpoint_events],
        "failure": (failure.category, failure.message) if failure else None,
    }


# ----------------------------------------------------------------------------- through replay

# (fixture, step, total, loss, checkpoints, failure category, the failure's exception line start)
REPLAYS = [
    (
        "v0_5_loss_postfix.log",
        20,
        20,
        0.0998,
        [("oilpaint-000001.safetensors", False), ("oilpaint.safetensors", True)],
        None,
        None,
    ),
    ("v0_6_loss_nan.log", 6, 6, "nan", [("nan_run.safetensors", True)], "nan_loss", "loss is nan"),
    ("colab_no_bar.log", 2300, 2300, 0.0874, [("style.safetensors", True)], None, None),
    (
        "rich_oom_accelerate.log",
        None,
        None,
        None,
        [],
        "oom",
        "OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total",
    ),
    (
        "rich_exception_inside_box.log",
        None,
        None,
        None,
        [],
        "oom",
        "OutOfMemoryError: CUDA out of memory. Tried to allocate 1024.00 MiB (GPU 0; 14.75 GiB",
    ),
    (
        "rich_windows_access_violation.log",
        1,
        8,
        0.0812,
        [],
        "launcher_failed",
        "CalledProcessError: Command '['C:\\\\kohya_ss\\\\venv\\\\Scripts\\\\python.exe'",
    ),
    (
        "tail_bare_oom.log",
        0,
        1600,
        None,
        [],
        "oom",
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    ),
    (
        "tail_called_process_windows.log",
        None,
        None,
        None,
        [],
        "launcher_failed",
        "subprocess.CalledProcessError: Command '['C:\\\\kohya_ss",
    ),
    (
        "torchrun_exit.log",
        None,
        None,
        None,
        [],
        "launcher_failed",
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: rank_exit.py FAILED,"
        " root cause rank 1 (local_rank: 1), exitcode 1",
    ),
    (
        "torchrun_oom_record.log",
        None,
        None,
        None,
        [],
        "oom",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 1",
    ),
    (
        "childfailed_tail_sigkill.log",
        None,
        None,
        None,
        [],
        "launcher_failed",
        "ChildFailedError: train_network.py FAILED, root cause rank 0 (local_rank: 0), exitcode -9",
    ),
    (
        "wrapper_stream_labels.log",
        8,
        8,
        0.0987,
        [("style-000001.safetensors", False), ("style.safetensors", True)],
        None,
        None,
    ),
    ("docker_compose_logs.log", 2, 2, 0.127, [("style.safetensors", True)], None, None),
    ("windows_warning.log", None, None, None, [], None, None),
    (
        "wrapper_records.log",
        None,
        None,
        None,
        [],
        "logged_error",
        "Could not load the dataset config: /lora/dataset.toml",
    ),
    (
        "v0_4_two_processes.log",
        8,
        8,
        0.118,
        [("two-000001.safetensors", False), ("two.safetensors", True)],
        None,
        None,
    ),
    (
        "two_processes_traceback.log",
        None,
        None,
        None,
        [],
        "oom",
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0;",
    ),
    (
        "v0_4_oom_before_banner.log",
        None,
        1500,
        None,
        [],
        "oom",
        "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 4.00 GiB total",
    ),
    (
        "sd_lora_duplicated_name.log",
        None,
        None,
        None,
        [],
        "exception",
        "AssertionError: duplicated lora name: lora_unet_down_blocks_0_attentions_0_proj_in",
    ),
]


def test_every_fixture_has_a_replay_case() -> None:
    assert sorted(r[0] for r in REPLAYS) == FIXTURES


@pytest.mark.parametrize(
    ("name", "step", "total", "loss", "checkpoints", "category", "line"),
    REPLAYS,
    ids=[r[0] for r in REPLAYS],
)
def test_replay_reports_the_run(
    capsys: pytest.CaptureFixture[str],
    name: str,
    step: int | None,
    total: int | None,
    loss: float | str | None,
    checkpoints: list[tuple[str, bool]],
    category: str | None,
    line: str | None,
) -> None:
    events = replay_jsonl(OLD / name, capsys)
    # The CLI prints the very events the parser makes (t aside: the CLI feeds 64 KiB chunks).
    assert [e.model_dump_json(exclude={"t"}) for e in events] == [
        e.model_dump_json(exclude={"t"}) for e in events_of(name)
    ]
    got = facts(events)
    assert (got["step"], got["total"]) == (step, total)
    if loss == "nan":
        assert got["loss"] is not None and math.isnan(got["loss"])
    else:
        assert got["loss"] == loss
    assert got["checkpoints"] == checkpoints
    if category is None:
        assert got["failure"] is None
    else:
        assert got["failure"] is not None
        assert got["failure"][0] == category
        assert line is not None and got["failure"][1].startswith(line)


# ----------------------------------------------------------------------------- bar postfix


@pytest.mark.parametrize("key", ["loss", "avr_loss"])
def test_loss_postfix_of_either_name_is_the_loss(key: str) -> None:
    bar = f"steps:  50%|█████     | 4/8 [00:08<00:08,  2.00s/it, {key}=0.123, lr=0.0001]"
    (step,) = of(parse_log(bar + "\n"), StepProgress)
    assert step.avr_loss == 0.123
    assert step.postfix == {"lr": "0.0001"}  # the loss is not repeated among the other items


def test_avr_loss_wins_over_a_loss_item() -> None:
    bar = "steps:  50%|█████     | 4/8 [00:08<00:08,  2.00s/it, loss=9.9, avr_loss=0.1]"
    (step,) = of(parse_log(bar + "\n"), StepProgress)
    assert (step.avr_loss, step.postfix) == (0.1, {"loss": "9.9"})


@pytest.mark.parametrize("key", ["loss", "avr_loss"])
def test_nan_in_either_postfix_raises_the_nan_failure_once(key: str) -> None:
    text = "".join(
        f"\rsteps:  {n * 25:2d}%|██        | {n}/4 [00:0{n}<00:0{4 - n},  1.00it/s, {key}=nan]"
        for n in (1, 2, 3)
    )
    events = parse_log(text + "\n")
    (error,) = of(events, ChildError)
    assert (error.category, error.message) == ("nan_loss", f"{key} is nan at step 1/4")
    assert error.remedy is not None and "NaN" in error.remedy
    # the error comes right after the step that showed it
    assert isinstance(events[events.index(error) - 1], StepProgress)


def test_loss_postfix_fixture_reads_every_step_and_epoch() -> None:
    events = events_of("v0_5_loss_postfix.log")
    steps = of(events, StepProgress)
    assert steps[-1].step == 20 and steps[-1].avr_loss == 0.0998
    assert [e.epoch for e in of(events, EpochStarted)] == [1, 2]
    # `epoch 1/2` was printed right after the bar, on the same line: still read
    assert steps[-1].epoch == 2 and steps[-1].epoch_step == 10


# ----------------------------------------------------------------------------- final model


@pytest.mark.parametrize(
    "line",
    [
        "save trained model to /out/run/last.safetensors",  # v0.3-v0.6.2
        "saving checkpoint: /out/run/last.safetensors",  # v0.6.3 on
    ],
)
def test_final_model_in_either_wording(line: str) -> None:
    events = parse_log(line + "\nmodel saved.\n")
    (saved,) = of(events, CheckpointSaved)
    assert (saved.path, saved.final, saved.text) == ("/out/run/last.safetensors", True, line)


def test_save_trained_model_with_an_epoch_suffix_keeps_its_epoch() -> None:
    (saved,) = of(parse_log("save trained model to C:\\out\\run-000003.ckpt\n"), CheckpointSaved)
    assert (saved.epoch, saved.final) == (3, False)


# ----------------------------------------------------------------------------- rich tracebacks


def test_rich_boxes_are_tracebacks_classified_by_their_exception_line() -> None:
    # captured: accelerate 1.6.0 with ACCELERATE_ENABLE_RICH=True, 80 columns
    errors = of(events_of("rich_oom_accelerate.log"), ChildError)
    assert [e.category for e in errors] == ["oom", "launcher_failed"]
    oom, launcher = errors
    assert oom.message == (
        "OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total "
        "capacity of 7.79 GiB of which 3.31 MiB is free."
    )
    assert oom.traceback[0].startswith("╭") and "Traceback" in oom.traceback[0]
    assert oom.traceback[-3].startswith("╰")
    # rich wrapped the launcher's exception over three rows: joined back
    assert launcher.message == (
        "CalledProcessError: Command '['/root/.cache/kohya_orchestrator/e2e/venv/bin/python', "
        "'oom_trainer.py']' returned non-zero exit status 1."
    )
    assert classify_failure(errors) == oom


def test_rich_box_every_row_is_kept_once() -> None:
    events = events_of("rich_oom_accelerate.log")
    text = (OLD / "rich_oom_accelerate.log").read_text(encoding="utf-8")
    rows = [row.rstrip() for row in text.splitlines() if row.strip()]
    kept = [row for e in of(events, ChildError) for row in e.traceback]
    assert kept == rows
    assert of(events, LogLine) == []


def test_a_word_rich_folded_is_joined_without_a_space() -> None:
    (error,) = of(events_of("rich_windows_access_violation.log"), ChildError)
    assert "--pretrained_model_name_or_path=C:/models/v1-5-pruned-emaonly.safetensors'" in (
        error.message
    )
    assert error.message.endswith("returned non-zero exit status 3221225477.")


def test_source_rows_in_the_box_do_not_classify_it() -> None:
    # The box shows code naming OutOfMemoryError; the exception after it is something else.
    rows = [
        "╭───────────────────── Traceback (most recent call last) ──────────────────────╮",
        "│ /srv/kohya/sd-scripts/train_network.py:512 in train                          │",
        "│ ❱ 512 │   except torch.cuda.OutOfMemoryError:                                │",
        "╰──────────────────────────────────────────────────────────────────────────────╯",
        "ValueError: invalid literal for int() with base 10: 'notanumber'",
        "epoch 1/2",
    ]
    events = parse_log("\n".join(rows) + "\n")
    (error,) = of(events, ChildError)
    assert (error.category, error.message) == (
        "exception",
        "ValueError: invalid literal for int() with base 10: 'notanumber'",
    )
    assert len(error.traceback) == 5
    assert of(events, EpochStarted)[0].epoch == 1


def test_output_interleaved_inside_a_box_is_parsed_on_its_own() -> None:
    rows = [
        "╭───────────────────── Traceback (most recent call last) ──────────────────────╮",
        "│ /srv/kohya/sd-scripts/train_network.py:512 in train                          │",
        "saving checkpoint: /out/run-000001.safetensors",
        "│ ❱ 512 │   accelerator.backward(loss)                                         │",
        "╰──────────────────────────────────────────────────────────────────────────────╯",
        "KeyboardInterrupt",
    ]
    events = parse_log("\n".join(rows) + "\n")
    assert [e.kind for e in events] == ["phase_changed", "checkpoint_saved", "child_error"]
    assert events[-1].category == "interrupted"  # type: ignore[union-attr]


def test_a_box_cut_off_by_the_end_of_the_log_is_still_an_error() -> None:
    rows = [
        "╭───────────────────── Traceback (most recent call last) ──────────────────────╮",
        "│ /srv/kohya/sd-scripts/train_network.py:512 in train                          │",
    ]
    (error,) = parse_log("\n".join(rows) + "\n")
    assert isinstance(error, ChildError)
    assert error.message == "/srv/kohya/sd-scripts/train_network.py:512 in train"


# ----------------------------------------------------------------------------- error tails


@pytest.mark.parametrize(
    ("status", "meaning"),
    [
        (3221225477, "0xC0000005, a Windows STATUS_ACCESS_VIOLATION"),
        (-1073741819, "0xC0000005, a Windows STATUS_ACCESS_VIOLATION"),
        (3221225725, "0xC00000FD, a Windows STATUS_STACK_OVERFLOW"),
        (-1073741571, "0xC00000FD, a Windows STATUS_STACK_OVERFLOW"),
        (3221226505, "0xC0000409, a Windows STATUS_STACK_BUFFER_OVERRUN"),
        (-1073740791, "0xC0000409, a Windows STATUS_STACK_BUFFER_OVERRUN"),
        (-9, "signal SIGKILL"),
        (-11, "signal SIGSEGV"),
    ],
)
def test_a_bare_called_process_error_names_the_exit_status(status: int, meaning: str) -> None:
    line = (
        "subprocess.CalledProcessError: Command '['/venv/bin/python', 'train_network.py']' "
        f"returned non-zero exit status {status}."
    )
    (error,) = parse_log(line + "\n")
    assert isinstance(error, ChildError)
    assert (error.category, error.message, error.traceback) == ("launcher_failed", line, [])
    assert error.remedy is not None and f"exit status ({status}" in error.remedy
    assert meaning in error.remedy
    assert meaning in describe_exit_status(status)


def test_a_plain_exit_status_is_just_the_number() -> None:
    assert describe_exit_status(1) == "1"
    assert describe_exit_status(-40) == "-40, killed by signal 40"


@pytest.mark.parametrize(
    "line",
    [
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB.",
        "RuntimeError: CUDA out of memory. Tried to allocate 512.00 MiB (GPU 0; 6.00 GiB total)",
    ],
)
def test_a_bare_oom_line_is_an_oom(line: str) -> None:
    (error,) = parse_log(line + "\n")
    assert isinstance(error, ChildError)
    assert (error.category, error.message, error.traceback) == ("oom", line, [])


def test_a_bare_unknown_exception_line_stays_a_log_line() -> None:
    line = "ValueError: invalid literal for int() with base 10: 'notanumber'"
    (event,) = parse_log(line + "\n")
    assert isinstance(event, LogLine) and event.text == line


def test_a_line_merely_mentioning_an_error_is_not_an_error_tail() -> None:
    line = "the run ended with CUDA out of memory, see OutOfMemoryError docs"
    (event,) = parse_log(line + "\n")
    assert isinstance(event, LogLine)


def test_child_failed_report_after_its_traceback() -> None:
    # captured: torchrun --nproc_per_node 2, rank 1 exits with 1 (torch 2.14.1)
    events = events_of("torchrun_exit.log")
    (error,) = of(events, ChildError)
    assert error.category == "launcher_failed"
    assert error.traceback[0] == "Traceback (most recent call last):"
    assert error.traceback[-1] == "=" * 60
    assert "Root Cause (first observed failure):" in error.traceback
    assert error.remedy is not None and "rank 1 exited with 1." in error.remedy
    # the report's rows are in the error, not in log lines
    assert not [e for e in of(events, LogLine) if e.text.startswith(("  ", "=", "Root", "rank_"))]


def test_child_failed_report_is_classified_by_the_recorded_root_cause() -> None:
    # captured: the failing rank ran under @record, so the report carries its traceback
    errors = of(events_of("torchrun_oom_record.log"), ChildError)
    assert [e.category for e in errors] == ["oom", "oom"]
    worker, report = errors
    assert worker.message.startswith("torch.OutOfMemoryError: CUDA out of memory.")
    assert report.message.startswith(
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: rank_oom_record.py "
        "FAILED, root cause rank 1 (local_rank: 1), exitcode 1: torch.OutOfMemoryError: CUDA out"
    )


def test_a_pasted_child_failed_tail_names_the_signal() -> None:
    events = events_of("childfailed_tail_sigkill.log")
    (error,) = of(events, ChildError)
    assert error.remedy is not None
    assert "rank 0 exited with -9, signal SIGKILL" in error.remedy
    assert "out of RAM" in error.remedy
    # The border before the title is a log line; every other row is in the error.
    assert [e.text for e in of(events, LogLine)] == ["=" * 60]


@pytest.mark.parametrize(
    "start", ["Root Cause (first observed failure):", "train_network.py FAILED"]
)
def test_child_failed_tail_from_the_title_or_the_root_cause(start: str) -> None:
    rows = [
        "[0]:",
        "  rank      : 3 (local_rank: 1)",
        "  exitcode  : 3221225477 (pid: 77)",
        "  error_file: <N/A>",
        "=" * 60,
    ]
    head = [start] if start.startswith("Root") else [start, "Root Cause (first observed failure):"]
    events = parse_log("\n".join(head + rows) + "\n")
    (error,) = of(events, ChildError)
    assert "root cause rank 3 (local_rank: 1), exitcode 3221225477" in error.message
    assert error.remedy is not None and "STATUS_ACCESS_VIOLATION" in error.remedy


def test_a_failed_title_without_a_report_is_a_log_line() -> None:
    events = parse_log("pytest FAILED\nepoch 1/2\n")
    assert isinstance(events[0], LogLine) and events[0].text == "pytest FAILED"
    assert of(events, ChildError) == []


# ----------------------------------------------------------------------------- tqdm without bar


def test_bars_without_the_bar_part() -> None:
    events = events_of("colab_no_bar.log")
    steps = of(events, StepProgress)
    assert [(s.step, s.total_steps, s.avr_loss) for s in steps] == [
        (0, 2300, None),
        (1, 2300, 0.113),
        (2, 2300, 0.108),
        (1150, 2300, 0.0921),
        (2300, 2300, 0.0874),
    ]
    assert steps[3].elapsed_s == 38 * 60 + 20 and steps[3].rate_it_s == 0.5


def test_a_percentage_in_prose_is_not_a_bar() -> None:
    (event,) = parse_log("caching 50% of 4/8 latents [skipped <fast>]\n")
    assert isinstance(event, LogLine)


# ----------------------------------------------------------------------------- wrapper prefixes


def test_stream_labels_are_stripped() -> None:
    events = events_of("wrapper_stream_labels.log")
    (plan,) = of(events, TrainingPlan)
    assert plan.total_steps == 8 and plan.batches_per_epoch == 4
    assert [e.epoch for e in of(events, EpochStarted)] == [1, 2]
    assert [s.step for s in of(events, StepProgress)] == list(range(9))
    # no label is left in any text
    for event in events:
        text = str(getattr(event, "text", None) or getattr(event, "message", ""))
        assert "[STD" not in text and "[std" not in text


def test_docker_compose_prefix_is_stripped() -> None:
    events = events_of("docker_compose_logs.log")
    assert of(events, TrainingPlan)[0].total_steps == 2
    # `docker compose` writes its own last line without the prefix: left as it is
    assert of(events, LogLine)[-1].text == "kohya-1 exited with code 0"


def test_a_prefixed_bar_is_read_before_its_line_ends() -> None:
    parser = LogParser()
    events = parser.feed("[08:03:37] [STDERR] steps:  12%|█▎        | 1/8 [00:02<00:14,  2.00s/it]")
    assert [(e.kind, getattr(e, "step", None)) for e in events] == [
        ("phase_changed", None),
        ("step_progress", 1),
    ]
    assert parser.feed("\n") == [] and parser.close() == []


@pytest.mark.parametrize(
    "line",
    [
        "[INFO] loading the model",  # not a stream label
        "[08:03:35] loading the model",  # a time without a stream label
        "see | the docs for more",  # a pipe that is no docker prefix
    ],
)
def test_only_the_known_prefix_shapes_are_stripped(line: str) -> None:
    (event,) = parse_log(line + "\n")
    assert isinstance(event, LogLine) and event.text == line


# ----------------------------------------------------------------------------- warnings


def test_python_warning_with_a_windows_drive_letter() -> None:
    events = events_of("windows_warning.log")
    (warning,) = of(events, ChildWarning)
    assert warning.source == "accelerator.py:249"
    assert warning.message.endswith("  self.scaler = torch.cuda.amp.GradScaler(**kwargs)")
    assert of(events, LogLine)[0].text == "prepare optimizer, data loader etc."


# ----------------------------------------------------------------------------- record layouts


def test_records_without_the_time_column_and_other_layouts() -> None:
    events = events_of("wrapper_records.log")
    rows = [
        (e.kind, getattr(e, "level", None), getattr(e, "category", None), e.source)  # type: ignore[union-attr]
        for e in events
        if e.kind != "phase_changed"
    ]
    assert rows == [
        ("log_line", "INFO", None, None),  # the kohya_ss GUI's record
        ("log_line", "INFO", None, None),
        ("child_warning", None, None, None),
        ("child_warning", None, None, "xformers"),  # logging's default LEVEL:logger:message
        ("log_line", "INFO", None, "train_util.py:3745"),  # rich without the time column
        ("child_error", None, "logged_error", "train_util.py:3801"),
        ("child_error", None, "logged_error", None),  # ERROR: message
        ("child_error", None, "logged_error", None),
    ]
    texts = [getattr(e, "text", None) or getattr(e, "message", None) for e in events]
    assert "Loading settings from /lora/config.toml..." in texts
    assert "the output folder is not writable: /lora/model" in texts


def test_an_error_record_is_classified_by_the_failure_rules() -> None:
    line = (
        "ERROR    CUDA out of memory. Tried to allocate 20.00 MiB           train_network.py:1193"
    )
    (error,) = parse_log(line + "\n")
    assert isinstance(error, ChildError) and error.category == "oom"
    assert error.source == "train_network.py:1193"


def test_a_gui_record_wrapping_onto_rows_is_joined() -> None:
    rows = [
        "14:02:11-381254 INFO     Executing command: accelerate launch --num_cpu_threads_per_process",
        " " * 25 + "2 train_network.py --config_file config.toml".ljust(66),
    ]
    (event,) = parse_log("\n".join(rows) + "\n")
    assert isinstance(event, LogLine)
    assert event.text == (
        "Executing command: accelerate launch --num_cpu_threads_per_process 2 train_network.py "
        "--config_file config.toml"
    )


def test_override_steps_is_the_total_when_no_banner_came() -> None:
    events = events_of("v0_4_oom_before_banner.log")
    (plan,) = of(events, TrainingPlan)
    assert (plan.epochs, plan.total_steps, plan.text) == (10, 1500, None)
    assert events[-1] == plan  # derived at the end, after the log's own events
    # the line itself is still a log line
    assert any(isinstance(e, LogLine) and e.text.startswith("override steps") for e in events)


def test_override_steps_adds_nothing_when_the_banner_came() -> None:
    plans = of(events_of("v0_5_loss_postfix.log"), TrainingPlan)
    assert [(p.total_steps, p.text is not None) for p in plans] == [(20, True)]


# ----------------------------------------------------------------------------- two processes


def test_two_processes_printing_every_line_count_once() -> None:
    events = events_of("v0_4_two_processes.log")
    (plan,) = of(events, TrainingPlan)
    assert (plan.total_steps, plan.batches_per_epoch) == (8, 4)
    assert plan.text is not None and plan.text.count("running training") == 2
    assert [e.epoch for e in of(events, EpochStarted)] == [1, 2]
    assert [(c.path, c.final) for c in of(events, CheckpointSaved)] == [
        ("/out/two/two-000001.safetensors", False),
        ("/out/two/two.safetensors", True),
    ]
    summary = summarize(events)
    assert summary.epoch_end_steps == {1: 4, 2: 8}
    assert len(summary.checkpoints) == 2
    # the repeats are kept as log lines (nothing is dropped)
    repeats = [e.text for e in of(events, LogLine)]
    assert repeats.count("epoch 1/2") == 1 and repeats.count("epoch 2/2") == 1
    assert repeats.count("saving checkpoint: /out/two/two-000001.safetensors") == 1


def test_a_second_bar_behind_the_first_is_folded() -> None:
    def bar(n: int) -> str:
        return (
            f"\rsteps: {n * 10:3d}%|█         | {n}/10 [00:0{n}<00:09,  1.00it/s, avr_loss=0.{n}]"
        )

    events = parse_log(bar(1) + bar(2) + bar(1) + bar(3) + bar(2) + "\n")
    assert [s.step for s in of(events, StepProgress)] == [1, 2, 3]


def test_a_new_banner_starts_counting_again() -> None:
    banner = "running training / 学習開始\n  total optimization steps / 学習ステップ数: 4\n"
    run = (
        "epoch 1/1\n\rsteps:  50%|█████     | 2/4 [00:02<00:02,  1.00it/s, avr_loss=0.2]\n"
        "saving checkpoint: /out/a.safetensors\n"
    )
    events = parse_log(banner + run + banner + run)
    assert len(of(events, CheckpointSaved)) == 2
    assert len(of(events, EpochStarted)) == 2
    assert [s.step for s in of(events, StepProgress)] == [2, 2]


def test_interleaved_tracebacks_of_two_processes() -> None:
    events = events_of("two_processes_traceback.log")
    first, second = of(events, ChildError)
    assert first.traceback[:2] == ["Traceback (most recent call last):"] * 2
    assert "(GPU 0;" in first.message and "(GPU 1;" in second.message
    assert [e.text for e in of(events, LogLine)] == ["epoch 1/10"]


def test_the_same_exception_line_again_is_not_a_second_error() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "/srv/train_network.py", line 1, in <module>\n'
        "torch.OutOfMemoryError: CUDA out of memory.\n"
        "torch.OutOfMemoryError: CUDA out of memory.\n"
    )
    events = parse_log(text)
    assert [e.kind for e in events] == ["child_error", "log_line"]


# ----------------------------------------------------------------------------- duplicated names


def test_duplicated_lora_name_from_sd_scripts_is_not_a_lycoris_problem() -> None:
    (error,) = of(events_of("sd_lora_duplicated_name.log"), ChildError)
    assert error.category == "exception"
    assert error.remedy is not None
    assert "networks/lora.py" in error.remedy and "requirements.txt" in error.remedy
    assert "LyCORIS 4.x" not in error.remedy


def test_duplicated_lora_name_from_lycoris_keeps_the_lycoris_remedy() -> None:
    # the real capture: LyCORIS 4.1.3's default preset (lycoris/kohya.py frames)
    text = (LOGS / "b_loha" / "combined").read_text(encoding="utf-8")
    (error,) = of(parse_log(text), ChildError)
    assert error.category == "lycoris_duplicated_name"
    assert error.remedy is not None and "preset=attn-mlp" in error.remedy


def test_duplicated_lora_name_in_a_rich_box_with_a_cut_path() -> None:
    # rich cuts a long path across two rows: the module is still found
    rows = [
        "╭───────────────────── Traceback (most recent call last) ──────────────────────╮",
        "│ C:\\kohya_ss\\venv\\lib\\site-packages\\lycoris\\kohya.py:673 in __init__        │",
        "│ D:\\kohya_ss\\sd-scripts\\networks\\lo                                           │",
        "│ ra.py:868 in __init__                                                        │",
        "╰──────────────────────────────────────────────────────────────────────────────╯",
        "AssertionError: duplicated lora name: lora_unet_time_embedding_linear_1",
    ]
    (error,) = parse_log("\n".join(rows) + "\n")
    assert isinstance(error, ChildError) and error.category == "exception"
    lines = ["Traceback (most recent call last):", '  File "/x/lycoris/kohya.py", line 673']
    assert classify_traceback(error.message, lines)[0] == "lycoris_duplicated_name"
    assert classify_traceback(error.message)[0] == "lycoris_duplicated_name"  # no frames


# ----------------------------------------------------------------------------- edges

BOX_TOP = "╭───────────────────── Traceback (most recent call last) ──────────────────────╮"
BOX_ROW = "│ /srv/kohya/sd-scripts/train_network.py:512 in train                          │"
BOX_END = "╰──────────────────────────────────────────────────────────────────────────────╯"


def rich_row(level: str, message: str) -> str:
    """One sd-scripts rich record row at 80 columns (see test_parser_edges.py)."""
    head = f"2026-11-24 21:53:38 {level:<8} {message}"
    return head + " " * (80 - len(head) - len("x.py:1")) + "x.py:1"


def test_a_closed_box_without_an_exception_line_ends_at_the_next_line() -> None:
    inside = "│ KeyboardInterrupt                                                            │"
    events = parse_log("\n".join([BOX_TOP, BOX_ROW, inside, BOX_END, "epoch 1/2"]) + "\n")
    assert [e.kind for e in events] == ["child_error", "phase_changed", "epoch_started"]
    assert events[0].category == "interrupted"  # type: ignore[union-attr]


def test_two_boxes_closing_one_after_the_other_are_one_traceback() -> None:
    rows = [BOX_TOP, BOX_TOP, BOX_ROW, BOX_ROW, BOX_END, BOX_END, "KeyboardInterrupt"]
    (error,) = parse_log("\n".join(rows) + "\n")
    assert isinstance(error, ChildError) and error.traceback == rows


def test_another_panel_inside_a_box_is_not_part_of_it() -> None:
    panel = "╭─── Locals ───╮"
    events = parse_log("\n".join([BOX_TOP, panel, BOX_ROW, BOX_END, "KeyboardInterrupt"]) + "\n")
    assert [e.kind for e in events] == ["log_line", "child_error"]
    assert events[0].text == panel  # type: ignore[union-attr]


def test_a_record_ends_a_child_failed_report() -> None:
    text = (
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n"
        + rich_row("INFO", "next run")
        + "\n"
    )
    events = parse_log(text)
    assert [e.kind for e in events] == ["child_error", "log_line"]
    error = events[0]
    assert error.message == (  # type: ignore[union-attr]
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: a worker FAILED"
    )
    assert error.remedy is not None and "a worker exited with an error" in error.remedy  # type: ignore[union-attr]


def test_a_root_cause_with_an_unknown_recorded_exception_stays_launcher_failed() -> None:
    rows = [
        "Root Cause (first observed failure):",
        "[0]:",
        "  rank      : 0 (local_rank: 0)",
        "  exitcode  : 1 (pid: 9)",
        "  traceback : Traceback (most recent call last):",
        '    File "/srv/train_network.py", line 3, in <module>',
        "  (the worker's note)",
        "  ValueError: bad value",
        "=" * 60,
    ]
    (error,) = parse_log("\n".join(rows) + "\n")
    assert isinstance(error, ChildError) and error.category == "launcher_failed"
    assert error.message.endswith("exitcode 1: ValueError: bad value")


def test_records_open_from_each_layout() -> None:
    sd = "2026-11-24 21:53:38 INFO     Using v1 tokenizer                      strategy_sd.py:26"
    record = open_record(sd)
    assert record is not None and (record.level, record.source) == ("INFO", "strategy_sd.py:26")
    gui = open_record("14:06:40-973914 INFO     Running on http://127.0.0.1:7860")
    assert gui is not None and (gui.message(), gui.source) == (
        "Running on http://127.0.0.1:7860",
        None,
    )
    assert open_record("1. a numbered line") is None
    assert open_record("Downloading the model") is None
    assert open_record("epoch 1/2") is None
    assert level_prefix("WARNING:root:careful") == ("WARNING", "root", "careful")
    assert level_prefix("epoch 1/2") is None


@pytest.mark.parametrize(
    "line",
    ["Downloading the model", "override the defaults", "1. a numbered line"],
)
def test_lines_like_the_new_shapes_stay_log_lines(line: str) -> None:
    (event,) = parse_log(line + "\n")
    assert isinstance(event, LogLine) and event.text == line


def test_a_segment_that_is_only_a_prefix_is_nothing() -> None:
    assert parse_log("[stderr] \n[08:03:35] [STDOUT] \n") == []


# ----------------------------------------------------------------------------- chunking


def _random_cuts(raw: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(raw):
        n = rng.randint(1, 40)
        out.append(raw[i : i + n])
        i += n
    return out


@pytest.mark.parametrize("name", FIXTURES)
def test_events_do_not_depend_on_chunking(name: str) -> None:
    raw = (OLD / name).read_bytes()
    whole = [e.model_dump_json(exclude={"t"}) for e in events_of(name)]
    for seed in range(3):
        decoder, parser = Decoder(), LogParser()
        events: list[Event] = []
        for piece in _random_cuts(raw, seed):
            events += parser.feed(decoder.decode(piece))
        events += parser.feed(decoder.decode(b"", final=True)) + parser.close()
        assert [e.model_dump_json(exclude={"t"}) for e in events] == whole, seed


@pytest.mark.parametrize("name", FIXTURES)
def test_every_event_validates(name: str) -> None:
    for event in events_of(name):
        line = event.model_dump_json()
        assert EventAdapter.validate_json(line).model_dump_json() == line
