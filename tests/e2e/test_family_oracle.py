"""e2e: each family's own script reads the rendered example job as meant (docs/examples/<family>.toml).

For every family the job format can name, ``render --no-paths`` of its example writes files
that the family's script (from the e2e lab) takes through everything it does before loading a
model: its ``setup_parser`` and ``read_config_from_file`` (no key it does not define, every
value as written), ``verify_training_args``, the dataset blueprint and group, the import of the
family's network module and the trainer class's ``assert_extra_args``. The profile's bucket
step is checked against the script's own assertion: it passes, and half of it fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lab_oracle import run_lab_oracle

from kohya_orchestrator.jobs.loading import load_job
from kohya_orchestrator.models.family import FAMILIES, profile
from kohya_orchestrator.render.files import write_rendered
from kohya_orchestrator.render.toml import network_args

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
ORACLE = Path(__file__).with_name("_sd_family_oracle.py")
# The trainer class each script defines (train_network.py's own for SD 1.x/2.x).
TRAINERS = {
    "train_network.py": "NetworkTrainer",
    "sdxl_train_network.py": "SdxlNetworkTrainer",
    "flux_train_network.py": "FluxNetworkTrainer",
    "sd3_train_network.py": "Sd3NetworkTrainer",
    "lumina_train_network.py": "LuminaNetworkTrainer",
    "hunyuan_image_train_network.py": "HunyuanImageNetworkTrainer",
    "anima_train_network.py": "AnimaNetworkTrainer",
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_family_script_reads_the_rendered_example(
    family: str, e2e_lab: Path, tmp_path: Path
) -> None:
    job = load_job(EXAMPLES / f"{family}.toml")
    assert job.model.family == family
    write_rendered(job, tmp_path / "r", force=False)
    config = tmp_path / "r" / "config.toml"
    fam = profile(family)
    half = fam.bucket_step // 2
    result = run_lab_oracle(e2e_lab, ORACLE, fam.script, config, half)

    assert result["ignored"] == [], f"{fam.script} would silently ignore {result['ignored']}"
    steps = result["steps"]
    for name in (
        "verify_training_args",
        "prepare_dataset_args",
        "dataset_group",
        "network_module",
        "assert_extra_args",
    ):
        assert steps.get(name) == "ok", f"{name}: {steps.get(name)}\n{result.get('tracebacks')}"
    assert result["trainer"] == TRAINERS[fam.script]
    # the profile's bucket step is the script's: half of it is refused by its own assertion
    assert f"divisible by {fam.bucket_step}" in steps["bucket_probe"], steps["bucket_probe"]

    values = result["values"]
    rendered = tomllib.loads(config.read_text(encoding="utf-8"))
    for section in rendered.values():
        for key, value in section.items():
            assert values[key] == value, (
                f"{key}: {fam.script} has {values[key]!r}, we wrote {value!r}"
            )
    assert values["network_module"] == fam.lora_module
    for key, value in fam.script_args:
        assert values[key] == value
    if network_args(job):
        assert values["network_args"] == network_args(job)
