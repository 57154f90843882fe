"""The GPU benchmark, one command on a CUDA machine with no internet:

    python3 benchmarks/gpu/run.py [--out results.json] [--budget-s 540]
    python3 benchmarks/gpu/run.py --cpu-dry-run          # every stage on this CPU, tiny

It installs what ``prepare.py`` gathered in ``benchmarks/gpu/carry/`` (wheels into a folder on
PYTHONPATH, the sd-scripts source tree, the offline CLIP tokenizer), finds the GPU (nvidia-smi,
and torch in a child process: this script and the product never import torch), builds random-
weight SD1.5 and SDXL models with the lab's builders (tests/lab/make_random_sd15.py,
make_random_sdxl.py), makes a small synthetic dataset, and trains four jobs through the product
(``python -m kohya_orchestrator train``): the ``oilpaint`` and ``sdxl-style`` presets and the
same data with the kohya_ss GUI's default LoRA settings (kohya_ss_gui_sd15.toml /
kohya_ss_gui_sdxl.toml beside this file), each cut to a few hundred steps. It prints it/s,
images/s, time to first step and peak VRAM side by side and writes them as JSON.

Peak VRAM is nvidia-smi's used memory of GPU 0, polled every 0.2 s while the job runs, less the
figure just before it (the job's CUDA context, the caching allocator's reserve and the tensors;
not ``torch.cuda.max_memory_allocated``, which would need code inside the trainer).

The whole command keeps to ``--budget-s`` (default 540 s, setup included): a job that would not
fit is skipped, and a job still running at the budget's end is cancelled (Ctrl-C to the product,
which stops the trainer's process tree) and reported with what it measured.

``--cpu-dry-run`` runs the same pipeline on the e2e lab (``$KOHYA_E2E_DIR`` or
``~/.cache/kohya_orchestrator/e2e``: its venv, model and, when carry/ is prepared, the carried
sd-scripts tree and tokenizer), at 64 px and 2 steps per job; SDXL trains only if the lab has an
SDXL model (else its two jobs are validated and rendered). Exit status: 0 when no job failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gpu_bench as gb  # noqa: E402

REPO = gb.REPO
CARRY = HERE / "carry"
DEFAULT_WORK = Path("/tmp/kohya-gpu-bench")
DEFAULT_LAB = Path(
    os.environ.get("KOHYA_E2E_DIR", Path.home() / ".cache" / "kohya_orchestrator" / "e2e")
)
GPU_DEFAULTS = {"budget_s": 540.0, "steps_sd15": 300, "steps_sdxl": 200}
CPU_DEFAULTS = {"budget_s": 3600.0, "steps_sd15": 2, "steps_sdxl": 2}
# Seconds a job needs at least to be worth starting (load, cache, a few hundred steps, save).
NEED_S = {
    (False, "sd15"): 60.0,
    (False, "sdxl"): 110.0,
    (True, "sd15"): 60.0,
    (True, "sdxl"): 400.0,
}
OK_STATUS = ("succeeded", "rendered", "skipped", "cancelled (budget)")
BASE_IMAGES = 4  # tests/lab/make_dataset.py draws four captioned pictures
TORCH_PROBE = """
import json, torch
cuda = torch.cuda.is_available()
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": cuda}
if cuda:
    p = torch.cuda.get_device_properties(0)
    info.update(name=p.name, memory_mib=p.total_memory // 2**20,
                capability=f"{p.major}.{p.minor}", bf16=torch.cuda.is_bf16_supported())
