"""`dataset create | inspect | captions` through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "datasets"))
from dsgen import image_bytes, make_subset

from kohya_orchestrator.cli.main import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return make_subset(tmp_path, "raw", [(600, 800)] * 5, captions=["a", "b", None, "c", "d"])


class TestCreate:
    def test_create_then_inspect(
        self, raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        into = tmp_path / "train"
        argv = ["dataset", "create", str(raw), "--repeats", "20", "--name", "zengxin oilpaint"]
        assert main([*argv, "--into", str(into)]) == 0
        out = capsys.readouterr().out
        assert "created 1 folder" in out and "20_zengxin oilpaint: 5 images, 4 captions" in out
        assert (into / "20_zengxin oilpaint" / "img0000.png").exists()
        assert main(["dataset", "inspect", str(into)]) == 0
        assert "20_zengxin" in capsys.readouterr().out

    def test_split_dry_run(
        self, raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        argv = ["dataset", "create", str(raw), "--repeats", "3", "--name", "x", "--into"]
        argv += [str(tmp_path / "out"), "--max-per-subset", "2", "--dry-run", "--link"]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "would create 3 folders" in out and "hard links" in out
        assert "3_x 3: 1 images" in out
        assert not (tmp_path / "out").exists()

    def test_refuses_to_overwrite(
        self, raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        argv = ["dataset", "create", str(raw), "--repeats", "3", "--name", "x"]
        argv += ["--into", str(tmp_path / "out")]
        assert main(argv) == 0
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "already exists; refusing to overwrite it" in err
        assert "Traceback" not in err

    def test_missing_source(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        argv = ["dataset", "create", str(tmp_path / "nope"), "--repeats", "3", "--name", "x"]
        assert main([*argv, "--into", str(tmp_path / "o")]) == 2
        assert "source folder does not exist" in capsys.readouterr().err


class TestInspect:
    def test_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        make_subset(tmp_path / "train", "20_style", [(600, 800)] * 16)
        make_subset(tmp_path / "reg", "1_style", [(512, 512)] * 4, captions=False)
        argv = ["dataset", "inspect", str(tmp_path / "train"), "--reg", str(tmp_path / "reg")]
        assert main([*argv, "--json", "--resolution", "512,512"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert [(s["name"], s["image_count"], s["is_reg"]) for s in data["subsets"]] == [
            ("20_style", 16, False),
            ("1_style", 4, True),
        ]
        assert data["images_with_repeats"] == 320 and data["resolution"] == [512, 512]

    def test_bad_data_exits_1_with_hints(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        folder = make_subset(tmp_path, "0_zero", [(64, 64)])
        folder = make_subset(tmp_path, "abc_name", [(64, 64)])
        folder = make_subset(tmp_path, "10_[weird] name", [(600, 600)] * 2)
        (folder / "zero.png").write_bytes(b"")
        (folder / "cut.png").write_bytes(image_bytes((600, 600))[:-40])
        (folder / "img0000.txt").write_bytes(b"\xff\xfe\x00")
        assert main(["dataset", "inspect", str(tmp_path), "--trigger", "zx"]) == 1
        captured = capsys.readouterr()
        out = captured.out
        for fragment in (
            "0-byte file",
            "PNG ends before its IEND chunk",
            "caption is not UTF-8",
            "no '<repeats>_' prefix",
            "0 repeats",
            "[weird] name",  # rich markup in names is printed, not interpreted
            "hint: rename it to '10_abc_name'",
        ):
            assert fragment in out
        assert "sd-scripts would fail on this data" in captured.err
        assert "Traceback" not in out + captured.err

    @pytest.mark.parametrize("kind", ["missing", "file"])
    def test_bad_root_exits_2(
        self, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "x"
        if kind == "file":
            path.write_text("")
        assert main(["dataset", "inspect", str(path)]) == 2
        err = capsys.readouterr().err
        assert ("does not exist" if kind == "missing" else "is a file, not a folder") in err


class TestCaptions:
    def test_dry_run_then_write(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        folder = make_subset(tmp_path, "20_zengxin oilpaint", [(8, 8)] * 2, captions=["a", "b"])
        argv = ["dataset", "captions", str(folder), "add", "zengxin", "--front"]
        assert main([*argv, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "- a" in out and "+ zengxin, a" in out and "would change 2 captions" in out
        assert (folder / "img0000.txt").read_text() == "a"
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "changed 2 captions" in out and ".caption-backups" in out
        assert (folder / "img0000.txt").read_text() == "zengxin, a"

    def test_replace_needs_new(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        folder = make_subset(tmp_path, "2_x", [(8, 8)])
        assert main(["dataset", "captions", str(folder), "replace", "a"]) == 2
        assert "replace needs the new tag" in capsys.readouterr().err


def test_no_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset"]) == 2
    assert "create" in capsys.readouterr().out


def test_verb_modules_import_only_argparse() -> None:
    """`--help` stays fast: the verb modules pull in nothing heavy at import time."""
    code = (
        "import sys; import kohya_orchestrator.cli.commands.dataset, "
        "kohya_orchestrator.cli.commands.plan; "
        "heavy = [m for m in ('pydantic', 'rich', 'PIL', 'kohya_orchestrator.datasets.plan') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
