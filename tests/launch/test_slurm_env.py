"""What the product reads of SLURM (hostlists, node rank) and its SIGTERM handling."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.launch.slurm import (
    SlurmError,
    first_host,
    machine_options,
    on_terminate,
    sbatch,
    scancel,
    slurm_nodes,
    squeue_states,
)
from kohya_orchestrator.render.command import LaunchOptions

ENV = {"SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]"}


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [
        ("vm", "vm"),
        ("gpu[07-09,12],cpu1", "gpu07"),
        ("a1,b[2-3]", "a1"),
        ("rack[2-3]-node[001-004]", "rack2-node001"),
        ("n[5,1-3]", "n5"),
    ],
)
def test_first_host_of_a_hostlist(nodelist: str, first: str) -> None:
    assert first_host(nodelist) == first


def test_nodes_from_slurms_variables() -> None:
    nodes = slurm_nodes(ENV)
    assert nodes is not None
    assert (nodes.num_nodes, nodes.node_rank, nodes.first_node) == (2, 1, "gpu07")
    assert (
        slurm_nodes({"SLURM_NNODES": "2", "SLURM_NODEID": "0", "SLURM_NODELIST": "x"}) is not None
    )
    assert slurm_nodes({}) is None
    assert slurm_nodes({**ENV, "SLURM_NODEID": "one"}) is None


def test_machine_options_fill_only_what_is_missing() -> None:
    filled = machine_options(LaunchOptions(num_machines=2), ENV)
    assert (filled.machine_rank, filled.main_process_ip) == (1, "gpu07")
    given = LaunchOptions(num_machines=2, machine_rank=0, main_process_ip="10.0.0.1")
    assert machine_options(given, ENV) == given
    assert machine_options(LaunchOptions(num_machines=2), {}) == LaunchOptions(num_machines=2)
    assert machine_options(LaunchOptions(), ENV) == LaunchOptions()  # one machine: untouched


def test_sigterm_is_caught_while_inside_and_restored_after() -> None:
    called: list[int] = []
    before = signal.getsignal(signal.SIGTERM)
    with on_terminate(lambda: called.append(1)) as got:
        os.kill(os.getpid(), signal.SIGTERM)
        assert got.wait(5)
        os.kill(os.getpid(), signal.SIGTERM)  # a second one changes nothing
    assert called == [1]
    assert signal.getsignal(signal.SIGTERM) == before


def _stub(folder: Path, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def test_sbatch_squeue_scancel_through_stand_ins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stand-in commands (shell stubs on PATH) answering as SLURM 22.05's do; the real ones run
    in tests/queue/test_slurm_cluster.py."""
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "sbatch", 'echo "$@" > "$0.args"; echo "4242;kotest"')
    _stub(bin_dir, "squeue", "printf '4242_0 RUNNING\\n4242_1 PENDING\\nnoise\\n'")
    _stub(bin_dir, "scancel", 'echo "$@" > "$0.args"')
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert sbatch(tmp_path / "x.sbatch", extra=["--hold"]) == "4242"
    assert (bin_dir / "sbatch.args").read_text().split() == [
        "--parsable",
        "--hold",
        str(tmp_path / "x.sbatch"),
    ]
    assert squeue_states("4242") == {"4242_0": "RUNNING", "4242_1": "PENDING"}
    scancel(["4242_0", "4242_1"])
    assert (bin_dir / "scancel.args").read_text().split() == ["4242_0", "4242_1"]


def test_slurm_refusals_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "sbatch", 'echo "sbatch: error: Invalid partition name specified" >&2; exit 1')
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    with pytest.raises(SlurmError, match="sbatch failed: sbatch: error: Invalid partition"):
        sbatch(tmp_path / "x.sbatch")
    _stub(bin_dir, "sbatch", "echo Submitted batch job")
    with pytest.raises(SlurmError, match="not a job id"):
        sbatch(tmp_path / "x.sbatch")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(ConfigError) as info:
        scancel(["1"])
    assert info.value.problems[0].path == "scancel"
    scancel([])  # nothing to cancel: SLURM is not asked
