"""SLURM from the product's side: its commands (``sbatch``, ``scancel``, ``squeue``), the
variables it sets in a job, and its termination signal. The only place that talks to SLURM.

SLURM ends a job (``scancel``, the time limit, preemption) by sending SIGTERM to every process of
the job, then SIGKILL ``KillWait`` seconds later (30 by default): :func:`on_terminate` lets an array
task record that it was stopped in that window.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from ..errors import ConfigError, OrchestratorError, Problem
from ..render.command import LaunchOptions

__all__ = [
    "SlurmError",
    "SlurmNodes",
    "first_host",
    "machine_options",
    "on_terminate",
    "sbatch",
    "scancel",
    "slurm_nodes",
    "squeue_states",
]

_TIMEOUT_S = 60.0


class SlurmError(OrchestratorError):
    """A SLURM command failed (its message says which, and what SLURM answered)."""


@dataclass(frozen=True)
class SlurmNodes:
    """Where this process stands in a SLURM allocation of several nodes."""

    num_nodes: int
    node_rank: int
    first_node: str


_GROUP = re.compile(r"\[([^\]]*)\]")


def first_host(nodelist: str) -> str:
    """The first host of a SLURM hostlist: ``gpu[07-09,12],cpu1`` -> ``gpu07``."""
    depth = 0
    end = len(nodelist)
    for i, ch in enumerate(nodelist):  # the first top-level item
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            end = i
            break
    item = nodelist[:end].strip()

    def first(match: re.Match[str]) -> str:
        return match.group(1).split(",")[0].split("-")[0]

    return _GROUP.sub(first, item)


def slurm_nodes(environ: Mapping[str, str] | None = None) -> SlurmNodes | None:
    """This node's rank and the first node, from SLURM's variables; None outside a SLURM job.

    Reads ``SLURM_JOB_NUM_NODES`` (or ``SLURM_NNODES``), ``SLURM_NODEID`` and
    ``SLURM_JOB_NODELIST`` (or ``SLURM_NODELIST``).
    """
    env = os.environ if environ is None else environ
    count = env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES")
    rank = env.get("SLURM_NODEID")
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not (count and rank and nodelist) or not (count.isdigit() and rank.isdigit()):
        return None
    return SlurmNodes(int(count), int(rank), first_host(nodelist))


def machine_options(
    options: LaunchOptions, environ: Mapping[str, str] | None = None
) -> LaunchOptions:
    """``options`` with what several machines need filled from SLURM when not given.

    With ``num_machines > 1``: ``machine_rank`` from ``SLURM_NODEID`` and ``main_process_ip``
    from the first node of ``SLURM_JOB_NODELIST`` (run one ``train`` per node, e.g. with
    ``srun --ntasks-per-node=1``). Outside SLURM, or with one machine, ``options`` unchanged;
    :func:`~kohya_orchestrator.render.command.build_launch_spec` refuses what is still missing.
    """
    if options.num_machines == 1:
        return options
    nodes = slurm_nodes(environ)
    if nodes is None:
        return options
    updates: dict[str, object] = {}
    if options.machine_rank is None:
        updates["machine_rank"] = nodes.node_rank
    if options.main_process_ip is None:
        updates["main_process_ip"] = nodes.first_node
    return options.model_copy(update=updates)


def _command(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            [
                Problem(
                    name,
                    "not found on PATH: this machine is not a SLURM login node",
                    "run it where sbatch works, or export the script and submit it there "
                    "(queue export-slurm, then sbatch FILE)",
                )
            ],
            source="SLURM",
        )
    return found


def _run(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(f"{argv[0]} did not answer in {_TIMEOUT_S:.0f} s") from exc
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
        raise SlurmError(f"{Path(argv[0]).name} failed: {said}")
    return proc.stdout


def sbatch(script: Path, *, extra: Sequence[str] = ()) -> str:
    """Submit ``script``; returns the SLURM job id (of the array).

    Raises:
        ConfigError: no ``sbatch`` here.
        SlurmError: SLURM refused the script.
    """
    out = _run([_command("sbatch"), "--parsable", *extra, str(script)]).strip()
    job_id = out.split(";")[0].strip()  # "<id>" or "<id>;<cluster>"
    if not job_id.isdigit():
        raise SlurmError(f"sbatch answered {out!r}, not a job id")
    return job_id


def scancel(ids: Sequence[str]) -> None:
    """Cancel SLURM jobs or array tasks (``123``, ``123_4``); SLURM signals their processes."""
    if ids:
        _run([_command("scancel"), *ids])


def squeue_states(job_id: str) -> dict[str, str]:
    """``{"<array job>_<task>": state}`` of the tasks SLURM still knows (pending, running, ...)."""
    out = _run([_command("squeue"), "-h", "-r", "-j", job_id, "-o", "%i %T"])
    states: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


@contextlib.contextmanager
def on_terminate(callback: Callable[[], None]) -> Iterator[threading.Event]:
    """While inside, SIGTERM calls ``callback`` (once) instead of ending the process.

    Yields:
        An event set when SIGTERM arrived.
    """
    got = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if not got.is_set():
            got.set()
            callback()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield got
    finally:
        signal.signal(signal.SIGTERM, previous)
