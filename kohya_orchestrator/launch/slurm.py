"""SLURM from the product's side: its commands (``sbatch``, ``scancel``, ``squeue``, ``scontrol``,
``sacct``), the variables it sets in a job, and its termination signal. The only place that talks
to SLURM.

SLURM ends a job (``scancel``, the time limit, preemption) by sending SIGTERM to every process of
the job, then SIGKILL ``KillWait`` seconds later (30 by default): :func:`on_terminate` lets an array
task record that it was stopped in that window. A task killed outright (SIGKILL, a node lost)
records nothing: :func:`task_end` asks SLURM how it ended.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from ..errors import ConfigError, OrchestratorError, Problem
from ..render.command import LaunchOptions

__all__ = [
    "ENDED_STATES",
    "SlurmError",
    "SlurmNodes",
    "SlurmTaskState",
    "first_host",
    "machine_options",
    "on_terminate",
    "parse_sacct",
    "parse_scontrol_job",
    "sbatch",
    "scancel",
    "slurm_nodes",
    "squeue_states",
    "task_end",
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


#: SLURM's job states that are an end (``squeue``/``scontrol``/``sacct`` spelling); any other
#: (PENDING, RUNNING, COMPLETING, REQUEUED, SUSPENDED, ...) is not over yet.
ENDED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)


@dataclass(frozen=True)
class SlurmTaskState:
    """What SLURM says of one job or array task."""

    state: str
    """``CANCELLED``, ``RUNNING``, ... (the first word, without ``+``: sacct writes
    ``CANCELLED by 0``)."""
    reason: str | None = None
    """scontrol's ``Reason=`` (for an ended task it may be stale, e.g. ``JobArrayTaskLimit``)."""
    exit_code: str | None = None
    """``<exit status>:<signal>``, e.g. ``0:9`` (killed by SIGKILL), ``3:0``."""
    start: float | None = None
    """When it started (seconds since the epoch); None when not known."""
    end: float | None = None
    """When it ended; None while it runs."""

    @property
    def ended(self) -> bool:
        """Whether this is an end (not pending, running or completing)."""
        return self.state in ENDED_STATES

    @property
    def signal_name(self) -> str | None:
        """The signal that ended the task's script (``SIGKILL`` for ``0:9``); None if none."""
        number = (self.exit_code or "").partition(":")[2]
        if not number.isdigit() or int(number) == 0:
            return None
        try:
            return signal.Signals(int(number)).name
        except ValueError:
            return f"signal {number}"


def _state_word(text: str) -> str:
    return text.split()[0].rstrip("+").upper() if text.split() else ""


def _slurm_time(text: str | None) -> float | None:
    # SLURM prints the controller's local time: 2026-12-07T13:06:48; Unknown, None or empty else
    if not text:
        return None
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


_FIELD = re.compile(r"(?:^|\s)(JobState|Reason|ExitCode|StartTime|EndTime)=(\S*)")


def parse_scontrol_job(text: str) -> SlurmTaskState | None:
    """The state in ``scontrol show job -o <id>``'s answer; None when it names no job.

    Reads the first ``JobState=``, ``Reason=``, ``ExitCode=``, ``StartTime=`` and ``EndTime=``
    (``-o`` puts one job on one line of ``key=value`` fields; the later free-text fields, such as
    ``Command=``, cannot shadow them).
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if "JobState=" not in line:
            continue
        for key, value in _FIELD.findall(line):
            fields.setdefault(key, value)
        break
    state = _state_word(fields.get("JobState", ""))
    if not state:
        return None
    reason = fields.get("Reason")
    exit_code = fields.get("ExitCode")
    return SlurmTaskState(
        state,
        reason=None if reason in (None, "", "None") else reason,
        exit_code=exit_code or None,
        start=_slurm_time(fields.get("StartTime")),
        end=_slurm_time(fields.get("EndTime")),
    )


def parse_sacct(text: str) -> SlurmTaskState | None:
    """The state in ``sacct -n -P -X -o State,ExitCode,Start,End``'s answer (``|``-separated);
    None when it lists nothing."""
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not _state_word(parts[0]):
            continue
        return SlurmTaskState(
            _state_word(parts[0]),
            exit_code=parts[1].strip() or None,
            start=_slurm_time(parts[2]) if len(parts) > 2 else None,
            end=_slurm_time(parts[3]) if len(parts) > 3 else None,
        )
    return None


def task_end(slurm_id: str) -> SlurmTaskState | None:
    """How SLURM says a job or array task (``123_4``) stands; None when nothing here knows.

    Asks ``scontrol show job -o`` first (the controller keeps an ended job ``MinJobAge`` seconds,
    300 by default, accounting or not), then ``sacct`` (only where accounting is on). A SLURM
    that cannot be asked (no commands here, the controller down) is None too: never a guess.
    """
    with contextlib.suppress(SlurmError, ConfigError):
        found = parse_scontrol_job(_run([_command("scontrol"), "show", "job", "-o", slurm_id]))
        if found is not None:
            return found
    sacct = ["-n", "-P", "-X", "-j", slurm_id, "-o", "State,ExitCode,Start,End"]
    with contextlib.suppress(SlurmError, ConfigError):
        return parse_sacct(_run([_command("sacct"), *sacct]))
    return None


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
