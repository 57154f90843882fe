"""`runs list/show/pictures/compare` through main() on run directories built from real captures.

``interrupted_run`` is the real g_sigint_accelerate_group capture (SIGINT at 25% of the steps,
nothing saved) parsed into events.jsonl, as the orchestrator would have left it; ``prodigy_run``
(conftest) is the real e_prodigy run.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.events import RunFinished, RunStatus, dump_events_jsonl, parse_log
from kohya_orchestrator.outputs.collect import CONTACT_SHEET_PNG, LOSS_CURVE_PNG, run_outputs

from .conftest import build_prodigy_run

RUN_ID = "20261124-100000-g_sigint"


@pytest.fixture
def interrupted_run(captures_dir: Path, tmp_path: Path) -> Path:
    capture = captures_dir / "sd-scripts-logs" / "g_sigint_accelerate_group"
    events = list(parse_log((capture / "combined").read_bytes().decode("utf-8")))
    events.append(
        RunFinished(
            seq=0,
            status=RunStatus.CANCELED,
            returncode=-2,
            duration_s=12.0,
            reason="canceled by the user",
        )
    )
    events = [e.model_copy(update={"seq": i}) for i, e in enumerate(events)]
    run = tmp_path / "runs" / RUN_ID
    run.mkdir(parents=True)
    job = {"name": "g", "training": {"output_dir": str(tmp_path / "out"), "output_name": "g"}}
    (run / "job.json").write_text(json.dumps(job))
    (run / "events.jsonl").write_text(dump_events_jsonl(events))
    (run / "status").write_text("canceled\n")
    (run / "rc").write_text("-2\n")
    return run


def test_list_empty_and_json(
    interrupted_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "none"
    assert main(["runs", "list", "--runs", str(empty)]) == 0
    assert capsys.readouterr().out.strip() == f"no runs in {empty}"
    assert main(["runs", "list", "--runs", str(interrupted_run.parent), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["run_id"] == RUN_ID
    assert (listed["status"], listed["returncode"]) == ("canceled", -2)


def test_show_latest_without_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "show", "latest", "--runs", str(tmp_path / "none")]) == 2
    assert f"no runs in {tmp_path / 'none'}" in capsys.readouterr().err


def test_show_an_interrupted_run(
    interrupted_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    rc = main(["runs", "show", "latest", "--runs", str(interrupted_run.parent), "--sheet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "status: canceled  rc: -2  duration: 12 s" in out
    assert "reason: canceled by the user" in out
    assert "plan: 8 images x repeats, 4 batches/epoch, 2 epochs, 8 steps" in out
    assert "last step: 2/8  epoch 1  avr_loss 1.14" in out
    # epoch 1 has a loss but no checkpoint: the checkpoint and size columns stay empty
    row = next(line for line in out.splitlines() if line.split()[:3] == ["1", "2", "1.1400"])
    assert row.split() == ["1", "2", "1.1400", "0"]
    assert "no sample images in this run: no contact sheet" in out
    assert out.count("error (interrupted): KeyboardInterrupt") == 2
    assert out.count("hint: The trainer was interrupted (SIGINT)") == 1  # issue 17 item 16
    assert not list(interrupted_run.glob("*.png"))


def test_show_a_crash_without_a_remedy(
    captures_dir: Path, interrupted_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = captures_dir / "sd-scripts-logs" / "f_badargs_lora"
    events = list(parse_log((capture / "combined").read_bytes().decode("utf-8")))
    events = [e.model_copy(update={"seq": i}) for i, e in enumerate(events)]
    (interrupted_run / "events.jsonl").write_text(dump_events_jsonl(events))
    assert main(["runs", "show", str(interrupted_run)]) == 0
    out = capsys.readouterr().out
    assert "error (exception): ValueError: invalid literal for int()" in out
    assert "hint:" not in out
    assert "reason:" not in out  # no run_finished event: no reason


def test_show_a_gone_checkpoint_and_a_note(
    prodigy_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    (tmp_path / "out" / "e_prodigy" / "e_prodigy-000001.safetensors").unlink()
    job = json.loads((prodigy_run / "job.json").read_text())
    job["training"]["logging_dir"] = str(tmp_path / "no-tensorboard")  # nothing logged there
    (prodigy_run / "job.json").write_text(json.dumps(job))
    assert main(["runs", "show", str(prodigy_run)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "e_prodigy-000001.safetensors" in line)
    assert "(gone)" in row and "MiB" not in row and "KiB" not in row
    assert "note:" in out
    assert "loss (console avr_loss)" in out


def test_pictures_json_lists_what_was_written(
    prodigy_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "pictures", str(prodigy_run), "--json", "--sheet"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert [Path(p).name for p in written] == ["contact_sheet.png"]
    assert Path(written[0]).is_file()


def test_show_a_run_whose_job_names_no_output_folder(
    interrupted_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (interrupted_run / "job.json").write_text(json.dumps({"name": "g"}))
    assert main(["runs", "show", str(interrupted_run)]) == 0
    out = capsys.readouterr().out
    assert "status: canceled" in out and "outputs:" not in out


class TestRunsCli:
    def test_show_lists_outputs_and_writes_pictures(
        self, prodigy_run: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["runs", "show", str(prodigy_run), "--sheet", "--loss-curve"]) == 0
        out = capsys.readouterr().out
        assert "e_prodigy-000001.safetensors" in out and "e_prodigy.safetensors" in out
        assert "lowest loss is not the best epoch" in out
        assert (prodigy_run / CONTACT_SHEET_PNG).is_file()
        assert (prodigy_run / LOSS_CURVE_PNG).is_file()

    def test_show_json(self, prodigy_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["runs", "show", str(prodigy_run), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["status"] == "succeeded" and len(info["checkpoints"]) == 2
        outputs = info["outputs"]
        assert [c["epoch"] for c in outputs["checkpoints"]] == [1, 2]
        assert [s["epoch"] for s in outputs["samples"]] == [1, 2]
        assert info["pictures"] == []
        assert not (prodigy_run / CONTACT_SHEET_PNG).exists()

    def test_pictures(self, prodigy_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
        runs = str(prodigy_run.parent)
        assert main(["runs", "pictures", "latest", "--runs", runs]) == 0
        assert "contact_sheet.png" in capsys.readouterr().out
        assert (prodigy_run / CONTACT_SHEET_PNG).is_file()
        (prodigy_run / CONTACT_SHEET_PNG).unlink()
        assert main(["runs", "pictures", prodigy_run.name, "--runs", runs, "--loss-curve"]) == 0
        assert not (prodigy_run / CONTACT_SHEET_PNG).exists()

    def test_compare(
        self, prodigy_run: Path, loras: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ia3 = str(loras / "d_ia3_custompreset.safetensors")
        assert main(["runs", "compare", str(prodigy_run), ia3]) == 0
        out = capsys.readouterr().out
        for fragment in ("e_prodigy", "d_ia3_custompreset", "Prodigy", "ia3", "4/1", "0.005"):
            assert fragment in out, fragment
        assert main(["runs", "compare", str(prodigy_run), ia3, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["rows"]
        assert [r["algo"] for r in rows] == ["lora", "ia3"]

    def test_usage_errors(self, prodigy_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["runs", "compare"]) == 2
        assert main(["runs", "show", str(prodigy_run), str(prodigy_run)]) == 2
        assert "runs compare" in capsys.readouterr().err

    def test_pictures_without_samples(
        self, captures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run = build_prodigy_run(captures_dir, tmp_path, tensorboard=False)
        out_dir = run_outputs(run).output_dir
        assert out_dir is not None
        shutil.rmtree(out_dir / "sample")
        events = [
            line
            for line in (run / "events.jsonl").read_text().splitlines()
            if '"sample_image_saved"' not in line
        ]
        (run / "events.jsonl").write_text("\n".join(events) + "\n")
        assert main(["runs", "pictures", str(run)]) == 0
        assert "no contact sheet" in capsys.readouterr().out
        assert not (run / CONTACT_SHEET_PNG).exists() and (run / LOSS_CURVE_PNG).is_file()


def test_a_run_whose_orchestrator_died_is_listed_as_interrupted(
    interrupted_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 item 15: status still 'running', its lock free, its orchestrator's pid gone."""
    monkeypatch.setenv("COLUMNS", "250")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (interrupted_run / "status").write_text("running\n")
    (interrupted_run / "rc").unlink()
    (interrupted_run / "orchestrator.lock").write_bytes(b"")
    record = {"pid": gone.pid, "started": time.time() - 60, "host": socket.gethostname()}
    (interrupted_run / "orchestrator.json").write_text(json.dumps(record))
    reason = f"its orchestrator (pid {gone.pid}) is gone: it was killed or crashed while the run was open"
    runs = str(interrupted_run.parent)

    assert main(["runs", "list", "--runs", runs]) == 0
    out = capsys.readouterr().out
    assert "interrupted" in next(line for line in out.splitlines() if RUN_ID in line)
    assert f"{RUN_ID}: interrupted: {reason}" in out
    assert main(["runs", "show", "latest", "--runs", runs, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["status"], shown["reason"]) == ("interrupted", reason)
    assert shown["outputs"]["status"] == "interrupted"
    assert run_outputs(interrupted_run).status == "interrupted"
    assert (interrupted_run / "status").read_text() == "running\n"  # readers only read
