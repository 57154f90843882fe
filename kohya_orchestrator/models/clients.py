"""How a trained network file loads in the programs painters use it in: data, one row per algo.

Measured on real outputs of kohya_orchestrator (SD 1.5) with each client's own loading code:
ComfyUI v0.8.0, Forge (main, 2025-06) and AUTOMATIC1111 1.10.1 (issue 18). Rows marked ``read``
come from reading the client's source, not from a measurement. The table is shown in
docs/networks.md; ``validate`` warns from it (``models/rules/clients.py``) and ``lora inspect``
prints a line from it (:func:`client_line`).

Why a row says what it says:

- IA3: ComfyUI has no IA3 adapter (every key "lora key not loaded", 0 weights patched, the image is
  the base model's); Forge and reForge drop the whole file ("LoRA version mismatch");
  AUTOMATIC1111 applies it exactly.
- DoRA (``dora_wd``): LyCORIS' kohya wrapper defaults ``wd_on_output = True``, which stores
  ``dora_scale`` as [out, 1]; AUTOMATIC1111 1.10 always normalises on the input axis and applies
  such a file 6-11x wrong (up to 367x on one module, no error); ComfyUI and Forge are 1-5% off.
  Files made with ``wd_on_output = False`` (kohya_orchestrator's default) are exact in all three.
- LoRA (with conv dims and the text encoder), LoCon with convs, LoHa, LoKr (decomposed, full
  matrix, factor) load completely and exactly in all three.
- Diag-OFT / BOFT: Forge has no OFT (read); the others were not measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .family import DEFAULT_FAMILY

__all__ = [
    "CLIENTS",
    "CLIENT_TABLE",
    "MEASURED_FAMILIES",
    "ClientRow",
    "Support",
    "client_line",
    "client_row",
    "markdown_table",
]

Support = Literal["full", "approximate", "wrong", "none", "unknown"]
"""``full``: loads completely and exactly; ``approximate``: loads, a few percent off; ``wrong``:
loads without an error but applies the weights far off; ``none``: does nothing (silently or with a
message); ``unknown``: not measured."""

CLIENTS = ("ComfyUI", "Forge", "A1111")
"""The clients, in the order every table lists them."""

MEASURED_FAMILIES: tuple[str, ...] = (DEFAULT_FAMILY,)  # SD 1.5 (family names live in family.py)
"""The families the measurements were made on; other families may differ."""


@dataclass(frozen=True)
class ClientRow:
    """How one kind of file loads in each client."""

    key: str
    """The algo (``lora``, ``locon``, ...) or ``<algo>+dora`` for a DoRA file."""
    label: str
    """What the row covers, for people."""
    support: tuple[Support, Support, Support]
    """One verdict per client, in :data:`CLIENTS` order."""
    notes: tuple[str, str, str]
    """Why, per client ("" when there is nothing to add)."""
    instead: str | None = None
    """What to choose for the clients that do not load it fully."""
    basis: Literal["measured", "read", "none"] = "measured"
    """How the verdict was reached: a measurement, reading the client's source, or neither."""

    def for_client(self, client: str) -> tuple[Support, str]:
        """The verdict and note of one client (a name in :data:`CLIENTS`)."""
        i = CLIENTS.index(client)
        return self.support[i], self.notes[i]


_EXACT: tuple[Support, Support, Support] = ("full", "full", "full")
_NO_NOTES = ("", "", "")
_DORA_NOTE = "dora_scale is [out, 1]"

