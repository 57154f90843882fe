"""The smoke report (outputs/smoke.py) on the real e_prodigy capture, replayed with its timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kohya_orchestrator.events import (
    Event,
    LogParser,
    ResourceSample,
    RunFinished,
    RunStatus,
    SampleImageSaved,
    SamplingStarted,
)
from kohya_orchestrator.outputs.smoke import FullRun, format_duration, smoke_report


def _events(captures_dir: Path, *, samples: bool = True, ok: bool = True) -> list[Event]:
    """The capture fed chunk by chunk at its recorded times; each sampling round's image is
    found with the next chunk (as the runner scans for it), memory sampled twice."""
    parser = LogParser()
    events: list[Event] = [
        ResourceSample(seq=0, t=1.0, cpu_percent=100.0, rss_bytes=3 * 2**30, num_processes=2),
    ]
    pending = False
    chunks = captures_dir / "sd-scripts-logs" / "e_prodigy" / "chunks.jsonl"
    for line in chunks.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        new = parser.feed(row["text"], t=row["t"])
        if pending and new and samples:
            events.append(SampleImageSaved(seq=0, t=row["t"], path="x.png", prompt_index=0))
            pending = False
        events += new
        pending = pending or any(isinstance(e, SamplingStarted) for e in new)
    events += parser.close()
    events.append(
        ResourceSample(
            seq=0, t=20.0, cpu_percent=90.0, rss_bytes=5 * 2**30, num_processes=2,
            gpu_memory_used_mb=[3000, 1096],
        )
    )  # fmt: skip
    status = RunStatus.SUCCEEDED if ok else RunStatus.FAILED
    events.append(RunFinished(seq=0, t=40.0, status=status, duration_s=40.0))
    return events


FULL = FullRun(total_steps=80, epochs=20, prompts=2, sample_every_n_epochs=2)


def test_speed_memory_and_projection_from_the_real_timings(captures_dir: Path) -> None:
    report = smoke_report(_events(captures_dir), steps_planned=8, has_prompts=True, full=FULL)
    assert report.passed
    assert (report.loaded, report.steps_done, report.saved, report.sampled) == (True, 8, True, True)
    # step 1 was first shown at t=16.936 s, step 8 at 35.453 s
    assert report.load_s == pytest.approx(16.936)
    assert report.s_per_step == pytest.approx((35.453 - 16.936) / 7)
    assert report.s_per_sample is not None and 0 < report.s_per_sample < 10
    assert (report.peak_rss_bytes, report.peak_vram_mib) == (5 * 2**30, 4096)
    assert FULL.sampling_rounds == 10
    expected = 16.936 + 79 * (35.453 - 16.936) / 7 + 10 * 2 * report.s_per_sample
    assert report.projected_s == pytest.approx(expected)
    lines = report.lines()
    assert lines[0] == "loads: yes   steps: 8/8   saves: yes   samples: yes"
    assert lines[1].startswith("speed: load and first step 17 s, 2.65 s/step, ")
    assert lines[2] == "memory: peak RAM 5.0 GiB, peak VRAM 4.0 GiB"
    assert lines[3] == (
        f"projected full run: about {format_duration(expected)} (80 steps, 20 epochs, 10 x 2 samples)"
    )
    assert "flagged: warning: no regularization images / 正則化画像が見つかりませんでした" in lines


def test_a_missing_sample_or_a_failed_run_does_not_pass(captures_dir: Path) -> None:
    no_sample = smoke_report(
        _events(captures_dir, samples=False), steps_planned=8, has_prompts=True, full=FULL
    )
    assert no_sample.sampled is False and not no_sample.passed
    assert no_sample.lines()[0].endswith("samples: NO")
    failed = smoke_report(_events(captures_dir, ok=False), steps_planned=8, has_prompts=True,
                          full=FULL)  # fmt: skip
    assert failed.status == "failed" and not failed.passed
    missing = smoke_report(
        _events(captures_dir), steps_planned=8, has_prompts=True, full=FULL,
        final_file=Path("/nonexistent/e_prodigy.safetensors"),
    )  # fmt: skip
    assert missing.saved is False and not missing.passed


def test_no_prompts_is_not_a_failure_and_nothing_ran_projects_nothing(captures_dir: Path) -> None:
    report = smoke_report(
        _events(captures_dir, samples=False), steps_planned=8, has_prompts=False,
        full=FullRun(total_steps=80),
    )  # fmt: skip
    assert report.sampled is None and report.passed
    assert "samples: n/a (no [sampling] prompts)" in report.lines()[0]
    nothing = smoke_report(
        [RunFinished(seq=0, t=3.0, status=RunStatus.FAILED, duration_s=3.0, reason="exit code 1")],
        steps_planned=2, has_prompts=True, full=FULL,
    )  # fmt: skip
    assert not nothing.loaded and nothing.projected_s is None
    assert nothing.lines()[1:4] == [
        "speed: not measured (no steps)",
        "memory: RAM ?",
        "projected full run: unknown (no step time or no plan)",
    ]
    assert nothing.lines()[-1] == "reason: exit code 1"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.42, "0.4 s"), (38.2, "38 s"), (252, "4 min 12 s"), (3900, "1 h 05 min")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
