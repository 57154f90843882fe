"""docs/notebook.ipynb runs top to bottom in a real Jupyter kernel, headless.

Without an install it plans and does not train. With the stand-in trainer (which replays a real
sd-scripts capture: process control and display, never proof that training works) and, in e2e,
with the real sd-scripts lab, it trains and its cell shows the live progress bar.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_runs import FAKE_SD_SCRIPTS

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebook.ipynb"
BAR = re.compile(r"^step (\d+)/(\d+) \((\d+)%\)")


def _text(cell: dict) -> str:
    out = []
    for output in cell.get("outputs", []):
        out.append(output.get("text", ""))
        out.append(str(output.get("data", {}).get("text/plain", "")))
        if output.get("output_type") == "error":
            out.append("\n".join(output.get("traceback", [])))
    return "".join(out)


def _execute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, timeout: int, params: str = ""
) -> Any:
    """Run the notebook in a fresh kernel in ``tmp_path``; ``params`` goes after its parameters."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / ".ipython"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    if params:  # the way papermill injects parameters
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        cell = nbformat.v4.new_code_cell(params, metadata={"tags": ["injected-parameters"]})
        nb.cells.insert(at + 1, cell)
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return nb


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_notebook_runs_headless_without_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Never train in the fast suite: no install, and the demo dataset in a throwaway home.
    monkeypatch.delenv("KOHYA_SD_SCRIPTS", raising=False)
    monkeypatch.delenv("KOHYA_MODEL", raising=False)
    nb = _execute(tmp_path, monkeypatch, timeout=120)
    text = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
    assert "6 images x 10 repeats / batch 2 = 30 steps per epoch" in text  # the arithmetic
    assert "[network_arguments]" in text and "[[datasets]]" in text  # the rendered files
    assert "total optimization steps: 600" in text  # the plan
    assert "no kohya install" in text and "would train 600 steps" in text
    assert not (tmp_path / "runs").exists()  # nothing was started
    assert not [
        o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "display_data"
    ]


def _train_cell(nb: Any) -> Any:
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and "run = start(" in c.source]
    return cell


def _displays(cell: Any) -> list[dict[str, str]]:
    """The cell's display outputs as they ended (nbclient applies update_display_data)."""
    return [o.data for o in cell.outputs if o.output_type == "display_data"]


