"""The runner's own checks: sample sanity (real images) and plan vs banner (real captured output).

The captured e_prodigy run drew an all-black epoch-2 sample right after diffusers' "invalid value
encountered in cast" warning; nothing flagged it then. Its console output is replayed here through
the real parser and :class:`RunWatch`, with its two real sample images appearing in the sample
folder when sd-scripts wrote them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fake_runs import add_image, fake_install, fake_job, replay, start_fake
from PIL import Image

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.datasets.plan_event import predicted_plan
from kohya_orchestrator.events import (
    ChildWarning,
    Event,
    LogParser,
    PlanMismatch,
    PlanPredicted,
    SampleImageSaved,
    SampleSuspect,
    SamplingStarted,
    compare_plan,
    parse_log,
    read_events,
    summarize,
)
from kohya_orchestrator.outputs.samplecheck import check_sample_image
from kohya_orchestrator.outputs.watch import RunWatch

PRODIGY_PLAN = {  # what e_prodigy's banner printed
    "train_images_with_repeats": 8,
    "batches_per_epoch": 4,
    "epochs": 2,
    "total_steps": 8,
}


def _predicted(**changes: int) -> PlanPredicted:
    return PlanPredicted(seq=0, exact=True, **{**PRODIGY_PLAN, **changes})


# ----------------------------------------------------------------------------- sample images
def test_black_one_colour_noise_and_broken_images(tmp_path: Path) -> None:
    black = tmp_path / "black.png"
    Image.new("RGB", (64, 64), (0, 0, 0)).save(black)
    grey = tmp_path / "grey.png"
    Image.new("RGB", (32, 48), (128, 128, 127)).save(grey)
    almost_black = tmp_path / "dark.png"
    Image.new("RGB", (64, 64), (3, 2, 4)).save(almost_black)
    noise = tmp_path / "noise.png"
    Image.frombytes("RGB", (16, 16), bytes((i * 37) % 256 for i in range(16 * 16 * 3))).save(noise)
    broken = tmp_path / "broken.png"
    broken.write_bytes(noise.read_bytes()[:60])  # a PNG cut short, as while being written

    assert check_sample_image(black) == ("black", "every pixel is black")
    assert check_sample_image(almost_black)[0] == "black"
    assert check_sample_image(grey) == ("one_colour", "every pixel is #80807f")
    assert check_sample_image(noise) == (None, "")
    problem, detail = check_sample_image(broken)
    assert problem == "unreadable"
    assert detail
    assert check_sample_image(tmp_path / "missing.png")[0] == "unreadable"


def test_the_real_prodigy_samples(captures_dir: Path) -> None:
    folder = captures_dir / "run-outputs" / "e_prodigy" / "sample"
    epoch1, epoch2 = sorted(folder.glob("*.png"))
    assert check_sample_image(epoch1) == (None, "")  # the random model's noise
    assert check_sample_image(epoch2)[0] == "black"  # the blank one nothing flagged


def _replay_prodigy(captures_dir: Path, tmp_path: Path, watch: RunWatch) -> list[Event]:
    """Feed e_prodigy's real chunks to the parser and the watch; copy each sample in when written."""
    real = sorted((captures_dir / "run-outputs" / "e_prodigy" / "sample").glob("*.png"))
    folder = tmp_path / "out" / "sample"
    folder.mkdir(parents=True)
    chunks = captures_dir / "sd-scripts-logs" / "e_prodigy" / "chunks.jsonl"
    parser = LogParser()
    stream: list[Event] = []
    rounds = 0
    for line in chunks.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        events = parser.feed(row["text"], t=row["t"])
        for event in events:
            if isinstance(event, SamplingStarted):
                rounds += 1
                if rounds == 2:  # epoch 1's sample was on disk before epoch 2's round began
                    shutil.copy(real[0], folder / real[0].name)
            if isinstance(event, ChildWarning) and "invalid value" in event.message:
                shutil.copy(real[1], folder / real[1].name)  # written right after the warning
        stream += watch.merge(events)
    return [*stream, *watch.merge(parser.close(), final=True)]


def test_the_black_nan_sample_is_flagged_with_its_epoch_and_prompt(
    captures_dir: Path, tmp_path: Path
) -> None:
    watch = RunWatch(fake_job(tmp_path, "e_prodigy"))
    assert watch.expect([_predicted()]) == [_predicted()]
    stream = _replay_prodigy(captures_dir, tmp_path, watch)

    saved = [e for e in stream if isinstance(e, SampleImageSaved)]
    assert [(e.epoch, e.prompt_index) for e in saved] == [(1, 0), (2, 0)]
    (suspect,) = [e for e in stream if isinstance(e, SampleSuspect)]
    assert (suspect.epoch, suspect.prompt_index, suspect.problem) == (2, 0, "nan")
    assert suspect.prompt == "oilpaint style, a red circle"
    assert suspect.path == saved[1].path
    assert suspect.message.startswith(
        "sample of epoch 2, prompt 0 ('oilpaint style, a red circle') was drawn from NaN values"
    )
    assert stream.index(suspect) > stream.index(saved[1])
    assert not [e for e in stream if isinstance(e, PlanMismatch)]  # the prediction was right


def test_a_black_sample_without_the_warning_is_black(tmp_path: Path) -> None:
    watch = RunWatch(fake_job(tmp_path, "style"))
    folder = tmp_path / "out" / "sample"
    folder.mkdir(parents=True)
    Image.new("RGB", (64, 64), (0, 0, 0)).save(folder / "style_000010_01_20261124215422.png")
    Image.new("RGB", (64, 64), (9, 200, 40)).save(folder / "other_000010_00_20261124215422.png")
    out = watch.merge([SamplingStarted(seq=0, step=10)])[1:]
    kinds = [(type(e).__name__, getattr(e, "problem", None)) for e in out]
    assert kinds == [("SampleImageSaved", None), ("SampleSuspect", "black")]
    assert out[1].message.startswith("sample of step 10, prompt 1 is all black")  # type: ignore[union-attr]
    assert len(watch.merge([SamplingStarted(seq=1, step=20)])) == 1  # each image once


