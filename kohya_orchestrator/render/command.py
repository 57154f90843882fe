"""Build the trainer command as data (pure): argv, environment additions and cwd.

The launch is ``<venv python> -m accelerate.commands.launch`` with every accelerate option given
explicitly: without them accelerate reads ~/.cache/huggingface/accelerate/default_config.yaml and
silently goes multi-GPU when it sees several GPUs (docs/sd-scripts-reference.md section 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, Problem
from ..models import TrainingJob

__all__ = [
    "CONSOLE_COLUMNS",
    "DEFAULT_MAIN_PROCESS_PORT",
    "LaunchOptions",
    "LaunchSpec",
    "build_launch_spec",
    "check_machines",
]

# sd-scripts logs through rich, which wraps records at the console width when piped (80 columns).
# A wide console keeps one record per physical line (fixture h_columns200).
CONSOLE_COLUMNS = 200
DEFAULT_MAIN_PROCESS_PORT = 29500


class LaunchSpec(BaseModel):
    """A command to run, as data. The caller merges ``env`` into ``os.environ`` at spawn time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    argv: tuple[str, ...] = Field(description="Program and arguments; never run through a shell.")
    env: Mapping[str, str] = Field(
        default_factory=dict, description="Only the variables we add or override."
    )
    cwd: Path = Field(
        description="Working directory of the child (a run's directory; else the sd-scripts "
        "checkout)."
    )


class LaunchOptions(BaseModel):
    """How to launch: processes, GPUs, CPU threads. Not part of the job: the same job runs anywhere."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_processes: int = Field(
        default=1, ge=1, description="Processes on each machine (one per GPU)."
    )
    num_machines: int = Field(default=1, ge=1, description="Machines (accelerate --num_machines).")
    machine_rank: int | None = Field(
        default=None,
        ge=0,
        description="This machine's rank, 0 for the main one (several machines).",
    )
    main_process_ip: str | None = Field(
        default=None, min_length=1, description="Address of the rank-0 machine (several machines)."
    )
    gpu_ids: tuple[str, ...] | None = Field(
        default=None, description="GPUs to use, e.g. ('0', '1'); sets CUDA_VISIBLE_DEVICES."
    )
    num_cpu_threads_per_process: int = Field(
        default=2, ge=1, description="CPU threads per process."
    )
    main_process_port: int | None = Field(
        default=None, ge=1, le=65535, description="DDP port (several machines: default 29500)."
    )
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
    cwd: Path | None = None,
) -> LaunchSpec:
    """The command that trains ``job`` from the rendered ``config_file``.

    ``cwd``: the child's working directory (``run.py`` passes the run directory, where LyCORIS
    reads the shipped preset copy by its bare name); default the sd-scripts checkout. sd-scripts
    finds its own modules from the script's folder, not the working directory.
    """
    options = options or LaunchOptions()
    check_machines(options)
    script = str(sd_scripts_dir / job.model.script)
    argv: list[str] = [str(python)]
    if options.use_accelerate:
        argv += [
            "-m",
            "accelerate.commands.launch",
            "--num_processes",  # accelerate counts the processes of all machines
            str(options.num_processes * options.num_machines),
            "--num_machines",
            str(options.num_machines),
            "--mixed_precision",
            job.training.mixed_precision,
            "--num_cpu_threads_per_process",
            str(options.num_cpu_threads_per_process),
            "--dynamo_backend",
            "no",
        ]
        if options.num_processes > 1 or options.num_machines > 1:
            argv.append("--multi_gpu")  # accelerate's torchrun launcher, also across machines
        if options.num_machines > 1:
            argv += ["--machine_rank", str(options.machine_rank)]
            argv += ["--main_process_ip", str(options.main_process_ip)]
        port = options.main_process_port
        if port is None and options.num_machines > 1:
            port = DEFAULT_MAIN_PROCESS_PORT  # accelerate would join "<ip>:None"
        if port is not None:
            argv += ["--main_process_port", str(port)]
    argv += [script, "--config_file", str(config_file)]
    env = {
        "PYTHONUNBUFFERED": "1",  # else stdout lines arrive late and out of order
        "PYTHONIOENCODING": "utf-8",  # sd-scripts prints Japanese; tqdm needs UTF-8
        "COLUMNS": str(CONSOLE_COLUMNS),
        "NO_COLOR": "1",
    }
    if options.gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(options.gpu_ids)
    return LaunchSpec(argv=tuple(argv), env=env, cwd=cwd if cwd is not None else sd_scripts_dir)


def check_machines(options: LaunchOptions) -> None:
    """Several machines need this machine's rank and the main machine's address; refuse without.

    Raises:
        ConfigError: what is missing or wrong, with how to give it.
    """
    if options.num_machines == 1:
        return
    problems: list[Problem] = []
    if not options.use_accelerate:
        problems.append(
            Problem("num_machines", "several machines train only through accelerate", None)
        )
    if options.machine_rank is None:
        problems.append(
            Problem(
                "machine_rank",
                f"num_machines is {options.num_machines} but this machine's rank is not known",
                "pass --machine-rank (0 on the main machine), or launch under SLURM "
                "(srun sets SLURM_NODEID)",
            )
        )
    elif options.machine_rank >= options.num_machines:
        problems.append(
            Problem(
                "machine_rank",
                f"{options.machine_rank} is not below num_machines ({options.num_machines})",
                f"ranks are 0 to {options.num_machines - 1}",
            )
        )
    if options.main_process_ip is None:
        problems.append(
            Problem(
                "main_process_ip",
                f"num_machines is {options.num_machines} but the main machine's address is not "
                "known",
                "pass --main-process-ip (the rank-0 machine's address), or launch under SLURM "
                "(its first node of SLURM_JOB_NODELIST)",
            )
        )
    if problems:
        raise ConfigError(problems, source="multi-machine launch")
