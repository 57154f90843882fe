"""Job-specific memory remedies: a fixed order, and every remedy applied yields a valid job."""

from __future__ import annotations

from kohya_orchestrator.jobs.layers import deep_merge, parse_set_overrides
from kohya_orchestrator.jobs.loading import validate_job
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


def test_sdxl_gets_its_own_remedies_last_the_base_model_in_fp8() -> None:
    sdxl = deep_merge(BASE, {"model": {"family": "sdxl"}, "training": {"mixed_precision": "bf16"}})
    remedies = memory_remedies(validate_job(sdxl))
    names = [r.description for r in remedies]
    assert "U-Net only with cached text-encoder outputs" in names
    assert names[-1] == "base model in fp8"
    assert remedies[-1].overrides == {"training.fp8_base": True}
    sd15 = [r.description for r in memory_remedies(validate_job(BASE))]
    assert not [n for n in sd15 if "SDXL" in n]