print(json.dumps(info))
"""
# Runs a lab builder with torch's default device set (fast random init on the GPU).
ON_DEVICE = (
    "import runpy, sys, torch; torch.set_default_device(sys.argv[1]); "
    "sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; mode-dependent defaults are filled in after parsing."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cpu-dry-run", action="store_true", help="prove every stage on this CPU")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"scratch ({DEFAULT_WORK})")
    p.add_argument("--carry", type=Path, default=CARRY, help="what prepare.py gathered")
    p.add_argument("--lab", type=Path, default=DEFAULT_LAB, help="the e2e lab (dry run)")
    p.add_argument("--out", type=Path, help="results JSON (default WORK/results.json)")
    p.add_argument("--budget-s", type=float, help="whole-run time budget (540; dry run 3600)")
    p.add_argument("--steps-sd15", type=int, help="steps per SD1.5 job (300; dry run 2)")
    p.add_argument("--steps-sdxl", type=int, help="steps per SDXL job (200; dry run 2)")
    p.add_argument(
        "--jobs",
        nargs="+",
        choices=[j.key for j in gb.JOBS],
        help="run only these jobs (default: all four)",
    )
    p.add_argument(
        "--build-device",
        choices=["cuda", "cpu"],
        default="cuda",
        help="where the random models are initialised (cuda: fast; falls back to cpu)",
    )
    p.add_argument("--sdxl-model", type=Path, help="an SDXL checkpoint to use instead of building")
    args = p.parse_args(argv)
    defaults = CPU_DEFAULTS if args.cpu_dry_run else GPU_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.budget_s <= 0:
        p.error("--budget-s must be positive")
    if min(args.steps_sd15, args.steps_sdxl) < 1:
        p.error("--steps-sd15 and --steps-sdxl must be >= 1")
    if args.out is None:
        args.out = args.work / "results.json"
    args.jobs = [j for j in gb.JOBS if args.jobs is None or j.key in args.jobs]
    return args


@dataclass
class Context:
    """Where everything is, once set up."""

    work: Path
    cpu: bool
    env: dict[str, str]
    sd_scripts: Path
    trainer_python: Path
    tokenizer_cache: Path
    models: dict[str, Path | None] = field(default_factory=dict)
    model_notes: dict[str, str] = field(default_factory=dict)
    gpu: dict[str, Any] = field(default_factory=dict)
    smi: str | None = None
    setup_s: dict[str, float] = field(default_factory=dict)


class Clock:
    """Seconds since the command started, and the budget's end."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.monotonic()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {text}", flush=True)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_bytes().decode("utf-8", "replace").replace("\r", "\n")
    except OSError:
        return f"({path} unreadable)"
    kept = [x for x in text.splitlines() if x.strip()][-lines:]
    return "\n".join("    | " + x[:300] for x in kept)


def _run(argv: Sequence[str | Path], ctx_env: dict[str, str], log: Path, cwd: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.run(
            [str(a) for a in argv],
            env=ctx_env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        ).returncode


def _base_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("KOHYA_SD_SCRIPTS", "KOHYA_PYTHON", "VIRTUAL_ENV"):
        env.pop(key, None)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(work / "hf"),
        PYTHONUNBUFFERED="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def _prepend_path(env: dict[str, str], *paths: Path) -> None:
    old = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *([old] if old else [])])


def write_tokenizers(src: Path, cache: Path) -> None:
    """``cache/`` as sd-scripts' ``tokenizer_cache_dir`` reads it: CLIP ViT-L/14's folder, and
    SDXL's OpenCLIP bigG one (the same vocabulary, ``!`` as padding; sd-scripts pads with id 0)."""
    clip_l = cache / gb.CLIP_L
    bigg = cache / gb.CLIP_BIGG
    shutil.copytree(src, clip_l, dirs_exist_ok=True)
    shutil.copytree(src, bigg, dirs_exist_ok=True)
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = bigg / name
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            data["pad_token"] = "!"
            path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _extract_tree(archive: Path, work: Path) -> Path:
    dest = work / "sd-scripts"
    if dest.exists():
        shutil.rmtree(dest)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(work, filter="data")
        else:  # pragma: no cover - Pythons before the extraction filters
            tar.extractall(work)
    if not (dest / "train_network.py").is_file():
        raise SystemExit(f"{archive}: no sd-scripts/train_network.py inside")
    return dest


