"""launch/rundir.py: run folders are never reused, writes are atomic, crashed runs still list."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.launch.rundir import (
    RunDir,
    RunSummary,
    list_runs,
    redact_env,
    slugify,
)
from kohya_orchestrator.render.command import LaunchSpec

NOW = datetime(2026, 2, 16, 8, 7, 29)


class TestCreate:
    def test_name_is_timestamp_and_slug(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path / "runs", "My Oil-Paint Style!", now=NOW)
        assert run.path == tmp_path / "runs" / "20260216-080729-my-oil-paint-style"
        assert run.path.is_dir()
        assert run.run_id == "20260216-080729-my-oil-paint-style"
        assert list(run.path.iterdir()) == []

    def test_same_second_never_collides(self, tmp_path: Path) -> None:
        names = [RunDir.create(tmp_path, "job", now=NOW).run_id for _ in range(3)]
        assert names == ["20260216-080729-job", "20260216-080729-job-2", "20260216-080729-job-3"]

    def test_concurrent_creates_get_distinct_folders(self, tmp_path: Path) -> None:
        made: list[Path] = []
        lock = threading.Lock()
        barrier = threading.Barrier(8)

        def create() -> None:
            barrier.wait()
            run = RunDir.create(tmp_path, "job", now=NOW)
            with lock:
                made.append(run.path)

        threads = [threading.Thread(target=create) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(made)) == 8

    @pytest.mark.parametrize(
        ("name", "slug"),
        [
            ("oilpaint", "oilpaint"),
            ("My Style v2", "my-style-v2"),
            ("  ../../etc/passwd ", "etc-passwd"),
            ("café_ñ", "cafe_n"),
            ("日本語", "run"),
            ("", "run"),
            ("a" * 80, "a" * 60),
        ],
    )
    def test_slugify(self, name: str, slug: str) -> None:
        assert slugify(name) == slug


class TestOpen:
    def test_open_existing(self, tmp_path: Path) -> None:
        created = RunDir.create(tmp_path, "job", now=NOW)
        assert RunDir.open(created.path).path == created.path

    def test_open_missing_is_a_config_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="not a run directory"):
            RunDir.open(tmp_path / "nope")


class TestWrites:
    def test_write_text_bytes_json(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        run.write_text("config.toml", "a = 1\n")
        run.write_bytes("sample_prompts.txt", b"oil painting --w 64\n")
        run.write_json("command.json", {"argv": ["python", "train_network.py"], "env": {}})
        spec = LaunchSpec(argv=("python", "x.py"), env={"A": "1"}, cwd=tmp_path)
        run.write_json("environment.json", spec)
        assert (run.path / "config.toml").read_text() == "a = 1\n"
        assert (run.path / "sample_prompts.txt").read_bytes() == b"oil painting --w 64\n"
        assert json.loads((run.path / "command.json").read_text())["argv"][1] == "train_network.py"
        assert json.loads((run.path / "environment.json").read_text())["env"] == {"A": "1"}
        assert (run.path / "command.json").read_text().endswith("}\n")
        assert sorted(p.name for p in run.path.iterdir()) == [
            "command.json",
            "config.toml",
            "environment.json",
            "sample_prompts.txt",
        ]

    def test_overwrite_replaces_whole_file(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        run.write_text("config.toml", "long content\n" * 100)
        run.write_text("config.toml", "short\n")
        assert (run.path / "config.toml").read_text() == "short\n"

    def test_failed_write_keeps_old_file_and_leaves_no_temp(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        run.write_text("config.toml", "old\n")
        (run.path / "taken").mkdir()  # the rename onto a folder fails for real
        with pytest.raises(IsADirectoryError):
            run.write_text("taken", "new\n")
        assert (run.path / "config.toml").read_text() == "old\n"
        assert sorted(p.name for p in run.path.iterdir()) == ["config.toml", "taken"]

    @pytest.mark.parametrize("name", ["", "..", "a/b", "..\\x"])
    def test_rejects_paths(self, tmp_path: Path, name: str) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        with pytest.raises(ValueError, match="plain file name"):
            run.write_text(name, "x")

    def test_append_event_lines(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        run.append_event_line('{"kind": "a"}')
        run.append_event_line('{"kind": "b"}\n')
        assert run.events_jsonl.read_text() == '{"kind": "a"}\n{"kind": "b"}\n'
        with pytest.raises(ValueError, match="newline"):
            run.append_event_line("{}\n{}")

    def test_status_and_rc(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        assert run.read_status() is None
        assert run.read_returncode() is None
        run.set_status("running")
        assert (run.path / "status").read_text() == "running\n"
        assert not (run.path / "rc").exists()
        run.set_status("failed", returncode=-2)
        assert run.read_status() == "failed"
        assert run.read_returncode() == -2
        assert (run.path / "rc").read_text() == "-2\n"
        with pytest.raises(ValueError, match="bad status"):
            run.set_status("two\nlines")

    def test_fspath(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        assert os.fspath(run) == str(run.path)
        assert repr(run) == f"RunDir({str(run.path)!r})"


class TestListRuns:
    def test_missing_root(self, tmp_path: Path) -> None:
        assert list_runs(tmp_path / "none") == []

    def test_finished_and_crashed_runs(self, tmp_path: Path) -> None:
        done = RunDir.create(tmp_path, "first", now=NOW)
        done.write_json("job.json", {"training": {"output_name": "oil_v1"}})
        done.console_log.write_bytes(b"...")
        done.set_status("succeeded", 0)
        # The orchestrator died half-way: only job.json and a partial console.log exist.
        crashed = RunDir.create(tmp_path, "second", now=datetime(2026, 2, 17, 9, 0, 0))
        crashed.write_json("job.json", {"name": "oil_v2"})
        crashed.console_log.write_bytes(b"steps:  12%|\xe2\x96\x88")
        # Damaged files are tolerated too.
        broken = RunDir.create(tmp_path, "third", now=datetime(2026, 2, 18, 9, 0, 0))
        (broken.path / "job.json").write_text("{not json")
        (broken.path / "rc").write_text("n/a")
        (tmp_path / "notes").mkdir()  # not a run
        (tmp_path / ".hidden").mkdir()
        (tmp_path / "README.txt").write_text("x")

        runs = list_runs(tmp_path)

        assert runs == [
            RunSummary(
                path=done.path,
                run_id="20260216-080729-first",
                job_name="oil_v1",
                status="succeeded",
                returncode=0,
                started_at=NOW,
                has_console_log=True,
            ),
            RunSummary(
                path=crashed.path,
                run_id="20260217-090000-second",
                job_name="oil_v2",
                status=None,
                returncode=None,
                started_at=datetime(2026, 2, 17, 9, 0, 0),
                has_console_log=True,
            ),
            RunSummary(
                path=broken.path,
                run_id="20260218-090000-third",
                job_name="third",
                started_at=datetime(2026, 2, 18, 9, 0, 0),
            ),
        ]

    def test_foreign_folder_with_status_is_listed(self, tmp_path: Path) -> None:
        (tmp_path / "manual").mkdir()
        (tmp_path / "manual" / "status").write_text("canceled\n")
        [summary] = list_runs(tmp_path)
        assert summary.status == "canceled"
        assert summary.started_at is None
        assert summary.job_name is None


class TestRedactEnv:
    def test_masks_secrets_keeps_the_rest(self) -> None:
        env = {
            "HF_TOKEN": "hf_abc",
            "HUGGING_FACE_HUB_TOKEN": "x",
            "WANDB_API_KEY": "y",
            "AWS_SECRET_ACCESS_KEY": "z",
            "DB_PASSWORD": "p",
            "github_token": "t",
            "PATH": "/usr/bin",
            "CUDA_VISIBLE_DEVICES": "0",
            "MY_NOTE": "hf_" + "A" * 30,
        }
        assert redact_env(env) == {
            "HF_TOKEN": "***",
            "HUGGING_FACE_HUB_TOKEN": "***",
            "WANDB_API_KEY": "***",
            "AWS_SECRET_ACCESS_KEY": "***",
            "DB_PASSWORD": "***",
            "github_token": "***",
            "PATH": "/usr/bin",
            "CUDA_VISIBLE_DEVICES": "0",
            "MY_NOTE": "***",
        }
