"""Run directories assembled from the real captures in tests/fixtures/sd-scripts/.

``prodigy_run`` is the e_prodigy run as the orchestrator would have left it: events.jsonl parsed
from its real console log (plus the sample-image and run-finished events the runner adds), the real
sample images and TensorBoard event file, and checkpoint files carrying the run's real metadata
(lora-metadata/e_prodigy.json; the tensor data is a zero-filled stand-in of the real size).
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

import pytest

from kohya_orchestrator.events import (
    RunFinished,
    RunStatus,
    SampleImageSaved,
    SamplingStarted,
    dump_events_jsonl,
    parse_log,
    parse_sample_filename,
)

RUN_ID = "20261124-215350-e_prodigy"  # 9 s before the TensorBoard folder's stamp


def write_safetensors(
    path: Path, metadata: dict[str, str], size: int | None = None, tensors: int = 1
) -> Path:
    """A valid safetensors file: real metadata, F16 zero tensors, padded to ``size`` bytes."""
    header: dict[str, object] = {"__metadata__": metadata}
    n_bytes = 2 * 16
    for i in range(tensors):
        header[f"lora_unet_block_{i}.lora_down.weight"] = {
            "dtype": "F16",
            "shape": [4, 4],
            "data_offsets": [i * n_bytes, (i + 1) * n_bytes],
        }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    data_len = tensors * n_bytes
    if size is not None:
        data_len = max(data_len, size - 8 - len(raw))
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.truncate(8 + len(raw) + data_len)
    return path


def build_prodigy_run(captures: Path, root: Path, *, tensorboard: bool = True) -> Path:
    """The e_prodigy run directory under ``root`` (``captures``: tests/fixtures/sd-scripts)."""
    out = root / "out" / "e_prodigy"
    (out / "sample").mkdir(parents=True)
    for png in sorted((captures / "run-outputs" / "e_prodigy" / "sample").glob("*.png")):
        shutil.copy(png, out / "sample" / png.name)
    meta = json.loads((captures / "lora-metadata" / "e_prodigy.json").read_text())
    for key, info in meta.items():
        write_safetensors(out / Path(key).name, info["metadata"], size=info["file_size_bytes"])

    text = (captures / "sd-scripts-logs" / "e_prodigy" / "combined").read_bytes().decode("utf-8")
    events = []
    samples = sorted(p.name for p in (out / "sample").iterdir())
    for ev in parse_log(text):
        events.append(ev)
        if isinstance(ev, SamplingStarted):
            for name in samples:
                epoch, step, index = parse_sample_filename(name)
                if epoch == ev.epoch:
                    events.append(
                        SampleImageSaved(
                            seq=0,
                            path=f"/srv/kohya/out/e_prodigy/sample/{name}",
                            epoch=epoch,
                            step=step,
                            prompt_index=index,
                        )
                    )
    events.append(RunFinished(seq=0, status=RunStatus.SUCCEEDED, returncode=0, duration_s=41.5))
    events = [e.model_copy(update={"seq": i}) for i, e in enumerate(events)]

    run = root / "runs" / RUN_ID
    run.mkdir(parents=True)
    training = {"output_dir": str(out), "output_name": "e_prodigy"}
    if tensorboard:
        training["logging_dir"] = str(captures / "run-outputs" / "e_prodigy" / "tb")
        training["log_prefix"] = "e_prodigy"
    job = {
        "name": "e_prodigy",
        "network": {"algo": "lora", "network_dim": 4, "network_alpha": 1.0},
        "optimizer": {"type": "Prodigy", "learning_rate": 1.0},
        "training": training,
        "sampling": {"prompts": [{"prompt": "oilpaint style, a red circle"}]},
    }
    (run / "job.json").write_text(json.dumps(job, indent=2))
    (run / "events.jsonl").write_text(dump_events_jsonl(events))
    (run / "status").write_text("succeeded\n")
    (run / "rc").write_text("0\n")
    return run


@pytest.fixture
def prodigy_run(captures_dir: Path, tmp_path: Path) -> Path:
    return build_prodigy_run(captures_dir, tmp_path)


@pytest.fixture
def loras(captures_dir: Path) -> Path:
    return captures_dir / "loras"


@pytest.fixture
def lora_metadata(captures_dir: Path) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for path in sorted((captures_dir / "lora-metadata").glob("*.json")):
        for key, info in json.loads(path.read_text()).items():
            out[Path(key).name] = info
    return out


@pytest.fixture
def no_tensorboard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import tensorboard...` fail as when the optional extra is not installed."""
    for name in list(sys.modules):
        if name == "tensorboard" or name.startswith("tensorboard."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
