"""The parser against every real capture: golden events, nothing dropped, and the facts that
matter per scenario (plan, steps, epochs, checkpoints, failures)."""

from __future__ import annotations

import re
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
    ProgressBar,
    SamplePrompt,
    SamplingStarted,
    StepProgress,
    TrainingPlan,
    classify_failure,
    dump_events_jsonl,
    load_events_jsonl,
    parse_bytes_chunks,
    parse_log,
)

SUCCEEDED = ["a_lora_accelerate", "b_loha_preset", "e_prodigy", "h_columns200", "h_simplelog"]


def _replay(capture: Any) -> list[Event]:
    """The capture fed read by read, with the times of the reads (as a live run sees it)."""
    return parse_bytes_chunks((t, text.encode()) for t, text in capture.reads)


def _of(events: list[Event], cls: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


# --- golden files -----------------------------------------------------------------------------


def test_events_match_golden(capture: Any, golden_dir: Path, update_goldens: bool) -> None:
    got = dump_events_jsonl(_replay(capture))
    path = golden_dir / f"{capture.name}.events.jsonl"
    if update_goldens:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert path.is_file(), f"no golden file {path}: run pytest --update-goldens and review it"
    expected = path.read_text(encoding="utf-8")
    assert got.splitlines() == expected.splitlines()


def test_golden_round_trips(capture: Any, golden_dir: Path) -> None:
    text = (golden_dir / f"{capture.name}.events.jsonl").read_text(encoding="utf-8")
    assert dump_events_jsonl(load_events_jsonl(text)) == text


# --- nothing is dropped -----------------------------------------------------------------------

# Deliberately simpler than the parser: find the *content* of each physical piece of the input.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BAR = re.compile(
    r"(?:(?P<desc>[\w ]+): ?)?\s*"
    r"(?:\d+%\|[^|]*\| (?P<n>\d+)/(?P<total>\d+)|(?P<n0>\d+)it) \[[^\]]*\]"
)
_LOSS = re.compile(r"avr_loss=([^,\]]+)")
_RICH = re.compile(
    r"(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d| {19}) (?:DEBUG|INFO|WARNING|ERROR|CRITICAL) "
)
_RICH_PATH = re.compile(r"\s+\S+\.py:\d+$")
_LYCORIS = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\|\[LyCORIS\]-[A-Z]+: (.*)")


def _pieces(text: str) -> tuple[list[str], list[tuple[str | None, int, int | None, str | None]]]:
    """Content of every non-blank piece of text, and every tqdm bar state drawn."""
    contents: list[str] = []
    bars: list[tuple[str | None, int, int | None, str | None]] = []
    for physical in text.split("\n"):
        for seg in physical.split("\r"):
            seg = _ANSI.sub("", seg)
            m = _BAR.match(seg)
            if m:
                loss = _LOSS.search(m.group(0))
                n = int(m["n"] or m["n0"])
                total = int(m["total"]) if m["total"] else None
                bars.append((m["desc"], n, total, loss.group(1) if loss else None))
                seg = seg[m.end() :]
            if _RICH.match(seg):
                seg = _RICH_PATH.sub("", seg[29:])
            ly = _LYCORIS.match(seg)
            if ly:
                seg = ly.group(1)
            if seg.strip():
                contents.append(seg.strip())
    return contents, bars


def _texts(events: list[Event]) -> list[str]:
    out: list[str] = []
    for e in events:
        if isinstance(e, ChildError):
            out += [e.message, *e.traceback]
        elif isinstance(e, ChildWarning):
            out.append(e.message)
        elif isinstance(e, (StepProgress, ProgressBar)):
            continue
        else:
            text = getattr(e, "text", None)
            if text is not None:
                out.append(text)
    return out


def test_every_line_ends_up_in_an_event(capture: Any) -> None:
    events = parse_log(capture.text)
    haystack = "\0".join(_texts(events))
    contents, _ = _pieces(capture.text)
    missing = [c for c in contents if c not in haystack]
    assert not missing


def test_every_bar_state_is_reported(capture: Any) -> None:
    # Only exact repeats of a bar's state are folded.
    events = parse_log(capture.text)
    steps = {
        (e.step, e.total_steps, e.text and _LOSS.search(e.text)) for e in _of(events, StepProgress)
    }
    step_states = {(s, t, m.group(1) if m else None) for s, t, m in steps}
    bar_states = {(e.desc, e.n, e.total) for e in _of(events, ProgressBar)}
    _, bars = _pieces(capture.text)
    for desc, n, total, loss in bars:
        if desc == "steps":
            assert (n, total, loss) in step_states
        else:
            assert (desc, n, total) in bar_states


def test_events_are_numbered_and_json_round_trips(capture: Any) -> None:
    events = _replay(capture)
    assert [e.seq for e in events] == list(range(len(events)))
    assert load_events_jsonl(dump_events_jsonl(events)) == events


# --- per-scenario facts -----------------------------------------------------------------------