def detect_gpu(ctx: Context, clock: Clock) -> None:
    """nvidia-smi's view and torch's (in the trainer's Python, a child process)."""
    ctx.smi = shutil.which("nvidia-smi")
    if ctx.smi:
        done = subprocess.run(
            [ctx.smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
        )
        first = done.stdout.strip().splitlines()[:1]
        if done.returncode == 0 and first:
            name, memory, driver = (x.strip() for x in [*first[0].split(","), "", ""][:3])
            ctx.gpu.update(smi_name=name, smi_memory=memory, driver=driver)
    done = subprocess.run(
        [str(ctx.trainer_python), "-c", TORCH_PROBE],
        capture_output=True,
        text=True,
        env=ctx.env,
        check=False,
    )
    try:
        ctx.gpu.update(json.loads(done.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        ctx.gpu["torch_error"] = (done.stderr.strip().splitlines() or ["no output"])[-1]
    if ctx.gpu.get("cuda_available"):
        clock.say(
            f"GPU: {ctx.gpu.get('name')} ({ctx.gpu.get('memory_mib')} MiB, capability "
            f"{ctx.gpu.get('capability')}, bf16 {ctx.gpu.get('bf16')}), torch "
            f"{ctx.gpu.get('torch')} CUDA {ctx.gpu.get('cuda')}, driver {ctx.gpu.get('driver')}"
        )
    else:
        clock.say(
            f"no CUDA GPU: nvidia-smi {'found' if ctx.smi else 'absent'}, torch "
            f"{ctx.gpu.get('torch', '?')} cuda_available={ctx.gpu.get('cuda_available')}"
            + (f" ({ctx.gpu['torch_error']})" if "torch_error" in ctx.gpu else "")
        )


# --- setup --------------------------------------------------------------------------------------


def setup_gpu(args: argparse.Namespace, clock: Clock) -> Context:
    carry: Path = args.carry
    manifest = carry / "manifest.json"
    if not manifest.is_file():
        raise SystemExit(f"{carry} is not prepared: run python benchmarks/gpu/prepare.py first")
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    site = work / "site"
    stamp = site / ".carry-manifest.json"
    t = time.monotonic()
    if not stamp.is_file() or stamp.read_text() != manifest.read_text():
        wheels = sorted((carry / "wheels").glob("*.whl"))
        clock.say(f"installing {len(wheels)} carried wheels into {site}")
        if site.exists():
            shutil.rmtree(site)
        argv = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
        argv += ["--no-compile", "--no-cache-dir", "--disable-pip-version-check"]
        rc = _run([*argv, "--target", site, *wheels], dict(os.environ), work / "pip.log", work)
        if rc != 0:
            raise SystemExit(f"pip install failed (rc {rc}):\n{_tail(work / 'pip.log')}")
        stamp.write_text(manifest.read_text())
    env = _base_env(work)
    _prepend_path(env, site, REPO)
    env["KOHYA_PYTHON"] = sys.executable
    sd_scripts = _extract_tree(carry / "sd-scripts.tar.gz", work)
    cache = work / "tokcache"
    write_tokenizers(carry / "tokenizer", cache)
    ctx = Context(work, False, env, sd_scripts, Path(sys.executable), cache)
    ctx.setup_s["install"] = time.monotonic() - t
    clock.say(
        f"sd-scripts {(sd_scripts / '.snapshot-commit').read_text().strip()[:8]} in {sd_scripts}"
    )
    detect_gpu(ctx, clock)
    if not ctx.gpu.get("cuda_available"):
        raise SystemExit("no CUDA GPU here: use --cpu-dry-run on a machine without one")
    build_models(ctx, args, clock)
    return ctx


def _find_sdxl(lab: Path) -> Path | None:
    models = lab / "models"
    if not models.is_dir():
        return None
    for path in sorted(models.iterdir()):
        if "sdxl" not in path.name.lower() or ".partial" in path.name:
            continue
        if path.suffix == ".safetensors" or (path / "model_index.json").is_file():
            return path
    return None


def setup_cpu(args: argparse.Namespace, clock: Clock) -> Context:
    lab: Path = args.lab
    if not (lab / "READY").is_file():
        raise SystemExit(
            f"no e2e lab at {lab} (READY missing): build it with tests/lab/build_lab.py"
        )
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    python = lab / "venv" / "bin" / "python"
    env = _base_env(work)
    _prepend_path(env, REPO)
    carry: Path = args.carry
    if (carry / "sd-scripts.tar.gz").is_file():
        sd_scripts = _extract_tree(carry / "sd-scripts.tar.gz", work)
        env["KOHYA_PYTHON"] = str(python)
        clock.say(f"sd-scripts: the carried tree ({sd_scripts}), the lab's venv Python")
    else:
        sd_scripts = lab
        clock.say(f"sd-scripts: the lab's ({lab}; carry/ not prepared)")
    token_src = carry / "tokenizer"
    if not (token_src / "vocab.json").is_file():
        token_src = lab / "tokcache" / gb.CLIP_L
    cache = work / "tokcache"
    write_tokenizers(token_src, cache)
    ctx = Context(work, True, env, sd_scripts, python, cache)
    detect_gpu(ctx, clock)
    ctx.models["sd15"] = lab / "models" / "sd15-random-diffusers"
    ctx.models["sdxl"] = args.sdxl_model or _find_sdxl(lab)
    if ctx.models["sdxl"] is None:
        ctx.model_notes["sdxl"] = "no SDXL model in the lab: validated and rendered, not trained"
    clock.say(f"models: {', '.join(f'{k} {v}' for k, v in ctx.models.items())}")
    return ctx


def build_models(ctx: Context, args: argparse.Namespace, clock: Clock) -> None:
    """Random-weight SD1.5 (diffusers folder) and SDXL (one checkpoint) with the lab's builders,
    side by side; on the GPU first (``--build-device``), on the CPU if that fails."""
    models = ctx.work / "models"
    models.mkdir(parents=True, exist_ok=True)
    wanted = {j.family for j in args.jobs}
    plans: dict[str, tuple[Path, Path, list[str]]] = {}
    if "sd15" in wanted:
        out = models / "sd15-random-diffusers"
        plans["sd15"] = (
            out,
            REPO / "tests" / "lab" / "make_random_sd15.py",
            [str(ctx.tokenizer_cache / gb.CLIP_L), str(out)],
        )
    if "sdxl" in wanted:
        out = args.sdxl_model or models / "sdxl-random.safetensors"
        plans["sdxl"] = (
            out,
            REPO / "tests" / "lab" / "make_random_sdxl.py",
            [str(ctx.sd_scripts), str(out)],
        )
    t = time.monotonic()
    pending: dict[str, tuple[subprocess.Popen[bytes], Path, str]] = {}

    def start(family: str, device: str) -> None:
        _out, script, script_args = plans[family]
        log = ctx.work / "logs" / f"build_{family}_{device}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(ctx.trainer_python), "-c", ON_DEVICE, device, str(script), *script_args]
        handle = log.open("wb")
        proc = subprocess.Popen(
            argv, env=ctx.env, cwd=ctx.work, stdout=handle, stderr=subprocess.STDOUT
        )
        handle.close()
        pending[family] = (proc, log, device)
        clock.say(f"building the random {family} model on {device} ({script.name})")

    for family, (out, script, _) in plans.items():
        done = out.is_file() or (out / "model_index.json").is_file()
        if done:
            ctx.models[family] = out
            clock.say(f"{family} model: {out} (already built)")
        elif not script.is_file():
            ctx.models[family] = None
            ctx.model_notes[family] = f"{script.relative_to(REPO)} is missing: not trained"
            clock.say(f"{family}: {ctx.model_notes[family]}")
        else:
            start(family, args.build_device)
    while pending:
        for family, (proc, log, device) in list(pending.items()):
            if proc.poll() is None:
                continue
            del pending[family]
            out = plans[family][0]
            if proc.returncode == 0:
                ctx.models[family] = out
                clock.say(f"{family} model built on {device}: {out}")
            elif device != "cpu":
                clock.say(
                    f"{family} build on {device} failed (rc {proc.returncode}):\n{_tail(log, 8)}"
                )
                start(family, "cpu")
            else:
                ctx.models[family] = None
                ctx.model_notes[family] = f"building the model failed (rc {proc.returncode})"
                clock.say(f"{family} build failed:\n{_tail(log)}")
        time.sleep(0.5)
    ctx.setup_s["models"] = time.monotonic() - t


# --- one job ------------------------------------------------------------------------------------


class VramPoller:
    """nvidia-smi's used memory of GPU 0 every 0.2 s, in a child process; keeps the largest."""

    def __init__(self, smi: str | None) -> None:
        self.peak: int | None = None
        self.samples = 0
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        if smi:
            self._proc = subprocess.Popen(
                [
                    smi,
                    "--id=0",
                    "--query-gpu=memory.used",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "200",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            for value in gb.parse_smi_memory(line):
                self.samples += 1
                self.peak = value if self.peak is None else max(self.peak, value)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()


def _smi_once(smi: str | None) -> int | None:
    if not smi:
        return None
    done = subprocess.run(
        [smi, "--id=0", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=False,
    )
    values = gb.parse_smi_memory(done.stdout)
    return values[0] if values else None


def _orchestrator(ctx: Context, *args: str | Path) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "kohya_orchestrator", *map(str, args)],
        env=ctx.env,
        cwd=ctx.work,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).strip()


def make_images(ctx: Context, size: int) -> Path:
    """The lab's four captioned pictures at ``size`` px (tests/lab/make_dataset.py)."""
    root = ctx.work / "data" / f"base-{size}"
    folder = root / "img" / "2_oilpaint style"
    if not folder.is_dir():
        script = REPO / "tests" / "lab" / "make_dataset.py"
        rc = _run(
            [sys.executable, script, root, str(size)],
            ctx.env,
            ctx.work / "logs" / "data.log",
            ctx.work,
        )
        if rc != 0:
            raise SystemExit(f"make_dataset.py failed:\n{_tail(ctx.work / 'logs' / 'data.log')}")
    return folder


def job_images(base: Path, dest: Path, scale: gb.Scale) -> Path:
    """``dest/<repeats>_oilpaint style/`` with the first ``scale.images`` pictures and captions."""
    if dest.exists():
        shutil.rmtree(dest)
    folder = dest / f"{scale.repeats}_oilpaint style"
    folder.mkdir(parents=True)
    pictures = sorted(p for p in base.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    for picture in pictures[: scale.images]:
        shutil.copy2(picture, folder / picture.name)
        caption = picture.with_suffix(".txt")
        if caption.is_file():
            shutil.copy2(caption, folder / caption.name)
    return folder


def _train(
    ctx: Context, argv: list[str], clock: Clock, log: Path
) -> tuple[list[tuple[float, str]], int, float, bool]:
    """Run ``train --jsonl``; stamp each stdout line on arrival; cancel at the budget's end."""
    lines: list[tuple[float, str]] = []
    start = time.monotonic()
    with log.open("wb") as err:
        proc = subprocess.Popen(
            argv,
            env=ctx.env,
            cwd=ctx.work,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

        def read(stream: IO[bytes]) -> None:
            for raw in stream:
                lines.append((time.monotonic() - start, raw.decode("utf-8", "replace")))

        assert proc.stdout is not None
        reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
        reader.start()
        cancelled_at: float | None = None
        try:
            while proc.poll() is None:
                if cancelled_at is None and clock.left() <= 0:
                    clock.say("budget reached: cancelling the run (Ctrl-C to the product)")
                    os.kill(proc.pid, signal.SIGINT)
                    cancelled_at = time.monotonic()
                elif cancelled_at is not None and time.monotonic() - cancelled_at > 60:
                    proc.kill()
                time.sleep(0.2)
        except KeyboardInterrupt:  # the trainer is in its own session: pass the Ctrl-C on
            os.kill(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
            raise
        reader.join(timeout=10)
        proc.stdout.close()
    return lines, proc.returncode, time.monotonic() - start, cancelled_at is not None


def run_job(job: gb.Job, ctx: Context, args: argparse.Namespace, clock: Clock) -> dict[str, Any]:
    """Copy the preset, put it on the benchmark's data and length, validate and train it."""
    settings = tomllib.loads(job.preset_file.read_text(encoding="utf-8"))
    batch = int(gb._get(settings, "dataset.batch_size") or 1)
    accum = int(gb._get(settings, "training.gradient_accumulation_steps") or 1)
    target = args.steps_sd15 if job.family == "sd15" else args.steps_sdxl
    scale = gb.scale_job(target, batch, BASE_IMAGES, accum)
    result: dict[str, Any] = {
        "key": job.key,
        "title": job.title,
        "family": job.family,
        "arm": job.arm,
        "preset": job.preset if job.arm == "product" else job.preset_file.name,
        "settings": gb.settings_summary(settings),
        "batch_size": batch,
        "grad_accum": accum,
        "planned_steps": scale.steps,
        "images": scale.images,
        "repeats": scale.repeats,
        "status": None,
        "notes": [],
    }
    skip = gb.budget_check(clock.elapsed(), args.budget_s, NEED_S[(ctx.cpu, job.family)])
    if skip:
        result["status"] = "skipped"
        result["notes"].append(skip)
        clock.say(f"{job.key}: {skip}")
        return result
    resolution = 64 if ctx.cpu else gb.FAMILY_RESOLUTION[job.family]
    result["resolution"] = resolution
    model = ctx.models.get(job.family)
    base = make_images(ctx, resolution)
    image_dir = job_images(base, ctx.work / "data" / job.key, scale)
    overrides, notes = gb.job_overrides(
        settings,
        model=model or Path("unused"),
        tokenizer_cache=ctx.tokenizer_cache,
        image_dir=image_dir,
        output_dir=ctx.work / "out" / job.key,
        resolution=resolution,
        cpu=ctx.cpu,
    )
    if model is None:  # keep the preset's Hugging Face id: validated and rendered only
        overrides = [
            o for o in overrides if not o.startswith("model.pretrained_model_name_or_path=")
        ]
    result["notes"].extend(notes)
    result["settings"] = gb.settings_summary(gb.apply_overrides(settings, overrides))
    sets = [a for o in overrides for a in ("--set", o)]
    job_file = ctx.work / "jobs" / f"{job.key}.toml"
    job_file.parent.mkdir(parents=True, exist_ok=True)
    rc, text = _orchestrator(ctx, "preset", "copy", job.preset, job_file, "--force")
    if rc != 0:
        result["status"] = "preset copy failed"
        clock.say(f"{job.key}: preset copy failed:\n{text}")
        return result
    rc, text = _orchestrator(ctx, "validate", job_file, *sets)
    clock.say(f"{job.key}: validate -> {text.splitlines()[0] if text else rc}")
    if rc != 0:
        result["status"] = "invalid"
        print(text, flush=True)
        return result
    if model is None:
        rc, text = _orchestrator(
            ctx, "render", job_file, "--out", ctx.work / "rendered" / job.key, "--force", *sets
        )
        result["status"] = "rendered" if rc == 0 else "render failed"
        result["notes"].append(ctx.model_notes.get(job.family, "no model"))
        clock.say(f"{job.key}: {result['status']} ({result['notes'][-1]})")
        if rc != 0:
            print(text, flush=True)
        return result

    clock.say(
        f"{job.key}: training {scale.steps} steps ({scale.images} images x {scale.repeats} "
        f"repeats / batch {batch}) at {resolution} px: {result['settings']}"
    )
    argv = [sys.executable, "-m", "kohya_orchestrator", "train", str(job_file), *sets]
    argv += ["--sd-scripts", str(ctx.sd_scripts), "--runs", str(ctx.work / "runs"), "--jsonl"]
    baseline = _smi_once(ctx.smi)
    poller = VramPoller(ctx.smi)
    try:
        lines, rc, wall, cancelled = _train(ctx, argv, clock, ctx.work / "logs" / f"{job.key}.log")
    finally:
        poller.stop()
    fig = gb.measure(gb.read_events(lines))
    result.update(
        rc=rc,
        wall_s=wall,
        steps_done=fig.steps_done,
        it_per_s=fig.it_per_s,
        images_per_s=fig.it_per_s * batch * accum if fig.it_per_s else None,
        tqdm_it_per_s=fig.tqdm_it_per_s,
        steps_timed=fig.steps_timed,
        first_step_s=fig.first_step_s,
        first_step_trainer_s=fig.first_step_trainer_s,
        vram_baseline_mib=baseline,
        vram_peak_total_mib=poller.peak,
        peak_vram_mib=(poller.peak - (baseline or 0)) if poller.peak is not None else None,
        vram_samples=poller.samples,
        product_vram_mib=fig.product_vram_mib,
        run_dir=str(ctx.work / "runs" / fig.run_id) if fig.run_id else None,
        status=("cancelled (budget)" if cancelled else fig.status or f"rc {rc}"),
    )
    result["notes"].extend(fig.notes)
    if fig.reason:
        result["notes"].append(fig.reason)
    clock.say(
        f"{job.key}: {result['status']} in {wall:.1f} s, {fig.steps_done}/{scale.steps} steps, "
        f"{gb.cell(result, 'it_per_s')} it/s, first step {gb.cell(result, 'first_step_s')} s, "
        f"peak VRAM {gb.cell(result, 'peak_vram_mib')} MiB"
    )
    if fig.status != "succeeded" and not cancelled:  # a budget stop's traceback says nothing
        console = Path(result["run_dir"]) / "console.log" if result["run_dir"] else None
        if console and console.is_file():
            print(f"  console.log ({console}):\n{_tail(console)}", flush=True)
        print(f"  train's stderr:\n{_tail(ctx.work / 'logs' / f'{job.key}.log', 10)}", flush=True)
    return result


# --- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    clock = Clock(args.budget_s)
    mode = "cpu-dry-run" if args.cpu_dry_run else "gpu"
    clock.say(
        f"kohya_orchestrator GPU benchmark ({mode}); budget {args.budget_s:.0f} s; steps "
        f"sd15 {args.steps_sd15}, sdxl {args.steps_sdxl}; jobs {' '.join(j.key for j in args.jobs)}"
    )
    ctx = setup_cpu(args, clock) if args.cpu_dry_run else setup_gpu(args, clock)
    ctx.setup_s["total"] = clock.elapsed()
    results = [run_job(job, ctx, args, clock) for job in args.jobs]
    device = ctx.gpu.get("name") or ctx.gpu.get("smi_name") or "CPU (no GPU)"
    header = (
        f"\n{device}, torch {ctx.gpu.get('torch', '?')}, sd-scripts via the product, "
        f"{mode}; peak VRAM = nvidia-smi used memory of GPU 0 (0.2 s poll) minus the idle figure"
    )
    print(gb.format_table(results, header), flush=True)
    report = {
        "mode": mode,
        "device": ctx.gpu,
        "budget_s": args.budget_s,
        "steps": {"sd15": args.steps_sd15, "sdxl": args.steps_sdxl},
        "setup_s": ctx.setup_s,
        "total_s": clock.elapsed(),
        "vram_method": "nvidia-smi --id=0 memory.used every 0.2 s, peak minus the figure before",
        "jobs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    clock.say(f"wrote {args.out}")
    bad = [r["key"] for r in results if r["status"] not in OK_STATUS]
    if bad:
        clock.say(f"did not succeed: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
