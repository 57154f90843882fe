"""NotebookProgressSink, event by event, with a stand-in for IPython's ``display``.

The sink parses nothing: events are built by hand here, or read from a real run's recorded events
(tests/golden/events). ``FakeDisplay`` keeps every output the way Jupyter does: ``display(...)``
adds one, ``handle.update(...)`` replaces it; the clock is ours, so the throttle is exact.
tests/test_notebook.py runs the real thing in a Jupyter kernel.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from kohya_orchestrator import api
from kohya_orchestrator.events import (
    CheckpointSaved,
    ChildError,
    ChildWarning,
    EpochStarted,
    Phase,
    PhaseChanged,
    ProgressBar,
    ResourceSample,
    RunFinished,
    RunStarted,
    RunStatus,
    SampleImageSaved,
    StepProgress,
    TrainingPlan,
    load_events_jsonl,
)
from kohya_orchestrator.ui import notebook
from kohya_orchestrator.ui.notebook import NotebookProgressSink, ProgressView, in_notebook
from kohya_orchestrator.ui.progress import RichProgressSink

GOLDEN_EVENTS = Path(__file__).resolve().parents[1] / "golden" / "events"


class FakeHandle:
    def __init__(self, outputs: list[dict[str, str]], index: int) -> None:
        self.outputs, self.index, self.updates = outputs, index, 0

    def update(self, obj: Any) -> None:
        self.outputs[self.index] = obj._repr_mimebundle_()
        self.updates += 1


class FakeDisplay:
    """``IPython.display.display`` as a cell sees it: outputs in order, updated in place."""

    def __init__(self, live: bool = True) -> None:
        self.outputs: list[dict[str, str]] = []
        self.handles: list[FakeHandle] = []
        self.live = live

    def __call__(self, obj: Any, *, display_id: bool = False) -> FakeHandle | None:
        self.outputs.append(obj._repr_mimebundle_(include=None, exclude=None))
        if not (display_id and self.live):
            return None
        handle = FakeHandle(self.outputs, len(self.outputs) - 1)
        self.handles.append(handle)
        return handle

    @property
    def bar(self) -> str:
        return self.outputs[0]["text/plain"]

    @property
    def bar_html(self) -> str:
        return self.outputs[0]["text/html"]

    @property
    def messages(self) -> str:
        return self.outputs[1]["text/plain"]

    @property
    def updates(self) -> int:
        return sum(h.updates for h in self.handles)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sink(**kw: Any) -> tuple[NotebookProgressSink, FakeDisplay, Clock]:
    display, clock = FakeDisplay(kw.pop("live", True)), Clock()
    return NotebookProgressSink(display=display, clock=clock, **kw), display, clock


def _step(seq: int, step: int, **kw: Any) -> StepProgress:
    return StepProgress(seq=seq, step=step, **{"total_steps": 600, **kw})


# ---------------------------------------------------------------------------------- one run


def test_a_run_from_start_to_end_as_text_lines_and_html() -> None:
    sink, display, clock = _sink()
    sink.handle(RunStarted(seq=0, t=0.0, run_id="r", argv=["python"], cwd="/"))
    assert display.bar == "starting | 0:00:00 elapsed"
    assert display.messages == "" and display.outputs[1]["text/html"] == ""
    assert len(display.outputs) == 2  # both outputs exist from the first event on

    clock.now += 1
    sink.handle(PhaseChanged(seq=1, t=2.0, phase=Phase.CACHING_LATENTS))
    assert display.bar == "caching latents | 0:00:02 elapsed"
    clock.now += 1
    sink.handle(ProgressBar(seq=2, t=5.4, n=3, total=8, phase=Phase.CACHING_LATENTS))
    assert display.bar == "caching latents 3/8 | 0:00:05 elapsed"

    clock.now += 1
    sink.handle(TrainingPlan(seq=3, t=9.0, epochs=20, total_steps=600, batches_per_epoch=30))
    sink.handle(PhaseChanged(seq=4, t=9.0, phase=Phase.TRAINING))
    sink.handle(EpochStarted(seq=5, t=9.0, epoch=1, total_epochs=20))
    clock.now += 1
    sink.handle(_step(6, 12, t=15.2, epoch=1, avr_loss=0.12344, elapsed_s=6.0, eta_s=721.0))
    assert display.bar == (
        "step 12/600 (2%) | epoch 1/20 | loss 0.1234 | 0:00:15 elapsed | ETA 0:12:01"
    )
    for shown in ("step 12/600 (2%)", "epoch 1/20", "loss 0.1234", "ETA 0:12:01", "elapsed"):
        assert shown in display.bar_html
    assert "width:2.0%" in display.bar_html and 'class="kohya-progress"' in display.bar_html

    sink.handle(PhaseChanged(seq=7, t=40.0, phase=Phase.SAVING))
    clock.now += 1
    sink.handle(CheckpointSaved(seq=8, t=40.0, path="/out/style-000001.safetensors", final=False))
    assert display.bar == (
        "step 12/600 (2%) | epoch 1/20 | loss 0.1234 | 0:00:40 elapsed | ETA 0:12:01 | saving"
        " | saved style-000001.safetensors"
    )
    assert display.messages == "✓ checkpoint /out/style-000001.safetensors"
    clock.now += 1
    sink.handle(SampleImageSaved(seq=9, t=41.0, path="/out/sample/style_e000001_00.png"))
    assert display.messages.splitlines() == [
        "✓ checkpoint /out/style-000001.safetensors",
        "✓ sample /out/sample/style_e000001_00.png",
    ]
    assert "✓ sample /out/sample/style_e000001_00.png" in display.outputs[1]["text/html"]

    clock.now += 1
    sink.handle(PhaseChanged(seq=10, t=41.0, phase=Phase.TRAINING))
    sink.handle(EpochStarted(seq=11, t=41.0, epoch=20, total_epochs=20))
    sink.handle(_step(12, 600, t=80.0, epoch=20, avr_loss=0.08, eta_s=0.0))
    sink.handle(CheckpointSaved(seq=13, t=86.0, path="/out/style.safetensors", final=True))
    sink.handle(
        RunFinished(seq=14, t=87.0, status=RunStatus.SUCCEEDED, returncode=0, duration_s=87.4)
    )
    assert display.bar == (
        "step 600/600 (100%) | epoch 20/20 | loss 0.0800 | succeeded in 0:01:27"
        " | saved style.safetensors"
    )
    assert "width:100.0%" in display.bar_html and "#2e7d32" in display.bar_html
    assert display.messages.splitlines()[-1] == "✓ checkpoint /out/style.safetensors"
    assert len(display.outputs) == 2  # updated in place, never appended


def test_a_real_run_replayed_from_its_events() -> None:
    """The events parsed from a real sd-scripts capture (LoHa, 2 epochs, 8 steps)."""
    events = load_events_jsonl(
        (GOLDEN_EVENTS / "b_loha_preset.events.jsonl").read_text(encoding="utf-8")
    )
    sink, display, clock = _sink()
    for event in events:
        clock.now += 0.01  # a burst: most states are skipped
        sink.handle(event)
    sink.close()
    assert display.bar.startswith("step 8/8 (100%) | epoch 2/2 | loss 1.0900 | ")
    assert display.bar.endswith(" | saved b_loha_preset.safetensors")
    assert display.messages.count("✓ checkpoint ") == 2
    assert display.updates < len(events) / 10


def test_failed_run_with_an_error_a_remedy_and_a_nan_loss() -> None:
    sink, display, _ = _sink()
    sink.handle(_step(0, 0, total_steps=0))
    assert display.bar == "step 0/0 | 0:00:00 elapsed"
    sink.handle(_step(1, 3, total_steps=8, avr_loss=float("nan"), t=4.0))
    sink.handle(
        ChildError(
            seq=2,
            message="ValueError: bad <value>",
            category="nan_loss",
            remedy="lower the learning rate",
        )
    )
    sink.handle(ChildError(seq=3, message="exit", category="exception"))
    sink.handle(
        RunFinished(
            seq=4, status=RunStatus.FAILED, returncode=1, duration_s=5.0, reason="loss became NaN"
        )
    )
    assert display.bar == "step 3/8 (37%) | loss NaN | failed in 0:00:05: loss became NaN"
    assert 'style="color:#c62828;font-weight:bold">loss NaN' in display.bar_html
    assert "#c62828;width:37.5%" in display.bar_html
    assert display.messages.splitlines() == [
        "⨯ nan_loss: ValueError: bad <value>",
        "  hint: lower the learning rate",
        "⨯ exception: exit",
    ]
    assert "bad &lt;value&gt;" in display.outputs[1]["text/html"]  # escaped


def test_warnings_show_their_first_line_shortened() -> None:
    sink, display, _ = _sink()
    sink.handle(ChildWarning(seq=0, message="FutureWarning: old config {\n  'a': 1\n}"))
    sink.handle(ChildWarning(seq=1, message="x" * 400, source="LyCORIS"))
    sink.handle(ChildWarning(seq=2, message="  \n"))
    sink.close()
    lines = display.messages.splitlines()
    assert lines[0] == "⚠ FutureWarning: old config {"
    assert lines[1] == "⚠ " + "x" * 199 + "…"
    assert lines[2] == "⚠ "
    assert display.bar == "starting | 0:00:00 elapsed"  # warnings do not touch the bar


def test_the_message_list_keeps_the_newest() -> None:
    sink, display, _ = _sink(max_messages=2)
    for i in range(4):
        sink.handle(CheckpointSaved(seq=i, path=f"/o/s-{i:06d}.safetensors", epoch=i, final=False))
    sink.close()
    assert display.messages.splitlines() == [
        "… 2 earlier messages not shown",
        "✓ checkpoint /o/s-000002.safetensors",
        "✓ checkpoint /o/s-000003.safetensors",
    ]


def test_epoch_without_a_total_and_phases_without_a_bar_total() -> None:
    sink, display, _ = _sink()
    sink.handle(PhaseChanged(seq=0, phase=Phase.PREPARING_BUCKETS))
    sink.handle(ProgressBar(seq=1, n=5, total=None))
    assert display.bar == "preparing buckets | 0:00:00 elapsed"
    sink.handle(TrainingPlan(seq=2, total_steps=8))  # no epoch count in this banner
    sink.handle(_step(3, 2, total_steps=8, epoch=1, eta_s=30.0))
    sink.close()
    assert (
        display.bar
        == "step 2/8 (25%) | epoch 1 | 0:00:00 elapsed | ETA 0:00:30 | preparing buckets"
    )


# ---------------------------------------------------------------------------------- throttle


def test_updates_are_throttled_and_the_last_state_is_always_shown() -> None:
    sink, display, clock = _sink(min_interval_s=0.25)
    sink.handle(_step(0, 1))
    for i in range(2, 50):  # 48 steps within the same instant: no update
        sink.handle(_step(i, i))
    assert display.updates == 0 and display.bar.startswith("step 1/600 ")
    clock.now += 0.1
    sink.handle(_step(50, 50))
    assert display.updates == 0
    clock.now += 0.2  # 0.3 s after the last update
    sink.handle(_step(51, 51))
    assert display.updates == 1 and display.bar.startswith("step 51/600 ")
    clock.now += 0.01
    sink.handle(_step(52, 52))
    assert display.bar.startswith("step 51/600 ")
    sink.handle(RunFinished(seq=53, status=RunStatus.CANCELED, duration_s=3.0, reason="canceled"))
    assert display.bar == "step 52/600 (8%) | canceled in 0:00:03: canceled"
    assert "#ef6c00" in display.bar_html
    updates = display.updates
    sink.handle(_step(54, 60))  # nothing after the end
    sink.close()
    assert display.updates == updates and display.bar.startswith("step 52/600 ")


def test_close_shows_a_state_the_throttle_held_back() -> None:
    sink, display, _ = _sink()
    sink.handle(_step(0, 1))
    sink.handle(_step(1, 2))
    assert display.bar.startswith("step 1/600 ")
    sink.close()
    assert display.bar.startswith("step 2/600 ")


def test_an_unchanged_state_sends_nothing() -> None:
    sink, display, clock = _sink()
    sink.handle(RunStarted(seq=0, run_id="r", argv=[], cwd="/"))
    clock.now += 1
    sink.handle(ResourceSample(seq=1, cpu_percent=1.0, rss_bytes=1, num_processes=1))
    assert display.updates == 0
    clock.now += 1
    sink.handle(ResourceSample(seq=2, t=1.0, cpu_percent=1.0, rss_bytes=1, num_processes=1))
    assert display.updates == 1 and display.bar == "starting | 0:00:01 elapsed"
    clock.now += 0.1  # too soon, though unchanged: still nothing
    sink.handle(ChildWarning(seq=3, t=1.0, message="w"))
    clock.now += 1
    sink.handle(ResourceSample(seq=4, t=1.0, cpu_percent=1.0, rss_bytes=1, num_processes=1))
    assert display.updates == 2 and display.messages == "⚠ w"  # only the message list changed


def test_close_before_any_event_shows_nothing() -> None:
    sink, display, _ = _sink()
    sink.close()
    sink.handle(_step(0, 1))
    assert display.outputs == []


def test_without_live_outputs_only_the_first_and_last_state_show() -> None:
    """Outside IPython ``display`` returns no handle: no stream of repeated outputs."""
    sink, display, clock = _sink(live=False)
    sink.handle(_step(0, 1))
    for i in range(2, 9):
        clock.now += 1
        sink.handle(_step(i, i, total_steps=8))
    sink.handle(CheckpointSaved(seq=9, path="/o/s.safetensors", final=True))
    assert len(display.outputs) == 2
    sink.handle(RunFinished(seq=10, status=RunStatus.SUCCEEDED, duration_s=9.0))
    assert [o["text/plain"] for o in display.outputs[2:]] == [
        "step 8/8 (100%) | succeeded in 0:00:09 | saved s.safetensors",
        "✓ checkpoint /o/s.safetensors",
    ]


# ---------------------------------------------------------------------------------- plumbing


def test_progress_view_is_a_mime_bundle() -> None:
    view = ProgressView(text="step 1/2", html="<b>step</b> 1/2")
    assert view._repr_mimebundle_() == {"text/plain": "step 1/2", "text/html": "<b>step</b> 1/2"}
    assert str(view) == "step 1/2"


def test_the_default_display_is_ipythons() -> None:
    pytest.importorskip("IPython")
    import IPython.display

    sink = NotebookProgressSink()
    assert sink._display is IPython.display.display


def test_without_ipython_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    with pytest.raises(ImportError, match=r"kohya-orchestrator\[notebook\]"):
        NotebookProgressSink()


def _fake_ipython(monkeypatch: pytest.MonkeyPatch, get_ipython: Any) -> None:
    module = types.ModuleType("IPython")
    module.get_ipython = get_ipython  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", module)


class ZMQInteractiveShell:
    pass


class ColabShell(ZMQInteractiveShell):
    pass


class TerminalInteractiveShell:
    pass


class OtherKernelShell:
    kernel = object()


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        (ZMQInteractiveShell(), True),
        (ColabShell(), True),
        (OtherKernelShell(), True),
        (TerminalInteractiveShell(), False),
        (None, False),
    ],
    ids=["ipykernel", "subclass", "kernel-attribute", "terminal-ipython", "no-shell"],
)
def test_in_notebook_knows_a_kernel_shell(
    monkeypatch: pytest.MonkeyPatch, shell: object, expected: bool
) -> None:
    _fake_ipython(monkeypatch, lambda: shell)
    assert in_notebook() is expected


def test_in_notebook_without_ipython_or_when_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert in_notebook() is False

    def broken() -> None:
        raise RuntimeError("no shell")

    _fake_ipython(monkeypatch, broken)
    assert in_notebook() is False
    # A real, imported IPython outside a kernel (this test process) is no notebook either.
    monkeypatch.setitem(sys.modules, "IPython", pytest.importorskip("IPython"))
    assert in_notebook() is False


def test_the_api_picks_the_notebook_bar_in_a_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("IPython")
    monkeypatch.setattr(notebook, "in_notebook", lambda: True)
    assert isinstance(api._progress_sink(), NotebookProgressSink)
    monkeypatch.setattr(notebook, "in_notebook", lambda: False)
    sink = api._progress_sink()
    assert isinstance(sink, RichProgressSink)
    sink.close()


def test_start_passes_the_chosen_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("IPython")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(notebook, "in_notebook", lambda: True)
    monkeypatch.setattr(api, "_start", lambda job, **kw: seen.update(kw))
    api.start(None, show_progress=True, on_event=print)  # type: ignore[arg-type]
    kinds = [type(s).__name__ for s in seen["sinks"]]
    assert kinds == ["NotebookProgressSink", "CallbackSink"]


def test_a_run_that_never_started_says_so() -> None:
    sink, display, _ = _sink()
    sink.handle(RunStarted(seq=0, run_id="r", argv=[], cwd="/"))
    sink.handle(
        RunFinished(
            seq=1,
            status=RunStatus.FAILED,
            duration_s=0.2,
            reason="the trainer could not be started",
        )
    )
    assert display.bar == "failed in 0:00:00: the trainer could not be started"
    assert "width:0.0%" in display.bar_html


def test_the_runs_own_checks_show_as_warnings() -> None:
    """A plan that sd-scripts contradicts and an all-black sample (outputs/watch.py's events)."""
    from kohya_orchestrator.events import PlanMismatch, SampleSuspect

    sink, display, _ = _sink()
    sink.handle(
        PlanMismatch(seq=0, differences=[], message="total steps: predicted 8, sd-scripts 10")
    )
    sink.handle(
        SampleSuspect(
            seq=1,
            path="out/sample/x_e000002_00.png",
            problem="black",
            epoch=2,
            message="epoch 2 sample of 'a red circle' is all black",
        )
    )
    sink.close()
    assert display.messages.splitlines() == [
        "⚠ total steps: predicted 8, sd-scripts 10",
        "⚠ epoch 2 sample of 'a red circle' is all black",
    ]
