"""e2e: `preset oilpaint` trains for real on CPU (the lab's random-weight SD1.5 and tiny data).

The recipe itself (LyCORIS LoHa with preset attn-mlp, Prodigy with its arguments,
cosine_with_restarts, min-SNR, a checkpoint and samples every epoch) runs as shipped; only what
makes it CPU-cheap is overridden on the command line: 64 px, one epoch, no mixed precision, plain
attention, two sampling steps, and the lab's offline tokenizer.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.run import read_events

pytestmark = pytest.mark.e2e


def test_preset_oilpaint_trains_on_the_lab(
    lab_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "img"
    shutil.copytree(lab_env / "data" / "img", data)
    monkeypatch.chdir(tmp_path)
    cheap = [
        "dataset.resolution=64",
        "dataset.enable_bucket=false",
        "dataset.min_bucket_reso=64",
        "training.max_train_epochs=1",
        'training.mixed_precision="no"',
        'training.attention="none"',
        "training.max_data_loader_n_workers=0",
        "sampling.sample_steps=2",
        f'model.tokenizer_cache_dir="{lab_env / "tokcache"}"',
    ]
    argv = ["preset", "oilpaint", "--data", str(data), "--output", str(tmp_path / "out")]
    argv += ["--model", str(lab_env / "models" / "sd15-random-diffusers")]
    for item in cheap:
        argv += ["--set", item]
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]
    out = captured.out
    # what it will do comes first: the job, the plan, the files, the command; then it trains
    assert out.index("resolved job") < out.index("total optimization steps: 4")
    assert "the training length comes from --set" in out
    assert out.index("command") < out.index("starting training")
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "status").read_text().strip() == "succeeded"
    config = (run_dir / "config.toml").read_text(encoding="utf-8")
    assert 'network_args = ["algo=loha", "preset=attn-mlp"]' in config
    assert 'optimizer_type = "Prodigy"' in config
    events = read_events(run_dir)
    plan = next(e for e in events if e.kind == "training_plan")
    assert plan.total_steps == 4  # 4 images x 2 repeats / batch 2, one epoch
    checkpoints = [Path(e.path).name for e in events if e.kind == "checkpoint_saved"]
    assert checkpoints == ["zengxin_oilpaint.safetensors"]
    assert (tmp_path / "out" / "zengxin_oilpaint.safetensors").stat().st_size > 10_000
    # the preset's TensorBoard logs follow --output (they went to ./output/logs)
    assert list((tmp_path / "out" / "logs").rglob("events.out.tfevents.*"))
    assert not (tmp_path / "output").exists()
    samples = [e for e in events if e.kind == "sample_image_saved"]
    assert len(samples) == 2 and all(Path(e.path).is_file() for e in samples)
