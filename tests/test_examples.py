"""Every command example in the CLI's ``--help`` texts, README.md and docs/ runs as written.

What is collected
  * ``--help`` of the CLI, of every verb and of every sub-verb (``queue add``, ``dataset create``,
    ...), as argparse prints it: each line that starts with ``python -m kohya_orchestrator`` or
    ``kohya-orch``, also after a ``next:`` / ``then:`` / ``next step:`` lead-in (usage lines
    aside).
  * README.md and docs/*.md: the lines of ```` ```bash ````, ``sh``, ``shell``, ``console`` and
    untyped fences (indented ones too) that start with one of the two commands, with ``\\``
    continuations joined and each part of an ``a && b`` list taken on its own (README's first
    line gives ``python -m kohya_orchestrator preset oilpaint``).
  * docs/examples/*.toml: their ``#   python -m kohya_orchestrator ...`` comment lines.

How they run
  Each distinct example runs once, as its own process started by bash:
  ``bash -c '<the line exactly as written>'``, so quotes, ``\\ ``, ``~``, globs, ``# comments``
  and ``> file`` mean what they mean in the user's shell. The working folder is a fresh sandbox
  per example holding a copy of the repository's presets/ and docs/ (its example jobs, example
  data and schema; everything the examples name): a fresh clone's root as far as the examples can
  tell. Not the checkout itself: examples write (rendered/, data/train/, my_job.toml, the queue,
  run folders), and the checkout and the real home must stay as they are. HOME is an empty folder
  in the sandbox (the queue, the demo dataset and the config file live under it); KOHYA_*, XDG_*
  and CONDA_PREFIX are removed so no real install is found, and KOHYA_ORCH_DEBUG=1 makes an
  unexpected error (exit 3) show its traceback. Nothing trains or downloads. PATH starts with

  * ``python``: ``python -m kohya_orchestrator ARGS`` goes to a fork server, a Python that
    imported the whole package once (PYTHONPATH at the repository, as the repository root gives
    ``python -m`` on a fresh clone) and forks a child per call. The child takes over the caller's
    stdin/stdout/stderr, working folder, environment and argv, runs ``cli.main`` as
    ``__main__.py`` does, and its exit code is the caller's. About a hundred examples then take
    seconds rather than the half second of start-up and imports each would (where there is no
    fork, each one starts Python). Any other ``python ...`` is this interpreter.
  * ``kohya-orch``: the console script ``pip install .`` writes from pyproject's
    ``[project.scripts]``, a fresh Python each time, so the ``kohya-orch ...`` examples run as
    they do once installed.

  An example must exit 0 with no "Traceback" in its output, unless EXPECTED_FAILURES lists it:
  those need what a fresh clone does not have (an sd-scripts install, the user's images, model or
  files, a finished training run, a job with that id in the queue). They must exit with the
  listed code and print a message, still without a traceback. NOT_RUN and NOT_RUN_VERBS name the
  few that are not run at all, with the reason. SETUP gives a few examples what they build on, as
  commands run first in the same sandbox (``dataset create ... --into data/train`` before
  ``dataset inspect data/train``), each of which must exit 0. The tables may only name collected
  examples, so a changed example fails here until it has been reviewed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import VERBS, _build_parser

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("python -m kohya_orchestrator", "kohya-orch")
PY = "python -m kohya_orchestrator"

# ---------------------------------------------------------------------------------------------
# The reviewed tables. Keys are examples as written, without a trailing "# comment".

NEEDS_INSTALL = "needs an sd-scripts install; a fresh clone has none (clean 'not found' message)"
NEEDS_RUN = "needs a training run in runs/ (training needs an sd-scripts install)"
NEEDS_LORA = "needs a LoRA file you trained (out/ is yours)"

EXPECTED_FAILURES: dict[str, tuple[int, str]] = {
    # an sd-scripts install
    f"{PY} train docs/examples/oilpaint.toml": (2, NEEDS_INSTALL),
    "kohya-orch train docs/examples/oilpaint.toml": (2, NEEDS_INSTALL),
    f"{PY} train my_job.toml --sd-scripts ~/kohya_ss --runs runs/": (
        2,
        NEEDS_INSTALL + "; my_job.toml is the preset copy with your [[dataset.subsets]] added",
    ),
    f"{PY} train my_job.toml --gpus 0,1": (
        2,
        NEEDS_INSTALL + ", two GPUs, and your my_job.toml",
    ),
    f"{PY} train my_job.toml --sd-scripts ~/kohya_ss --runs runs --gpus 0,1": (
        2,
        NEEDS_INSTALL + ", two GPUs, and your my_job.toml",
    ),
    f"{PY} validate docs/examples/oilpaint.toml --sd-scripts ~/kohya_ss": (2, NEEDS_INSTALL),
    f"{PY} doctor": (2, NEEDS_INSTALL),
    f"{PY} doctor --sd-scripts ~/kohya_ss --json > doctor.json": (2, NEEDS_INSTALL),
    f"{PY} doctor --sd-scripts ~/kohya_ss --python ~/kohya_ss/venv/bin/python --json": (
        2,
        NEEDS_INSTALL,
    ),
    f"{PY} queue run --gpus 0,1 --oom-retries 3": (2, NEEDS_INSTALL + " to train the queued job"),
    f"{PY} sweep docs/examples/oilpaint.toml --grid network.network_dim=8,16,32 --run --gpus 0,1": (
        2,
        NEEDS_INSTALL + " (--run trains the sweep)",
    ),
    f'{PY} dataset tag "img/20_zengxin oilpaint" --model-dir ~/models/wd-v1-4-moat-tagger-v2 '
    "--always-first-tags 'zengxin oilpaint'": (
        2,
        NEEDS_INSTALL + ", the WD14 tagger model and your images in img/",
    ),
    f"{PY} dataset tag img/20_x --repo-id SmilingWolf/wd-v1-4-moat-tagger-v2 "
    "--model-dir models/wd14 --dry-run": (
        2,
        NEEDS_INSTALL + " and your images in img/",
    ),
    f'{PY} dataset tag "img/20_zengxin oilpaint" --model-dir ~/models/wd14 '
    '--always-first-tags "zengxin oilpaint" --undesired-tags "watermark,text"': (
        2,
        NEEDS_INSTALL + ", the WD14 tagger model and your images in img/",
    ),
    f"{PY} preset oilpaint --data img --model ~/models/v1-5-pruned-emaonly.safetensors "
    "--sd-scripts ~/kohya_ss": (2, "trains: needs your images (img/), model and install"),
    # the user's images, model or files
    f"{PY} preset oilpaint --data img --model sd15.safetensors": (
        2,
        "trains: needs your images (img/) and model",
    ),
    f"{PY} preset oilpaint --data img --model sd15.safetensors --vram 8": (
        2,
        "trains: needs your images (img/), model and an 8 GB card",
    ),
    f"{PY} preset my_oil.toml --data img --model sd15.safetensors": (
        2,
        "needs your preset file (the my_oil.toml shown above it), images and model",
    ),
    f"{PY} preset my_loha.toml --data img --dry-run": (
        2,
        "needs my_loha.toml from import-preset of your GUI preset, and your images",
    ),
    f"{PY} preset my_loha.toml --data img --model sd15.safetensors --dry-run": (
        2,
        "needs my_loha.toml from import-preset of your GUI preset, and your images",
    ),
    f"{PY} validate my_job.toml": (
        2,
        "the copy has no [[dataset.subsets]] until you add your images (the line says so)",
    ),
    f"{PY} import-preset my_loha.json --out my_loha.toml": (2, "needs your kohya_ss GUI preset"),
    f"{PY} import-preset saved_config.json": (2, "needs your kohya_ss GUI saved config"),
    f"{PY} import-config config_lora.toml --family sdxl": (2, "needs your kohya_ss GUI config"),
    f"{PY} import-config training_config.toml --out job.toml": (2, "needs your training config"),
    f"{PY} import-config training_config.toml --data img "
    "--model ~/models/v1-5-pruned-emaonly.safetensors --output out --out job.toml": (
        2,
        "needs your training config",
    ),
    f"{PY} import-config training_config.toml --data img "
    "--model ~/models/v1-5.safetensors --output out --out job.toml": (
        2,
        "needs your training config",
    ),
    f"{PY} runs pick latest --epoch 4 --to ~/loras/oilpaint-e4": (2, NEEDS_RUN),
    f"{PY} runs pick latest --epoch 4 --author me --license CreativeML-OpenRAIL-M "
    "--tags 'style,oil painting'": (2, NEEDS_RUN),
    f'{PY} runs pick latest --epoch 4 --author "Zeng Xin" --license CreativeML-OpenRAIL-M '
    '--tags "style, oil painting"': (2, NEEDS_RUN),
    f"{PY} lora export-diff out/my_ia3.safetensors "
    "--base ~/models/v1-5-pruned-emaonly.safetensors": (2, NEEDS_LORA),
    f"{PY} lora inspect out/oilpaint/published/oilpaint-000004/oilpaint-000004.safetensors": (
        2,
        NEEDS_LORA,
    ),
    f"{PY} queue add a.toml b.toml": (2, "needs your job files"),
    f"{PY} queue add a.toml b.toml c.toml": (2, "needs your job files"),
    f"{PY} queue cancel 3": (2, "needs a job with that id in your queue"),
    f"{PY} queue cancel 4 5": (2, "needs jobs with those ids in your queue"),
    f"{PY} queue retry 3": (2, "needs a failed, canceled or interrupted job 3 in your queue"),
    f"{PY} queue retry 3 --resume": (
        2,
        "needs an interrupted job 3 in your queue with sd-scripts' saved state",
    ),
    f"{PY} dataset create raw/ --repeats 10 --name sks --into data/train --link "
    "--max-per-subset 100": (2, "needs your flat folder of images (raw/)"),
    f'{PY} dataset create ~/raw/oil --repeats 20 --name "zengxin oilpaint" --into ~/data/train': (
        2,
        "needs your flat folder of images (~/raw/oil)",
    ),
    f"{PY} dataset inspect data/train --reg data/reg": (
        2,
        "needs your images and regularisation images",
    ),
    f"{PY} dataset inspect ~/data/train --reg ~/data/reg --resolution 512 --trigger zengxin": (
        2,
        "needs your images and regularisation images",
    ),
    f"{PY} dataset inspect ~/data/train --json > report.json": (2, "needs your images"),
    f'{PY} dataset captions "img/20_zengxin oilpaint" add zengxin --front': (
        2,
        "needs the images dataset tag captioned (img/ is yours)",
    ),
    f"{PY} plan --train-dir data/train --reg-dir data/reg --epochs 10": (
        2,
        "needs your images and regularisation images",
    ),
    f"{PY} plan --train-dir data/train --reg-dir data/reg --resolution 512 --batch-size 2 "
    "--epochs 10": (2, "needs your images and regularisation images"),
    f"{PY} lora inspect out/my_style.safetensors": (2, NEEDS_LORA),
    f"{PY} lora inspect out/my_style-000004.safetensors --tags 20": (2, NEEDS_LORA),
    f"{PY} lora inspect out/my_style-000004.safetensors": (2, NEEDS_LORA),
    # a finished training run
    f"{PY} runs show runs/20261124-221500-oilpaint": (2, NEEDS_RUN),
    f"{PY} runs show latest": (2, NEEDS_RUN),
    f"{PY} runs show latest --json": (2, NEEDS_RUN),
    f"{PY} runs show latest --sheet --loss-curve": (2, NEEDS_RUN),
    f"{PY} runs pictures latest": (2, NEEDS_RUN),
    f"{PY} runs open latest": (2, NEEDS_RUN),
    f"{PY} runs page latest": (2, NEEDS_RUN),
    f"{PY} runs compare runs/*-ia3 runs/*-loha runs/*-lokr": (2, NEEDS_RUN + " per algo"),
    f"{PY} runs compare runs/*-ia3 runs/*-loha": (2, NEEDS_RUN + " per algo"),
    f"{PY} replay runs/20261124-215303-oilpaint": (2, NEEDS_RUN),
    f"{PY} runs rerun latest --set training.output_name=oilpaint_v2": (2, NEEDS_RUN),
    f"{PY} runs rerun runs/20261124-221500-oilpaint --smoke": (2, NEEDS_RUN),
    f"{PY} runs rerun runs/20261207-102942-demo --smoke": (2, NEEDS_RUN),
    f"{PY} train runs/20261207-102942-demo --set training.output_dir=out2": (2, NEEDS_RUN),
    f"{PY} train my_job.toml --smoke": (2, NEEDS_INSTALL + " and your my_job.toml"),
    f"{PY} train my_job.toml --smoke --then-train": (2, NEEDS_INSTALL + " and your my_job.toml"),
    f"{PY} preset oilpaint --data img --model sd15.safetensors --smoke": (
        2,
        "trains (2 steps): needs your images (img/), model and an install",
    ),
    f"{PY} replay runs/20261124-215303-oilpaint/console.log --jsonl > ev.jsonl": (2, NEEDS_RUN),
}

# Verbs none of whose examples run: `install` clones sd-scripts and downloads torch and packages
# (network, minutes, gigabytes), whatever its arguments.
NOT_RUN_VERBS: dict[str, str] = {
    "install": "downloads sd-scripts, torch and packages (network, minutes, gigabytes)",
}

_CLUSTER = "a SLURM cluster's shared filesystem (/shared) and its sbatch/scancel"
_CLOUD = "launches cloud GPUs through SkyPilot (the cloud extra, your credentials, money)"

NOT_RUN: dict[str, str] = {
    f"{PY} lora inspect out/my_style.safetensors --json | jq .algo": (
        "pipes into jq (another program) and needs a LoRA file you trained"
    ),
    f"{PY} replay RUN --jsonl | jq 'select(.kind == \"child_error\")'": (
        "a template (RUN is your run folder), piped into jq"
    ),
    # beyond one machine (docs/queue.md): tested by tests/queue/test_slurm_cluster.py,
    # tests/e2e/test_slurm_e2e.py, tests/queue/test_sky.py and test_sky_cloud.py instead
    f"{PY} queue add /shared/jobs/a.toml /shared/jobs/b.toml --queue /shared/q": _CLUSTER,
    f"{PY} queue export-slurm --queue /shared/q --submit --partition gpu --time 04:00:00 "
    "--mem 32G --max-parallel 2": _CLUSTER,
    f"{PY} queue list --queue /shared/q": _CLUSTER,
    f"{PY} queue cancel 2 --queue /shared/q": _CLUSTER,
    f"{PY} queue export-slurm --submit --partition gpu --time 04:00:00": (
        "submits to a SLURM cluster with sbatch"
    ),
    f"{PY} queue slurm-task --queue /shared/q --job-id 3": (
        "runs inside a SLURM array task (the exported script runs it)"
    ),
    f"{PY} queue run --on sky --gpus A100:1": _CLOUD,
    f"{PY} queue run --on sky --gpus L4:1 --spot --bucket s3://my-bucket/kohya": _CLOUD,
    f"{PY} train docs/examples/oilpaint.toml --on sky --gpus A100:1 --cloud runpod": _CLOUD,
}

_CREATE_TRAIN = (
    f'{PY} dataset create "docs/examples/img/10_zengxin oilpaint" --repeats 20 '
    '--name "zengxin oilpaint" --into data/train'
)
_RENDER = f"{PY} render docs/examples/oilpaint.toml --out rendered/"
_IMPORT = f"{PY} import-config rendered/config.toml --dataset rendered/dataset.toml --out job.toml"
_QUEUE_ADD = f"{PY} queue add docs/examples/oilpaint.toml"
_SWEEP_DIMS = (
    f"{PY} sweep docs/examples/oilpaint.toml --grid network.network_dim=8,16,32 --name dims"
)

SETUP: dict[str, tuple[str, ...]] = {
    # the dataset walk-through: create data/train from the demo paintings, then work on it
    f"{PY} dataset inspect data/train": (_CREATE_TRAIN,),
    f"{PY} dataset inspect data/train --resolution 512 --trigger zengxin": (_CREATE_TRAIN,),
    f"{PY} dataset captions data/train/20_zengxin\\ oilpaint add zengxin --front --dry-run": (
        _CREATE_TRAIN,
    ),
    f'{PY} dataset captions "data/train/20_zengxin oilpaint" add zengxin --front': (_CREATE_TRAIN,),
    f'{PY} dataset captions "data/train/20_zengxin oilpaint" add zengxin --front --dry-run': (
        _CREATE_TRAIN,
    ),
    f'{PY} dataset captions data/train replace "oil painting" "oil painting (medium)"': (
        _CREATE_TRAIN,
    ),
    f"{PY} plan --train-dir data/train --batch-size 2 --epochs 10": (_CREATE_TRAIN,),
    # import-config reads what render wrote; validate reads what import-config wrote
    _IMPORT: (_RENDER,),
    f"{PY} validate job.toml": (_RENDER, _IMPORT),
    # copy a preset first
    f"{PY} validate my_job.toml": (f"{PY} preset copy oilpaint my_job.toml",),
    # a queued job, or a queued sweep named dims
    f"{PY} queue run --gpus 0,1 --oom-retries 3": (_QUEUE_ADD,),
    f"{PY} queue export-slurm --partition gpu --time 04:00:00": (_QUEUE_ADD,),
    f"{PY} queue export-slurm --out queue.sbatch --partition gpu --gpus-per-task 1 --time 04:00:00": (
        _QUEUE_ADD,
    ),
    f"{PY} queue export-slurm --sweep dims --out sweep.sbatch --max-parallel 4": (_SWEEP_DIMS,),
    f"{PY} queue export-slurm --sweep dims": (_SWEEP_DIMS,),
}

# ---------------------------------------------------------------------------------------------
# Collection


@dataclass
class Example:
    line: str  # as written (the first place it was found), comment included
    where: list[str] = field(default_factory=list)


def key(line: str) -> str:
    """The example without a trailing ``# comment`` and with single spaces: the tables' key."""
    return " ".join(re.sub(r"\s+#\s.*$", "", line).split())


