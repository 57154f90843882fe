"""The run page's HTML (ui/runpage.py) and its writer (outputs/pagesink.py), read back with html.parser.

The events are the real e_prodigy run's (tests/golden/events/e_prodigy.events.jsonl, parsed from
its captured console output), with its two real sample images (tests/outputs/conftest.py builds
the run directory).
"""

from __future__ import annotations

import shutil
import webbrowser
from html.parser import HTMLParser
from pathlib import Path

import pytest
from outputs.conftest import build_prodigy_run

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.events import (
    PlanPredicted,
    SampleImageSaved,
    SamplePrompt,
    SampleSuspect,
    SamplingStarted,
    StepProgress,
    read_events,
    summarize,
)
from kohya_orchestrator.events.jsonl import dump_events_jsonl
from kohya_orchestrator.outputs.pagesink import RunPageSink, write_run_page
from kohya_orchestrator.ui.runpage import (
    MAX_LOSS_POINTS,
    PageFiles,
    pick_command,
    render_run_page,
)


class _Page(HTMLParser):
    """The parts of the page the tests look at."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.open: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def classed(self, tag: str, cls: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and cls in (a.get("class") or "").split()]


def _run(captures_dir: Path, tmp_path: Path) -> Path:
    run = build_prodigy_run(captures_dir, tmp_path, tensorboard=False)
    out = tmp_path / "out" / "e_prodigy"
    # the events name the machine the run was captured on: point them at the copied files
    events = [
        e.model_copy(update={"path": e.path.replace("/srv/kohya/out/e_prodigy", str(out))})
        if hasattr(e, "path")
        else e
        for e in read_events(run)
    ]
    (run / "events.jsonl").write_text(dump_events_jsonl(events))
    return run


def test_the_page_of_a_real_finished_run(captures_dir: Path, tmp_path: Path) -> None:
    run = _run(captures_dir, tmp_path)
    page_path = write_run_page(run)
    assert page_path == run / "index.html"
    html = page_path.read_text(encoding="utf-8")
    page = _Page(html)

    assert not page.find("meta", http_equiv="refresh")  # finished: no reload
    assert page.find("span", id="status")
    assert "succeeded" in page.text
    # one row per epoch, each with its step, loss, checkpoint, size and pick command
    rows = page.classed("tr", "epoch-row")
    assert [r["data-epoch"] for r in rows] == ["1", "2"]
    text = "".join(page.text)
    assert pick_command(run.name, 1) in text
    assert pick_command(run.name, 2) in text
    assert "e_prodigy-000001.safetensors" in text
    assert "e_prodigy.safetensors" in text
    assert "gone" not in text  # the checkpoints are there, with their sizes
    assert " MB" in text or " KB" in text
    # the loss curve: one point per step with a loss (8 steps)
    assert len(page.classed("circle", "loss-point")) == 8
    assert len(page.classed("line", "epoch-end")) == 2
    # the samples: prompts x epochs, relative links into the run folder, each enlargeable
    samples = page.classed("img", "sample")
    assert [s["src"] for s in samples] == [
        "samples/e_prodigy_e000001_00_20261124215422_1.png",
        "samples/e_prodigy_e000002_00_20261124215434_1.png",
    ]
    for s in samples:
        src = s["src"]
        assert src is not None
        assert (run / src).is_file()
    boxes = page.classed("div", "lightbox")
    assert len(boxes) == 2
    assert {f"#{b['id']}" for b in boxes} == {
        a["href"] for a in page.find("a") if a.get("href", "").startswith("#sample-")
    }  # type: ignore[union-attr]
    assert "oilpaint style, a red circle" in text
    # no absolute link anywhere: the folder can be moved
    for _tag, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            assert value is None or not (value.startswith("/") or ":" in value), value


def test_the_page_survives_a_copy_of_the_run_folder(captures_dir: Path, tmp_path: Path) -> None:
    run = _run(captures_dir, tmp_path)
    write_run_page(run)
    copy = tmp_path / "elsewhere" / run.name
    shutil.copytree(run, copy)
    shutil.rmtree(tmp_path / "out")  # the original outputs are gone
    page = _Page((copy / "index.html").read_text(encoding="utf-8"))
    for img in page.classed("img", "sample"):
        assert (copy / str(img["src"])).stat().st_size > 0


def test_user_text_is_escaped_and_a_live_page_reloads(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script> & <b>bold</b>'
    sample = tmp_path / "a b&c.png"
    sample.write_bytes(b"png")
    events = [
        SamplingStarted(seq=0, step=10, epoch=1),
        SamplePrompt(seq=1, prompt=evil, prompt_index=0, epoch=1, step=10),
        SampleImageSaved(seq=2, path=str(sample), epoch=1, prompt_index=0),
        SampleSuspect(
            seq=3, path=str(sample), problem="black", epoch=1, prompt_index=0, prompt=evil,
            message=f"sample of epoch 1, prompt 0 ({evil!r}) is all black",
        ),
        PlanPredicted(
            seq=4, train_images_with_repeats=8, batches_per_epoch=4, epochs=2, total_steps=8,
            exact=True,
        ),
    ]  # fmt: skip
    html = render_run_page(
        summarize(events),
        run_id="run<1>",
        files=PageFiles(sample_hrefs={str(sample): "samples/a%20b%26c.png"}),
    )
    assert "<script>" not in html
    assert "<b>bold" not in html
    page = _Page(html)
    assert page.find("meta", http_equiv="refresh", content="5")  # no run_finished yet: live
    assert evil in "".join(page.text)  # shown as text
    assert "run<1>" in "".join(page.text)
    (img,) = page.classed("img", "sample")
    assert img["src"] == "samples/a%20b%26c.png"
    assert evil in str(img["alt"])
    warnings = "".join(page.text[page.text.index("Warnings") :])
    assert "is all black" in warnings
    assert "waiting for sd-scripts' banner" in "".join(page.text)


def test_the_sink_writes_as_events_arrive_and_once_more_at_the_end(
    captures_dir: Path, tmp_path: Path
) -> None:
    run = _run(captures_dir, tmp_path)
    events = read_events(run)
    (run / "index.html").unlink(missing_ok=True)
    sink = RunPageSink(run, min_interval_s=3600)
    first_plan = next(i for i, e in enumerate(events) if e.kind == "training_plan")
    for event in events[: first_plan + 1]:
        sink.handle(event)
    early = (run / "index.html").read_text(encoding="utf-8")
    assert 'http-equiv="refresh"' in early  # live
    assert "8 images x repeats, 4 batches/epoch, 2 epochs, 8 steps" in early
    for event in events[first_plan + 1 :]:
        sink.handle(event)
    sink.close()
    final = (run / "index.html").read_text(encoding="utf-8")
    assert 'http-equiv="refresh"' not in final
    assert len(_Page(final).classed("tr", "epoch-row")) == 2
    assert not list(run.glob("*.tmp*"))  # written atomically, nothing left behind


def test_runs_page_and_runs_open(
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = _run(captures_dir, tmp_path)
    assert main(["runs", "page", str(run)]) == 0
    assert f"wrote {run / 'index.html'}" in " ".join(capsys.readouterr().out.split())
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or True)
    (run / "index.html").unlink()
    assert main(["runs", "open", run.name, "--runs", str(run.parent)]) == 0
    assert opened == [(run / "index.html").resolve().as_uri()]
    assert str((run / "index.html").resolve()) in capsys.readouterr().out.replace("\n", "")
    assert (run / "index.html").is_file()  # written when missing
    assert main(["runs", "open", str(tmp_path / "nope")]) == 2  # a clear error, no traceback


def test_a_long_run_draws_a_bounded_loss_curve() -> None:
    steps = [StepProgress(seq=i, step=i, total_steps=9999, avr_loss=1 / i) for i in range(1, 10000)]
    page = _Page(render_run_page(summarize(steps), run_id="long"))
    points = page.classed("circle", "loss-point")
    assert 400 < len(points) <= MAX_LOSS_POINTS + 1
    assert "step 9999" in "".join(page.text)  # the last step is drawn