def test_an_image_being_written_is_checked_once_complete(tmp_path: Path) -> None:
    watch = RunWatch(fake_job(tmp_path, "style"))
    folder = tmp_path / "out" / "sample"
    folder.mkdir(parents=True)
    full = tmp_path / "full.png"
    Image.new("RGB", (64, 64), (0, 0, 0)).save(full)
    target = folder / "style_e000001_00_20261124215422.png"
    target.write_bytes(full.read_bytes()[:40])
    first = watch.merge([SamplingStarted(seq=0, epoch=1)])
    assert [e.kind for e in first] == ["sampling_started", "sample_image_saved"]  # not judged yet
    shutil.copy(full, target)
    second = watch.merge([SamplingStarted(seq=1, epoch=1)])
    assert [(e.kind, getattr(e, "problem", None)) for e in second] == [
        ("sampling_started", None),
        ("sample_suspect", "black"),
    ]


def test_a_still_broken_image_is_reported_at_the_end(tmp_path: Path) -> None:
    watch = RunWatch(fake_job(tmp_path, "style"))
    folder = tmp_path / "out" / "sample"
    folder.mkdir(parents=True)
    (folder / "style_e000001_00_20261124215422.png").write_bytes(b"\x89PNG\r\n")
    assert len(watch.merge([SamplingStarted(seq=0, epoch=1)])) == 2
    (suspect,) = watch.merge([], final=True)
    assert isinstance(suspect, SampleSuspect)
    assert suspect.problem == "unreadable"


# ----------------------------------------------------------------------------- plan vs banner
def _banner(captures_dir: Path, scenario: str) -> object:
    text = (captures_dir / "sd-scripts-logs" / scenario / "combined").read_bytes().decode()
    (plan,) = [e for e in parse_log(text) if e.kind == "training_plan"]
    return plan


@pytest.mark.parametrize("scenario", ["a_lora_accelerate", "e_prodigy"])
def test_the_real_banners_against_a_prediction(captures_dir: Path, scenario: str) -> None:
    banner = _banner(captures_dir, scenario)
    assert compare_plan(_predicted(), banner) is None  # type: ignore[arg-type]
    mismatch = compare_plan(_predicted(epochs=3, total_steps=12), banner)  # type: ignore[arg-type]
    assert mismatch is not None
    assert [(d.quantity, d.predicted, d.actual) for d in mismatch.differences] == [
        ("epochs", 3, 2),
        ("total steps", 12, 8),
    ]
    assert mismatch.message == (
        "sd-scripts plans another run than predicted: epochs 2 (predicted 3), "
        "total steps 8 (predicted 12)"
    )
    inexact = _predicted(batches_per_epoch=3).model_copy(
        update={"exact": False, "notes": ["validation_split without validation_seed"]}
    )
    found = compare_plan(inexact, banner)  # type: ignore[arg-type]
    assert found is not None
    assert found.message.endswith(
        "batches per epoch 4 (predicted 3) (the prediction was marked inexact: "
        "validation_split without validation_seed)"
    )


def test_the_prediction_of_a_job(tmp_path: Path) -> None:
    job = fake_job(tmp_path, "style")
    for i in range(4):
        add_image(tmp_path / "img" / "2_oilpaint style", f"{i}.png")
    (event,) = predicted_plan(job)
    assert (event.train_images_with_repeats, event.batches_per_epoch, event.epochs) == (8, 8, 2)
    assert (event.total_steps, event.exact) == (16, True)
    assert predicted_plan(job, num_processes=2)[0].batches_per_epoch == 4


def test_a_run_records_its_prediction_and_flags_the_banner(
    tmp_path: Path,
    captures_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through start(): the stand-in replays e_prodigy's real output; the job says 3 epochs."""
    for i in range(4):
        add_image(tmp_path / "img" / "2_oilpaint style", f"{i}.png")
    job = fake_job(tmp_path, "e_prodigy", max_train_epochs=3)
    job = job.model_copy(update={"dataset": job.dataset.model_copy(update={"batch_size": 2})})
    replay(monkeypatch, captures_dir, "e_prodigy", out=tmp_path / "out")
    result = start_fake(job, fake_install(), tmp_path).wait(timeout=60)
    events = read_events(result.run_dir)
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["run_started", "plan_predicted"]
    assert kinds.index("plan_mismatch") == kinds.index("training_plan") + 1
    summary = summarize(events)
    assert summary.predicted_plan is not None
    assert summary.predicted_plan.epochs == 3
    assert summary.plan_mismatch is not None
    assert summary.plan_mismatch.message == (
        "sd-scripts plans another run than predicted: epochs 2 (predicted 3), "
        "total steps 8 (predicted 12)"
    )
    page = (Path(result.run_dir) / "index.html").read_text(encoding="utf-8")
    assert "epochs 2 (predicted 3), total steps 8 (predicted 12)" in page
    assert 'http-equiv="refresh"' not in page  # the run ended: the page is final
    capsys.readouterr()
    assert main(["runs", "show", str(result.run_dir)]) == 0
    shown = " ".join(capsys.readouterr().out.split())  # rich may wrap
    assert "warning: sd-scripts plans another run than predicted: epochs 2 (predicted 3)" in shown