def _bar(cell: Any) -> tuple[str, str]:
    bars = [d for d in _displays(cell) if BAR.match(d.get("text/plain", ""))]
    assert len(bars) == 1, [o for o in cell.outputs]
    return bars[0]["text/plain"], bars[0]["text/html"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_notebook_trains_with_the_stand_in_and_shows_a_live_bar(
    captures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stand-in trainer replaying a real LoHa run: the display, not proof of training."""
    # The install: sd-scripts' layout around the stand-in, run by this Python ($KOHYA_PYTHON),
    # with the three things the launch needs of the kohya venv: accelerate's launcher (a stand-in
    # that runs the script), lycoris-lora's version (the LoHa check reads it) and a prodigyopt
    # module (the preflight checks that the job's optimizer can be imported).
    sd = tmp_path / "sd-scripts"
    (sd / "library").mkdir(parents=True)
    (sd / "library" / "__init__.py").write_text("", encoding="utf-8")
    shutil.copy(FAKE_SD_SCRIPTS / "train_network.py", sd / "train_network.py")
    stubs = tmp_path / "venv-site"
    (stubs / "accelerate" / "commands").mkdir(parents=True)
    (stubs / "accelerate" / "__init__.py").write_text("", encoding="utf-8")
    (stubs / "accelerate" / "commands" / "__init__.py").write_text("", encoding="utf-8")
    (stubs / "accelerate" / "commands" / "launch.py").write_text(
        "import runpy, sys\n"
        "args = sys.argv[1:]\n"
        "sys.argv = args[next(i for i, a in enumerate(args) if a.endswith('.py')) :]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n",
        encoding="utf-8",
    )
    (stubs / "prodigyopt").mkdir()
    (stubs / "prodigyopt" / "__init__.py").write_text("", encoding="utf-8")
    dist = stubs / "lycoris_lora-4.1.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lycoris-lora\nVersion: 4.1.3\n", encoding="utf-8"
    )
    # The capture, saving under the notebook's output name.
    src = captures_dir / "sd-scripts-logs" / "b_loha_preset" / "chunks.jsonl"
    chunks = tmp_path / "chunks.jsonl"
    rows = [json.loads(x) for x in src.read_text(encoding="utf-8").splitlines() if x.strip()]
    for row in rows:
        row["text"] = row["text"].replace("b_loha_preset", "my_oilpaint")
    chunks.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    monkeypatch.setenv("KOHYA_SD_SCRIPTS", str(sd))
    monkeypatch.setenv("KOHYA_PYTHON", sys.executable)
    monkeypatch.delenv("KOHYA_MODEL", raising=False)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(stubs), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("FAKE_SD_SCRIPTS_REPLAY", str(chunks))
    monkeypatch.setenv("FAKE_SD_SCRIPTS_ARGS", "--speed 20")
    monkeypatch.setenv("FAKE_SD_SCRIPTS_OUTPUT_DIR", str(tmp_path / "output" / "oilpaint"))

    nb = _execute(tmp_path, monkeypatch, timeout=180)
    cell = _train_cell(nb)
    text, markup = _bar(cell)
    match = BAR.match(text)
    assert match is not None and int(match[1]) > 0
    assert text.startswith("step 8/8 (100%) | epoch 2/2 | loss 1.0900 | succeeded in 0:00:")
    assert text.endswith(" | saved my_oilpaint.safetensors")
    assert "step 8/8 (100%)" in markup and "epoch 2/2" in markup and "loss 1.0900" in markup
    displays = _displays(cell)
    messages = displays[displays.index(next(d for d in displays if d["text/plain"] == text)) + 1]
    assert "✓ checkpoint /srv/kohya/out/my_oilpaint/my_oilpaint-000001.safetensors" in (
        messages["text/plain"].splitlines()
    )
    printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    assert "succeeded ['my_oilpaint-000001.safetensors', 'my_oilpaint.safetensors']" in printed
    assert "epoch 1: loss " in printed and "epoch 2: loss 1.0900" in printed
    everything = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
    assert "ipywidgets" not in everything and "no kohya install" not in everything
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.name != "preview"]
    assert (run_dir / "status").read_text(encoding="utf-8").strip() == "succeeded"


@pytest.mark.e2e
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_notebook_trains_on_the_lab_and_shows_a_live_bar(
    e2e_lab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real sd-scripts lab trains the notebook's recipe on CPU, made cheap by parameters."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("KOHYA_SD_SCRIPTS", str(e2e_lab))
    monkeypatch.setenv("KOHYA_MODEL", str(e2e_lab / "models" / "sd15-random-diffusers"))
    shutil.copytree(e2e_lab / "data" / "img", tmp_path / "img")  # the notebook's DATA = img
    cheap = [  # as tests/e2e/test_preset_e2e.py: 64 px, one epoch, CPU settings
        "dataset.resolution=64",
        "dataset.enable_bucket=false",
        "dataset.min_bucket_reso=64",
        "training.max_train_epochs=1",
        'training.mixed_precision="no"',
        'training.attention="none"',
        "training.max_data_loader_n_workers=0",
        "sampling.sample_steps=2",
        f'model.tokenizer_cache_dir="{e2e_lab / "tokcache"}"',
    ]
    nb = _execute(tmp_path, monkeypatch, timeout=1800, params=f"OVERRIDES = {cheap!r}")
    cell = _train_cell(nb)
    text, markup = _bar(cell)
    assert text.startswith("step 4/4 (100%) | epoch 1/1 | loss ")
    assert " | succeeded in " in text and text.endswith(" | saved my_oilpaint.safetensors")
    assert "step 4/4 (100%)" in markup
    displays = _displays(cell)
    messages = displays[displays.index(next(d for d in displays if d["text/plain"] == text)) + 1]
    assert messages["text/plain"].count("✓ sample ") == 2
    everything = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
    assert "ipywidgets" not in everything
    assert (tmp_path / "output" / "oilpaint" / "my_oilpaint.safetensors").stat().st_size > 10_000
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert any("image/png" in o.get("data", {}) for o in last.outputs)  # the samples, inline
