"""Several machines (accelerate): rendered with this machine's rank and the main address, or
refused with what is missing. The values come from the caller (launch/slurm.py reads SLURM's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_runs import fake_job

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.render.command import LaunchOptions, build_launch_spec


def _argv(tmp_path: Path, options: LaunchOptions) -> list[str]:
    spec = build_launch_spec(
        fake_job(tmp_path, "m"),
        python=Path("/venv/bin/python"),
        sd_scripts_dir=Path("/sd"),
        config_file=Path("/run/config.toml"),
        options=options,
    )
    return list(spec.argv)


def test_two_machines_with_rank_and_address(tmp_path: Path) -> None:
    argv = _argv(
        tmp_path,
        LaunchOptions(num_processes=4, num_machines=2, machine_rank=1, main_process_ip="gpu07"),
    )
    assert argv[argv.index("--num_processes") + 1] == "8"  # accelerate counts every machine's
    assert argv[argv.index("--num_machines") + 1] == "2"
    tail = argv[argv.index("no") + 1 :]
    assert tail == [
        "--multi_gpu",
        "--machine_rank",
        "1",
        "--main_process_ip",
        "gpu07",
        "--main_process_port",
        "29500",
        "/sd/train_network.py",
        "--config_file",
        "/run/config.toml",
    ]


def test_one_gpu_per_machine_still_uses_the_distributed_launcher(tmp_path: Path) -> None:
    argv = _argv(
        tmp_path,
        LaunchOptions(
            num_machines=3, machine_rank=0, main_process_ip="10.0.0.5", main_process_port=6000
        ),
    )
    assert argv[argv.index("--num_processes") + 1] == "3"
    assert "--multi_gpu" in argv
    assert argv[argv.index("--main_process_port") + 1] == "6000"


def test_several_machines_without_rank_or_address_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _argv(tmp_path, LaunchOptions(num_machines=2))
    problems = info.value.problems
    assert [p.path for p in problems] == ["machine_rank", "main_process_ip"]
    assert "SLURM_NODEID" in (problems[0].hint or "")
    assert "SLURM_JOB_NODELIST" in (problems[1].hint or "")


def test_a_rank_out_of_range_and_no_accelerate_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _argv(
            tmp_path,
            LaunchOptions(
                num_machines=2, machine_rank=2, main_process_ip="h", use_accelerate=False
            ),
        )
    assert [p.path for p in info.value.problems] == ["num_machines", "machine_rank"]
    assert "ranks are 0 to 1" in (info.value.problems[1].hint or "")
