"""The arguments an sd-scripts install accepts, as data: from its own parsers, or the built-in list.

An :class:`Arguments` says, per training script, which arguments there are and (when read from an
install) each one's kind, type, choices and default. Rules and checks ask it instead of a frozen
list, so a job is checked against the sd-scripts that will run it:

- :data:`BUILTIN`: the names read from sd-scripts 48d368fa (:mod:`.sd_args`), used when no install
  is given (offline). Its messages say so.
- an install's own: ``environment/manifest.py`` asks the install's Python to build every
  ``*_train_network.py`` parser and records each action (:class:`ArgSpec`), cached per install.

Pure data and pure checks; nothing here touches the disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .family import FAMILIES, profile
from .sd_args import known_args

__all__ = ["BUILTIN", "PINNED_COMMIT", "ArgSpec", "Arguments", "check_value"]

PINNED_COMMIT = "48d368fa"
"""The sd-scripts commit the built-in argument list was read from."""

ArgKind = Literal["flag", "value", "list"]
ArgType = Literal["str", "int", "float", "other"]


@dataclass(frozen=True)
class ArgSpec:
    """One argument of a script's parser, as argparse holds it."""

    dest: str
    options: tuple[str, ...] = ()
    kind: ArgKind = "value"
    """``flag``: takes no value (``store_true``/``store_false``/``store_const``); ``list``: takes
    several (``nargs`` ``*``/``+``/a number); ``value``: one."""
    type: ArgType = "other"
    choices: tuple[Any, ...] | None = None
    default: Any = None
    help: str = ""


@dataclass(frozen=True)
class Arguments:
    """What each training script of one sd-scripts accepts."""

    label: str
    """How messages name this sd-scripts: ``sd-scripts 1a2b3c4d (2024-05-01)`` or the built-in
    list."""
    fix: str
    """What to do about an argument it lacks (update the install, or drop the key)."""
    scripts: Mapping[str, Mapping[str, ArgSpec]] = field(default_factory=dict)
    """script file name -> dest -> spec; a script missing here is missing from the install."""
    builtin: bool = False
    """True for the frozen list (names only: no types, no choices)."""
    networks: frozenset[str] | None = None
    """The modules in the install's ``networks/`` folder (``networks.lokr``); None: not known."""

    def names(self, family: str) -> frozenset[str] | None:
        """The argument names of the family's script; None when the install has no such script."""
        specs = self.scripts.get(profile(family).script)
        return None if specs is None else frozenset(specs)

    def spec(self, family: str, name: str) -> ArgSpec | None:
        """The spec of one argument of the family's script, when known."""
        return self.scripts.get(profile(family).script, {}).get(name)


def _builtin() -> Arguments:
    scripts: dict[str, dict[str, ArgSpec]] = {}
    for name, fam in FAMILIES.items():
        scripts.setdefault(fam.script, {}).update(
            {arg: ArgSpec(arg) for arg in sorted(known_args(name))}
        )
    return Arguments(
        label=f"the built-in list of sd-scripts {PINNED_COMMIT} arguments (no install given)",
        fix="give --sd-scripts (or set KOHYA_SD_SCRIPTS) to check against the install's own parser",
        scripts=scripts,
        builtin=True,
    )


BUILTIN: Arguments = _builtin()
"""The offline fallback: the names of sd-scripts 48d368fa's arguments, without types."""

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float)}


def check_value(spec: ArgSpec, value: object) -> str | None:
    """Why ``value`` does not suit the argument (as a config-file value), or None when it does.

    sd-scripts reads ``--config_file`` values into the parsed namespace as they are (no argparse
    conversion), so the TOML value must already have the type the parser would give.
    """
    if spec.kind == "flag":
        return None if isinstance(value, bool) else f"'{spec.dest}' is a switch: use true or false"
    if spec.kind == "value" and isinstance(value, list):
        return f"'{spec.dest}' takes one value, not a list"
    if spec.kind == "list" and not isinstance(value, list):
        return f"'{spec.dest}' takes a list of values: write [{value!r}]"
    values = value if isinstance(value, list) else [value]
    wanted = _PYTHON_TYPES.get(spec.type)
    for item in values:
        if wanted is not None and (isinstance(item, bool) or not isinstance(item, wanted)):
            return f"'{spec.dest}' takes {_a(spec.type)}, not {item!r}"
        if spec.choices is not None and item not in spec.choices:
            shown = ", ".join(str(c) for c in spec.choices)
            return f"'{spec.dest}' takes one of {shown}, not {item!r}"
    return None


def _a(type_name: str) -> str:
    return {"str": "a string", "int": "an integer", "float": "a number"}.get(type_name, type_name)
