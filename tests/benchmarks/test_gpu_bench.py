"""The pure parts of the GPU benchmark (benchmarks/gpu/): job scaling, the overrides each job
gets (and that the product accepts them), the figures read from events, the budget, the
side-by-side table, the argument handling, and prepare.py's wheel and archive helpers.

Nothing here trains or needs a GPU; the benchmark itself is proven with ``run.py --cpu-dry-run``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

GPU_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu"


def _load(name: str) -> ModuleType:
    if str(GPU_DIR) not in sys.path:
        sys.path.insert(0, str(GPU_DIR))  # run.py imports gpu_bench as its sibling
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, GPU_DIR / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


gb = _load("gpu_bench")
run = _load("run")
prepare = _load("prepare")


# --- scaling -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "batch", "available", "accum", "expected"),
    [
        (300, 2, 4, 1, (4, 150, 300)),  # oilpaint: 4 images x 150 repeats / batch 2
        (300, 1, 4, 1, (4, 75, 300)),  # GUI defaults: batch 1
        (200, 2, 4, 1, (4, 100, 200)),  # sdxl-style
        (2, 2, 4, 1, (4, 1, 2)),  # dry run
        (2, 1, 4, 1, (2, 1, 2)),  # dry run at batch 1: fewer images, not more steps
        (1, 1, 4, 1, (1, 1, 1)),
        (200, 1, 4, 2, (4, 100, 200)),  # accumulation: two batches per optimizer step
        (7, 2, 4, 1, (4, 4, 8)),  # no exact cut: just over the target
    ],
)
def test_scale_job(
    target: int, batch: int, available: int, accum: int, expected: tuple[int, int, int]
) -> None:
    scale = gb.scale_job(target, batch, available, accum)
    assert (scale.images, scale.repeats, scale.steps) == expected
    assert scale.steps >= target
    batches = -(-scale.images * scale.repeats // batch)  # what sd-scripts runs in one bucket
    assert -(-batches // accum) == scale.steps


@pytest.mark.parametrize("bad", [(0, 1, 4), (10, 0, 4), (10, 1, 0)])
def test_scale_job_refuses_zeroes(bad: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        gb.scale_job(*bad)


# --- the jobs and their overrides ----------------------------------------------------------------


def _settings(job: object) -> dict[str, object]:
    import tomllib

    return tomllib.loads(job.preset_file.read_text(encoding="utf-8"))  # type: ignore[attr-defined]


def test_jobs_are_the_two_presets_and_the_two_gui_files() -> None:
    assert [(j.key, j.family, j.arm) for j in gb.JOBS] == [
        ("sd15-oilpaint", "sd15", "product"),
        ("sd15-gui", "sd15", "gui"),
        ("sdxl-style", "sdxl", "product"),
        ("sdxl-gui", "sdxl", "gui"),
    ]
    for job in gb.JOBS:
        assert job.preset_file.is_file(), job.preset_file
        assert _settings(job)["model"]["family"] == job.family  # type: ignore[index]


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_gui_files_hold_the_kohya_ss_gui_defaults(family: str) -> None:
    s = _settings(next(j for j in gb.JOBS if j.family == family and j.arm == "gui"))
    assert s["network"] == {"algo": "lora", "network_dim": 8, "network_alpha": 1.0}
    assert s["optimizer"] == {
        "type": "AdamW8bit",
        "learning_rate": 1e-4,
        "unet_lr": 1e-4,
        "text_encoder_lr": 1e-4,
        "max_grad_norm": 1.0,
    }
    assert s["scheduler"]["lr_scheduler"] == "cosine"  # type: ignore[index]
    assert s["scheduler"]["lr_warmup_steps"] == "10%"  # type: ignore[index]
    dataset, training = s["dataset"], s["training"]
    assert dataset["batch_size"] == 1  # type: ignore[index]
    assert (training["mixed_precision"], training["gradient_checkpointing"]) == ("fp16", False)  # type: ignore[index]
    assert training["cache_latents"] is True  # type: ignore[index]


def test_settings_summary() -> None:
    lines = {j.key: gb.settings_summary(_settings(j)) for j in gb.JOBS}
    assert lines["sd15-oilpaint"] == "loha 8/4 Prodigy 1 bs2 fp16 gc"
    assert lines["sd15-gui"] == "lora 8/1 AdamW8bit 0.0001 bs1 fp16"
    assert lines["sdxl-style"] == "lora 16/8 Prodigy 1 bs2 bf16 gc unet"


def test_apply_overrides_shows_what_trains() -> None:
    oil = _settings(gb.JOBS[1])
    sets, _ = gb.job_overrides(
        oil,
        model=Path("/m"),
        tokenizer_cache=Path("/t"),
        image_dir=Path("/i/1_x"),
        output_dir=Path("/o"),
        resolution=64,
        cpu=True,
    )
    merged = gb.apply_overrides(oil, sets)
    assert gb.settings_summary(merged) == "lora 8/1 AdamW 0.0001 bs1 fp32"
    assert merged["dataset"]["subsets"] == [{"image_dir": "/i/1_x"}]
    assert merged["dataset"]["resolution"] == 64
    assert oil["training"]["mixed_precision"] == "fp16"  # type: ignore[index]  # not changed


def _overrides(
    job: object, *, cpu: bool, tmp: Path = Path("/w")
) -> tuple[dict[str, str], list[str]]:
    sets, notes = gb.job_overrides(
        _settings(job),
        model=tmp / "model",
        tokenizer_cache=tmp / "tok",
        image_dir=tmp / "img" / "150_oilpaint style",
        output_dir=tmp / "out",
        resolution=64 if cpu else 512,
        cpu=cpu,
    )
    return dict(s.split("=", 1) for s in sets), notes


def test_overrides_on_the_gpu_change_data_and_length_only() -> None:
    oil = gb.JOBS[0]
    sets, notes = _overrides(oil, cpu=False)
    assert sets == {
        "model.pretrained_model_name_or_path": '"/w/model"',
        "model.tokenizer_cache_dir": '"/w/tok"',
        "dataset.subsets": '[{image_dir="/w/img/150_oilpaint style"}]',
        "dataset.resolution": "512",
        "training.max_train_epochs": "1",
        "training.output_dir": '"/w/out"',
        "training.logging_dir": '"/w/out/logs"',  # oilpaint logs to tensorboard
    }
    assert notes == []
    gui_sets, _ = _overrides(gb.JOBS[1], cpu=False)
    assert "training.logging_dir" not in gui_sets  # the GUI default logs nothing


def test_overrides_on_the_cpu() -> None:
    sets, notes = _overrides(gb.JOBS[0], cpu=True)
    assert sets["training.mixed_precision"] == '"no"'
    assert sets["dataset.enable_bucket"] == "false"
    assert sets["training.max_data_loader_n_workers"] == "0"
    assert sets["sampling.sample_steps"] == "2"  # oilpaint samples; kept short
    assert "optimizer.type" not in sets
    gui, gui_notes = _overrides(gb.JOBS[1], cpu=True)
    assert gui["optimizer.type"] == '"AdamW"'
    assert "sampling.sample_steps" not in gui
    assert any("AdamW8bit -> AdamW" in n for n in gui_notes)
    xl, _ = _overrides(gb.JOBS[2], cpu=True)
    assert xl["training.mixed_precision"] == '"no"'  # bf16 is emulated on most CPUs: slow
    assert notes


@pytest.mark.parametrize("cpu", [False, True], ids=["gpu", "cpu"])
def test_the_product_accepts_every_job(
    tmp_path: Path, cpu: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """preset copy + validate with the overrides, as run.py does, for all four jobs."""
    from PIL import Image

    from kohya_orchestrator.cli.main import main

    images = tmp_path / "img" / "3_oilpaint style"
    images.mkdir(parents=True)
    Image.new("RGB", (64, 64), (200, 30, 30)).save(images / "a.png")
    (images / "a.txt").write_text("oilpaint style, a red square\n", encoding="utf-8")
    models = {"sd15": tmp_path / "sd15", "sdxl": tmp_path / "sdxl.safetensors"}
    models["sd15"].mkdir()
    models["sdxl"].write_bytes(b"")
    for job in gb.JOBS:
        sets, _ = gb.job_overrides(
            _settings(job),
            model=models[job.family],
            tokenizer_cache=tmp_path,
            image_dir=images,
            output_dir=tmp_path / "out" / job.key,
            resolution=64 if cpu else gb.FAMILY_RESOLUTION[job.family],
            cpu=cpu,
        )
        job_file = tmp_path / f"{job.key}.toml"
        assert main(["preset", "copy", job.preset, str(job_file), "--force"]) == 0
        argv = ["validate", str(job_file), *(a for s in sets for a in ("--set", s))]
        assert main(argv) == 0, capsys.readouterr()
        assert "job is valid" in capsys.readouterr().out


# --- figures from events ---------------------------------------------------------------------------


def _step(step: int, t: float, total: int = 10, rate: float | None = 2.0) -> dict[str, object]:
    return {"kind": "step_progress", "step": step, "total_steps": total, "t": t, "rate_it_s": rate}


def test_measure_reads_speed_first_step_and_memory() -> None:
    events = [
        (1.5, {"kind": "run_started", "t": 0.0, "run_id": "20260101-000000-x"}),
        (20.0, _step(0, 18.0, rate=None)),
        (25.0, _step(1, 23.0)),  # the end of the first step (its warm-up) opens the window
        (25.1, _step(1, 23.1)),  # the same step again (loss changed): not a new point
        (26.0, {"kind": "resource_sample", "t": 24.0, "gpu_memory_used_mb": [9000]}),
        (27.0, _step(2, 25.0)),
        (31.0, {"kind": "resource_sample", "t": 29.0, "gpu_memory_used_mb": [12000]}),
        (35.0, _step(10, 33.0, rate=4.0)),
        (36.0, {"kind": "run_finished", "t": 34.0, "status": "succeeded", "reason": None}),
    ]
    fig = gb.measure(events)
    assert fig.steps_done == 10
    assert fig.total_steps == 10
    assert fig.it_per_s == pytest.approx(9 / 10.0)  # steps 1 -> 10 in 23 s -> 33 s
    assert fig.steps_timed == 9
    assert fig.tqdm_it_per_s == 4.0
    assert fig.first_step_s == 25.0  # arrival, from the command's start
    assert fig.first_step_trainer_s == pytest.approx(23.0)
    assert fig.product_vram_mib == 12000
    assert fig.status == "succeeded"
    assert fig.run_id == "20260101-000000-x"


def test_measure_skips_the_first_tenth() -> None:
    events = [(float(t), _step(s, float(t), total=40)) for s, t in ((1, 10), (3, 12), (4, 13))]
    events.append((23.0, _step(40, 23.0, total=40)))
    fig = gb.measure(events)
    assert fig.it_per_s == pytest.approx(36 / 10.0)  # from step 4 (10 % of 40) to 40
    assert fig.steps_timed == 36


def test_measure_with_two_steps_times_step_one_to_two() -> None:
    fig = gb.measure([(5.0, _step(1, 4.0, total=2)), (9.0, _step(2, 8.0, total=2))])
    assert fig.it_per_s == pytest.approx(0.25)
    assert fig.first_step_trainer_s == pytest.approx(4.0)  # no run_started: from t = 0


def test_measure_with_one_update_uses_the_bars_rate() -> None:
    fig = gb.measure([(5.0, _step(1, 4.0, total=1, rate=0.5))])
    assert fig.it_per_s == 0.5
    assert fig.notes


def test_measure_of_a_run_that_never_stepped() -> None:
    fig = gb.measure([(1.0, {"kind": "run_finished", "status": "failed", "reason": "oom"})])
    assert (fig.steps_done, fig.it_per_s, fig.first_step_s) == (0, None, None)
    assert (fig.status, fig.reason) == ("failed", "oom")


def test_read_events_keeps_json_events_only() -> None:
    lines = [(0.1, '{"kind": "run_started", "t": 0}\n'), (0.2, "a warning\n"), (0.3, "{bad\n")]
    lines.append((0.4, '{"no_kind": 1}\n'))
    assert gb.read_events(lines) == [(0.1, {"kind": "run_started", "t": 0})]


def test_parse_smi_memory() -> None:
    assert gb.parse_smi_memory("512\n 80123 \n\nN/A\n") == [512, 80123]


def test_budget_check() -> None:
    assert gb.budget_check(100.0, 540.0, 110.0) is None
    why = gb.budget_check(450.0, 540.0, 110.0)
    assert why is not None
    assert "90 s of the 540 s budget left" in why


# --- the table ---------------------------------------------------------------------------------------


def test_format_table_puts_jobs_side_by_side() -> None:
    results = [
        {
            "title": "SD1.5 oilpaint",
            "arm": "product",
            "settings": "loha 8/4",
            "steps_done": 300,
            "planned_steps": 300,
            "it_per_s": 7.3456,
            "images_per_s": 14.69,
            "first_step_s": 21.04,
            "peak_vram_mib": 6120,
            "wall_s": 63.2,
            "status": "succeeded",
        },
        {"title": "SDXL GUI default", "arm": "gui", "planned_steps": 200, "status": "skipped"},
    ]
    table = gb.format_table(results, "on a test card")
    lines = table.splitlines()
    assert lines[0] == "on a test card"
    assert lines[1].split() == ["SD1.5", "oilpaint", "SDXL", "GUI", "default"]
    rows = {line.split("  ")[0].strip(): line for line in lines[3:]}
    assert rows["it/s"].split()[1:] == ["7.35", "-"]
    assert rows["steps"].split()[1:] == ["300/300", "0/200"]
    assert rows["first step (s)"].split()[3:] == ["21.0", "-"]
    assert rows["arm"].split()[1:] == ["product", "preset", "kohya_ss", "GUI"]
    assert rows["status"].split()[1:] == ["succeeded", "skipped"]
    assert len({len(line) for line in lines[1:3]}) == 1  # the rule lines up with the header


def test_cell() -> None:
    assert gb.cell({"steps_done": None, "planned_steps": 4}, "steps") == "0/4"
    assert gb.cell({}, "steps") == "-"
    assert gb.cell({"peak_vram_mib": 6120}, "peak_vram_mib") == "6120"
    assert gb.cell({"wall_s": 3.456}, "wall_s") == "3.5"


# --- arguments ------------------------------------------------------------------------------------


def test_gpu_defaults() -> None:
    args = run.parse_args([])
    assert not args.cpu_dry_run
    assert (args.budget_s, args.steps_sd15, args.steps_sdxl) == (540.0, 300, 200)
    assert [j.key for j in args.jobs] == [j.key for j in gb.JOBS]
    assert args.out == run.DEFAULT_WORK / "results.json"
    assert args.build_device == "cuda"


def test_dry_run_defaults_and_overrides(tmp_path: Path) -> None:
    args = run.parse_args(["--cpu-dry-run", "--work", str(tmp_path), "--steps-sdxl", "3"])
    assert (args.budget_s, args.steps_sd15, args.steps_sdxl) == (3600.0, 2, 3)
    assert args.out == tmp_path / "results.json"
    args = run.parse_args(["--jobs", "sdxl-gui", "sd15-oilpaint", "--budget-s", "100"])
    assert [j.key for j in args.jobs] == ["sd15-oilpaint", "sdxl-gui"]  # the table's order
    assert args.budget_s == 100.0


@pytest.mark.parametrize(
    "argv",
    [["--steps-sd15", "0"], ["--budget-s", "0"], ["--jobs", "sd21"], ["--build-device", "tpu"]],
)
def test_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run.parse_args(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


# --- what travels: the tokenizers, the tree archive, the wheels ------------------------------------


def test_write_tokenizers(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "vocab.json").write_text("{}")
    (src / "special_tokens_map.json").write_text(json.dumps({"pad_token": "<|endoftext|>"}))
    run.write_tokenizers(src, tmp_path / "cache")
    clip_l = tmp_path / "cache" / gb.CLIP_L
    bigg = tmp_path / "cache" / gb.CLIP_BIGG
    assert json.loads((clip_l / "special_tokens_map.json").read_text())["pad_token"] != "!"
    assert json.loads((bigg / "special_tokens_map.json").read_text())["pad_token"] == "!"
    assert (bigg / "vocab.json").is_file()


def test_tree_archive_round_trip(tmp_path: Path) -> None:
    archive = tmp_path / "sd-scripts.tar.gz"
    prepare.write_tree_archive(
        [("train_network.py", b"print()\n"), ("library/x.py", b"")], "ab" * 20, archive
    )
    with tarfile.open(archive) as tar:
        assert all(m.mtime == 0 for m in tar.getmembers())  # same bytes every time
    tree = run._extract_tree(archive, tmp_path / "work")
    assert (tree / ".snapshot-commit").read_text() == "ab" * 20 + "\n"
    assert (tree / "library" / "x.py").is_file()
    prepare.write_tree_archive([("README.md", b"")], "ab" * 20, archive)
    with pytest.raises(SystemExit, match=r"no sd-scripts/train_network\.py"):
        run._extract_tree(archive, tmp_path / "work2")


def test_wheel_names_and_duplicates() -> None:
    assert (
        prepare.wheel_distribution("huggingface_hub-0.34.3-py3-none-any.whl") == "huggingface-hub"
    )
    assert prepare.wheel_distribution("pydantic_core-2.46.4-cp312-cp312-x.whl") == "pydantic-core"
    names = ["a_b-1-py3-none-any.whl", "a.b-2-py3-none-any.whl", "c-1-py3-none-any.whl", "x.txt"]
    assert prepare.duplicate_distributions(names) == ["a-b"]


def test_pins_have_one_version_each() -> None:
    names = [
        s.split("==")[0].lower() for s in (*prepare.TRAINER_WHEELS, *prepare.ORCHESTRATOR_WHEELS)
    ]
    assert len(names) == len(set(names))
    assert all("==" in s for s in (*prepare.TRAINER_WHEELS, *prepare.ORCHESTRATOR_WHEELS))


def test_slim_wheel_keeps_cpu_and_the_chosen_cuda(tmp_path: Path) -> None:
    src = tmp_path / "bitsandbytes-0.1-py3-none-any.whl"
    members = {
        "bitsandbytes/__init__.py": b"x = 1\n",
        "bitsandbytes/libbitsandbytes_cpu.so": b"cpu",
        "bitsandbytes/libbitsandbytes_cuda118.so": b"old" * 100,
        "bitsandbytes/libbitsandbytes_cuda130.so": b"new",
        "bitsandbytes/libbitsandbytes_rocm64.so": b"amd",
        "bitsandbytes-0.1.dist-info/METADATA": b"Name: bitsandbytes\n",
        "bitsandbytes-0.1.dist-info/RECORD": b"stale\n",
    }
    with zipfile.ZipFile(src, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    dst = tmp_path / "out.whl"
    kept, dropped = prepare.slim_wheel(src, dst, ("130",))
    assert (kept, dropped) == (4, 2)
    with zipfile.ZipFile(dst) as z:
        names = set(z.namelist())
        record = z.read("bitsandbytes-0.1.dist-info/RECORD").decode()
    assert "bitsandbytes/libbitsandbytes_cuda118.so" not in names
    assert "bitsandbytes/libbitsandbytes_cuda130.so" in names
    assert "bitsandbytes/libbitsandbytes_cpu.so" in names
    lines = record.splitlines()
    assert len(lines) == 5  # four files and the RECORD itself
    assert "bitsandbytes/__init__.py,sha256=" in record
    assert lines[-1] == "bitsandbytes-0.1.dist-info/RECORD,,"


def test_vram_poller_keeps_the_peak(tmp_path: Path) -> None:
    """The 0.2 s poll, with a stand-in nvidia-smi that prints three samples and exits."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nprintf '300\\n1200\\n900\\n'\n")
    smi.chmod(0o755)
    poller = run.VramPoller(str(smi))
    for _ in range(100):
        if poller.samples == 3:
            break
        time.sleep(0.05)
    poller.stop()
    assert (poller.samples, poller.peak) == (3, 1200)
    assert run._smi_once(str(smi)) == 300
    assert run._smi_once(None) is None
    assert run.VramPoller(None).peak is None
