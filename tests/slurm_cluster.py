"""A real one-node SLURM cluster on this machine, for the ``slurm`` tests.

Debian's ``slurm-wlm`` and ``munge`` (``apt-get install -y slurm-wlm munge``; ``.ci/run`` installs
them when it can). Everything lives in a temporary folder: a fresh munge key and socket, a
generated ``slurm.conf`` with this host as controller and only node (free ports, all its CPUs,
its memory less 2 GiB), slurmctld's state, slurmd's spool and the logs. munged, slurmctld and
slurmd run in the foreground as children of the test process and are stopped (SIGTERM, then
SIGKILL) when the fixture ends. The client commands (``sbatch``, ``squeue``, ``scancel``) find
the cluster through ``SLURM_CONF``, which the fixture sets.

The daemons run as root (``SlurmUser=root``), hence the tests skip when not root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["SlurmCluster", "on_cluster", "one_node_slurm", "skip_reason", "slurm"]

_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")


def skip_reason() -> str | None:
    """Why a one-node cluster cannot start here, or None."""
    missing = [b for b in _BINARIES if shutil.which(b) is None]
    if missing:
        return (
            f"SLURM is not installed here ({', '.join(missing)} missing): "
            "apt-get install -y slurm-wlm munge"
        )
    if os.geteuid() != 0:
        return "the one-node SLURM cluster runs its daemons as root; not root here"
    return None


@dataclass
class SlurmCluster:
    """A running one-node cluster."""

    root: Path
    conf: Path
    node: str
    cpus: int
    memory_mb: int

    def env(self) -> dict[str, str]:
        """Variables the SLURM client commands need."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str) -> str:
        """A client command's output (raises on failure)."""
        env = {**os.environ, **self.env()}
        return subprocess.run(
            list(argv), env=env, capture_output=True, text=True, check=True, timeout=60
        ).stdout

    def states(self) -> dict[str, str]:
        """``{"<job>_<task>": state}`` of what squeue still lists."""
        out = self.run("squeue", "-h", "-r", "-o", "%i %T")
        return dict(line.split() for line in out.splitlines() if line.strip())

    def logs(self) -> str:
        """The daemons' logs (for a failing test's message)."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.root / "log" / name
            if path.is_file():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return max(1024, int(line.split()[1]) // 1024 - 2048)
    return 4096  # pragma: no cover - Linux has /proc/meminfo


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


@contextlib.contextmanager
def one_node_slurm(root: Path) -> Iterator[SlurmCluster]:
    """Start munged, slurmctld and slurmd in ``root``; stop them (and every job) afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(exist_ok=True)
    os.chmod(root / "munge", 0o755)  # munged wants the socket folder reachable by all
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = root / "munge" / "munge.sock"
    node = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    memory = _memory_mb()
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=kotest",
                f"SlurmctldHost={node}(127.0.0.1)",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={sock}",
                f"StateSaveLocation={root / 'state'}",
                f"SlurmdSpoolDir={root / 'spool'}",
                f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                f"SlurmdPidFile={root / 'slurmd.pid'}",
                f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
                # the process tree (not cgroups, which a container may not delegate)
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "JobCompType=jobcomp/none",
                "MpiDefault=none",
                "SchedulerType=sched/builtin",  # starts a job at once, no backfill cycle
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_CPU_Memory",
                "ReturnToService=2",
                "KillWait=30",
                "MinJobAge=300",
                f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN",
                "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs: list[subprocess.Popen[bytes]] = []
    cluster = SlurmCluster(root, conf, node, cpus, memory)
    try:
        procs.append(
            subprocess.Popen(
                [
                    "munged",
                    "--foreground",
                    "--force",
                    f"--key-file={key}",
                    f"--socket={sock}",
                    f"--pid-file={root / 'munge' / 'munged.pid'}",
                    f"--log-file={root / 'log' / 'munged.log'}",
                    f"--seed-file={root / 'munge' / 'seed'}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait(lambda: sock.exists(), 15, "munged did not create its socket", cluster)
        for daemon in (["slurmctld", "-D", "-i"], ["slurmd", "-D", "-N", node]):
            procs.append(
                subprocess.Popen(
                    [*daemon, "-f", str(conf)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

        def idle() -> bool:
            try:
                return "idle" in cluster.run("sinfo", "-h", "-o", "%T")
            except subprocess.CalledProcessError:
                return False

        _wait(idle, 60, "the node did not come up idle", cluster)
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.run("scancel", "--full", "--user", "root")
            deadline = time.monotonic() + 40
            while cluster.states() and time.monotonic() < deadline:
                time.sleep(1)
        for proc in reversed(procs):
            _stop(proc)


def _wait(check: object, timeout_s: float, what: str, cluster: SlurmCluster) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what} within {timeout_s:.0f} s\n{cluster.logs()}")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A one-node cluster for the tests of a module (import this fixture there); skips with the
    reason when it cannot start here."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with one_node_slurm(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


@pytest.fixture
def on_cluster(slurm: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The cluster, with ``SLURM_CONF`` set for the product's sbatch/squeue/scancel."""
    for key, value in slurm.env().items():
        monkeypatch.setenv(key, value)
    return slurm
