"""Job-specific memory remedies: a fixed order, and every remedy applied yields a valid job."""

from __future__ import annotations

from kohya_orchestrator.jobs.loading import deep_merge, parse_set_overrides, validate_job
from kohya_orchestrator.jobs.remedies import memory_remedies

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
