"""Capture the console output of an older sd-scripts release's train_network.py, launched as the
product launches it, into tests/fixtures/sd-scripts/old-version-logs/<tag>/<scenario>/.

    python tests/lab/capture_old.py [--tag v0.6.0] [--scenario NAME ...] [--out DIR]

Needs the old lab (``tests/lab/build_old_lab.py``: the release, its venv and the random-weight
SD1.5 model in the layout its diffusers reads) and the e2e lab's tokenizer cache and images
(``$KOHYA_E2E_DIR``, default ``~/.cache/kohya_orchestrator/e2e``).

Each scenario is a job file (written here) that ``python -m kohya_orchestrator render`` turns into
``config.toml`` + ``dataset.toml``; the old script then runs under the release's own accelerate,
with the argv and environment of ``render/command.py`` (``-m accelerate.commands.launch
--num_processes 1 --num_machines 1 --mixed_precision no --num_cpu_threads_per_process 2
--dynamo_backend no train_network.py --config_file ...``; ``PYTHONUNBUFFERED=1``,
``PYTHONIOENCODING=utf-8``, ``COLUMNS=200``, ``NO_COLOR=1``) plus ``PYTHONPATH=.`` and
``HF_HUB_OFFLINE=1``, from the sd-scripts folder. Each run holds ``/tmp/heavy.lock`` (flock) for
its whole life: the model takes about 7 GB.

Written per scenario, nothing trimmed: ``stdout``, ``stderr`` and ``combined`` (raw bytes, the two
pipes interleaved in the order the reads returned), ``chunks.jsonl`` (one row per read: ``t``
seconds since start, ``stream``, ``n`` bytes, ``text``), ``result.json`` (argv, rc, wall seconds,
peak RSS), and the ``job.toml``, ``config.toml`` and ``dataset.toml`` the run was given.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import fcntl
import json
import os
import resource
import selectors
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
OLD_DIR = Path.home() / ".cache" / "kohya_orchestrator" / "e2e-old"
E2E_DIR = Path(os.environ.get("KOHYA_E2E_DIR") or Path.home() / ".cache/kohya_orchestrator/e2e")
FIXTURES = REPO / "tests" / "fixtures" / "sd-scripts" / "old-version-logs"
WORK = Path("/tmp/kohya-old-capture")
OLD_MODEL = (
    "sd15-random-diffusers-old"  # build_old_lab.py: the e2e lab's, in diffusers 0.10's layout
)
LOCK = Path("/tmp/heavy.lock")
MIB = 1024 * 1024

# What render/command.py adds to the child's environment, then what the lab needs.
PRODUCT_ENV = {
    "PYTHONUNBUFFERED": "1",
    "PYTHONIOENCODING": "utf-8",
    "COLUMNS": "200",
    "NO_COLOR": "1",
}
LAB_ENV = {"PYTHONPATH": ".", "HF_HUB_OFFLINE": "1"}


@dataclass(frozen=True)
class Scenario:
    """One run: what it shows and how its job differs from the base job."""

    what: str
    optimizer: dict[str, Any] = field(default_factory=dict)
    missing_images: bool = False


SCENARIOS: dict[str, Scenario] = {
    "lora_2epochs": Scenario(
        "networks.lora, AdamW, 4 images x 2 repeats, batch 2, 2 epochs, a checkpoint every epoch"
    ),
    "missing_dir": Scenario(
        "the subset's image_dir does not exist (rendered with --no-paths)", missing_images=True
    ),
    "prodigy_unknown": Scenario(
        "optimizer Prodigy, which this release does not know (it looks it up in torch.optim)",
        optimizer={"type": "Prodigy", "learning_rate": 1.0},
    ),
    "nan_loss": Scenario(
        "AdamW at learning rate 1e30: the LoRA weights overflow and the loss turns NaN",
        optimizer={"type": "AdamW", "learning_rate": 1e30},
    ),
}


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def job_toml(name: str, scenario: Scenario, work: Path) -> str:
    """The job file of a scenario (the e2e tests' tiny job, on the e2e lab's model and images)."""
    images = (
        work / "no-such-folder" / "2_oilpaint style"
        if scenario.missing_images
        else E2E_DIR / "data" / "img" / "2_oilpaint style"
    )
    optimizer = {"type": "AdamW", "learning_rate": 1e-4, **scenario.optimizer}
    sections: list[tuple[str, dict[str, object]]] = [
        (
            "model",
            {
                "family": "sd15",
                "pretrained_model_name_or_path": OLD_DIR / "models" / OLD_MODEL,
                "tokenizer_cache_dir": E2E_DIR / "tokcache",
            },
        ),
        ("dataset", {"resolution": 64, "batch_size": 2, "enable_bucket": False}),
        ("[dataset.subsets]", {"image_dir": images}),
        ("network", {"algo": "lora", "network_dim": 4, "network_alpha": 1.0}),
        ("optimizer", optimizer),
        (
            "training",
            {
                "output_dir": work / "out",
                "output_name": name,
                "max_train_epochs": 2,
                "save_every_n_epochs": 1,
                "mixed_precision": "no",
                "attention": "none",
                "cache_latents": True,
                "max_data_loader_n_workers": 0,
            },
        ),
    ]
    lines = [f"# {name}: {scenario.what}", f"name = {json.dumps(name)}"]
    for title, values in sections:
        lines += ["", f"[{title}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in members:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def record(argv: list[str], cwd: Path, env: dict[str, str], dest: Path) -> dict[str, Any]:
    """Run ``argv`` and write stdout, stderr, combined and chunks.jsonl into ``dest``."""
    files = {name: (dest / name).open("wb") for name in ("stdout", "stderr", "combined")}
    chunks = (dest / "chunks.jsonl").open("w", encoding="utf-8")
    decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    child = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert child.stdout is not None and child.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(child.stdout, selectors.EVENT_READ, "stdout")
    sel.register(child.stderr, selectors.EVENT_READ, "stderr")
    watched = psutil.Process(child.pid)
    peak_tree = 0
    open_streams = 2
    while open_streams:
        for key, _ in sel.select(timeout=0.25):
            stream = str(key.data)
            data = os.read(key.fd, 65536)
            if not data:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            files[stream].write(data)
            files["combined"].write(data)
            row = {
                "t": round(time.monotonic() - start, 3),
                "stream": stream,
                "n": len(data),
                "text": decoders[stream].decode(data),
            }
            chunks.write(json.dumps(row, ensure_ascii=False) + "\n")
        peak_tree = max(peak_tree, _tree_rss(watched))
    rc = child.wait()
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for f in files.values():
        f.close()
    chunks.close()
    return {
        "rc": rc,
        "wall_s": round(wall, 2),
        "peak_rss_tree_mib_sampled": round(peak_tree / MIB, 1),
        # ru_maxrss (KiB) of the largest waited-for descendant: /usr/bin/time -v's figure.
        "ru_maxrss_children_mib": round(after.ru_maxrss / 1024, 1),
        "children_user_s": round(after.ru_utime - before.ru_utime, 1),
        "children_sys_s": round(after.ru_stime - before.ru_stime, 1),
    }


def capture(tag: str, name: str, scenario: Scenario, out_root: Path, lock: Path) -> dict[str, Any]:
    """Render the scenario's job, run the old script on it, write the capture; returns result."""
    source = OLD_DIR / f"sd-scripts-{tag}"
    python = OLD_DIR / f"venv-{tag}" / "bin" / "python"
    origin = json.loads((OLD_DIR / f"sd-scripts-{tag}.json").read_text(encoding="utf-8"))
    work = WORK / tag / name
    shutil.rmtree(work, ignore_errors=True)
    (work / "rendered").mkdir(parents=True)
    (work / "hf").mkdir()
    job = work / "job.toml"
    job.write_text(job_toml(name, scenario, work), encoding="utf-8")
    render = [sys.executable, "-m", "kohya_orchestrator", "render", str(job)]
    render += ["--out", str(work / "rendered")]
    if scenario.missing_images:
        render.append("--no-paths")
    subprocess.run(render, cwd=REPO, check=True)
    config = work / "rendered" / "config.toml"
    argv = [str(python), "-m", "accelerate.commands.launch", "--num_processes", "1"]
    argv += ["--num_machines", "1", "--mixed_precision", "no"]
    argv += ["--num_cpu_threads_per_process", "2", "--dynamo_backend", "no"]
    argv += ["train_network.py", "--config_file", str(config)]
    added = {**PRODUCT_ENV, **LAB_ENV, "HF_HOME": str(work / "hf")}
    env = {**os.environ, **added}
    dest = out_root / tag / name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    print(f"[{name}] waiting for {lock}", flush=True)
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        print(f"[{name}] running: {' '.join(argv)}", flush=True)
        result = record(argv, source, env, dest)
    for f in ("job.toml", "rendered/config.toml", "rendered/dataset.toml"):
        shutil.copyfile(work / f, dest / Path(f).name)
    saved = sorted(p.name for p in (work / "out").glob("*")) if (work / "out").is_dir() else []
    full = {
        "scenario": name,
        "what": scenario.what,
        "tag": tag,
        "commit": origin["commit"],
        "argv": argv,
        "cwd": str(source),
        "env_added": added,
        **result,
        "outputs": saved,
        "captured": time.strftime("%Y-%m-%d"),
    }
    (dest / "result.json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    print(
        f"[{name}] rc {result['rc']}, {result['wall_s']} s, peak RSS "
        f"{result['ru_maxrss_children_mib']} MiB (tree {result['peak_rss_tree_mib_sampled']} MiB),"
        f" outputs: {', '.join(saved) or 'none'}",
        flush=True,
    )
    return full


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tag", default="v0.6.0")
    p.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    p.add_argument("--out", default=str(FIXTURES))
    p.add_argument("--lock", default=str(LOCK))
    args = p.parse_args(argv)
    if not (OLD_DIR / f"venv-{args.tag}" / "READY").is_file():
        print(f"no old lab for {args.tag}: run tests/lab/build_old_lab.py --tag {args.tag}")
        return 2
    for name in args.scenario or list(SCENARIOS):
        capture(args.tag, name, SCENARIOS[name], Path(args.out), Path(args.lock))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
