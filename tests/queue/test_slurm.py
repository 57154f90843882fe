"""The SLURM job-array script: valid bash, one task per job, the right command and environment."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.queue import render_slurm_script

STUB = """#!/bin/sh
printf '%s\\n' "$@" > "$STUB_OUT/args"
env > "$STUB_OUT/env"
"""


def _stub(tmp_path: Path) -> Path:
    stub = tmp_path / "bin dir" / "python"
    stub.parent.mkdir()
    stub.write_text(STUB, encoding="utf-8")
    stub.chmod(0o755)
    return stub


def _script(tmp_path: Path, **kw: object) -> tuple[str, list[Path]]:
    jobs = [tmp_path / "q" / "jobs" / f"000{i}-job {i}.toml" for i in (1, 2, 3)]
    options: dict[str, object] = {
        "python": _stub(tmp_path),
        "runs": tmp_path / "runs",
        "log_dir": tmp_path / "logs",
        "partition": "gpu",
        "time": "04:00:00",
        "env": {"KOHYA_SD_SCRIPTS": "/opt/kohya ss/sd-scripts", "HF_HOME": "/shared/hf"},
        **kw,
    }
    return render_slurm_script(jobs, **options), jobs  # type: ignore[arg-type]


def _run_task(
    tmp_path: Path, script: str, task: str | None, **env: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "array.sbatch"
    path.write_text(script, encoding="utf-8")
    out = tmp_path / "stub-out"
    out.mkdir(exist_ok=True)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    child_env.update(env, STUB_OUT=str(out))
    if task is not None:
        child_env["SLURM_ARRAY_TASK_ID"] = task
    return subprocess.run(
        ["bash", str(path)], env=child_env, capture_output=True, text=True, timeout=30
    )


def test_script_is_valid_bash_with_one_task_per_job(tmp_path: Path) -> None:
    script, _ = _script(tmp_path, max_parallel=2, cpus_per_task=4, mem="32G")
    path = tmp_path / "array.sbatch"
    path.write_text(script, encoding="utf-8")
    assert shutil.which("bash")
    subprocess.run(["bash", "-n", str(path)], check=True)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    for expected in (
        "#SBATCH --array=0-2%2",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=04:00:00",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=32G",
        f"#SBATCH --output={tmp_path}/logs/%x-%A_%a.out",
    ):
        assert expected in lines
    # every #SBATCH line comes before the first command (sbatch stops reading there)
    first_command = next(i for i, ln in enumerate(lines) if ln and not ln.startswith("#"))
    assert all(i < first_command for i, ln in enumerate(lines) if ln.startswith("#SBATCH"))


def test_each_task_trains_its_job_with_the_environment(tmp_path: Path) -> None:
    script, jobs = _script(tmp_path)
    proc = _run_task(tmp_path, script, "1")
    assert proc.returncode == 0, proc.stderr
    assert f"array task 1 trains {jobs[1]}" in proc.stdout
    args = (tmp_path / "stub-out" / "args").read_text().splitlines()
    assert args == [
        "-m",
        "kohya_orchestrator",
        "train",
        str(jobs[1]),
        "--runs",
        str(tmp_path / "runs"),
    ]
    env = (tmp_path / "stub-out" / "env").read_text().splitlines()
    assert "KOHYA_SD_SCRIPTS=/opt/kohya ss/sd-scripts" in env
    assert "HF_HOME=/shared/hf" in env and "PYTHONUNBUFFERED=1" in env


def test_several_gpus_per_task_train_with_accelerate_on_slurms_gpus(tmp_path: Path) -> None:
    script, jobs = _script(tmp_path, gpus_per_task=2)
    assert "#SBATCH --gpus-per-task=2" in script
    proc = _run_task(tmp_path, script, "0", CUDA_VISIBLE_DEVICES="3,5")
    assert proc.returncode == 0, proc.stderr
    args = (tmp_path / "stub-out" / "args").read_text().splitlines()
    assert args[3] == str(jobs[0]) and args[-2:] == ["--gpus", "3,5"]


def test_outside_sbatch_it_stops(tmp_path: Path) -> None:
    script, _ = _script(tmp_path)
    proc = _run_task(tmp_path, script, None)
    assert proc.returncode != 0 and "run this script with sbatch" in proc.stderr


def test_bad_values_are_all_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        render_slurm_script(
            [],
            python=Path("/usr/bin/python3"),
            runs=tmp_path,
            log_dir=tmp_path / "with space",
            partition="gpu; rm -rf /",
            time="4 hours",
            gpus_per_task=-1,
            env={"BAD-NAME": "1"},
        )
    paths = [p.path for p in info.value.problems]
    assert paths == ["queue", "--gpus-per-task", "--time", "--partition", "--log-dir", "--env"]
