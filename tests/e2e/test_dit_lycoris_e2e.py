"""e2e: LyCORIS trains the DiT families it is offered for, through `train` (lab models).

Which LyCORIS algos a family offers is data in its profile (``lycoris_algos``), measured by
training every algo through ``train`` on the lab's FLUX.1 and SD3 models (docs/networks.md has
the figures). Two of them stay here as the regression (each run loads the hollow T5-XXL: one to
two minutes, 15-20 GB of mostly file-backed memory): LoKr on FLUX.1, IA3 on SD3 (with the
attn-mlp preset: the default IA3 preset file names SD 1.5 layers and is refused on a DiT).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.jobs.loading import dump_job_toml, validate_job
from kohya_orchestrator.outputs.lora import inspect_lora
from kohya_orchestrator.outputs.lora_header import read_header
from kohya_orchestrator.run import read_events

from .conftest import tiny_job

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("family", "network", "key_part"),
    [
        ("flux", {"algo": "lokr", "factor": -1, "network_dim": 4}, ".lokr_w1"),
        ("sd3", {"algo": "ia3", "preset": "attn-mlp"}, ".weight"),
    ],
)
def test_lycoris_trains_a_dit_family(
    family: str,
    network: dict[str, Any],
    key_part: str,
    lab_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = lab_env / "models" / family / "lab-model.json"
    if not manifest.is_file():
        pytest.skip(f"the e2e lab has no {family} model ({manifest}): rerun tests/lab/build_lab.py")
    lab = json.loads(manifest.read_text(encoding="utf-8"))
    name = f"e2e_{family}_{network['algo']}"
    data = tiny_job(
        lab_env,
        tmp_path,
        name,
        training={
            "max_train_steps": 2,
            "cache_text_encoder_outputs": True,
            **lab.get("training", {}),
        },
    )
    data["model"] = {"family": family, **lab["model"]}
    data["network"] = {**network, "network_train_unet_only": True}
    data["dataset"]["batch_size"] = 1
    data["training"].pop("save_every_n_epochs")
    data["training"].pop("max_train_epochs")
    path = tmp_path / "job.toml"
    path.write_text(dump_job_toml(validate_job(data)), encoding="utf-8")

    rc = main(["train", str(path), "--runs", str(tmp_path / "runs"), "--cpu-threads", "2"])

    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert 'network_module = "lycoris.kohya"' in (run_dir / "config.toml").read_text()
    events = read_events(run_dir)
    assert [e.step for e in events if e.kind == "step_progress"][-1] == 2
    (saved,) = [Path(e.path) for e in events if e.kind == "checkpoint_saved"]
    info = inspect_lora(saved)
    assert info.family == family
    assert info.network_module == "lycoris.kohya"
    assert info.modules.get("unet", 0) > 0
    keys = set(read_header(saved).tensors)
    assert any(key_part in k for k in keys), sorted(keys)[:5]
