"""The argument manifest of an install: every action of every ``*_train_network.py`` parser.

The installed sd-scripts is the source of truth for what a job may say. :func:`load_manifest`
asks the install's own Python (the orchestrator never imports torch) to import each training
script it finds, call its ``setup_parser()`` and record every action: dest, option strings,
kind, type, choices, default, help. The result is cached in the user cache, keyed by the
interpreter and a hash of the scripts, ``library/`` and ``networks/`` (so a ``git pull`` or an
edit makes a new one, and a second call does not start the install's Python).

:meth:`ArgManifest.arguments` turns it into the :class:`~..models.arguments.Arguments` that
validation and the launch checks read.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._fs import write_atomic
from ..errors import Problem
from ..models.arguments import BUILTIN, ArgSpec, Arguments
from .discovery import Install, read_commit

__all__ = [
    "MANIFEST_VERSION",
    "ArgManifest",
    "ManifestArg",
    "ManifestError",
    "arguments_of",
    "cache_dir",
    "cached_manifest",
    "install_fingerprint",
    "load_manifest",
]

MANIFEST_VERSION = 1
"""Bumped when the probe records something new (old cache files are then made again)."""
_MARKER = "KOHYA_ORCH_MANIFEST "


class ManifestError(RuntimeError):
    """The install's Python could not build any training script's parser."""


class ManifestArg(BaseModel):
    """One argparse action, as the probe recorded it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dest: str
    options: tuple[str, ...] = ()
    kind: str = "value"
    type: str = "other"
    choices: tuple[Any, ...] | None = None
    default: Any = None
    help: str = ""


class ArgManifest(BaseModel):
    """Every training script's arguments in one install."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = MANIFEST_VERSION
    sd_scripts_dir: Path
    python: Path
    fingerprint: str = Field(description="Hash of the interpreter path and the script sources.")
    commit: str | None = Field(default=None, description="The checkout's commit, when known.")
    commit_date: str | None = Field(default=None, description="ISO date of that commit (git).")
    made_at: str = Field(description="When the probe ran (UTC, ISO 8601).")
    scripts: dict[str, list[ManifestArg]] = Field(
        default_factory=dict, description="script file name -> its parser's actions"
    )
    errors: dict[str, str] = Field(
        default_factory=dict, description="script file name -> why its parser could not be built"
    )
    networks: tuple[str, ...] = Field(
        default=(), description="Modules in the install's networks/ folder (networks.lokr, ...)."
    )

    @property
    def label(self) -> str:
        """``sd-scripts 1a2b3c4d (2024-05-01)``: how messages name this install."""
        version = self.commit[:8] if self.commit else "of unknown commit"
        date = f" ({self.commit_date[:10]})" if self.commit_date else ""
        return f"sd-scripts {version}{date} at {self.sd_scripts_dir}"

    def arguments(self) -> Arguments:
        """The install's arguments, for validation and the launch checks."""
        scripts = {
            name: {
                a.dest: ArgSpec(
                    dest=a.dest,
                    options=a.options,
                    kind=a.kind if a.kind in ("flag", "value", "list") else "value",  # type: ignore[arg-type]
                    type=a.type if a.type in ("str", "int", "float") else "other",  # type: ignore[arg-type]
                    choices=a.choices,
                    default=a.default,
                    help=a.help,
                )
                for a in actions
            }
            for name, actions in self.scripts.items()
        }
        return Arguments(
            label=self.label,
            fix=f"update sd-scripts (git -C {self.sd_scripts_dir} pull, or the installer's "
            "update), or drop the key",
            scripts=scripts,
            networks=frozenset(self.networks),
        )


# Runs inside the install's Python (3.8+), in the sd-scripts folder. Prints one marked JSON line.
_PROBE = r"""
import argparse, importlib, json, sys
out = {"scripts": {}, "errors": {}}
def plain(value):
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)
for name in sys.argv[1:]:
    try:
        parser = importlib.import_module(name[:-3]).setup_parser()
    except BaseException as exc:
        out["errors"][name] = "%s: %s" % (type(exc).__name__, exc)
        continue
    actions = []
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if a.nargs == 0:
            kind = "flag"
        elif a.nargs in ("*", "+") or (isinstance(a.nargs, int) and a.nargs > 1):
            kind = "list"
        else:
            kind = "value"
        t = a.type
        tname = t.__name__ if t in (str, int, float) else ("str" if t is None else "other")
        choices = None if a.choices is None else [plain(c) for c in a.choices]
        actions.append({"dest": a.dest, "options": list(a.option_strings), "kind": kind,
                        "type": tname, "choices": choices, "default": plain(a.default),
                        "help": a.help if isinstance(a.help, str) else ""})
    out["scripts"][name] = actions
sys.stdout.write(__MARKER__ + json.dumps(out) + "\n")
sys.stdout.flush()
""".replace("__MARKER__", repr(_MARKER))


def cache_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """``$XDG_CACHE_HOME/kohya_orchestrator/manifests`` (else under ``~/.cache``); None: no home."""
    env = os.environ if env is None else env
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "kohya_orchestrator" / "manifests"
    home = env.get("HOME") or env.get("USERPROFILE")
    return Path(home) / ".cache" / "kohya_orchestrator" / "manifests" if home else None


