"""A run's TensorBoard logs: find the folder sd-scripts wrote, read its scalar series.

sd-scripts logs ``loss/current``, ``loss/average`` and ``loss/epoch_average`` at full precision
when the job logs to TensorBoard. They are read with the ``tensorboard`` package's event
accumulator, an optional extra (``pip install 'kohya-orchestrator[tensorboard]'``).
"""

from __future__ import annotations

import contextlib
import importlib
import re
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

__all__ = [
    "TENSORBOARD_HINT",
    "TensorBoardMissing",
    "find_tensorboard_dir",
    "read_tensorboard_scalars",
]

TENSORBOARD_HINT = "pip install 'kohya-orchestrator[tensorboard]'"

_TB_STAMP = re.compile(r"(\d{14})$")  # {log_prefix}{YYYYmmddHHMMSS} (train_util.py:5437-5449)


class TensorBoardMissing(ImportError):
    """The optional ``tensorboard`` package is not installed."""


def _event_accumulator() -> ModuleType:
    try:
        with warnings.catch_warnings():
            # tensorboard's import chain may warn (protobuf, pkg_resources); not our business.
            warnings.simplefilter("ignore")
            return importlib.import_module("tensorboard.backend.event_processing.event_accumulator")
    except ImportError as exc:
        raise TensorBoardMissing(
            f"the tensorboard package is not installed ({TENSORBOARD_HINT})"
        ) from exc


def read_tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in a folder of TensorBoard event files.

    Args:
        folder: The folder holding ``events.out.tfevents.*`` (sd-scripts:
            ``<logging_dir>/<log_prefix><YYYYmmddHHMMSS>/network_train``).

    Returns:
        ``tag -> [(step, value), ...]`` sorted by step (the last value wins for a repeated step),
        e.g. ``loss/current``, ``loss/average``, ``loss/epoch_average`` (step = epoch), ``lr/unet``.

    Raises:
        TensorBoardMissing: the optional ``tensorboard`` package is not installed.
    """
    ea = _event_accumulator()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0})
        acc.Reload()
    out: dict[str, list[tuple[int, float]]] = {}
    for tag in acc.Tags().get("scalars", []):
        by_step = {int(e.step): float(e.value) for e in acc.Scalars(tag)}
        out[str(tag)] = sorted(by_step.items())
    return out


def find_tensorboard_dir(
    logging_dir: Path, log_prefix: str | None = None, started: datetime | None = None
) -> Path | None:
    """The TensorBoard folder of one run under sd-scripts' ``logging_dir``.

    sd-scripts writes to ``<logging_dir>/<log_prefix><YYYYmmddHHMMSS>/<tracker>/``; several runs
    may share ``logging_dir``. The folder chosen is the first one stamped at or after ``started``
    (less a minute of clock slack), else the newest.

    Args:
        logging_dir: The job's ``training.logging_dir``.
        log_prefix: The job's ``training.log_prefix``.
        started: When the run started (from its run directory name).

    Returns:
        The folder holding event files, or None.
    """
    if not logging_dir.is_dir():
        return None
    prefix = log_prefix or ""
    stamped: list[tuple[datetime, Path]] = []
    for child in logging_dir.iterdir():
        m = _TB_STAMP.search(child.name)
        if not (child.is_dir() and m and child.name[: m.start()] == prefix):
            continue
        with contextlib.suppress(ValueError):
            stamped.append((datetime.strptime(m[1], "%Y%m%d%H%M%S"), child))
    stamped.sort()
    chosen: Path | None = None
    if started is not None:
        after = [p for t, p in stamped if t >= started - timedelta(minutes=1)]
        chosen = after[0] if after else None
    if chosen is None and stamped:
        chosen = stamped[-1][1]
    if chosen is None:
        return None
    folders = sorted({f.parent for f in chosen.rglob("events.out.tfevents.*") if f.is_file()})
    if not folders:
        return None
    # the tracker folder is network_train unless --log_tracker_name changed it
    return next((f for f in folders if f.name == "network_train"), folders[0])
