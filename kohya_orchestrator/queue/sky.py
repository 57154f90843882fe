"""Cloud GPUs through SkyPilot: a job as a SkyPilot task, and its events back into a run directory.

:func:`build_sky_task` is pure: a validated job (paths absolute) in, a SkyPilot task as plain data
out (what ``sky.Task.from_yaml_config`` / a ``task.yaml`` take):

- **file_mounts** carry every local path the job reads (dataset folders, the base model file or
  folder, weights to resume from) to ``<remote>/inputs/<n>/<name>``;
- **setup** installs the product on the remote in its own venv, then the kohya environment with
  the product's own ``install`` (the pinned sd-scripts commit, the CUDA torch for the remote's
  driver, lycoris-lora); it is idempotent, so a reused cluster skips it;
- **run** writes the job with paths relative to ``<remote>`` (``inputs/...``, ``output``) and
  runs ``python -m kohya_orchestrator train <remote>/job.toml --jsonl``: its stdout is one typed
  event per line.

:func:`receive_events` reads those lines as SkyPilot streams them back (``sky launch`` /
``sky jobs logs``) and writes a local run directory shaped like a local ``train``'s (``job.json``,
``config.toml``, ``dataset.toml``, ``command.json``, ``console.log``, ``events.jsonl``, ``status``,
``rc``), feeding the same sinks (the live display); a restart (SkyPilot relaunching a preempted
managed job) is noted and counted. The calls into SkyPilot are in ``launch/sky.py``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from .._version import __version__
from ..errors import ConfigError, Problem
from ..events import Event, EventAdapter, LogLine, RunFinished, RunStarted, RunStatus
from ..jobs.loading import dump_job_toml, job_to_dict, validate_job
from ..launch.rundir import RunDir, slugify
from ..models import TrainingJob
from ..render.files import CONFIG_NAME, DATASET_NAME, PROMPTS_NAME, render_into
from ..sinks import EventSink

__all__ = [
    "DEFAULT_REMOTE_ROOT",
    "PERSIST",
    "RESTART_NOTE",
    "Received",
    "SkyTask",
    "build_sky_task",
    "receive_events",
    "start_local_run",
    "task_yaml",
]

DEFAULT_REMOTE_ROOT = "~/kohya-job"
_OUTPUTS = {("training", "output_dir"): "output", ("training", "logging_dir"): "logs"}
_ACCEL = re.compile(r"^[A-Za-z0-9_-]+(:\d+)?$")
_BUCKET = re.compile(r"^(s3|gs|r2|https|cos|oci|nebius)://[^\s/]+(/[^\s]*)?$")
PERSIST = "persist"
"""With a bucket, the folder under the remote root that is the bucket: output, logs and runs."""


class SkyTask(dict[str, Any]):
    """A SkyPilot task as plain data, plus the remote job it runs (``remote_job``) and where its
    outputs are when it ends (``output_source``: a path on the cluster, or the bucket's URL)."""

    remote_job: TrainingJob
    output_source: str


def _shell_path(path: str) -> str:
    """A remote path for the shell: ``~/x`` -> ``"$HOME/x"`` (quoted), others quoted."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _remap(
    value: Any, key: tuple[str, ...], root: str, mounts: dict[str, Any], outputs: str
) -> Any:  # walk the job's data; every absolute local path becomes a mounted relative one
    if isinstance(value, dict):
        return {k: _remap(v, (*key, k), root, mounts, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [_remap(v, (*key, str(i)), root, mounts, outputs) for i, v in enumerate(value)]
    if not isinstance(value, str) or not value.startswith("/") or "\n" in value:
        return value
    if key[-2:] in _OUTPUTS:
        return outputs + _OUTPUTS[key[-2:]]  # type: ignore[index]
    for remote, local in mounts.items():  # the same local path twice: one mount
        if local == value:
            return remote[len(root) + 1 :]
    # the name stays as it is: kohya reads repeats and class tokens from a folder's name
    rel = f"inputs/{len(mounts)}/{PurePosixPath(value).name or 'root'}"
    mounts[f"{root}/{rel}"] = value
    return rel


def build_sky_task(
    job: TrainingJob,
    *,
    gpus: str | None = "A100:1",
    remote_root: str = DEFAULT_REMOTE_ROOT,
    product: str | None = None,
    sd_scripts_ref: str | None = None,
    torch: str = "auto",
    python: str = "python3",
    cloud: str | None = None,
    use_spot: bool = False,
    name: str | None = None,
    envs: Mapping[str, str] | None = None,
    bucket: str | None = None,
) -> SkyTask:
    """The SkyPilot task that trains ``job`` on a cloud GPU. Pure.

    Args:
        job: A validated job whose local paths are absolute (``run.absolute_job``).
        gpus: SkyPilot ``accelerators`` (``A100:1``, ``H100:8``, ``L4``); None: no GPU (CPU).
        remote_root: Where the job lives on the remote (``~/...`` or absolute).
        product: What ``pip install`` installs the product from on the remote: a requirement
            (default ``kohya-orchestrator==<this version>``) or the absolute path of a local
            wheel or source folder, which is mounted.
        sd_scripts_ref: The sd-scripts commit ``install`` checks out (default: the one the
            remote's product is tested against; the CLI passes this version's).
        torch: ``install --torch`` (``auto``: the CUDA build the remote's driver runs).
        python: The remote interpreter that creates the product's venv.
        cloud: SkyPilot ``cloud`` (``runpod``, ``lambda``, ``aws``...); None: SkyPilot picks.
        use_spot: Spot instances (with ``sky jobs launch``, SkyPilot restarts after preemption).
        name: The task (and default cluster) name (default ``kohya-<job name>``).
        envs: Extra environment for setup and run (e.g. ``HF_TOKEN`` for gated models).
        bucket: A bucket URL (``s3://name/prefix``, ``gs://``, ``r2://``...) mounted at
            ``<remote>/persist``: the output folder, logs and runs live there, so they outlive
            the instance (a managed spot job's is gone when it ends or is preempted), and the
            run is ``train --resume-latest``: after a preemption SkyPilot runs it again on a new
            instance and it resumes from the newest saved state.

    Raises:
        ConfigError: a ``gpus`` SkyPilot would not read, a relative remote root, or a bucket
            that is not a bucket URL.
    """
    problems: list[Problem] = []
    if gpus is not None and not _ACCEL.match(gpus):
        problems.append(Problem("--gpus", f"not a SkyPilot accelerator: {gpus!r}", "e.g. A100:1"))
    if not (remote_root.startswith("~/") or remote_root.startswith("/")):
        problems.append(Problem("remote_root", f"not absolute: {remote_root!r}", "e.g. ~/kohya"))
    if bucket is not None and not _BUCKET.match(bucket):
        problems.append(
            Problem("--bucket", f"not a bucket URL: {bucket!r}", "e.g. s3://my-bucket/kohya")
        )
    if problems:
        raise ConfigError(problems, source="SkyPilot task")
    root = remote_root.rstrip("/")
    mounts: dict[str, Any] = {}
    keep = f"{PERSIST}/" if bucket else ""
    data = _remap(job_to_dict(job), (), root, mounts, keep)
    remote_job = validate_job(data, source="remote job")
    job_toml = dump_job_toml(
        remote_job, header=[f"remote copy of {job.display_name}: paths relative to {root}"]
    )
    delimiter = "KOHYA_JOB_TOML_END"
    while delimiter in job_toml:  # pragma: no cover - a job would have to spell it
        delimiter += "_"
    venv = f"{root}/.venv"
    install_dir = "~/kohya-sd-scripts"  # what setup's install makes (and registers)
    spec = product or f"kohya-orchestrator=={__version__}"
    if spec.startswith("/"):  # a local wheel or source folder: mounted, installed from there
        remote_product = f"{root}/product/{PurePosixPath(spec).name}"
        mounts[remote_product] = spec
        spec = remote_product
    setup = "\n".join(
        [
            "set -euo pipefail",
            f"[ -x {_shell_path(venv)}/bin/python ] || {python} -m venv {_shell_path(venv)}",
            f"{_shell_path(venv)}/bin/python -m pip install -q "
            + (_shell_path(spec) if spec.startswith(("~/", "/")) else shlex.quote(spec)),
            f"{_shell_path(venv)}/bin/python -m kohya_orchestrator install "
            f"{_shell_path(install_dir)} --torch {shlex.quote(torch)}"
            + (f" --ref {shlex.quote(sd_scripts_ref)}" if sd_scripts_ref else ""),
        ]
    )
    train = [
        f"{_shell_path(venv)}/bin/python",
        "-m",
        "kohya_orchestrator",
        "train",
        f"{_shell_path(root)}/job.toml",
        "--runs",
        f"{_shell_path(root)}/{keep}runs",
        "--jsonl",
    ]
    if bucket:  # run again after a preemption: go on from the newest saved state
        train.append("--resume-latest")
        mounts[f"{root}/{PERSIST}"] = {"source": bucket.rstrip("/"), "mode": "MOUNT"}
    count = int(gpus.split(":")[1]) if gpus and ":" in gpus else 1
    if gpus and count > 1:
        train += ["--gpus", ",".join(str(i) for i in range(count))]
    run = "\n".join(
        [
            "set -euo pipefail",
            f"mkdir -p {_shell_path(root)}",
            f"cat > {_shell_path(root)}/job.toml <<'{delimiter}'",
            job_toml.rstrip("\n"),
            delimiter,
            f"cd {_shell_path(root)}",
            f"export KOHYA_SD_SCRIPTS={_shell_path(install_dir)}",
            # stdout: one event per line (what comes back); the human lines go to stderr
            "exec " + " ".join(train),
        ]
    )
    resources: dict[str, Any] = {}
    if gpus:
        resources["accelerators"] = gpus
    if cloud:
        resources["cloud"] = cloud
    if use_spot:
        resources["use_spot"] = True
    task = SkyTask(
        {
            "name": name or f"kohya-{slugify(job.display_name)}",
            "resources": resources,
            "envs": dict(envs or {}),
            "file_mounts": dict(sorted(mounts.items(), key=lambda item: item[0])),
            "setup": setup,
            "run": run,
        }
    )
    task.remote_job = remote_job
    task.output_source = f"{bucket.rstrip('/')}/output" if bucket else f"{root}/output"
    return task


def start_local_run(job: TrainingJob, task: SkyTask, runs: Path) -> RunDir:
    """A new local run directory for a SkyPilot run of ``job``, with the files a local ``train``
    writes before its trainer starts (the configs are the remote job's, as the remote renders
    them; ``command.json`` holds the task)."""
    run_dir = RunDir.create(runs, job.display_name)
    run_dir.write_text("job.json", job.model_dump_json(indent=2) + "\n")
    files = render_into(task.remote_job, run_dir.path)
    run_dir.write_text(CONFIG_NAME, files.config_toml)
    run_dir.write_text(DATASET_NAME, files.dataset_toml)
    if files.sample_prompts is not None:
        run_dir.write_text(PROMPTS_NAME, files.sample_prompts)
    run_dir.write_json(
        "command.json",
        {"sky_task": dict(task), "argv": ["sky", "launch"], "kohya_orchestrator": __version__},
    )
    run_dir.set_status("starting")
    return run_dir


class Received(NamedTuple):
    """How a streamed remote run ended: its final event, and the restarts seen on the way."""

    finished: RunFinished
    restarts: int


RESTART_NOTE = (
    "the remote run stopped before its end ({how}) and SkyPilot started it again on a new "
    "instance (restart {n})"
)


def receive_events(
    lines: Iterable[str],
    run_dir: RunDir,
    sinks: Sequence[EventSink] = (),
    *,
    missing_final: Callable[[], tuple[RunStatus, str] | None] | None = None,
) -> Received:
    """Write the streamed output of a remote ``train --jsonl`` into ``run_dir``.

    Every line goes to ``console.log`` as received; each event line (the remote's stdout) goes
    to ``events.jsonl`` and to ``sinks``; the remote's ``run_finished`` sets ``status`` and
    ``rc``. A managed job that SkyPilot restarted (after a spot preemption) streams a second
    ``run_started``: a warning ``log_line`` says so, the restart's events follow with their
    ``seq`` and ``t`` carried on (``events.jsonl`` stays in order), and ``restarts.json`` in the
    run directory records each restart. Returns the last final event (or one saying the stream
    ended without it: status failed, or what ``missing_final`` says, e.g. canceled) and the
    number of restarts.
    """
    finished: RunFinished | None = None
    last_seq, last_t = -1, 0.0
    seq_offset, t_offset = 0, 0.0
    started = False  # a run_started was seen and its run_finished not yet
    restarts: list[dict[str, Any]] = []

    def emit(event: Event) -> None:
        nonlocal last_seq, last_t
        run_dir.append_event_line(EventAdapter.dump_json(event).decode("utf-8"))
        last_seq, last_t = event.seq, event.t
        for sink in sinks:
            sink.handle(event)

    run_dir.set_status("running")
    with run_dir.console_log.open("a", encoding="utf-8") as console:
        for raw in lines:
            console.write(raw if raw.endswith("\n") else raw + "\n")
            text = raw.strip()
            if not text.startswith("{"):
                continue
            try:
                event = EventAdapter.validate_json(text)
            except ValueError:
                continue  # a line that only looks like JSON
            if isinstance(event, RunStarted) and last_seq >= 0:
                how = (
                    "preempted, or its instance lost"
                    if started
                    else (f"it {finished.status.value}" if finished is not None else "unknown")
                )
                restarts.append({"after_seq": last_seq, "t": last_t, "how": how})
                note = RESTART_NOTE.format(how=how, n=len(restarts))
                emit(
                    LogLine(
                        seq=last_seq + 1, t=last_t, text=note, level="WARNING", source="SkyPilot"
                    )
                )
                seq_offset, t_offset = last_seq + 1, last_t
                run_dir.write_json("restarts.json", restarts)
                finished = None
            if seq_offset or t_offset:
                event = event.model_copy(
                    update={"seq": event.seq + seq_offset, "t": event.t + t_offset}
                )
            started = started or isinstance(event, RunStarted)
            emit(event)
            if isinstance(event, RunFinished):
                finished, started = event, False
    if finished is None:
        status, reason = (missing_final() if missing_final is not None else None) or (
            RunStatus.FAILED,
            "the remote run's output ended before its final event (see console.log)",
        )
        finished = RunFinished(
            seq=last_seq + 1,
            t=last_t,
            status=status,
            returncode=None,
            duration_s=last_t,
            reason=reason,
        )
        emit(finished)
    for sink in sinks:
        sink.close()
    run_dir.set_status(finished.status.value, finished.returncode)
    return Received(finished, len(restarts))


def task_yaml(task: SkyTask) -> str:
    """The task as YAML-compatible JSON text (JSON is YAML): ``sky launch task.yaml`` reads it."""
    return json.dumps(dict(task), indent=2) + "\n"
