"""e2e: `install --from <local sd-scripts git dir>` builds an install; doctor passes; it trains.

The real thing, into a temporary folder: a clone of the lab's own sd-scripts checkout (a git
directory on this machine), a new venv, the torch the lab was built with (its install marker
says which packages and index: the CPU build, or where download.pytorch.org cannot be reached the
torch on pip's own index), sd-scripts' requirements, lycoris-lora and onnxruntime. Minutes, and
about 6 GB of disk while it runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.environment.discovery import find_install
from kohya_orchestrator.installer import MARKER
from kohya_orchestrator.jobs.loading import dump_job_toml, validate_job

from .conftest import tiny_job

pytestmark = pytest.mark.e2e


def test_install_from_a_local_git_dir_then_doctor_then_train(
    lab_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab_marker = json.loads((lab_env / MARKER).read_text(encoding="utf-8"))
    target = tmp_path / "kohya"
    argv = ["install", str(target), "--from", str(lab_env / "sd-scripts"), "--torch", "cpu"]
    argv += ["--torch-packages", " ".join(lab_marker["torch_packages"]), "--no-register"]
    argv += ["--torch-index", lab_marker["torch_index"] or "pypi"]
    try:
        assert main(argv) == 0, capsys.readouterr().err[-3000:]
        out = capsys.readouterr().out
        assert "[8/8] finish" in out and "with torch" in out
        marker = json.loads((target / MARKER).read_text(encoding="utf-8"))
        assert marker["commit"] == lab_marker["commit"]

        install = find_install(target, env={})
        assert install is not None and install.layout == "kohya_orchestrator"
        assert main(["doctor", "--sd-scripts", str(target)]) == 0
        report = capsys.readouterr().out
        assert "ready to train" in report and "kohya_orchestrator layout" in report

        # A second run finds everything done.
        assert main(argv) == 0
        assert capsys.readouterr().out.count("(skipped)") == 5

        # And the new install trains (the lab's model and data; 2 steps).
        job = validate_job(
            tiny_job(lab_env, tmp_path, "e2e_installed", training={"max_train_epochs": 1})
        )
        path = tmp_path / "job.toml"
        path.write_text(dump_job_toml(job), encoding="utf-8")
        rc = main(
            ["train", str(path), "--sd-scripts", str(target), "--runs", str(tmp_path / "runs")]
        )
        assert rc == 0, capsys.readouterr().err[-3000:]
        assert (tmp_path / "out" / "e2e_installed.safetensors").stat().st_size > 10_000
    finally:
        shutil.rmtree(target, ignore_errors=True)  # 6 GB: not left for pytest's tmp rotation
