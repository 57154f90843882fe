"""Job-specific memory remedies, and the rich progress display fed with real events."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from kohya_orchestrator.events import EventAdapter
from kohya_orchestrator.jobs.loading import deep_merge, parse_set_overrides, validate_job
from kohya_orchestrator.jobs.remedies import memory_remedies
from kohya_orchestrator.ui.progress import RichProgressSink

GOLDEN_EVENTS = Path(__file__).resolve().parent / "golden" / "events"
BASE = {
    "model": {"pretrained_model_name_or_path": "/m.safetensors"},
    "dataset": {"batch_size": 4, "subsets": [{"image_dir": "/d/10_a"}]},
    "training": {
        "max_train_epochs": 2,
        "cache_latents": False,
        "attention": "none",
        "mixed_precision": "no",
    },
}


def test_remedies_follow_a_fixed_order_and_apply() -> None:
    job = validate_job(BASE)
    remedies = memory_remedies(job)
    assert [r.description.split(" (")[0] for r in remedies][:4] == [
        "cache latents",
        "memory-efficient attention",
        "mixed precision bf16",
        "gradient checkpointing",
    ]
    data = BASE
    for remedy in remedies:  # every remedy yields a valid job
        sets = remedy.as_set_args().replace("--set ", "").split(" ")
        data = deep_merge(data, parse_set_overrides(sets))
        validate_job(data)
    lighter = validate_job(data)
    assert lighter.dataset.batch_size == 2 and lighter.training.gradient_accumulation_steps == 2
    assert [r.description for r in memory_remedies(lighter)] == [
        "batch size 2 -> 1 with gradient accumulation x2 (same effective batch)"
    ]


def test_progress_sink_renders_a_real_run() -> None:
    buf = io.StringIO()
    sink = RichProgressSink(Console(file=buf, width=100, force_terminal=False, color_system=None))
    lines = (
        (GOLDEN_EVENTS / "a_lora_accelerate.events.jsonl").read_text(encoding="utf-8").splitlines()
    )
    events = [EventAdapter.validate_json(x) for x in lines if x.strip()]
    for event in events:
        sink.handle(event)
    sink.close()
    out = buf.getvalue()
    assert "plan: 8 images x repeats, 4 batches/epoch, 2 epochs, 8 steps" in out
    assert "checkpoint /srv/kohya/out/a_lora_accelerate/a_lora_accelerate-000001.safetensors" in out
    assert out.count("checkpoint ") == 2