_HELP_COMMAND = re.compile(r"(?:^|:\s+)((?:python -m kohya_orchestrator|kohya-orch)(?:\s.*)?)$")


def _help_parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield "--help", _build_parser()
    for verb in VERBS:
        top = _build_parser(verb)
        verbs = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
        todo = [(verb, verbs.choices[verb])]
        while todo:
            name, parser = todo.pop(0)
            yield f"{name} --help", parser
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    todo += [(f"{name} {n}", p) for n, p in action.choices.items()]


def _help_examples() -> Iterator[tuple[str, str]]:
    for where, parser in _help_parsers():
        for line in parser.format_help().splitlines():
            text = line.strip()
            match = _HELP_COMMAND.search(text)
            if match and not text.startswith("usage:"):
                yield where, match.group(1)


_SHELL_FENCES = {"", "bash", "sh", "shell", "console"}


def _markdown_examples(path: Path) -> Iterator[tuple[str, str]]:
    fence: str | None = None
    pending, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = raw.strip()
        if text.startswith("```"):
            fence = text[3:].strip() if fence is None else None
            continue
        if fence not in _SHELL_FENCES:
            continue
        text = text.removeprefix("$ ")
        if not pending:
            start = number
        pending = f"{pending} {text}" if pending else text
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        for part in re.split(r"\s+&&\s+", pending):
            if part.startswith(COMMANDS):
                yield f"{path.relative_to(REPO)}:{start}", part
        pending = ""


