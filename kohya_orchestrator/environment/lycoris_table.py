"""Which LyCORIS algo and preset trains on which lycoris-lora version and model family, as data.

LyCORIS changes under its users: lycoris-lora 3.0 dropped ``ia3`` from its kohya entry
(``KeyError: 'ia3'``); 4.0 added ``TimestepEmbedding`` to the module classes of its ``full``,
``full-lin`` and ``unet-only`` presets while still naming ``time_embedding.linear_1``, so SD1/SD2
networks stop with ``duplicated lora name``; and its built-in ``ia3`` preset names targets that it
matches with ``re.match`` from the start of the module path, so it matches nothing on SD.

:data:`COMPAT_TABLE` is what we know, as data: each row says, for some algos, presets, a
lycoris-lora version range and model families, whether training works and, when it does not,
the message users see and the fix. Every row carries its evidence: ``trained`` (a real
sd-scripts run on CPU; ``tests/e2e/test_networks_e2e.py``), ``network-created`` (LyCORIS built the
network around sd-scripts' own U-Net and CLIP classes, on the meta device; the same test file) or
``read`` (LyCORIS source of the versions named). ``docs/networks.md`` shows the table with its
timings.

:func:`lookup` finds the first matching row, so specific rows come first. A preset file of the
user's own matches no row and gets no verdict. The checks that use the table are in
:mod:`.lycoris`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..models.family import FAMILIES
from ..models.network import LYCORIS_BUILTIN_PRESETS, SHIPPED_PRESET_PREFIX

__all__ = [
    "COMPAT_TABLE",
    "COVERED",
    "COVERED_ALL",
    "FULL_FILE",
    "FULL_WEIGHT_ERROR",
    "IA3_FILE",
    "IA3_KEYERROR",
    "LYCORIS_ALGOS",
    "MEASURED_VERSIONS",
    "RECOMMENDED_VERSION",
    "UPGRADE_COMMAND",
    "V3",
    "V4",
    "CompatRow",
    "Evidence",
    "Outcome",
    "VersionRange",
    "effective_preset",
    "is_covered",
    "lookup",
    "parse_version",
]

Outcome = Literal["trains", "fails"]
Evidence = Literal["trained", "network-created", "read"]

LYCORIS_ALGOS = ("locon", "loha", "lokr", "ia3", "dylora", "full", "diag-oft", "boft")
"""Every algo the product sends to LyCORIS (``lora`` is sd-scripts' own networks.lora)."""
_NOT_IA3 = tuple(a for a in LYCORIS_ALGOS if a != "ia3")
# The U-Net families (SD 1.x/2.x/SDXL): the rows below were measured or read on them. The DiT
# families offer only the algos their profile lists (models/family.py), measured in the DiT rows.
_FAMILIES = tuple(name for name, p in FAMILIES.items() if p.lycoris and p.lora_blocks is not None)
_DIT = tuple(name for name, p in FAMILIES.items() if p.lycoris and p.lora_blocks is None)
_SD12 = tuple(name for name, p in FAMILIES.items() if p.time_embedding_linear)
_FULL_LIKE = ("full", "full-lin", "unet-only")
_SAFE_BUILTINS = tuple(p for p in LYCORIS_BUILTIN_PRESETS if p not in (*_FULL_LIKE, "ia3"))
IA3_FILE = SHIPPED_PRESET_PREFIX + "ia3-sd15"
FULL_FILE = SHIPPED_PRESET_PREFIX + "full-sd15"
"""The shipped preset files that replace LyCORIS' ``ia3`` and ``full`` presets on SD1.5."""

MEASURED_VERSIONS = ("3.4.0", "4.1.3")
"""lycoris-lora versions the e2e tests trained with (sd-scripts 48d368fa, SD1.5, CPU)."""
RECOMMENDED_VERSION = "4.1.3"
"""The version to install when a job needs another one: every algo trains on it."""

UPGRADE_COMMAND = f'pip install "lycoris-lora=={RECOMMENDED_VERSION}"'
"""The fix that installs :data:`RECOMMENDED_VERSION` (callers make ``pip`` exact)."""
_DOWNGRADE = 'pip install "lycoris-lora==3.4.0"'


def parse_version(text: str) -> tuple[int, ...] | None:
    """``(4, 1, 3)`` for ``'4.1.3'``; suffixes (``.post2``, ``rc1``) are dropped; None if unreadable."""
    match = re.match(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    if match is None:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


@dataclass(frozen=True)
class VersionRange:
    """``low`` (inclusive) up to ``high`` (exclusive), compared by release numbers."""

    low: str
    high: str | None = None

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, str):
            return False
        v = parse_version(version)
        low = parse_version(self.low)
        if v is None or low is None or _pad(v) < _pad(low):
            return False
        high = None if self.high is None else parse_version(self.high)
        return high is None or _pad(v) < _pad(high)

    def __str__(self) -> str:
        return f">={self.low}" + (f",<{self.high}" if self.high else "")


def _pad(v: tuple[int, ...]) -> tuple[int, ...]:
    return (*v, 0, 0, 0)[:3]


V3 = VersionRange("3.0.0", "4.0.0")
V4 = VersionRange("4.0.0", "5.0.0")
COVERED = (V3, V4)
COVERED_ALL = VersionRange("3.0.0", "5.0.0")


@dataclass(frozen=True)
class CompatRow:
    """One verdict: these algos with these presets on these versions and families."""

    algos: tuple[str, ...]
    presets: tuple[str, ...]
    """Values of ``preset=`` as the job says them (LyCORIS' default, when none is given, is
    ``full``); shipped files by their ``kohya_orchestrator:`` name; ``*`` for any preset,
    including a file of the user's own."""
    lycoris: VersionRange
    families: tuple[str, ...]
    outcome: Outcome
    evidence: Evidence
    source: str
    """What was run or read, with the measurement (seconds per step on a 2-core CPU at 64 px)."""
    message: str | None = None
    """What the user sees when it fails (the error line of sd-scripts' output)."""
    fix: str | None = None

    def matches(self, algo: str, preset: str, version: str, family: str) -> bool:
        """True when this row speaks about that combination."""
        return (
            algo in self.algos
            and ("*" in self.presets or preset in self.presets)
            and version in self.lycoris
            and family in self.families
        )


_DUPLICATED = "AssertionError: duplicated lora name: lora_unet_time_embedding_linear_1"
_EMPTY = "ValueError: optimizer got an empty parameter list (the preset matches no module)"
IA3_KEYERROR = "KeyError: 'ia3'"
FULL_WEIGHT_ERROR = "AttributeError: 'Conv2d' object has no attribute 'weight'"
"""Error lines of sd-scripts' output for rows whose fix is a LyCORIS version, not a preset."""

COMPAT_TABLE: tuple[CompatRow, ...] = (
    # ---------------------------------------------------------------- presets that match nothing
    CompatRow(
        algos=LYCORIS_ALGOS,
        presets=("ia3",),
        lycoris=V4,
        families=_FAMILIES,
        outcome="fails",
        evidence="trained",
        source="4.1.3: ia3 with preset=ia3 trained on SD1.5 fails (docs/e2e-lab.md); "
        "the network probe creates 0 modules on SD1.5, SD2 and SDXL for every algo; read: "
        "config.py names to_k/to_v/ff.net.2 without use_fnmatch, and kohya.py matches names "
        "with re.match from the start of the module path",
        message=_EMPTY,
        fix=f'use preset = "{IA3_FILE}" (the default for algo = "ia3"), which names the same '
        "layers as patterns that match",
    ),
    CompatRow(
        algos=_NOT_IA3,
        presets=("ia3",),
        lycoris=V3,
        families=_FAMILIES,
        outcome="fails",
        evidence="network-created",
        source="3.4.0: the network probe creates 0 modules on SD1.5, SD2 and SDXL",
        message=_EMPTY,
        fix='use preset = "attn-mlp"',
    ),
    # ---------------------------------------------------------------- IA3 on 3.x
    CompatRow(
        algos=("ia3",),
        presets=("ia3",),
        lycoris=V3,
        families=_FAMILIES,
        outcome="fails",
        evidence="network-created",
        source="3.4.0: the network probe creates 0 modules on SD1.5, SD2 and SDXL (so the "
        "KeyError below is never reached)",
        message=_EMPTY,
        fix=f'upgrade LyCORIS in the kohya venv: {UPGRADE_COMMAND}, and use preset = "{IA3_FILE}"',
    ),
    CompatRow(
        algos=("ia3",),
        presets=("*",),
        lycoris=V3,
        families=_FAMILIES,
        outcome="fails",
        evidence="trained",
        source="3.4.0: trained on SD1.5, exit 1 "
        "(tests/fixtures/sd-scripts/sd-scripts-logs/d_ia3_ly34); "
        "network probe: KeyError on SD1.5, SD2 and SDXL with every preset that matches a module; "
        "read: 3.0.0 and 3.2.0 have no 'ia3' in wrapper.network_module_dict (removed in LyCORIS "
        "commit 9598468, 2024-06-27; kohya_ss issue 3192); 4.0.0 has it again",
        message=IA3_KEYERROR,
        fix=f"upgrade LyCORIS in the kohya venv: {UPGRADE_COMMAND}",
    ),
    # ---------------------------------------------------------------- full-like presets on 4.x
    CompatRow(
        algos=LYCORIS_ALGOS,
        presets=_FULL_LIKE,
        lycoris=V4,
        families=_SD12,
        outcome="fails",
        evidence="trained",
        source="4.1.3: loha with the default preset trained on SD1.5, exit 1 "
        "(tests/fixtures/sd-scripts/sd-scripts-logs/b_loha); network probe: the same error for "
        "locon, loha, lokr, ia3, dylora, diag-oft and boft with full, full-lin and unet-only on "
        "SD1.5 and SD2; read: 4.0.0, 4.1.0 and 4.1.3 config.py list TimestepEmbedding (for "
        "Anima) in these presets' module classes and time_embedding.linear_1/2 in their names",
        message=_DUPLICATED,
        fix=f'use preset = "attn-mlp" (attention and MLP, no convs), or preset = "{FULL_FILE}" '
        f"(the same layers as 'full', convs included), or downgrade LyCORIS: {_DOWNGRADE}",
    ),
    # ---------------------------------------------------------------- algo=full on 3.3-3.4
    CompatRow(
        algos=("full",),
        presets=("*",),
        lycoris=VersionRange("3.3.0", "4.0.0"),
        families=_FAMILIES,
        outcome="fails",
        evidence="trained",
        source="3.4.0: e2e test_other_lycoris_algos[full] on SD1.5 fails at the first step; "
        "read: 3.3.0 and 3.4.0 FullModule.apply_to deletes the layer's weight and forward then "
        "calls the layer's own forward (3.2.0 computed with its own weight; 4.x fixed it)",
        message=FULL_WEIGHT_ERROR,
        fix=f"upgrade LyCORIS in the kohya venv: {UPGRADE_COMMAND}",
    ),
    # ---------------------------------------------------------------- what trains
    CompatRow(
        algos=("locon", "loha", "lokr", "ia3", "dylora", "full", "diag-oft"),
        presets=("attn-mlp",),
        lycoris=V4,
        families=_DIT,
        outcome="trains",
        evidence="trained",
        source="4.1.3, through train on the lab's FLUX.1 (1+1 blocks, 13 modules) and SD3 "
        "(depth 2, 21 modules) models, U-Net only, 2 steps: FLUX.1 locon 109, loha 183, lokr "
        "144, ia3 118, dylora 94, diag-oft 84, full 163 s per run; SD3 locon 139, loha 142, "
        "lokr 117, ia3 131, dylora 128, diag-oft 119, full 146 s (docs/networks.md)",
    ),
    CompatRow(
        algos=("ia3",),
        presets=(IA3_FILE,),
        lycoris=V4,
        families=("sd15",),
        outcome="trains",
        evidence="trained",
        source="4.1.3: e2e test_ia3, 1.3 s/step, 80 modules, 0.2 MB",
    ),
    CompatRow(
        algos=("locon", "loha", "lokr", "dylora", "diag-oft", "full"),
        presets=("attn-mlp",),
        lycoris=V4,
        families=("sd15",),
        outcome="trains",
        evidence="trained",
        source="4.1.3: e2e locon 2.7, loha 3.5, lokr 2.5, dylora 2.9, diag-oft 2.6, full 3.0 "
        "s/step",
    ),
    CompatRow(
        algos=("locon",),
        presets=(FULL_FILE,),
        lycoris=COVERED_ALL,
        families=("sd15",),
        outcome="trains",
        evidence="trained",
        source="e2e test_locon_convs with conv_dim 4: 11.9 s/step on 4.1.3, 13.1 on 3.4.0; "
        "ResNet convs and the time embedding are in the file",
    ),
    CompatRow(
        algos=("locon", "loha", "lokr", "dylora", "diag-oft"),
        presets=("attn-mlp",),
        lycoris=V3,
        families=("sd15",),
        outcome="trains",
        evidence="trained",
        source="3.4.0: e2e locon 2.6, loha 3.6, lokr 2.9, dylora 3.0, diag-oft 2.8 s/step",
    ),
    CompatRow(
        algos=("locon", "loha", "lokr"),
        presets=("full",),
        lycoris=V3,
        families=("sd15",),
        outcome="trains",
        evidence="trained",
        source="3.4.0: docs/e2e-lab.md (13-21 s/step with the text encoder)",
    ),
    CompatRow(
        algos=("full",),
        presets=("*",),
        lycoris=VersionRange("3.0.0", "3.3.0"),
        families=_FAMILIES,
        outcome="trains",
        evidence="read",
        source="read: 3.0.0 and 3.2.0 FullModule.forward computes with its own weight",
    ),
    CompatRow(
        algos=LYCORIS_ALGOS,
        presets=(*LYCORIS_BUILTIN_PRESETS, IA3_FILE, FULL_FILE),
        lycoris=V4,
        families=_FAMILIES,
        outcome="trains",
        evidence="network-created",
        source="4.1.3: network probe (sd-scripts' own U-Net and CLIP classes): every other "
        "combination creates its modules; SDXL has no time_embedding.linear_* so full works "
        "there; algo=full is not probed (it copies weights) but selects modules the same way; "
        "boft creates its network but its training was killed for memory on a 24 GB CPU "
        "machine (23 GB at the second step)",
    ),
    CompatRow(
        algos=_NOT_IA3,
        presets=(*LYCORIS_BUILTIN_PRESETS, IA3_FILE, FULL_FILE),
        lycoris=V3,
        families=_FAMILIES,
        outcome="trains",
        evidence="network-created",
        source="3.4.0: network probe: every other combination creates its modules",
    ),
)
"""The compatibility table, most specific rows first (see the module docstring)."""


def effective_preset(preset: str | None) -> str:
    """The preset LyCORIS will use: ``full`` when the job gives none (ly:lycoris/kohya.py)."""
    return "full" if preset is None else preset


def lookup(algo: str, preset: str | None, version: str, family: str) -> CompatRow | None:
    """The first row about this combination, or None when the table has none."""
    p = effective_preset(preset)
    return next((r for r in COMPAT_TABLE if r.matches(algo, p, version, family)), None)


def is_covered(version: str) -> bool:
    """True when the version is in a range the table speaks about (:data:`COVERED`)."""
    return any(version in r for r in COVERED)
