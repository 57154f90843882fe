"""e2e: an SDXL LoRA trains for real on a CPU through the product's own `train` command.

The real sdxl_train_network.py on the lab's random-weight, full-size SDXL
(``models/sdxl-random.safetensors``, built by tests/lab/make_random_sdxl.py) with both of SDXL's
offline tokenizers from ``tokcache/``. The cheapest run that still goes through every stage
(docs/e2e-lab.md, "SDXL", has the measurements): 64 px, batch 4, 4 images x 2 repeats, one
epoch (2 steps), U-Net only with cached latents and text-encoder outputs, fp32
(``mixed_precision = "no"``: bf16 is some 50-100x slower on a CPU without bf16 instructions),
the checkpoint read without mmap. About 80 s and 16 GB of peak memory, most of it the fp32
weights (U-Net 10.3 GB, text encoders 3.3 GB): run it alone (``flock`` where several share a
machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.events import RunStatus
from kohya_orchestrator.jobs.loading import dump_job_toml, validate_job
from kohya_orchestrator.outputs.lora_header import read_header
from kohya_orchestrator.run import read_events

from .conftest import tiny_job

pytestmark = pytest.mark.e2e

SDXL_MODEL = Path("models") / "sdxl-random.safetensors"
SDXL_TOKENIZER_2 = Path("tokcache") / "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"


def test_sdxl_lora_trains_through_train(
    lab_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = lab_env / SDXL_MODEL
    if not model.is_file() or not (lab_env / SDXL_TOKENIZER_2).is_dir():
        pytest.skip(
            f"the e2e lab at {lab_env} has no random-weight SDXL ({SDXL_MODEL}) or no second "
            f"tokenizer ({SDXL_TOKENIZER_2}): it was built before they were added. Rerun "
            "'python tests/lab/build_lab.py' (idempotent: it adds just these, 15 GB of memory "
            "for a minute)"
        )
    data = tiny_job(
        lab_env,
        tmp_path,
        "e2e_sdxl",
        model={
            "family": "sdxl",
            "pretrained_model_name_or_path": str(model),
            "disable_mmap_load_safetensors": True,
        },
        dataset={"batch_size": 4},
        network={"network_train_unet_only": True},
        training={
            "max_train_epochs": 1,
            "save_every_n_epochs": None,
            "cache_text_encoder_outputs": True,
        },
    )
    path = tmp_path / "job.toml"
    path.write_text(dump_job_toml(validate_job(data)), encoding="utf-8")

    rc = main(["train", str(path), "--runs", str(tmp_path / "runs"), "--cpu-threads", "2"])

    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "status").read_text().strip() == "succeeded"
    argv = json.loads((run_dir / "command.json").read_text())["argv"]
    assert any(a.endswith("sdxl_train_network.py") for a in argv)
    assert "disable_mmap_load_safetensors = true" in (run_dir / "config.toml").read_text()

    events = read_events(run_dir)
    plan = next(e for e in events if e.kind == "training_plan")
    steps = [e for e in events if e.kind == "step_progress"]
    assert plan.total_steps == 2 and steps[-1].step == 2
    assert [e.epoch for e in events if e.kind == "epoch_started"] == [1]
    checkpoints = [Path(e.path).name for e in events if e.kind == "checkpoint_saved"]
    assert checkpoints == ["e2e_sdxl.safetensors"]
    assert events[-1].kind == "run_finished" and events[-1].status == RunStatus.SUCCEEDED

    header = read_header(tmp_path / "out" / "e2e_sdxl.safetensors")
    meta = header.metadata
    assert meta["ss_base_model_version"].startswith("sdxl_base")
    assert (meta["ss_network_dim"], meta["ss_steps"]) == ("4", "2")
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    keys = set(header.tensors)
    assert keys and all(k.startswith("lora_unet_") for k in keys)  # U-Net only: no lora_te1/2
    # sd-scripts' own SDXL U-Net names (input/middle/output blocks), not diffusers' down_blocks
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight" in keys
    assert any(k.startswith("lora_unet_middle_block_1_") for k in keys)
    assert any(k.startswith("lora_unet_output_blocks_") for k in keys)

    peak = max((e.rss_bytes for e in events if e.kind == "resource_sample"), default=0)
    print(f"MEASURE sdxl: {events[-1].duration_s:.0f} s, peak rss {peak / 2**30:.1f} GiB sampled")