def _toml_comment_examples(path: Path) -> Iterator[tuple[str, str]]:
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = raw.lstrip("#").strip()
        if raw.startswith("#") and text.startswith(COMMANDS):
            yield f"{path.relative_to(REPO)}:{number}", text


def collect() -> dict[str, Example]:
    """Every example, keyed by ``key(line)``, with every place it appears."""
    found: dict[str, Example] = {}
    sources: list[Iterator[tuple[str, str]]] = [_help_examples()]
    sources += [
        _markdown_examples(p) for p in [REPO / "README.md", *sorted(REPO.glob("docs/*.md"))]
    ]
    sources += [_toml_comment_examples(p) for p in sorted(REPO.glob("docs/examples/*.toml"))]
    for source in sources:
        for where, line in source:
            found.setdefault(key(line), Example(line)).where.append(where)
    return found


def not_run_reason(name: str) -> str | None:
    """Why an example is not run (NOT_RUN, NOT_RUN_VERBS), or None."""
    words = name.removeprefix(PY).removeprefix("kohya-orch").split()
    return NOT_RUN.get(name) or (NOT_RUN_VERBS.get(words[0]) if words else None)


EXAMPLES = collect()
TO_RUN = sorted(k for k in EXAMPLES if not_run_reason(k) is None)

# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class Outcome:
    returncode: int
    output: str
    setup_failures: list[str]


# A Python that has imported the whole package forks one child per `python -m kohya_orchestrator`
# line, so an example costs milliseconds instead of half a second of start-up and imports. The
# child takes over the caller's stdin/stdout/stderr (passed over a Unix socket), working folder,
# environment and argv, and runs cli.main as kohya_orchestrator/__main__.py does; its exit code
# becomes the caller's. The caller is the sandbox's `python`, started by bash, so quoting,
# expansion and redirections stay the shell's.
_SERVER = """
import importlib, json, os, pkgutil, signal, socket, sys, traceback
import kohya_orchestrator
from kohya_orchestrator.cli.main import main

for module in pkgutil.walk_packages(kohya_orchestrator.__path__, "kohya_orchestrator."):
    try:  # warm-up only: a module that cannot be imported fails in the example that needs it
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    except Exception:
        pass


def read(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError("the caller went away")
        data += chunk
    return data


def child(conn, fds, request):
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    code = 99
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = request["argv"]
        try:
            code = main()
        except SystemExit as exc:
            if isinstance(exc.code, str):
                sys.stderr.write(exc.code + "\\n")
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        conn.sendall(str(code).encode())
        os._exit(0)


signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the children reap themselves
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1])
server.listen(64)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        head, fds, _flags, _address = socket.recv_fds(conn, 16, 3)
        head += read(conn, 16 - len(head))
        request = json.loads(read(conn, int(head)))
        if os.fork() == 0:
            server.close()
            child(conn, fds, request)
        for fd in fds:
            os.close(fd)
"""

