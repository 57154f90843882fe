"""Several runs (or LoRA files) side by side, as ``runs compare`` shows them.

A run is headed by its run id (runs of one job share its name), a file by its name.

Each row holds the algorithm, dim/alpha, optimizer, LR, steps, time, loss and file size of one run
directory (from its outputs and its final checkpoint's metadata) or of one LoRA file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from .collect import _read_json, _section, run_outputs
from .lora import LoraInfo, inspect_lora
from .view import _Frozen

__all__ = ["ComparisonRow", "RunComparison", "compare_runs"]


class ComparisonRow(_Frozen):
    """One run (or one LoRA file) in a comparison."""

    @property
    def label(self) -> str:
        """What heads its column: the run id, else (a file) the name."""
        return self.run_id or self.name

    source: Path = Field(description="The run directory or LoRA file compared.")
    name: str = Field(description="Job name, or the file name.")
    run_id: str | None = Field(
        default=None, description="The run directory's name (None for a LoRA file)."
    )
    status: str | None = Field(default=None, description="Run status.")
    algo: str | None = Field(default=None, description="Network algorithm.")
    network_dim: int | None = Field(default=None, description="Rank (None: unused by the algo).")
    network_alpha: float | None = Field(default=None, description="Alpha (None: unused).")
    optimizer: str | None = Field(default=None, description="Optimizer class name.")
    learning_rate: float | None = Field(default=None, description="Learning rate.")
    steps: int | None = Field(default=None, description="Steps trained.")
    epochs: int | None = Field(default=None, description="Epochs trained.")
    time_s: float | None = Field(default=None, description="Training wall time.")
    final_loss: float | None = Field(default=None, description="Last average loss.")
    epoch_loss: float | None = Field(default=None, description="Last epoch's average loss.")
    file: Path | None = Field(default=None, description="The final (or latest) LoRA file.")
    file_size_bytes: int | None = Field(default=None, description="Its size.")


class RunComparison(_Frozen):
    """Several runs side by side (e.g. the seed's iA3 vs LoHa vs LoKr comparison)."""

    rows: list[ComparisonRow]


def compare_runs(sources: Sequence[Path | str]) -> RunComparison:
    """Compare runs: algorithm, dim/alpha, optimizer, LR, steps, time, loss and file size.

    Each source is a run directory (its final checkpoint's metadata is read when the file is
    there, else its job.json) or a LoRA ``.safetensors`` file (metadata only, no loss).

    Args:
        sources: Run directories and/or LoRA files.

    Returns:
        One row per source, in the given order.
    """
    rows: list[ComparisonRow] = []
    for src in sources:
        path = Path(src)
        if path.is_file():
            file_info = inspect_lora(path)
            rows.append(_row_from_info(path, file_info.output_name or path.stem, file_info))
            continue
        out = run_outputs(path)
        final = out.final_checkpoint
        info: LoraInfo | None = None
        if final is not None and final.path.suffix == ".safetensors":
            with contextlib.suppress(Exception):
                info = inspect_lora(final.path)
        row = _row_from_info(path, out.job_name or out.run_id, info)
        if info is None:
            row = row.model_copy(update=_from_job(_read_json(path / "job.json")))
        last_step = out.loss[-1].step if out.loss else None
        update: dict[str, Any] = {
            "run_id": out.run_id,
            "status": out.status,
            "final_loss": out.final_loss,
            "epoch_loss": out.last_epoch_loss,
            "time_s": out.duration_s if out.duration_s is not None else row.time_s,
            "steps": row.steps if row.steps is not None else last_step,
            "epochs": row.epochs if row.epochs is not None else out.epochs,
        }
        if final is not None:
            update["file"], update["file_size_bytes"] = final.path, final.size_bytes
        rows.append(row.model_copy(update=update))
    return RunComparison(rows=rows)


def _row_from_info(source: Path, name: str, info: LoraInfo | None) -> ComparisonRow:
    if info is None:
        return ComparisonRow(source=source, name=name)
    uses = info.uses_dim_alpha
    return ComparisonRow(
        source=source,
        name=name,
        algo=info.algo,
        network_dim=info.network_dim if uses else None,
        network_alpha=info.network_alpha if uses else None,
        optimizer=info.optimizer_name,
        learning_rate=info.unet_lr or info.learning_rate,
        steps=info.steps,
        epochs=info.epoch,
        time_s=info.training_time_s,
        file=info.path,
        file_size_bytes=info.file_size_bytes,
    )


def _from_job(job: dict[str, Any]) -> dict[str, Any]:
    network, optimizer = _section(job, "network"), _section(job, "optimizer")
    algo = network.get("algo") if isinstance(network.get("algo"), str) else None
    uses = algo not in ("ia3", "full")
    return {
        "algo": algo,
        "network_dim": network.get("network_dim") if uses else None,
        "network_alpha": network.get("network_alpha") if uses else None,
        "optimizer": optimizer.get("type") if isinstance(optimizer.get("type"), str) else None,
        "learning_rate": optimizer.get("unet_lr") or optimizer.get("learning_rate"),
    }