CLIENT_TABLE: tuple[ClientRow, ...] = (
    ClientRow("lora", "LoRA (also with conv_dim and the text encoder)", _EXACT, _NO_NOTES),
    ClientRow("locon", "LoCon (also with convs)", _EXACT, _NO_NOTES),
    ClientRow("loha", "LoHa", _EXACT, _NO_NOTES),
    ClientRow("lokr", "LoKr (decomposed, full matrix, factor)", _EXACT, _NO_NOTES),
    ClientRow(
        "ia3",
        "IA3",
        ("none", "none", "full"),
        (
            "no IA3 adapter: every key 'lora key not loaded', 0 weights patched, silently",
            "drops the whole file ('LoRA version mismatch'); reForge too",
            "",
        ),
        instead='algo = "lokr" (small files) or "lora"',
    ),
    ClientRow(
        "dora",
        "DoRA (dora_wd = true) with wd_on_output = true",
        ("approximate", "approximate", "wrong"),
        (
            f"1-5% off ({_DORA_NOTE})",
            f"1-5% off ({_DORA_NOTE})",
            "normalises on the input axis: 6-11x off (up to 367x on a module), no error",
        ),
        instead="wd_on_output = false (the default with dora_wd)",
    ),
    ClientRow("dora-input", "DoRA (dora_wd = true) with wd_on_output = false", _EXACT, _NO_NOTES),
    ClientRow(
        "diag-oft",
        "Diag-OFT",
        ("unknown", "none", "unknown"),
        ("not measured", "Forge has no OFT", "not measured"),
        instead='algo = "lokr" or "lora" for Forge',
        basis="read",
    ),
    ClientRow(
        "boft",
        "BOFT",
        ("unknown", "none", "unknown"),
        ("not measured", "Forge has no OFT", "not measured"),
        instead='algo = "lokr" or "lora" for Forge',
        basis="read",
    ),
    ClientRow(
        "dylora",
        "DyLoRA",
        ("unknown", "unknown", "unknown"),
        ("not measured",) * 3,
        basis="none",
    ),
    ClientRow(
        "full",
        "full (native fine-tuning of the layers)",
        ("unknown", "unknown", "unknown"),
        ("not measured",) * 3,
        basis="none",
    ),
)
"""Every row, in the order docs/networks.md shows them."""

_BY_KEY = {row.key: row for row in CLIENT_TABLE}


def client_row(algo: str | None, *, dora_wd: bool = False, wd_on_output: bool = True) -> ClientRow:
    """The row for a file of ``algo`` (``lora``, ``locon``, ...).

    Args:
        algo: The network algorithm (as ``LoraInfo.algo`` or ``network.algo`` names it).
        dora_wd: The file uses DoRA weight decomposition.
        wd_on_output: With ``dora_wd``: the decomposition is on the output axis (LyCORIS' own
            default; kohya_orchestrator renders false).

    Returns:
        The row; an unknown algo gets a row of ``unknown`` verdicts.
    """
    if dora_wd:
        return _BY_KEY["dora" if wd_on_output else "dora-input"]
    if algo is not None and algo in _BY_KEY:
        return _BY_KEY[algo]
    name = algo or "unknown algo"
    return ClientRow(name, name, ("unknown",) * 3, ("not measured",) * 3, basis="none")


_WORDS = {
    "full": "loads",
    "approximate": "approximately",
    "wrong": "WRONG",
    "none": "does NOT load",
    "unknown": "not measured",
}


def client_line(row: ClientRow, family: str | None = None) -> str:
    """One line saying how the file loads in each client, e.g. ``ComfyUI does NOT load, ...``.

    Args:
        row: From :func:`client_row`.
        family: The file's family; outside :data:`MEASURED_FAMILIES` the line says so.
    """
    parts = [f"{c} {_WORDS[s]}" for c, s in zip(CLIENTS, row.support, strict=True)]
    text = ", ".join(parts)
    if row.instead and any(s in ("none", "wrong") for s in row.support):
        text += f"; instead: {row.instead}"
    if row.basis == "measured" and family is not None and family not in MEASURED_FAMILIES:
        text += f" (measured on {', '.join(MEASURED_FAMILIES)}; {family} may differ)"
    elif row.basis == "read":
        text += " (from the clients' source)"
    return text


_CELLS = {
    "full": "loads fully",
    "approximate": "approximately",
    "wrong": "**wrong**",
    "none": "**not at all**",
    "unknown": "not measured",
}


def markdown_table() -> str:
    """The table as Markdown (docs/networks.md shows exactly this; a test keeps them equal)."""
    lines = [
        "| file | " + " | ".join(CLIENTS) + " | instead |",
        "|---|" + "---|" * (len(CLIENTS) + 1),
    ]
    for row in CLIENT_TABLE:
        cells = []
        for support, note in zip(row.support, row.notes, strict=True):
            text = _CELLS[support]
            if note and note != "not measured":
                text += f": {note}"
            cells.append(text)
        basis = " (read)" if row.basis == "read" else ""
        lines.append(f"| {row.label}{basis} | " + " | ".join(cells) + f" | {row.instead or ''} |")
    return "\n".join(lines) + "\n"
