"""Stand-in for sd-scripts' train_network.py in the queue tests (no torch, not proof of training).

It reads the rendered ``--config_file`` to learn which job it is (``output_name``), looks up what
that job should do in ``$QUEUE_FAKE_DIR/plan.json``, appends one line per start to
``$QUEUE_FAKE_DIR/calls.jsonl`` (its pid, ``CUDA_VISIBLE_DEVICES``, the memory switches it got),
then hands over, in this same process, to the shared stand-in
tests/fixtures/fake_sd_scripts/train_network.py, replaying a real capture in which the capture's
output name is replaced by this job's (so the checkpoints it "saves" carry this job's name).

plan.json maps an output_name (or "*") to::

    {"replay": ".../chunks.jsonl", "rename": "a_lora_accelerate", "exit_code": 0,
     "args": "--speed 100",
     "unless": {"key": "cache_latents", "replay": ".../oom/chunks.jsonl", "exit_code": 1}}

``unless``: when the config does not set ``key`` to true, replay that capture instead (a job that
runs out of memory until the queue retries it with a lighter plan).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SHARED_FAKE = (
    Path(__file__).resolve().parents[2] / "fixtures" / "fake_sd_scripts" / "train_network.py"
)


def _flat_config(argv: list[str]) -> dict[str, object]:
    path = argv[argv.index("--config_file") + 1]
    with open(path, "rb") as f:
        data = tomllib.load(f)
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def main(argv: list[str]) -> int:
    config = _flat_config(argv)
    name = str(config["output_name"])
    out_dir = str(config["output_dir"])
    fake_dir = Path(os.environ["QUEUE_FAKE_DIR"])
    plan = json.loads((fake_dir / "plan.json").read_text(encoding="utf-8"))
    step = dict(plan.get(name, plan.get("*")))
    unless = step.pop("unless", None)
    if unless and config.get(unless["key"]) is not True:
        step.update({k: v for k, v in unless.items() if k != "key"})
    with open(fake_dir / "calls.jsonl", "a", encoding="utf-8") as f:
        f.write(
            json.dumps(
                {
                    "name": name,
                    "pid": os.getpid(),
                    "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                    "cache_latents": config.get("cache_latents") is True,
                    "resume": config.get("resume"),
                    "replay": step["replay"],
                    "t": time.time(),
                }
            )
            + "\n"
        )
    text = Path(step["replay"]).read_text(encoding="utf-8")
    if step.get("rename"):
        text = text.replace(step["rename"], name)
    replay = fake_dir / "replays" / f"{name}-{os.getpid()}.jsonl"
    replay.parent.mkdir(exist_ok=True)
    replay.write_text(text, encoding="utf-8")
    os.environ["FAKE_SD_SCRIPTS_OUTPUT_DIR"] = out_dir
    os.environ["FAKE_SD_SCRIPTS_ARGS"] = (
        f"--speed 0 --exit-code {int(step.get('exit_code', 0))} {step.get('args', '')}"
    )
    spec = importlib.util.spec_from_file_location("shared_fake_train_network", SHARED_FAKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main([*argv, "--replay", str(replay)]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