@pytest.mark.parametrize("name", SUCCEEDED)
def test_successful_runs(load_capture: Any, name: str) -> None:
    cap = load_capture(name)
    assert cap.result["rc"] == 0
    events = parse_log(cap.text)
    (plan,) = _of(events, TrainingPlan)
    assert (plan.total_steps, plan.epochs, plan.batches_per_epoch) == (8, 2, 4)
    assert plan.batch_size_per_device == [2]
    assert plan.gradient_accumulation_steps == 1
    assert plan.train_images_with_repeats == 8
    assert plan.steps_per_epoch == 4

    steps = _of(events, StepProgress)
    assert steps[0].step == 0
    assert steps[-1].step == plan.total_steps == steps[-1].total_steps
    assert [s.step for s in steps] == sorted(s.step for s in steps)
    assert all(s.avr_loss is not None for s in steps if s.step > 1)
    last = steps[-1]
    assert (last.epoch, last.epoch_step, last.epoch_total_steps) == (2, 4, 4)

    epochs = _of(events, EpochStarted)
    assert [(e.epoch, e.total_epochs) for e in epochs] == [(1, 2), (2, 2)]

    checkpoints = _of(events, CheckpointSaved)
    assert [c.path.rsplit("/", 1)[1] for c in checkpoints] == [
        f"{name}-000001.safetensors",
        f"{name}.safetensors",
    ]
    assert [(c.epoch, c.step, c.final) for c in checkpoints] == [
        (1, None, False),
        (None, None, True),
    ]

    assert [(s.step, s.epoch) for s in _of(events, SamplingStarted)] == [(4, 1), (8, 2)]
    prompts = _of(events, SamplePrompt)
    assert [(p.prompt, p.negative_prompt, p.width, p.height, p.seed) for p in prompts] == [
        ("oilpaint style, a red circle", "blurry", 64, 64, 1)
    ] * 2
    assert [(p.step, p.prompt_index) for p in prompts] == [(4, 0), (8, 0)]

    phases = [e.phase for e in _of(events, PhaseChanged)]
    assert phases[0] is Phase.LOADING_CONFIG
    assert phases[-1] is Phase.FINISHED
    first_seen = list(dict.fromkeys(phases))
    assert first_seen == [
        Phase.LOADING_CONFIG,
        Phase.PREPARING_DATASET,
        Phase.PREPARING_BUCKETS,
        Phase.LOADING_MODEL,
        Phase.CACHING_LATENTS,
        Phase.CREATING_NETWORK,
        Phase.PREPARING_OPTIMIZER,
        Phase.TRAINING,
        Phase.SAVING,
        Phase.SAMPLING,
        Phase.FINISHED,
    ]
    assert not _of(events, ChildError)
    assert classify_failure(events) is None


@pytest.mark.parametrize(
    ("name", "category", "exception"),
    [
        ("b_loha", "lycoris_duplicated_name", "AssertionError: duplicated lora name: "),
        ("d_ia3_ly34", "lycoris_ia3_keyerror", "KeyError: 'ia3'"),
        ("f_badargs_lora", "exception", "ValueError: invalid literal for int()"),
    ],
)
def test_failures_with_a_traceback(
    load_capture: Any, name: str, category: str, exception: str
) -> None:
    cap = load_capture(name)
    assert cap.result["rc"] == 1
    events = parse_log(cap.text)
    (error,) = _of(events, ChildError)
    assert error.category == category
    assert error.message.startswith(exception)
    assert error.traceback[0] == "Traceback (most recent call last):"
    assert error.traceback[-1] == error.message
    assert any(line.startswith('  File "') for line in error.traceback)
    assert (error.remedy is not None) == (category != "exception")
    assert classify_failure(events) == error
    assert not _of(events, TrainingPlan)
    assert not _of(events, CheckpointSaved)
    # The traceback is the last thing the run printed.
    assert events[-1] == error


def test_lycoris_coloured_lines(load_capture: Any) -> None:
    events = parse_log(load_capture("b_loha").text)
    lycoris = [
        e for e in events if isinstance(e, (LogLine, ChildWarning)) and e.source == "LyCORIS"
    ]
    assert all("\x1b" not in (e.text if isinstance(e, LogLine) else e.message) for e in lycoris)
    assert [e.level for e in lycoris if isinstance(e, LogLine)][:1] == ["INFO"]
    assert lycoris[0].text == "Using rank adaptation algo: loha"
    assert sum(isinstance(e, ChildWarning) for e in lycoris) == 2


def test_missing_dataset_exits_0_but_is_an_error(load_capture: Any) -> None:
    cap = load_capture("f_missing_dir")
    assert cap.result["rc"] == 0  # sd-scripts exits 0 after "No data found"
    events = parse_log(cap.text)
    (error,) = _of(events, ChildError)
    assert error.category == "no_data"
    assert error.source == "train_network.py:576"
    # The wrapped bilingual record is joined back: folds inside the Japanese text, no spaces.
    assert error.message.endswith(
        "（train_data_dirには画像があるフォルダではなく、画像があるフォルダの親フォルダを"
        "指定する必要があります）"
    )
    assert "train_data_dir must be the parent" in (error.remedy or "")
    # tqdm without a total (`0it [00:00, ?it/s]`), drawn twice, reported once.
    bars = [(b.n, b.total, b.phase) for b in _of(events, ProgressBar)]
    assert bars == [(0, None, Phase.PREPARING_BUCKETS)]
    assert classify_failure(events) == error