_CLIENT = """
import json, os, socket, sys

address, argv = sys.argv[1], sys.argv[2:]
payload = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
    conn.connect(address)
    socket.send_fds(conn, [b"%016d" % len(payload)], [0, 1, 2])
    conn.sendall(payload)
    reply = b""
    while chunk := conn.recv(64):
        reply += chunk
sys.exit(int(reply) if reply else 99)
"""


def _console_script() -> str:
    """What ``pip install .`` writes for [project.scripts] kohya-orch (POSIX, any path length)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    module, func = project["scripts"]["kohya-orch"].split(":")
    # pip's trampoline for long interpreter paths: sh runs the exec line, Python sees a string
    trampoline = "'''exec' " + f'"{sys.executable}" "$0" "$@"' + "\n' '''\n"
    body = (
        "import re\n"
        "import sys\n"
        f"from {module} import {func}\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        f"    sys.exit({func}())\n"
    )
    return "#!/bin/sh\n" + trampoline + body


def _clean_env(home: Path, path_first: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KOHYA_", "XDG_", "PYTHON"))
        and k not in ("CONDA_PREFIX", "USERPROFILE", "HOME")
    }
    env.update(
        HOME=str(home),
        PATH=f"{path_first}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(REPO),
        HF_HUB_OFFLINE="1",
        KOHYA_ORCH_DEBUG="1",  # an unexpected error (exit 3) prints its traceback
    )
    return env


def make_sandbox(root: Path, server: Path | None = None) -> dict[str, str]:
    """A fresh repository-root look-alike in ``root``; returns the environment to run in.

    With ``server`` (the fork server's socket), ``python -m kohya_orchestrator ...`` runs in a
    child of it; any other use of ``python`` is this interpreter.
    """
    prose = shutil.ignore_patterns("*.md", "*.ipynb")  # no example reads them
    shutil.copytree(REPO / "docs", root / "docs", ignore=prose)
    shutil.copytree(REPO / "presets", root / "presets")
    (root / "home").mkdir()
    bin_dir = root / ".bin"
    bin_dir.mkdir()
    python = f'exec "{sys.executable}" "$@"\n'
    if server is not None:
        (bin_dir / "client.py").write_text(_CLIENT)
        client = f'"{sys.executable}" -I -S "{bin_dir / "client.py"}" "{server}"'
        main_py = REPO / "kohya_orchestrator" / "__main__.py"
        python = (
            'if [ "$1" = "-m" ] && [ "$2" = "kohya_orchestrator" ]; then\n'
            f'  shift 2\n  exec {client} "{main_py}" "$@"\nfi\n{python}'
        )
    (bin_dir / "python").write_text(f"#!/bin/sh\n{python}")
    (bin_dir / "kohya-orch").write_text(_console_script())
    for tool in ("python", "kohya-orch"):
        (bin_dir / tool).chmod(0o755)
    return _clean_env(root / "home", bin_dir)


def _bash(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        check=False,
    )


def run_example(name: str, root: Path, server: Path | None) -> Outcome:
    root.mkdir(parents=True)
    env = make_sandbox(root, server)
    setup_failures = []
    for line in SETUP.get(name, ()):
        proc = _bash(line, root, env)
        if proc.returncode != 0 or "Traceback" in proc.stdout + proc.stderr:
            setup_failures.append(f"{line}\n  exit {proc.returncode}: {proc.stderr[-2000:]}")
    proc = _bash(EXAMPLES[name].line, root, env)
    return Outcome(proc.returncode, f"{proc.stdout}\n{proc.stderr}", setup_failures)


@pytest.fixture(scope="module")
def fork_server() -> Iterator[Path | None]:
    """The fork server's socket; None without fork (then every example starts Python)."""
    if not (hasattr(os, "fork") and hasattr(socket, "send_fds")):  # pragma: no cover
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="ko-examples-"))  # short: socket paths are limited
    address = folder / "server.sock"
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(address)],
        cwd=folder,
        env=_clean_env(folder, folder),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline() != "ready\n":
            pytest.fail(f"the fork server did not start: {server.communicate(timeout=60)[1]}")
        yield address
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the server and any child still running
        server.communicate()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, fork_server: Path | None
) -> dict[str, Outcome]:
    if shutil.which("bash") is None:  # pragma: no cover
        pytest.skip("the examples are shell lines: bash is needed to run them as written")
    base = tmp_path_factory.mktemp("examples")
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        futures = {
            name: pool.submit(run_example, name, base / f"{i:03d}", fork_server)
            for i, name in enumerate(TO_RUN)
        }
        return {name: future.result() for name, future in futures.items()}


