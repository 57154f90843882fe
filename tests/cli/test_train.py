"""`train JOB.toml` through ``main([...])``: exit codes, printed lines, run directory, Ctrl-C.

``--sd-scripts`` points at a folder holding the stand-in trainer
(tests/fixtures/fake_sd_scripts/train_network.py, which replays real sd-scripts captures from
tests/fixtures/sd-scripts/sd-scripts-logs) and an empty ``library/``. accelerate is not installed
here, so a stand-in ``accelerate.commands.launch`` module on PYTHONPATH starts the script in a child
process, like accelerate's one-process launcher. Both test process control, exit codes and what the
CLI prints; they are never proof that training works.
"""

from __future__ import annotations

import errno
import json
import shutil
import sys
import time
from pathlib import Path

import psutil
import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.events import ChildError, EventAdapter
from kohya_orchestrator.run import Run, read_events

FAKE = Path(__file__).resolve().parents[1] / "fixtures" / "fake_sd_scripts"
OOM_LINE = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total "
    "capacity of 7.79 GiB of which 3.31 MiB is free."
)
# Stand-in for `python -m accelerate.commands.launch` (tests only): drops accelerate's own options
# and runs the script in a child process, as accelerate's simple launcher does for one process.
LAUNCH_SHIM = """\
import subprocess, sys
args = sys.argv[1:]
first = next(i for i, a in enumerate(args) if a.endswith(".py"))
with open(__file__ + ".argv", "w", encoding="utf-8") as f:
    f.write("\\n".join(args[:first]))
raise SystemExit(subprocess.call([sys.executable, *args[first:]]))
"""


