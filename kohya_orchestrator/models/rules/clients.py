"""Rules on where the trained file will be used: files some clients load wrongly or not at all.

The verdicts come from :mod:`kohya_orchestrator.models.clients` (measured with ComfyUI, Forge and
AUTOMATIC1111's own loading code; docs/networks.md).
"""

from __future__ import annotations

from collections.abc import Iterator

from ...errors import Problem
from ..clients import CLIENTS, client_row
from ..network import IA3Network, _Factorised
from .base import JobView

__all__ = ["warn_clients"]

_NAMES = {"ComfyUI": "ComfyUI", "Forge": "Forge", "A1111": "AUTOMATIC1111 (A1111)"}


def _verdicts(row_support: tuple[str, ...], *wanted: str) -> list[str]:
    return [c for c, s in zip(CLIENTS, row_support, strict=True) if s in wanted]


def warn_clients(job: JobView) -> Iterator[Problem]:
    n = job.network
    if isinstance(n, IA3Network):
        row = client_row("ia3")
        yield Problem(
            "network.algo",
            "IA3 files do nothing in ComfyUI, Forge and reForge, silently: ComfyUI has no IA3 "
            "loader (0 weights patched), Forge drops the whole file ('LoRA version mismatch'); "
            f"only {' and '.join(_NAMES[c] for c in _verdicts(row.support, 'full'))} applies them",
            f"for ComfyUI or Forge users train {row.instead} instead",
        )
    if isinstance(n, _Factorised) and n.dora_wd and n.wd_on_output:
        yield Problem(
            "network.wd_on_output",
            "DoRA with wd_on_output = true: AUTOMATIC1111 1.10 applies such files 6-11x off "
            "(no error), ComfyUI and Forge 1-5% off",
            "leave wd_on_output unset (false): exact in all three",
        )
