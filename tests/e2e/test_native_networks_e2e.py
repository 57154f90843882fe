"""e2e: sd-scripts' own LoKr (networks.lokr, newer than 0.10.1) trains SDXL through `train`.

The lab keeps a second sd-scripts beside the pinned one, ``sd-scripts-native/`` (commit
aff4a2e7, the first with ``networks/loha.py`` and ``networks/lokr.py``), run by the lab's venv
(tests/lab/build_lab.py). A job with ``implementation = "sd-scripts"`` renders
``network_module = "networks.lokr"``, needs no LyCORIS, and trains there; against the pinned
48d368fa, which has no such module, ``validate --sd-scripts`` refuses it naming the install.
SDXL costs about 16 GB for a minute and a half (tests/e2e/test_sdxl_e2e.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.jobs.loading import dump_job_toml, validate_job
from kohya_orchestrator.outputs.lora_header import read_header
from kohya_orchestrator.run import read_events

from .conftest import tiny_job
from .test_sdxl_e2e import SDXL_MODEL, SDXL_TOKENIZER_2

pytestmark = pytest.mark.e2e


def test_sd_scripts_own_lokr_trains_sdxl(
    lab_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    native = lab_env / "sd-scripts-native"
    model = lab_env / SDXL_MODEL
    if not (native / "networks" / "lokr.py").is_file() or not model.is_file():
        pytest.skip(
            f"the e2e lab at {lab_env} has no sd-scripts-native/ or no SDXL model: rerun "
            "'python tests/lab/build_lab.py' (idempotent)"
        )
    if not (lab_env / SDXL_TOKENIZER_2).is_dir():
        pytest.skip("the e2e lab has no SDXL second tokenizer: rerun tests/lab/build_lab.py")
    data = tiny_job(
        lab_env,
        tmp_path,
        "e2e_native_lokr",
        model={
            "family": "sdxl",
            "pretrained_model_name_or_path": str(model),
            "disable_mmap_load_safetensors": True,
        },
        dataset={"batch_size": 4},
        training={
            "max_train_epochs": 1,
            "save_every_n_epochs": None,
            "cache_text_encoder_outputs": True,
            # networks.lokr builds each module's full weight delta in its forward: without
            # checkpointing autograd keeps all of them (the U-Net's size again, 24 GB in all)
            "gradient_checkpointing": True,
        },
    )
    data["network"] = {
        "algo": "lokr",
        "implementation": "sd-scripts",
        "network_dim": 4,
        "factor": -1,
        "network_train_unet_only": True,
    }
    path = tmp_path / "job.toml"
    path.write_text(dump_job_toml(validate_job(data)), encoding="utf-8")

    # the pinned sd-scripts has no networks.lokr: refused before anything runs, naming it
    assert main(["validate", str(path), "--sd-scripts", str(lab_env / "sd-scripts")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "network.implementation" in err
    assert "has no networks.lokr" in err
    assert "sd-scripts 48d368fa" in err

    rc = main(
        ["train", str(path), "--sd-scripts", str(native), "--runs", str(tmp_path / "runs"),
         "--cpu-threads", "2"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    config = (run_dir / "config.toml").read_text(encoding="utf-8")
    assert 'network_module = "networks.lokr"' in config
    assert "lycoris" not in config
    events = read_events(run_dir)
    assert [e.step for e in events if e.kind == "step_progress"][-1] == 2
    header = read_header(tmp_path / "out" / "e2e_native_lokr.safetensors")
    assert header.metadata["ss_network_module"] == "networks.lokr"
    assert header.metadata["ss_base_model_version"].startswith("sdxl_base")
    keys = set(header.tensors)
    assert any(k.endswith(".lokr_w1") for k in keys), sorted(keys)[:5]
    assert all(k.startswith("lora_unet_") for k in keys)