@pytest.fixture
def sd_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder the install discovery accepts, with the stand-in trainer as train_network.py."""
    sd = tmp_path / "sd-scripts"
    (sd / "library").mkdir(parents=True)
    shutil.copy(FAKE / "train_network.py", sd / "train_network.py")
    launch = tmp_path / "shim" / "accelerate" / "commands"
    launch.mkdir(parents=True)
    (launch.parent / "__init__.py").write_text("")
    (launch / "__init__.py").write_text("")
    (launch / "launch.py").write_text(LAUNCH_SHIM)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "shim"))
    monkeypatch.setenv("KOHYA_PYTHON", sys.executable)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("KOHYA_SD_SCRIPTS", raising=False)
    return sd


# accelerate's simple launcher really raises CalledProcessError when the trainer fails, so its
# traceback ends the log after the trainer's own error (this shim does the same with check_call).
CHECKED_LAUNCH_SHIM = LAUNCH_SHIM.replace("subprocess.call(", "subprocess.check_call(")


def _launcher_argv(tmp_path: Path) -> list[str]:
    """The accelerate options the stand-in launcher received."""
    path = tmp_path / "shim" / "accelerate" / "commands" / "launch.py.argv"
    return path.read_text(encoding="utf-8").splitlines()


def _job_file(tmp_path: Path, name: str = "placeholder", extra: str = "") -> Path:
    img = tmp_path / "img" / "2_oilpaint style"
    img.mkdir(parents=True, exist_ok=True)
    model = tmp_path / "sd15.safetensors"
    model.write_bytes(b"")
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"[model]\npretrained_model_name_or_path = {json.dumps(str(model))}\n"
        f"[[dataset.subsets]]\nimage_dir = {json.dumps(str(img))}\n"
        f"[training]\nmax_train_epochs = 2\noutput_dir = {json.dumps(str(tmp_path / 'out'))}\n"
        f"output_name = {json.dumps(name)}\n{extra}",
        encoding="utf-8",
    )
    return path


def _replay(
    monkeypatch: pytest.MonkeyPatch, chunks: Path, args: str = "", out: Path | None = None
) -> None:
    monkeypatch.setenv("FAKE_SD_SCRIPTS_REPLAY", str(chunks))
    monkeypatch.setenv("FAKE_SD_SCRIPTS_ARGS", f"--speed 0 {args}")
    if out is not None:
        monkeypatch.setenv("FAKE_SD_SCRIPTS_OUTPUT_DIR", str(out))


def _capture(captures_dir: Path, scenario: str) -> Path:
    return captures_dir / "sd-scripts-logs" / scenario / "chunks.jsonl"


def _oom_capture(captures_dir: Path, tmp_path: Path) -> Path:
    """The real f_badargs_lora capture with its exception line replaced by a CUDA OOM line (there
    is no real out-of-memory capture)."""
    rows = []
    for line in _capture(captures_dir, "f_badargs_lora").read_text("utf-8").splitlines():
        row = json.loads(line)
        if row["text"].startswith("ValueError: invalid literal"):
            row["text"] = OOM_LINE
        rows.append(json.dumps(row))
    assert any(OOM_LINE in r for r in rows)
    path = tmp_path / "oom.chunks.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _train(sd: Path, tmp_path: Path, job: Path, *more: str) -> int:
    return main(
        ["train", str(job), "--sd-scripts", str(sd), "--runs", str(tmp_path / "runs"), *more]
    )


def _run_dir(tmp_path: Path) -> Path:
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def _gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def test_success_exit_0_with_outputs_and_next_step(
    sd_scripts: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    _replay(monkeypatch, _capture(captures_dir, "a_lora_accelerate"), out=out)
    job = _job_file(
        tmp_path,
        extra='[sampling]\nsample_every_n_epochs = 1\n[[sampling.prompts]]\nprompt = "a boat"\n',
    )
    rc = _train(
        sd_scripts, tmp_path, job, "--no-probe", "--set", 'training.output_name="a_lora_accelerate"'
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    run_dir = _run_dir(tmp_path)
    lines = captured.out.splitlines()
    assert "plan: 8 images x repeats, 4 batches/epoch, 2 epochs, 8 steps" in lines
    assert (
        f"✓ trained {out / 'a_lora_accelerate-000001.safetensors'}, "
        f"{out / 'a_lora_accelerate.safetensors'}"
    ) in lines
    assert (
        f"  hint: run directory: {run_dir}   next: python -m kohya_orchestrator runs show {run_dir}"
    ) in lines
    assert (run_dir / "status").read_text().strip() == "succeeded"
    assert "a boat --w 512 --h 512" in (run_dir / "sample_prompts.txt").read_text().splitlines()
    assert not (run_dir / "environment.json").exists()  # --no-probe
    command = json.loads((run_dir / "command.json").read_text(encoding="utf-8"))
    assert command["argv"][1:3] == ["-m", "accelerate.commands.launch"]
    assert "CUDA_VISIBLE_DEVICES" not in command["env"]
    launcher = _launcher_argv(tmp_path)
    assert launcher[launcher.index("--num_processes") + 1] == "1"
    assert "--multi_gpu" not in launcher


def test_jsonl_prints_the_recorded_events(
    sd_scripts: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _replay(monkeypatch, _capture(captures_dir, "a_lora_accelerate"), out=tmp_path / "out")
    assert _train(sd_scripts, tmp_path, _job_file(tmp_path, "a_lora_accelerate"), "--jsonl") == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    # stdout carries only events (pipe it to jq); the result and hint lines go to stderr.
    printed = [EventAdapter.validate_json(line) for line in lines]
    assert "✓ trained " in captured.err and "hint: run directory: " in captured.err
    run_dir = _run_dir(tmp_path)
    assert printed == read_events(run_dir)
    assert printed[0].kind == "run_started" and printed[-1].kind == "run_finished"
    assert "plan:" not in "\n".join(lines)  # no progress display with --jsonl
    # Without --no-probe the install's Python was probed and recorded.
    assert json.loads((run_dir / "environment.json").read_text())["python"] == sys.executable


def test_crash_exit_1_with_remedy_and_log_hint(
    sd_scripts: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _replay(monkeypatch, _capture(captures_dir, "b_loha"), args="--exit-code 1")
    job = _job_file(tmp_path, "b_loha", extra='[network]\nalgo = "loha"\n')
    rc = _train(sd_scripts, tmp_path, job, "--no-probe", "--gpus", "0, 1", "--cpu-threads", "3")
    err = capsys.readouterr().err
    run_dir = _run_dir(tmp_path)
    assert rc == 1
    assert "⨯ training failed: " in err and "Traceback" not in err
    assert "  hint: LyCORIS 4.x's default preset wraps some modules twice." in err
    assert f"  hint: full log: {run_dir / 'console.log'}" in err
    assert "less memory" not in err
    assert (run_dir / "status").read_text().strip() == "failed"
    assert (run_dir / "rc").read_text().strip() == "1"
    command = json.loads((run_dir / "command.json").read_text(encoding="utf-8"))
    assert command["env"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    launcher = _launcher_argv(tmp_path)
    assert launcher[launcher.index("--num_processes") + 1] == "2"
    assert launcher[launcher.index("--num_cpu_threads_per_process") + 1] == "3"
    assert "--multi_gpu" in launcher


def test_crash_without_a_known_remedy_prints_only_the_log_hint(
    sd_scripts: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _replay(monkeypatch, _capture(captures_dir, "f_badargs_lora"), args="--exit-code 1")
    rc = _train(sd_scripts, tmp_path, _job_file(tmp_path, "badargs"), "--no-probe")
    err_lines = capsys.readouterr().err.splitlines()
    assert rc == 1
    failed = [line for line in err_lines if line.startswith("⨯ training failed: ")]
    assert failed == [
        "⨯ training failed: ValueError: invalid literal for int() with base 10: 'notanumber'"
    ]
    hints = [line for line in err_lines if line.startswith("  hint: ")]
    assert hints == [f"  hint: full log: {_run_dir(tmp_path) / 'console.log'}"]


def test_out_of_memory_lists_this_jobs_memory_switches(
    sd_scripts: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _replay(monkeypatch, _oom_capture(captures_dir, tmp_path), args="--exit-code 1")
    rc = _train(sd_scripts, tmp_path, _job_file(tmp_path, "oom"), "--no-probe")
    err = capsys.readouterr().err
    assert rc == 1
    assert "  hint: The GPU ran out of memory." in err
    assert "  hint: this job could use less memory with:\n" in err
    expected = [
        "gradient checkpointing (slower, much less memory): "
        "--set training.gradient_checkpointing=true",
        '8-bit AdamW (bitsandbytes): --set optimizer.type="AdamW8bit"',
    ]
    for remedy in expected:
        assert f"    - {remedy}\n" in err
    assert (_run_dir(tmp_path) / "remedies.txt").read_text().splitlines() == expected


def test_out_of_memory_with_every_switch_on_suggests_nothing_more(
    sd_scripts: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _replay(monkeypatch, _oom_capture(captures_dir, tmp_path), args="--exit-code 1")
    job = _job_file(
        tmp_path,
        "light",
        extra='gradient_checkpointing = true\n[optimizer]\ntype = "AdamW8bit"\n',
    )
    rc = _train(sd_scripts, tmp_path, job, "--no-probe")
    err = capsys.readouterr().err
    assert rc == 1
    assert "  hint: The GPU ran out of memory." in err
    assert "less memory with" not in err
    assert not (_run_dir(tmp_path) / "remedies.txt").exists()


def test_ia3_job_gets_its_shipped_preset_file_in_the_run_directory(
    sd_scripts: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _replay(monkeypatch, _capture(captures_dir, "d_ia3_ly34"), args="--exit-code 1")
    job = _job_file(tmp_path, "ia3", extra='[network]\nalgo = "ia3"\n')
    assert _train(sd_scripts, tmp_path, job, "--no-probe") == 1
    assert "This LyCORIS (3.x) lost the 'ia3' algorithm." in capsys.readouterr().err
    run_dir = _run_dir(tmp_path)
    assert (run_dir / "lycoris-ia3-sd15.toml").is_file()
    assert "lycoris-ia3-sd15.toml" in (run_dir / "config.toml").read_text(encoding="utf-8")


def test_ctrl_c_cancels_the_whole_tree_and_exits_130(
    sd_scripts: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """KeyboardInterrupt is raised once in Run.wait, once launcher, trainer and its child run."""
    _replay(
        monkeypatch,
        _capture(captures_dir, "a_lora_accelerate"),
        args="--stop-after 30 --hang --spawn-grandchild --max-lifetime 60",
    )
    original_wait = Run.wait
    seen: dict[str, list[int]] = {}

    def interrupted_once(self: Run, timeout: float | None = None):  # type: ignore[no-untyped-def]
        if "pids" not in seen:
            deadline = time.monotonic() + 20
            while len(self.pids) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            seen["pids"] = self.pids
            raise KeyboardInterrupt
        return original_wait(self, 30)

    monkeypatch.setattr(Run, "wait", interrupted_once)
    rc = _train(sd_scripts, tmp_path, _job_file(tmp_path, "cancel"), "--no-probe")
    err = capsys.readouterr().err
    run_dir = _run_dir(tmp_path)
    assert rc == 130
    assert len(seen["pids"]) == 3 and _gone(seen["pids"])
    assert "⨯ interrupted: stopping the trainer" in err
    assert f"  hint: run directory: {run_dir}" in err
    assert (run_dir / "status").read_text().strip() == "canceled"
    assert read_events(run_dir)[-1].status.value == "canceled"  # type: ignore[union-attr]


def test_missing_install_exit_2_with_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    rc = main(["train", str(_job_file(tmp_path)), "--sd-scripts", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "⨯ No usable kohya-ss sd-scripts install found. Tried:" in err
    assert f"argument {tmp_path / 'nowhere'}: does not exist" in err
    assert "  hint: pass --sd-scripts PATH" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_python_that_cannot_run_exit_1(
    sd_scripts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = tmp_path / "python"
    broken.write_text("not a program")
    monkeypatch.setenv("KOHYA_PYTHON", str(broken))
    rc = _train(sd_scripts, tmp_path, _job_file(tmp_path), "--no-probe")
    err = capsys.readouterr().err
    assert rc == 1
    assert f"⨯ could not start '{broken}'" in err and "Traceback" not in err
    assert (_run_dir(tmp_path) / "status").read_text().strip() == "failed"


def test_invalid_job_exit_2_before_anything_runs(
    sd_scripts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = _train(
        sd_scripts, tmp_path, _job_file(tmp_path), "--set", "network.network_dim=0", "--no-probe"
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "network.network_dim" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("where", ["runs", "runs/inner"])
def test_runs_that_is_a_file_is_a_clear_error(
    sd_scripts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    (tmp_path / "runs").write_text("not a folder")
    job = _job_file(tmp_path)
    rc = main(["train", str(job), "--sd-scripts", str(sd_scripts), "--runs", str(tmp_path / where)])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"--runs: {tmp_path / 'runs'} is a file, not a folder" in err
    assert "unexpected" not in err and (tmp_path / "runs").read_text() == "not a folder"


def test_headline_is_the_classified_cause_not_the_launchers_error(
    sd_scripts: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 17 item 16: an OOM (derived capture, see _oom_capture) under a launcher that ends the
    log with its CalledProcessError: the headline and the first hint are the OOM's."""
    (tmp_path / "shim" / "accelerate" / "commands" / "launch.py").write_text(CHECKED_LAUNCH_SHIM)
    _replay(monkeypatch, _oom_capture(captures_dir, tmp_path), args="--exit-code 1")
    rc = _train(sd_scripts, tmp_path, _job_file(tmp_path, "oom"), "--no-probe", "--jsonl")
    err_lines = capsys.readouterr().err.splitlines()
    run_dir = _run_dir(tmp_path)
    categories = [e.category for e in read_events(run_dir) if isinstance(e, ChildError)]
    assert rc == 1
    assert categories == ["oom", "launcher_failed"]  # the launcher's error came last
    failed = [line for line in err_lines if line.startswith("⨯ training failed: ")]
    assert failed == [f"⨯ training failed: {OOM_LINE}"]
    hints = [line for line in err_lines if line.startswith("  hint: ")]
    assert hints[0].startswith("  hint: The GPU ran out of memory.")
    assert not any("accelerate launch only reports" in line for line in hints)
    finished = read_events(run_dir)[-1]
    assert finished.reason == OOM_LINE  # type: ignore[union-attr]


