"""Find the sd-scripts install: where it is, which Python runs it, and its commit.

With :mod:`.probe`, the only module besides ``launch/`` that reads ``os.environ`` or starts
processes (``git rev-parse`` for :func:`read_commit`).

Discovery order (:func:`find_install`), first match wins; a source that is *given* but broken stops
the search, so a stale setting never silently falls through to another install:

1. the ``sd_scripts`` argument (``--sd-scripts``),
2. ``$KOHYA_SD_SCRIPTS``,
3. ``sd_scripts = "..."`` in ``~/.config/kohya_orchestrator/config.toml``,
4. known layouts under the search roots: the ones passed in, then the current directory,
   ``~/kohya_ss``, ``~/LoRA_Easy_Training_Scripts``, ``~/fluxgym``, ``~/sd-scripts`` and
   ``~/kohya-sd-scripts`` (where ``install`` puts one by default).

The Python is the argument ``python``, else ``$KOHYA_PYTHON``, else ``python = "..."`` from the
config file (layout ``explicit``), else the layout's venv, else ``$CONDA_PREFIX`` (layout
``conda``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kohya_orchestrator.errors import SetupError
from kohya_orchestrator.installer.plan import MARKER as INSTALL_MARKER

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "Install",
    "Layout",
    "Source",
    "default_config_path",
    "explicit_install",
    "find_install",
    "read_commit",
    "require_install",
]

Layout = Literal[
    "kohya_orchestrator",
    "kohya_ss_gui",
    "bare_sd_scripts",
    "lora_easy_training_scripts",
    "fluxgym",
    "conda",
    "explicit",
]
Source = Literal["argument", "env", "config", "search"]

ENV_SD_SCRIPTS = "KOHYA_SD_SCRIPTS"
ENV_PYTHON = "KOHYA_PYTHON"

_HEX_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


class Install(BaseModel):
    """Where sd-scripts and the Python that runs it live, and how they were found."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: Path = Field(description="Top folder of the install (kohya_ss, LETS or fluxgym folder).")
    sd_scripts_dir: Path = Field(description="The sd-scripts checkout (has train_network.py).")
    python: Path = Field(description="The venv interpreter that runs the trainer.")
    layout: Layout = Field(description="Which installer's layout this is.")
    source: Source = Field(description="How it was found: argument, env, config or search.")
    source_detail: str = Field(default="", description="The variable, file or root that matched.")


# --------------------------------------------------------------------------------------------
# Discovery


