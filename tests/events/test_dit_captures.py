"""The parser reads the DiT families' own scripts as it reads train_network.py (real captures).

tests/fixtures/sd-scripts/dit-logs/ holds the console output of flux_train_network.py,
sd3_train_network.py and anima_train_network.py training shrunk or random lab models, and of the
Chroma, Lumina and HunyuanImage scripts stopping at model loading (their loaders take no shrunk
model): the README of tests/fixtures says what produced each.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kohya_orchestrator.events import Decoder, LogParser, classify_failure

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "sd-scripts" / "dit-logs"


def _events(name: str) -> list:
    decoder, parser = Decoder(), LogParser()
    events = list(parser.feed(decoder.decode((LOGS / name / "combined").read_bytes(), final=True)))
    return events + list(parser.close())


@pytest.mark.parametrize(
    ("name", "steps", "saved"),
    [
        ("flux_lora", 2, "flux-lora.safetensors"),
        ("sd35m_lora", 2, "sd35m-lora.safetensors"),
        ("anima_lora", 2, "anima_lora.safetensors"),
    ],
)
def test_a_dit_run_gives_the_plan_the_steps_and_the_saved_lora(
    name: str, steps: int, saved: str
) -> None:
    events = _events(name)
    plan = next(e for e in events if e.kind == "training_plan")
    progress = [e for e in events if e.kind == "step_progress"]
    assert progress and progress[-1].step == steps
    assert plan.total_steps >= steps
    assert [Path(e.path).name for e in events if e.kind == "checkpoint_saved"] == [saved]
    assert not [e for e in events if e.kind == "child_error"]


@pytest.mark.parametrize("name", ["chroma_shrunk", "lumina_shrunk", "hunyuan_image_stub"])
def test_a_model_without_its_weights_is_reported_as_such(name: str) -> None:
    events = _events(name)
    assert not [e for e in events if e.kind == "training_plan"]
    failure = classify_failure(events)
    assert failure is not None and failure.category == "model_weights"
    assert "lacks weights its loader needs" in (failure.remedy or "")