def test_watchdog_stop_prints_the_interrupt_hint_once(
    sd_scripts: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 17 item 16: the stall watchdog's SIGINT ends launcher and trainer with a
    KeyboardInterrupt each; the summary names the stall and gives the hint about it once."""
    _replay(
        monkeypatch,
        _capture(captures_dir, "a_lora_accelerate"),
        args="--stop-after 30 --hang --max-lifetime 60",
    )
    job = _job_file(tmp_path, "stall")
    rc = _train(sd_scripts, tmp_path, job, "--no-probe", "--jsonl", "--stall-minutes", "0.02")
    err = capsys.readouterr().err
    run_dir = _run_dir(tmp_path)
    interrupts = [
        e for e in read_events(run_dir) if isinstance(e, ChildError) and e.category == "interrupted"
    ]
    assert rc == 1
    assert len(interrupts) == 2  # the launcher's and the trainer's KeyboardInterrupt
    assert "⨯ training failed: no output for 0.02 minutes (stalled)" in err
    assert err.count("The trainer was interrupted (SIGINT).") == 1


@pytest.mark.parametrize("when", ["before-the-run-directory", "after-the-launch"])
def test_disk_full_exits_1_with_the_reason(
    sd_scripts: Path,
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    when: str,
) -> None:
    """Issue 17 item 12 through the CLI (write failures monkeypatched; tests/test_faults.py has
    the tmpfs drills): never "an unexpected error", never a run left pending or running."""
    from kohya_orchestrator.launch.rundir import RunDir

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    _replay(
        monkeypatch,
        _capture(captures_dir, "a_lora_accelerate"),
        args="--stop-after 30 --hang --max-lifetime 60",
    )
    target = "reserve_space" if when == "before-the-run-directory" else "note_trainer"
    monkeypatch.setattr(RunDir, target, full)
    rc = _train(sd_scripts, tmp_path, _job_file(tmp_path, "full"), "--no-probe")
    err = capsys.readouterr().err
    assert rc == 1
    assert "unexpected" not in err and "Traceback" not in err
    if when == "before-the-run-directory":
        assert f"⨯ no space left on {tmp_path / 'runs'}: the trainer was not started" in err
        assert list((tmp_path / "runs").iterdir()) == []
        return
    run_dir = _run_dir(tmp_path)
    assert f"⨯ training failed: no space left on {run_dir}" in err
    assert "  hint: free space there (or pass --runs DIR on another disk) and train again" in err
    assert (run_dir / "status").read_text().strip() == "failed"