def default_config_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The user config file: ``$XDG_CONFIG_HOME/kohya_orchestrator/config.toml``.

    Falls back to ``~/.config/kohya_orchestrator/config.toml``.

    Args:
        env: Environment variables to read (default: ``os.environ``).

    Returns:
        The path (which may not exist), or None when neither variable is set.
    """
    env = os.environ if env is None else env
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]) / "kohya_orchestrator" / "config.toml"
    home = _home(env)
    return None if home is None else home / ".config" / "kohya_orchestrator" / "config.toml"


def find_install(
    sd_scripts: Path | None = None,
    *,
    python: Path | None = None,
    env: Mapping[str, str] | None = None,
    search_roots: Sequence[Path] = (),
    config_file: Path | None = None,
) -> Install | None:
    """Find sd-scripts and its Python (see the module docstring for the order).

    Args:
        sd_scripts: The install root (kohya_ss, LETS, fluxgym folder) or the sd-scripts folder.
        python: An interpreter to use instead of the layout's venv.
        env: Environment variables to read (default: ``os.environ``); tests pass their own.
        search_roots: Extra folders to look in before the default ones.
        config_file: The user config file (default: :func:`default_config_path`).

    Returns:
        The install, or None when nothing usable was found.
    """
    install, _ = _search(sd_scripts, python, env, search_roots, config_file)
    return install


def require_install(
    sd_scripts: Path | None = None,
    *,
    python: Path | None = None,
    env: Mapping[str, str] | None = None,
    search_roots: Sequence[Path] = (),
    config_file: Path | None = None,
) -> Install:
    """Like :func:`find_install`, but raise when nothing is found.

    Raises:
        SetupError: No usable install; the message lists every place that was tried.
    """
    install, tried = _search(sd_scripts, python, env, search_roots, config_file)
    if install is not None:
        return install
    lines = "\n".join(f"  - {t}" for t in tried)
    cfg = config_file or default_config_path(env) or "~/.config/kohya_orchestrator/config.toml"
    raise SetupError(
        f"No usable kohya-ss sd-scripts install found. Tried:\n{lines}",
        hint=(
            "pass --sd-scripts PATH (the kohya_ss folder or its sd-scripts folder), or set "
            f"{ENV_SD_SCRIPTS} (and {ENV_PYTHON} for a Python outside the usual venv), or write "
            f'sd_scripts = "..." and python = "..." to {cfg}; no install yet: '
            "python -m kohya_orchestrator install"
        ),
    )


def explicit_install(
    sd_scripts: Path | None = None, *, env: Mapping[str, str] | None = None
) -> Install | None:
    """The install named by ``sd_scripts`` or ``$KOHYA_SD_SCRIPTS``; None when neither is given.

    Cheap (no search of the usual folders): for checks that run only when the user pointed at an
    install, such as ``validate --sd-scripts``.

    Raises:
        SetupError: the named install is not usable.
    """
    env = os.environ if env is None else env
    if sd_scripts is None and not env.get(ENV_SD_SCRIPTS):
        return None
    return require_install(sd_scripts, env=env)


def _home(env: Mapping[str, str]) -> Path | None:
    value = env.get("HOME") or env.get("USERPROFILE")
    return Path(value) if value else None


def _abs(path: Path) -> Path:
    # Not resolve(): a venv's bin/python is a symlink whose location is what makes it the venv.
    return Path(os.path.abspath(path.expanduser()))


def _is_sd_scripts(path: Path) -> bool:
    return (path / "train_network.py").is_file() and (path / "library").is_dir()


def _venv_python(venv: Path) -> Path | None:
    for rel in ("bin/python", "bin/python3", "Scripts/python.exe"):
        candidate = venv / rel
        if candidate.is_file():
            return candidate
    return None


def _conda_python(prefix: Path) -> Path | None:
    for rel in ("bin/python", "python.exe"):
        candidate = prefix / rel
        if candidate.is_file():
            return candidate
    return None


def _sd_candidates(path: Path) -> list[tuple[Path, Path, str]]:
    """(sd-scripts dir, root, kind) for a path given as either the root or the sd-scripts dir."""
    if path.is_file():
        path = path.parent
    if _is_sd_scripts(path):
        if path.name == "sd_scripts" and path.parent.name == "backend":
            return [(path, path.parent.parent, "lets")]
        if path.name in ("sd-scripts", "sd_scripts"):
            return [(path, path.parent, "nested")]
        return [(path, path, "bare")]
    found = []
    for sub, kind in (
        (path / "sd-scripts", "nested"),
        (path / "backend" / "sd_scripts", "lets"),
        (path / "sd_scripts", "nested"),
    ):
        if _is_sd_scripts(sub):
            found.append((sub, path, kind))
    return found


def _venv_candidates(sd_dir: Path, root: Path, kind: str) -> list[tuple[Layout, Path, Path]]:
    """(layout, root, venv dir) in the order the installers put them."""
    if kind == "lets":
        return [
            ("lora_easy_training_scripts", root, sd_dir / "venv"),
            ("lora_easy_training_scripts", root, sd_dir / ".venv"),
            ("lora_easy_training_scripts", root, root / "backend" / "venv"),
            ("lora_easy_training_scripts", root, root / "venv"),
        ]
    own: list[tuple[Layout, Path, Path]] = [
        ("bare_sd_scripts", sd_dir, sd_dir / "venv"),
        ("bare_sd_scripts", sd_dir, sd_dir / ".venv"),
    ]
    if kind == "bare":
        return own
    if (root / INSTALL_MARKER).is_file():  # made by `install`: DIR/sd-scripts + DIR/venv
        return [*own, ("kohya_orchestrator", root, root / "venv")]
    # A checkout with its own venv is a bare one, whatever its folder is called.
    return [
        *own,
        ("fluxgym", root, root / "env"),
        ("kohya_ss_gui", root, root / "venv"),
        ("kohya_ss_gui", root, root / ".venv"),
    ]


def _resolve_at(
    path: Path,
    python: Path | None,
    conda_prefix: str | None,
) -> tuple[tuple[Path, Path, Path, Layout] | None, str]:
    """Look for an install at one path. Returns ((sd_dir, root, python, layout) | None, why)."""
    path = _abs(path)
    if not path.exists():
        return None, "does not exist"
    candidates = _sd_candidates(path)
    if not candidates:
        return None, (
            "no sd-scripts checkout (train_network.py + library/) in it, its sd-scripts/ or "
            "backend/sd_scripts/"
        )
    looked: list[str] = []
    for sd_dir, root, kind in candidates:
        if python is not None:
            return (sd_dir, root, python, "explicit"), ""
        for layout, layout_root, venv in _venv_candidates(sd_dir, root, kind):
            found = _venv_python(venv)
            if found is not None:
                return (sd_dir, layout_root, found, layout), ""
            looked.append(str(venv))
        if conda_prefix:
            found = _conda_python(_abs(Path(conda_prefix)))
            if found is not None:
                return (sd_dir, root, found, "conda"), ""
            looked.append(f"$CONDA_PREFIX={conda_prefix}")
    first = candidates[0][0]
    conda = "" if conda_prefix else "; $CONDA_PREFIX is not set"
    return None, f"sd-scripts at {first} but no Python in {', '.join(looked)}{conda}"


def _read_config(path: Path) -> tuple[dict[str, Path], str | None]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, f"cannot be read: {exc}"
    out: dict[str, Path] = {}
    for key in ("sd_scripts", "python"):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            return {}, f"{key!r} must be a non-empty string (a path)"
        p = Path(value).expanduser()
        out[key] = p if p.is_absolute() else path.parent / p
    return out, None


def _search(
    sd_scripts: Path | None,
    python: Path | None,
    env: Mapping[str, str] | None,
    search_roots: Sequence[Path],
    config_file: Path | None,
) -> tuple[Install | None, list[str]]:
    env = os.environ if env is None else env
    tried: list[str] = []
    conda_prefix = env.get("CONDA_PREFIX") or None

    config_path = config_file if config_file is not None else default_config_path(env)
    config: dict[str, Path] = {}
    config_error: str | None = None
    if config_path is not None and config_path.is_file():
        config, config_error = _read_config(config_path)

    # The interpreter override, in the same precedence as the sd-scripts location.
    py: Path | None = None
    py_label = ""
    if python is not None:
        py, py_label = python, "argument python"
    elif env.get(ENV_PYTHON):
        py, py_label = Path(env[ENV_PYTHON]), f"${ENV_PYTHON}"
    elif "python" in config:
        py, py_label = config["python"], f"python in {config_path}"
    if py is not None:
        py = _abs(py)
        if not py.is_file():
            tried.append(f"{py_label}={py}: no such file")
            return None, tried

    def attempt(path: Path, source: Source, label: str) -> Install | None:
        hit, why = _resolve_at(path, py, conda_prefix)
        if hit is None:
            tried.append(f"{label} {_abs(path)}: {why}")
            return None
        sd_dir, root, interpreter, layout = hit
        return Install(
            root=root,
            sd_scripts_dir=sd_dir,
            python=interpreter,
            layout=layout,
            source=source,
            source_detail=label,
        )

    # Sources the user set are authoritative: if one is broken, stop and say so.
    if sd_scripts is not None:
        return attempt(sd_scripts, "argument", "argument"), tried
    if env.get(ENV_SD_SCRIPTS):
        return attempt(Path(env[ENV_SD_SCRIPTS]), "env", f"${ENV_SD_SCRIPTS}"), tried
    tried.append(f"${ENV_SD_SCRIPTS}: not set")
    if config_path is None:
        tried.append("config file: no HOME or XDG_CONFIG_HOME to find it")
    elif config_error is not None:
        tried.append(f"config {config_path}: {config_error}")
        return None, tried
    elif "sd_scripts" in config:
        found = attempt(config["sd_scripts"], "config", f"sd_scripts in {config_path}")
        return found, tried
    elif config_path.is_file():
        tried.append(f"config {config_path}: no sd_scripts key")
    else:
        tried.append(f"config {config_path}: not found")

    roots = [*search_roots, *_default_roots(env)]
    seen: set[Path] = set()
    for root in roots:
        root = _abs(root)
        if root in seen:
            continue
        seen.add(root)
        found = attempt(root, "search", "search root")
        if found is not None:
            return found, tried
    return None, tried


def _default_roots(env: Mapping[str, str]) -> list[Path]:
    try:
        roots = [Path.cwd()]
    except OSError:  # the current folder was deleted
        roots = []
    home = _home(env)
    if home is not None:
        roots += [
            home / name
            for name in (
                "kohya_ss",
                "LoRA_Easy_Training_Scripts",
                "fluxgym",
                "sd-scripts",
                "kohya-sd-scripts",  # the default folder of `install`
            )
        ]
    return roots


# --------------------------------------------------------------------------------------------
# The checkout's commit


def read_commit(sd_scripts_dir: Path) -> str | None:
    """The commit of an sd-scripts checkout.

    Tries a ``.snapshot-commit`` file, then ``git rev-parse HEAD`` (only when the folder has its own
    ``.git``, so a copy inside another repository does not report that repository's commit), then
    reads ``.git/HEAD`` by hand (a submodule's ``.git`` file is followed).

    Args:
        sd_scripts_dir: The checkout.

    Returns:
        The full hash, or None when it cannot be told.
    """
    snapshot = sd_scripts_dir / ".snapshot-commit"
    try:
        text = snapshot.read_text(encoding="utf-8").strip().split()
        if text and _HEX_COMMIT.match(text[0].lower()):
            return text[0].lower()
    except OSError:
        pass
    dot_git = sd_scripts_dir / ".git"
    if not dot_git.exists():
        return None
    git = shutil.which("git")
    if git is not None:
        try:
            done = subprocess.run(
                [git, "-C", str(sd_scripts_dir), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            out = done.stdout.strip().lower()
            if done.returncode == 0 and _HEX_COMMIT.match(out):
                return out
        except (OSError, subprocess.SubprocessError):
            pass
    return _read_git_head(dot_git)


def _read_git_head(dot_git: Path) -> str | None:
    try:
        git_dir = dot_git
        if dot_git.is_file():  # a submodule or worktree: "gitdir: ../.git/modules/sd-scripts"
            line = dot_git.read_text(encoding="utf-8").strip()
            if not line.startswith("gitdir:"):
                return None
            git_dir = (dot_git.parent / line.split(":", 1)[1].strip()).resolve()
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head.lower() if _HEX_COMMIT.match(head.lower()) else None
        ref = head.split(":", 1)[1].strip()
        common = git_dir
        if (git_dir / "commondir").is_file():
            common = git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()
        for base in (git_dir, common):
            ref_file = base / ref
            if ref_file.is_file():
                value = ref_file.read_text(encoding="utf-8").strip().lower()
                return value if _HEX_COMMIT.match(value) else None
        for base in (git_dir, common):
            packed = base / "packed-refs"
            if packed.is_file():
                for row in packed.read_text(encoding="utf-8").splitlines():
                    parts = row.split()
                    if len(parts) == 2 and parts[1] == ref and _HEX_COMMIT.match(parts[0]):
                        return parts[0]
    except OSError:
        return None
    return None