def test_sigint_through_accelerate(load_capture: Any) -> None:
    cap = load_capture("g_sigint_accelerate_group")
    assert cap.result["rc"] == -2
    events = parse_log(cap.text)
    errors = _of(events, ChildError)
    # The trainer's KeyboardInterrupt (its traceback glued onto the tqdm bar), then accelerate's.
    assert [(e.category, e.message) for e in errors] == [("interrupted", "KeyboardInterrupt")] * 2
    assert "train_network.py" in errors[0].traceback[1]
    assert "accelerate" in errors[1].traceback[1]
    assert [(e.step, e.total_steps) for e in _of(events, StepProgress)][-1] == (2, 8)
    assert len(_of(events, EpochStarted)) == 1
    assert not _of(events, CheckpointSaved)
    assert classify_failure(events) == errors[0]


def test_log_record_glued_onto_the_bar(load_capture: Any) -> None:
    # `…avr_loss=1.09]2026-11-24 21:53:38 INFO …train_util.py:6393` in a_lora_accelerate.
    events = parse_log(load_capture("a_lora_accelerate").text)
    i = next(i for i, e in enumerate(events) if isinstance(e, StepProgress) and e.avr_loss == 1.09)
    assert events[i + 1] == LogLine(
        seq=events[i + 1].seq, text="", level="INFO", source="train_util.py:6393"
    )
    assert isinstance(events[i + 3], SamplingStarted)


def test_python_warnings_are_collected_with_their_source_line(load_capture: Any) -> None:
    events = parse_log(load_capture("e_prodigy").text)
    warnings = [w for w in _of(events, ChildWarning) if "Warning: " in w.message]
    assert [w.source for w in warnings] == ["pipeline_stable_diffusion.py:221", "pil_utils.py:43"]
    future = warnings[0].message.splitlines()
    assert future[0].endswith("EulerAncestralDiscreteScheduler {")
    assert future[-1].startswith('  deprecate("steps_offset!=1"')
    assert (
        warnings[1].message.splitlines()[1] == '  images = (images * 255).round().astype("uint8")'
    )


def _projection(events: list[Event], name: str) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, StepProgress):
            out.append((e.kind, e.step, e.total_steps, e.epoch, e.epoch_step))
        elif isinstance(e, ProgressBar):
            out.append((e.kind, e.desc, e.n, e.total, e.phase))
        elif isinstance(e, (ChildWarning, ChildError)):
            out.append((e.kind, e.message.replace(name, "NAME")))
        elif isinstance(e, PhaseChanged):
            out.append((e.kind, e.phase))
        else:
            out.append((e.kind, (getattr(e, "text", None) or "").replace(name, "NAME")))
    return out


def test_80_and_200_columns_give_the_same_events(load_capture: Any) -> None:
    narrow = parse_log(load_capture("a_lora_accelerate").text)
    wide = parse_log(load_capture("h_columns200").text)
    assert _projection(narrow, "a_lora_accelerate") == _projection(wide, "h_columns200")


def test_simple_log_mode_gives_the_same_milestones(load_capture: Any) -> None:
    rich = parse_log(load_capture("a_lora_accelerate").text)
    simple = parse_log(load_capture("h_simplelog").text)
    kinds = (
        TrainingPlan,
        EpochStarted,
        CheckpointSaved,
        SamplingStarted,
        SamplePrompt,
        PhaseChanged,
    )

    def milestones(events: list[Event], name: str) -> list[tuple[Any, ...]]:
        return [
            p
            for e, p in zip(events, _projection(events, name), strict=True)
            if isinstance(e, kinds)
        ]

    assert milestones(rich, "a_lora_accelerate") == milestones(simple, "h_simplelog")
    # Without rich the level is lost: every message is a bare LogLine.
    assert all(e.level is None for e in _of(simple, LogLine)[3:])


def test_nan_loss_is_reported_once(load_capture: Any) -> None:
    # No capture diverged; a real capture with its avr_loss values replaced by `nan` (the value
    # tqdm prints for float('nan')) stands in for one.
    text = re.sub(r"avr_loss=[0-9.]+", "avr_loss=nan", load_capture("a_lora_accelerate").text)
    events = parse_log(text)
    errors = _of(events, ChildError)
    assert [e.category for e in errors] == ["nan_loss"]
    i = events.index(errors[0])
    assert isinstance(events[i - 1], StepProgress)
    assert events[i - 1].step == 1
    assert errors[0].message == "avr_loss is nan at step 1/8"
    # One StepProgress per step once the loss is nan (the same state is folded).
    assert [s.step for s in _of(events, StepProgress) if s.step] == [1, 1, 2, 3, 4, 5, 6, 7, 8]
    assert load_events_jsonl(dump_events_jsonl(events)) == events or all(
        # NaN != NaN: compare the JSON instead.
        a.model_dump_json() == b.model_dump_json()
        for a, b in zip(load_events_jsonl(dump_events_jsonl(events)), events, strict=True)
    )
    assert classify_failure(events) == errors[0]