# ---------------------------------------------------------------------------------------------
# Tests


def test_enough_examples_are_collected_from_every_source() -> None:
    places = [w for e in EXAMPLES.values() for w in e.where]
    assert len(EXAMPLES) >= 90, sorted(EXAMPLES)
    assert len(TO_RUN) >= 80
    assert len([k for k in TO_RUN if k not in EXPECTED_FAILURES]) >= 40
    # every verb's --help has examples, and so has every doc that shows commands
    for verb in VERBS:
        assert any(w == f"{verb} --help" for w in places), verb
    for doc in ("README.md", "docs/presets.md", "docs/datasets.md", "docs/queue.md"):
        assert any(w.startswith(f"{doc}:") for w in places), doc
    assert f"{PY} preset oilpaint" in EXAMPLES  # README's first line, after `pip install . &&`
    assert any(k.startswith("kohya-orch ") for k in EXAMPLES)


def test_the_tables_name_only_collected_examples() -> None:
    for table in (EXPECTED_FAILURES, NOT_RUN, SETUP):
        stale = sorted(set(table) - set(EXAMPLES))
        assert not stale, f"no longer an example anywhere (remove or update): {stale}"
    for verb in NOT_RUN_VERBS:
        assert any(not_run_reason(k) == NOT_RUN_VERBS[verb] for k in EXAMPLES), verb
    for name in [*EXPECTED_FAILURES, *SETUP]:
        assert name in TO_RUN, f"listed to run but not run: {name}"
    for name, (code, reason) in EXPECTED_FAILURES.items():
        assert code != 0 and reason, name


