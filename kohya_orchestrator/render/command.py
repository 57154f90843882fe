"""Build the trainer command as data (pure): argv, environment additions and cwd.

The launch is ``<venv python> -m accelerate.commands.launch`` with every accelerate option given
explicitly: without them accelerate reads ~/.cache/huggingface/accelerate/default_config.yaml and
silently goes multi-GPU when it sees several GPUs (docs/sd-scripts-reference.md section 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..models import TrainingJob

__all__ = ["CONSOLE_COLUMNS", "LaunchOptions", "LaunchSpec", "build_launch_spec"]

# sd-scripts logs through rich, which wraps records at the console width when piped (80 columns).
# A wide console keeps one record per physical line (fixture h_columns200).
CONSOLE_COLUMNS = 200


class LaunchSpec(BaseModel):
    """A command to run, as data. The caller merges ``env`` into ``os.environ`` at spawn time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    argv: tuple[str, ...] = Field(description="Program and arguments; never run through a shell.")
    env: Mapping[str, str] = Field(
        default_factory=dict, description="Only the variables we add or override."
    )
    cwd: Path = Field(description="Working directory of the child (the sd-scripts checkout).")


class LaunchOptions(BaseModel):
    """How to launch: processes, GPUs, CPU threads. Not part of the job: the same job runs anywhere."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_processes: int = Field(default=1, ge=1, description="Processes (one per GPU).")
    num_machines: int = Field(default=1, ge=1, description="Machines (accelerate --num_machines).")
    gpu_ids: tuple[str, ...] | None = Field(
        default=None, description="GPUs to use, e.g. ('0', '1'); sets CUDA_VISIBLE_DEVICES."
    )
    num_cpu_threads_per_process: int = Field(
        default=2, ge=1, description="CPU threads per process."
    )
    main_process_port: int | None = Field(default=None, ge=1, le=65535, description="DDP port.")
    use_accelerate: bool = Field(
        default=True, description="Launch through accelerate (False: run the script with python)."
    )


def build_launch_spec(
    job: TrainingJob,
    *,
    python: Path,
    sd_scripts_dir: Path,
    config_file: Path,
    options: LaunchOptions | None = None,
) -> LaunchSpec:
    """The command that trains ``job`` from the rendered ``config_file``."""
    options = options or LaunchOptions()
    script = str(sd_scripts_dir / job.model.script)
    argv: list[str] = [str(python)]
    if options.use_accelerate:
        argv += [
            "-m",
            "accelerate.commands.launch",
            "--num_processes",
            str(options.num_processes),
            "--num_machines",
            str(options.num_machines),
            "--mixed_precision",
            job.training.mixed_precision,
            "--num_cpu_threads_per_process",
            str(options.num_cpu_threads_per_process),
            "--dynamo_backend",
            "no",
        ]
        if options.num_processes > 1:
            argv.append("--multi_gpu")
        if options.main_process_port is not None:
            argv += ["--main_process_port", str(options.main_process_port)]
    argv += [script, "--config_file", str(config_file)]
    env = {
        "PYTHONUNBUFFERED": "1",  # else stdout lines arrive late and out of order
        "PYTHONIOENCODING": "utf-8",  # sd-scripts prints Japanese; tqdm needs UTF-8
        "COLUMNS": str(CONSOLE_COLUMNS),
        "NO_COLOR": "1",
    }
    if options.gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(options.gpu_ids)
    return LaunchSpec(argv=tuple(argv), env=env, cwd=sd_scripts_dir)
