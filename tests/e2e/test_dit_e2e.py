"""e2e: the DiT families' own scripts on CPU through the product's `train` (shrunk random models).

The lab builds a random-weight model for each family whose sd-scripts loader takes a shrunk
checkpoint (fewer blocks read from the file; text encoders too large for this machine as
"hollow" files) and writes ``models/<family>/lab-model.json``: the job's ``[model]`` section
for it and whether the family trains (``trains``). A family that trains must train end to end
(steps, a saved LoRA whose metadata names the family and its LoRA module); for one whose loader
refuses a shrunk model the lab keeps a file lacking weights, and the product must stop with the
failure classified (``model_weights``) and its remedy, leaving no process behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.jobs.loading import dump_job_toml, validate_job
from kohya_orchestrator.models.family import FAMILIES, profile
from kohya_orchestrator.outputs.lora import inspect_lora
from kohya_orchestrator.run import read_events

from .conftest import tiny_job

pytestmark = pytest.mark.e2e
DIT = [name for name, p in FAMILIES.items() if not p.hub_ids]


def _manifest(lab: Path, family: str) -> dict[str, Any]:
    path = lab / "models" / family / "lab-model.json"
    if not path.is_file():
        pytest.skip(
            f"the e2e lab has no {family} model ({path}); rebuild it: python tests/lab/build_lab.py"
        )
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("family", DIT)
def test_a_dit_family_trains_through_the_product(
    family: str, lab_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = _manifest(lab_env, family)
    name = f"e2e_{family}"
    data = tiny_job(
        lab_env,
        tmp_path,
        name,
        model={"family": family, **lab["model"]},
        network={
            "algo": "lora",
            "network_dim": 4,
            "network_alpha": 1.0,
            "network_train_unet_only": True,
        },
        training={
            "max_train_steps": 2,
            "cache_text_encoder_outputs": True,
            **lab.get("training", {}),
        },
    )
    data["model"] = {"family": family, **lab["model"]}  # not merged over the SD1.5 section
    data["dataset"]["batch_size"] = 1
    data["training"].pop("save_every_n_epochs")
    data["training"].pop("max_train_epochs")
    job = validate_job(data)
    path = tmp_path / "job.toml"
    path.write_text(dump_job_toml(job), encoding="utf-8")
    rc = main(["train", str(path), "--runs", str(tmp_path / "runs"), "--cpu-threads", "2"])
    out = capsys.readouterr()
    (run_dir,) = (tmp_path / "runs").iterdir()
    events = read_events(run_dir)
    if lab["trains"]:
        assert rc == 0, out.err[-3000:]
        steps = [e for e in events if e.kind == "step_progress"]
        assert steps and steps[-1].step == 2
        (saved,) = [Path(e.path) for e in events if e.kind == "checkpoint_saved"]
        info = inspect_lora(saved)
        assert info.family == family, info.base_model_version
        assert info.network_module == profile(family).lora_module
        assert info.modules.get("unet", 0) > 0
    else:
        assert rc != 0
        errors = [e for e in events if e.kind == "child_error"]
        assert any(e.category == "model_weights" for e in errors), [e.message for e in errors]
        assert "lacks weights its loader needs" in out.err + out.out