@pytest.mark.parametrize("name", TO_RUN)
def test_example_runs_as_written(name: str, outcomes: dict[str, Outcome]) -> None:
    example, outcome = EXAMPLES[name], outcomes[name]
    context = f"{example.line}\n  (from {', '.join(example.where)})\n{outcome.output[-3000:]}"
    assert not outcome.setup_failures, "\n".join(outcome.setup_failures)
    assert "Traceback" not in outcome.output, context
    expected, _reason = EXPECTED_FAILURES.get(name, (0, ""))
    assert outcome.returncode == expected, context
    if expected:
        assert outcome.output.strip(), f"no message: {context}"


# ---------------------------------------------------------------------------------------------
# `kohya-orch` and `python -m kohya_orchestrator`


def test_usage_names_the_command_that_was_typed(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("the console script stand-in is a POSIX script")
    env = make_sandbox(tmp_path)
    script = _bash("kohya-orch --help && kohya-orch preset --help", tmp_path, env)
    module = _bash("python -m kohya_orchestrator queue add --help", tmp_path, env)
    assert script.returncode == 0 and module.returncode == 0, script.stderr + module.stderr
    assert script.stdout.startswith("usage: kohya-orch [-h]")
    assert "usage: kohya-orch preset [-h]" in script.stdout
    assert "kohya-orch is the same command" in script.stdout
    assert module.stdout.startswith("usage: python -m kohya_orchestrator queue add [-h]")


@pytest.mark.parametrize(
    ("argv0", "prog"),
    [
        ("/home/me/.local/bin/kohya-orch", "kohya-orch"),
        ("C:\\Python\\Scripts\\kohya-orch.exe", "kohya-orch"),
        ("/repo/kohya_orchestrator/__main__.py", "python -m kohya_orchestrator"),
        ("", "python -m kohya_orchestrator"),
    ],
)
def test_prog_follows_argv0(monkeypatch: pytest.MonkeyPatch, argv0: str, prog: str) -> None:
    monkeypatch.setattr(sys, "argv", [argv0])
    top = _build_parser("preset")
    verbs = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    assert top.prog == prog
    assert verbs.choices["preset"].format_usage().startswith(f"usage: {prog} preset [-h]")


def test_example_data_is_the_demo_dataset(tmp_path: Path) -> None:
    """docs/examples/img is what kohya_orchestrator/datasets/demo.py makes: the same files, captions and
    image sizes (pixels may differ between Pillow versions). Regenerate it with
    ``ensure_demo_dataset(Path("docs/examples"))``."""
    from PIL import Image

    from kohya_orchestrator.datasets.demo import DEMO_FOLDER, ensure_demo_dataset

    made = ensure_demo_dataset(tmp_path) / DEMO_FOLDER
    shipped = REPO / "docs" / "examples" / "img" / DEMO_FOLDER
    assert sorted(p.name for p in shipped.iterdir()) == sorted(p.name for p in made.iterdir())
    for path in made.iterdir():
        if path.suffix == ".png":
            with Image.open(path) as a, Image.open(shipped / path.name) as b:
                assert (a.size, a.mode) == (b.size, b.mode), path.name
        else:
            assert (shipped / path.name).read_bytes() == path.read_bytes(), path.name