def _sources(sd_dir: Path) -> list[Path]:
    found = sorted(sd_dir.glob("*train_network.py"))
    for sub in ("library", "networks"):
        found += sorted((sd_dir / sub).rglob("*.py")) if (sd_dir / sub).is_dir() else []
    return found


def install_fingerprint(install: Install) -> str:
    """A hash of the interpreter's and the folder's paths and every script, ``library/`` and
    ``networks/`` source."""
    head = f"{MANIFEST_VERSION}\0{install.python}\0{install.sd_scripts_dir}\0"
    digest = hashlib.sha256(head.encode())
    for path in _sources(install.sd_scripts_dir):
        digest.update(str(path.relative_to(install.sd_scripts_dir)).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()[:32]


def load_manifest(
    install: Install, *, refresh: bool = False, timeout_s: float = 600
) -> tuple[ArgManifest, bool]:
    """The install's manifest, from the cache or made now; and whether it came from the cache.

    Raises:
        ManifestError: the install's Python could not build any training script's parser.
    """
    fingerprint = install_fingerprint(install)
    folder = cache_dir()
    cached = None if folder is None else folder / f"{fingerprint}.json"
    if cached is not None and cached.is_file() and not refresh:
        try:
            manifest = ArgManifest.model_validate_json(cached.read_bytes())
        except (OSError, ValidationError):
            manifest = None
        if manifest is not None and manifest.version == MANIFEST_VERSION:
            return manifest, True
    manifest = _probe(install, fingerprint, timeout_s)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(cached, manifest.model_dump_json(indent=1).encode("utf-8"))
        except OSError:
            pass  # a read-only cache only costs the next call a probe
    return manifest, False


def cached_manifest(install: Install) -> ArgManifest | None:
    """The install's manifest when the cache holds one for its current sources; never probes."""
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / f"{install_fingerprint(install)}.json"
    try:
        manifest = ArgManifest.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return None
    return manifest if manifest.version == MANIFEST_VERSION else None


def arguments_of(install: Install, *, probe: bool = True) -> tuple[Arguments, Problem | None]:
    """What the install accepts, and a warning when that could not be read.

    From :func:`load_manifest` (cached); with ``probe`` False only a cached manifest is used. When
    there is none, or the install's Python cannot build its parsers, the built-in list of sd-scripts
    48d368fa arguments stands in, and the warning says so.
    """
    try:
        manifest = load_manifest(install)[0] if probe else cached_manifest(install)
    except ManifestError as exc:
        return BUILTIN, Problem(
            "sd-scripts",
            f"could not read the install's own arguments ({exc}); checked against {BUILTIN.label}",
            "run: python -m kohya_orchestrator doctor",
            severity="warning",
        )
    if manifest is None:
        return BUILTIN, None
    return manifest.arguments(), None


def _probe(install: Install, fingerprint: str, timeout_s: float) -> ArgManifest:
    sd_dir = install.sd_scripts_dir
    scripts = sorted(p.name for p in sd_dir.glob("*train_network.py"))
    if not scripts:
        raise ManifestError(f"{sd_dir} has no *train_network.py")
    try:
        done = subprocess.run(
            [str(install.python), "-c", _PROBE, *scripts],
            cwd=sd_dir,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [".", os.environ.get("PYTHONPATH")])),
                "PYTHONIOENCODING": "utf-8",
                "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
            },
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ManifestError(f"reading the parsers took over {timeout_s:g} s") from None
    except OSError as exc:
        raise ManifestError(f"could not run {install.python}: {exc}") from None
    data = _marked(done.stdout)
    if data is None:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise ManifestError(
            f"{install.python} could not read the parsers (exit {done.returncode}): "
            + (" | ".join(tail) or "no output")
        )
    raw_scripts = _table(data.get("scripts"))
    raw_errors = _table(data.get("errors"))
    if not raw_scripts:
        first = next(iter(raw_errors.items()), ("", "no script could be imported"))
        raise ManifestError(f"no training script's parser could be built: {first[0]} {first[1]}")
    networks = sorted(
        f"networks.{p.stem}"
        for p in (sd_dir / "networks").glob("*.py")
        if p.stem != "__init__" and (sd_dir / "networks").is_dir()
    )
    commit = read_commit(sd_dir)
    return ArgManifest(
        sd_scripts_dir=sd_dir,
        python=install.python,
        fingerprint=fingerprint,
        commit=commit,
        commit_date=_commit_date(sd_dir) if commit else None,
        made_at=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        scripts={
            str(k): [ManifestArg.model_validate(a) for a in v] for k, v in raw_scripts.items()
        },
        errors={str(k): str(v) for k, v in raw_errors.items()},
        networks=tuple(networks),
    )


def _table(value: object) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _marked(stdout: bytes) -> dict[str, Any] | None:
    for line in reversed(stdout.decode("utf-8", "replace").splitlines()):
        if line.startswith(_MARKER):
            try:
                data = json.loads(line[len(_MARKER) :])
            except json.JSONDecodeError:
                return None
            return data if isinstance(data, dict) else None
    return None


def _commit_date(sd_dir: Path) -> str | None:
    git = shutil.which("git")
    if git is None or not (sd_dir / ".git").exists():
        return None
    try:
        done = subprocess.run(
            [git, "-C", str(sd_dir), "log", "-1", "--format=%cI"],
            capture_output=True,
            text=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = done.stdout.strip()
    return text or None
