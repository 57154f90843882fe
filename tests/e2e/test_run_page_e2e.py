"""e2e: a real CPU training with a sample every epoch writes its run page; a real headless Chromium
(the OS package, driven by Playwright) opens it from a file:// URL.

The DOM must show every sample loaded (``naturalWidth > 0``), one table row per epoch and the loss
points drawn; the predicted plan must agree with sd-scripts' banner. A screenshot is kept under the
test's tmp dir (and copied to docs/images/run-page.png when ``KOHYA_UPDATE_DOCS_IMAGES=1``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from kohya_orchestrator.environment.discovery import find_install
from kohya_orchestrator.events import RunStatus, read_events, summarize
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.run import start

from .conftest import tiny_job

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "run-page.png"


def _browser_or_skip() -> None:
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")


def test_the_run_page_of_a_real_run_in_a_real_browser(lab_env: Path, tmp_path: Path) -> None:
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    prompts = [
        {"prompt": "oilpaint style, a red circle", "seed": 1},
        {"prompt": "oilpaint style, <a blue & square>", "seed": 2},  # user text, escaped
    ]
    data = tiny_job(
        lab_env,
        tmp_path,
        "e2e_page",
        sampling={
            "sample_every_n_epochs": 1,
            "prompts": [{**p, "width": 64, "height": 64, "sample_steps": 2} for p in prompts],
        },
    )
    install = find_install(lab_env)
    assert install is not None
    run = start(validate_job(data), install=install, runs=tmp_path / "runs", probe=False)
    result = run.wait(900)
    assert result.status == RunStatus.SUCCEEDED, result.reason

    summary = summarize(read_events(result.run_dir))
    assert summary.predicted_plan is not None and summary.plan is not None
    assert summary.plan_mismatch is None  # the prediction is what sd-scripts ran
    assert summary.predicted_plan.total_steps == summary.plan.total_steps == 8
    assert len(summary.samples) == 4

    page = Path(result.run_dir) / "index.html"
    html = page.read_text(encoding="utf-8")
    assert 'http-equiv="refresh"' not in html  # final
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            tab = browser.new_page(viewport={"width": 1100, "height": 900})
            tab.goto(page.resolve().as_uri())
            tab.wait_for_load_state("load")
            widths = tab.eval_on_selector_all(
                "img.sample", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)"
            )
            assert widths == [64, 64, 64, 64]  # 2 prompts x 2 epochs, every one loaded
            rows = tab.eval_on_selector_all(
                "#epochs tr.epoch-row", "rows => rows.map(r => r.dataset.epoch)"
            )
            assert rows == ["1", "2"]
            points = tab.locator("#loss-curve circle.loss-point").count()
            assert points == len(summary.losses) == 8
            assert tab.locator("#plan-check").inner_text() == "sd-scripts runs the predicted plan"
            assert "<a blue & square>" in tab.locator("#samples").inner_text()
            picks = tab.locator("#epochs code").all_inner_texts()
            assert picks == [
                f"python -m kohya_orchestrator runs pick {result.run_dir.name} --epoch {n}"
                for n in (1, 2)
            ]
            shot = tmp_path / "run-page.png"
            tab.screenshot(path=str(shot), full_page=True)
            # click to enlarge: the lightbox of the first sample shows it
            tab.locator("img.sample").first.click()
            assert tab.locator(".lightbox:target img").is_visible()
        finally:
            browser.close()
    assert shot.stat().st_size > 0
    if os.environ.get("KOHYA_UPDATE_DOCS_IMAGES") == "1":
        DOCS_IMAGE.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_IMAGE)
