"""docs/notebook.ipynb runs top to bottom in a real Jupyter kernel, headless, without training."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebook.ipynb"


def _text(cell: dict) -> str:
    out = []
    for output in cell.get("outputs", []):
        out.append(output.get("text", ""))
        out.append(str(output.get("data", {}).get("text/plain", "")))
        if output.get("output_type") == "error":
            out.append("\n".join(output.get("traceback", [])))
    return "".join(out)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_notebook_runs_headless_without_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # Never train in the fast suite: no install, and the demo dataset in a throwaway home.
    monkeypatch.delenv("KOHYA_SD_SCRIPTS", raising=False)
    monkeypatch.delenv("KOHYA_MODEL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / ".ipython"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    text = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
    assert "6 images x 10 repeats / batch 2 = 30 steps per epoch" in text  # the arithmetic
    assert "[network_arguments]" in text and "[[datasets]]" in text  # the rendered files
    assert "total optimization steps: 600" in text  # the plan
    assert "no kohya install" in text and "would train 600 steps" in text
    assert not (tmp_path / "runs").exists()  # nothing was started
