"""Find the sd-scripts install and probe the machine it runs on.

This is the only module besides ``launch/`` that reads ``os.environ`` or starts processes. The
orchestrator never imports torch: everything about torch is asked of the kohya venv's Python in one
subprocess (:func:`probe_environment`), which prints one JSON line.

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

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kohya_orchestrator.errors import SetupError
from kohya_orchestrator.installer.plan import MARKER as INSTALL_MARKER

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "Check",
    "CheckStatus",
    "Environment",
    "GpuInfo",
    "Install",
    "Layout",
    "Source",
    "default_config_path",
    "diagnose",
    "explicit_install",
    "find_install",
    "parse_nvidia_smi",
    "probe_environment",
    "probe_package_versions",
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
CheckStatus = Literal["ok", "warn", "fail"]

ENV_SD_SCRIPTS = "KOHYA_SD_SCRIPTS"
ENV_PYTHON = "KOHYA_PYTHON"

# Distribution names asked of importlib.metadata inside the kohya venv, and the Environment field
# each one fills.
_PACKAGES: dict[str, str] = {
    "accelerate": "accelerate_version",
    "diffusers": "diffusers_version",
    "transformers": "transformers_version",
    "lycoris-lora": "lycoris_version",
    "bitsandbytes": "bitsandbytes_version",
    "xformers": "xformers_version",
    "prodigyopt": "prodigyopt_version",
    "toml": "toml_version",
    "voluptuous": "voluptuous_version",
}
_REQUIRED_PACKAGES = ("accelerate", "diffusers", "transformers", "toml", "voluptuous")
_OPTIONAL_USES = {
    "xformers": "--xformers attention",
    "prodigyopt": "optimizer Prodigy",
}
_SUPPORTED_PYTHON = ((3, 10), (3, 12))
_PROBE_MARKER = "KOHYA_ORCH_PROBE "
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


class GpuInfo(BaseModel):
    """One GPU as torch (or, failing that, nvidia-smi) reports it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0, description="Device index as the reporting tool numbers it.")
    name: str = Field(description="Device name, e.g. 'NVIDIA GeForce RTX 4090'.")
    memory_total_mib: int | None = Field(default=None, description="Total memory in MiB.")
    memory_used_mib: int | None = Field(default=None, description="Used memory (nvidia-smi).")
    source: Literal["torch", "nvidia-smi"] = Field(default="torch", description="Who reported it.")


class Environment(BaseModel):
    """What :func:`probe_environment` found. Tests build it by hand; every fact may be unknown."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sd_scripts_dir: Path = Field(description="The sd-scripts checkout.")
    sd_scripts_commit: str | None = Field(default=None, description="Commit hash, when known.")
    scripts: tuple[str, ...] = Field(
        default=(), description="The *train_network.py scripts present in the checkout."
    )
    layout: Layout | None = Field(default=None, description="Install layout, when probed.")
    python: Path = Field(description="The interpreter that was probed.")
    python_version: str | None = Field(default=None, description="e.g. '3.10.11'; None: no run.")
    platform: str | None = Field(default=None, description="sys.platform of the venv Python.")
    platform_detail: str | None = Field(default=None, description="platform.platform().")
    torch_version: str | None = Field(default=None, description="torch.__version__ or None.")
    cuda_available: bool = Field(default=False, description="torch.cuda.is_available().")
    cuda_version: str | None = Field(default=None, description="torch.version.cuda (build).")
    hip_version: str | None = Field(default=None, description="torch.version.hip (ROCm build).")
    mps_available: bool = Field(default=False, description="Apple Metal backend available.")
    bf16_supported: bool | None = Field(default=None, description="torch.cuda bf16 support.")
    gpus: tuple[GpuInfo, ...] = Field(default=(), description="GPUs, torch first, else nvidia-smi.")
    accelerate_version: str | None = Field(default=None, description="Version of accelerate.")
    diffusers_version: str | None = Field(default=None, description="Version of diffusers.")
    transformers_version: str | None = Field(default=None, description="Version of transformers.")
    lycoris_version: str | None = Field(default=None, description="Version of lycoris-lora.")
    bitsandbytes_version: str | None = Field(default=None, description="Version of bitsandbytes.")
    xformers_version: str | None = Field(default=None, description="Version of xformers.")
    prodigyopt_version: str | None = Field(default=None, description="Version of prodigyopt.")
    toml_version: str | None = Field(default=None, description="Version of toml.")
    voluptuous_version: str | None = Field(default=None, description="Version of voluptuous.")
    probe_errors: list[str] = Field(
        default_factory=list, description="What went wrong while probing (the probe never raises)."
    )

    @property
    def torch_cpu_only(self) -> bool:
        """True when torch is installed but built without CUDA, ROCm or MPS support."""
        return (
            self.torch_version is not None
            and self.cuda_version is None
            and self.hip_version is None
            and not self.mps_available
        )


class Check(BaseModel):
    """One verdict of :func:`diagnose`: what was checked, the result, and how to fix it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Short name of the thing checked, e.g. 'torch'.")
    status: CheckStatus = Field(description="ok, warn or fail.")
    detail: str = Field(description="What was found.")
    fix: str | None = Field(default=None, description="How to fix it, when not ok.")


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
# Probing


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


# Runs inside the kohya venv (any Python 3.8+). Prints exactly one marked JSON line; never raises.
_PROBE_SCRIPT = r"""
import json, platform, sys
out = {"python_version": "%d.%d.%d" % tuple(sys.version_info[:3]), "platform": sys.platform,
       "platform_detail": platform.platform(), "errors": [], "packages": {}, "gpus": []}
try:
    from importlib import metadata
except Exception as exc:
    metadata = None
    out["errors"].append("importlib.metadata unavailable: %r" % (exc,))
for dist in __PACKAGES__:
    version = None
    if metadata is not None:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = None
        except Exception as exc:
            out["errors"].append("version of %s: %s: %s" % (dist, type(exc).__name__, exc))
    out["packages"][dist] = version
try:
    import torch
except ModuleNotFoundError as exc:
    torch = None
    if getattr(exc, "name", "torch") != "torch":
        out["errors"].append("import torch failed: %s: %s" % (type(exc).__name__, exc))
except BaseException as exc:
    torch = None
    out["errors"].append("import torch failed: %s: %s" % (type(exc).__name__, exc))
if torch is not None:
    out["torch_version"] = str(getattr(torch, "__version__", "unknown"))
    version = getattr(torch, "version", None)
    cuda = getattr(version, "cuda", None)
    hip = getattr(version, "hip", None)
    out["cuda_version"] = None if cuda is None else str(cuda)
    out["hip_version"] = None if hip is None else str(hip)
    try:
        out["cuda_available"] = bool(torch.cuda.is_available())
        if out["cuda_available"]:
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                out["gpus"].append({"index": i, "name": str(props.name),
                                    "memory_total_mib": int(props.total_memory) // 1048576})
            out["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
    except BaseException as exc:
        out["errors"].append("torch.cuda: %s: %s" % (type(exc).__name__, exc))
    try:
        mps = getattr(getattr(torch, "backends", None), "mps", None)
        out["mps_available"] = bool(mps is not None and mps.is_available())
    except BaseException as exc:
        out["errors"].append("torch.backends.mps: %s: %s" % (type(exc).__name__, exc))
sys.stdout.write(__MARKER__ + json.dumps(out) + "\n")
sys.stdout.flush()
""".replace("__PACKAGES__", repr(tuple(_PACKAGES))).replace("__MARKER__", repr(_PROBE_MARKER))


def probe_environment(install: Install, timeout_s: float = 120) -> Environment:
    """Ask the install's Python about torch, CUDA, GPUs and packages; never raises for a bad venv.

    Runs one subprocess ``<python> -c <probe>`` in the sd-scripts folder (so imports resolve as
    they do for the trainer), plus ``nvidia-smi`` when it is on PATH. Nothing is cached.

    Args:
        install: What :func:`find_install` returned.
        timeout_s: Limit for the probe (importing torch can take a while on a cold disk).

    Returns:
        The facts found. What could not be found is None, and why is in ``probe_errors``.
    """
    errors: list[str] = []
    sd_dir = install.sd_scripts_dir
    facts: dict[str, object] = {}
    try:
        done = subprocess.run(
            [str(install.python), "-c", _PROBE_SCRIPT],
            cwd=sd_dir,
            env={**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        errors.append(f"probe timed out after {timeout_s:g} s ({install.python} -c <probe>)")
    except OSError as exc:
        errors.append(f"could not run {install.python}: {exc}")
    else:
        facts, problem = _parse_probe(done.stdout, done.stderr, done.returncode)
        if problem:
            errors.append(problem)

    raw_errors = facts.get("errors")
    if isinstance(raw_errors, list):
        errors.extend(str(e) for e in raw_errors)
    torch_gpus: list[GpuInfo] = []
    raw_gpus = facts.get("gpus")
    if isinstance(raw_gpus, list):
        try:
            torch_gpus = [GpuInfo.model_validate(g) for g in raw_gpus]
        except ValidationError as exc:
            errors.append(f"probe reported unreadable GPUs: {exc.errors()[0]['msg']}")
    smi_gpus, smi_error = _query_nvidia_smi()
    if smi_error:
        errors.append(smi_error)
    packages = facts.get("packages")
    versions: dict[str, str | None] = {}
    if isinstance(packages, dict):
        for dist, field_name in _PACKAGES.items():
            value = packages.get(dist)
            versions[field_name] = None if value is None else str(value)

    return Environment(
        sd_scripts_dir=sd_dir,
        sd_scripts_commit=read_commit(sd_dir),
        scripts=tuple(sorted(p.name for p in sd_dir.glob("*train_network.py"))),
        layout=install.layout,
        python=install.python,
        python_version=_opt_str(facts.get("python_version")),
        platform=_opt_str(facts.get("platform")) or sys.platform,
        platform_detail=_opt_str(facts.get("platform_detail")),
        torch_version=_opt_str(facts.get("torch_version")),
        cuda_available=bool(facts.get("cuda_available", False)),
        cuda_version=_opt_str(facts.get("cuda_version")),
        hip_version=_opt_str(facts.get("hip_version")),
        mps_available=bool(facts.get("mps_available", False)),
        bf16_supported=_opt_bool(facts.get("bf16_supported")),
        gpus=tuple(_merge_gpus(torch_gpus, smi_gpus)),
        probe_errors=errors,
        **versions,
    )


_VERSIONS_SCRIPT = r"""
import json, sys
from importlib import metadata
out = {}
for dist in sys.argv[1:]:
    try:
        out[dist] = metadata.version(dist)
    except metadata.PackageNotFoundError:
        out[dist] = None
sys.stdout.write(__MARKER__ + json.dumps(out) + "\n")
""".replace("__MARKER__", repr(_PROBE_MARKER))


def probe_package_versions(
    install: Install, dists: Sequence[str], timeout_s: float = 60
) -> dict[str, str | None] | None:
    """Installed versions of ``dists`` in the install's Python, without importing torch.

    One short subprocess (``importlib.metadata`` only), for checks that must stay fast.

    Returns:
        ``{dist: version or None when not installed}``, or None when the interpreter could not
        be asked.
    """
    try:
        done = subprocess.run(
            [str(install.python), "-c", _VERSIONS_SCRIPT, *dists],
            cwd=install.sd_scripts_dir,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    facts, problem = _parse_probe(done.stdout, done.stderr, done.returncode)
    if problem:
        return None
    return {d: _opt_str(facts.get(d)) for d in dists}


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_bool(value: object) -> bool | None:
    return None if value is None else bool(value)


def _parse_probe(stdout: bytes, stderr: bytes, rc: int) -> tuple[dict[str, object], str | None]:
    text = stdout.decode("utf-8", errors="replace")
    for line in reversed(text.splitlines()):
        if line.startswith(_PROBE_MARKER):
            try:
                data = json.loads(line[len(_PROBE_MARKER) :])
            except json.JSONDecodeError as exc:
                return {}, f"probe printed bad JSON: {exc}"
            if isinstance(data, dict):
                return data, None
    tail = stderr.decode("utf-8", errors="replace").strip().splitlines()[-5:]
    return {}, f"probe failed (exit {rc}): " + (" | ".join(tail) or "no output")


def _query_nvidia_smi(timeout_s: float = 20) -> tuple[list[GpuInfo], str | None]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], None
    try:
        done = subprocess.run(
            [
                smi,
                "--query-gpu=name,memory.total,memory.used",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return [], f"nvidia-smi failed: {exc}"
    if done.returncode != 0:
        last = (done.stdout + done.stderr).strip().splitlines()[-1:]
        return [], f"nvidia-smi exit {done.returncode}: {' '.join(last)}"
    return parse_nvidia_smi(done.stdout), None


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """Parse ``nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader,nounits``.

    Args:
        text: Its standard output.

    Returns:
        One entry per well-formed line.
    """
    gpus: list[GpuInfo] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.rsplit(",", 2)]
        if len(parts) != 3 or not parts[0]:
            continue
        gpus.append(
            GpuInfo(
                index=len(gpus),
                name=parts[0],
                memory_total_mib=_int_or_none(parts[1]),
                memory_used_mib=_int_or_none(parts[2]),
                source="nvidia-smi",
            )
        )
    return gpus


def _int_or_none(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def _merge_gpus(torch_gpus: list[GpuInfo], smi_gpus: list[GpuInfo]) -> list[GpuInfo]:
    if not torch_gpus:
        return smi_gpus
    if len(torch_gpus) != len(smi_gpus):
        # CUDA_VISIBLE_DEVICES renumbers torch's view; do not guess which is which.
        return torch_gpus
    return [
        g.model_copy(update={"memory_used_mib": s.memory_used_mib})
        for g, s in zip(torch_gpus, smi_gpus, strict=True)
    ]


# --------------------------------------------------------------------------------------------
# Diagnosis


def diagnose(environment: Environment) -> list[Check]:
    """Turn probed facts into verdicts with fixes (what ``doctor`` prints).

    Args:
        environment: What :func:`probe_environment` found (or a hand-built one).

    Returns:
        Checks in a fixed order: scripts, commit, python, probe, torch, gpu, bf16, requirements,
        lycoris, bitsandbytes, optional packages, paths.
    """
    env = environment
    py = _quote(str(env.python))
    checks = [_check_scripts(env), _check_commit(env), _check_python(env)]
    if env.probe_errors:
        checks.append(
            Check(
                name="probe",
                status="fail" if env.python_version is None else "warn",
                detail="; ".join(env.probe_errors),
                fix=None
                if env.python_version is not None
                else f"check that {py} runs (a venv moved after creation no longer works)",
            )
        )
    if env.python_version is None:
        return checks  # nothing below can be told without a working interpreter
    checks.append(_check_torch(env, py))
    checks.extend(_check_gpu(env))
    checks.append(_check_requirements(env, py))
    checks.append(_check_lycoris(env, py))
    checks.append(
        Check(name="bitsandbytes", status="ok", detail=f"bitsandbytes {env.bitsandbytes_version}")
        if env.bitsandbytes_version
        else Check(
            name="bitsandbytes",
            status="warn",
            detail="not installed: AdamW8bit and the other 8-bit optimizers are unavailable",
            fix=f"{py} -m pip install bitsandbytes",
        )
    )
    checks.append(_check_optional(env))
    checks.append(_check_paths(env))
    return checks


def _quote(text: str) -> str:
    return f'"{text}"' if " " in text else text


def _check_scripts(env: Environment) -> Check:
    if "train_network.py" not in env.scripts:
        return Check(
            name="sd-scripts",
            status="fail",
            detail=f"no train_network.py in {env.sd_scripts_dir}",
            fix="point --sd-scripts at a kohya-ss/sd-scripts checkout (or the kohya_ss folder)",
        )
    shown = [s for s in ("train_network.py", "sdxl_train_network.py") if s in env.scripts]
    more = len(env.scripts) - len(shown)
    detail = ", ".join(shown) + (f" (+{more} more *train_network.py)" if more else "")
    return Check(name="sd-scripts", status="ok", detail=detail)


def _check_commit(env: Environment) -> Check:
    if env.sd_scripts_commit:
        return Check(name="commit", status="ok", detail=env.sd_scripts_commit[:12])
    return Check(
        name="commit",
        status="warn",
        detail="unknown (not a git checkout and no .snapshot-commit file)",
        fix="use a git checkout of sd-scripts so each run records which version trained it",
    )


def _check_python(env: Environment) -> Check:
    if env.python_version is None:
        return Check(
            name="python",
            status="fail",
            detail=f"{env.python} did not run",
            fix="recreate the venv, or set KOHYA_PYTHON to a working interpreter",
        )
    try:
        version = tuple(int(x) for x in env.python_version.split(".")[:2])
    except ValueError:
        version = ()
    low, high = _SUPPORTED_PYTHON
    if len(version) == 2 and low <= version <= high:
        return Check(name="python", status="ok", detail=f"Python {env.python_version}")
    return Check(
        name="python",
        status="warn",
        detail=f"Python {env.python_version}: sd-scripts and its pins are tested on 3.10-3.12",
        fix="create the venv with Python 3.10 (what sd-scripts documents)",
    )


def _check_torch(env: Environment, py: str) -> Check:
    if env.torch_version is None:
        return Check(
            name="torch",
            status="fail",
            detail="torch is not installed in this Python",
            fix=f"{py} -m pip install torch torchvision (pick the CUDA build: pytorch.org)",
        )
    if env.torch_cpu_only:
        return Check(
            name="torch",
            status="warn",
            detail=f"torch {env.torch_version} is a CPU-only build: training will be very slow",
            fix=(
                f"install a CUDA build, e.g. {py} -m pip install --force-reinstall torch "
                "torchvision --index-url https://download.pytorch.org/whl/cu124 (pick the CUDA "
                "version your driver supports)"
            ),
        )
    build = (
        f"CUDA {env.cuda_version}"
        if env.cuda_version
        else f"ROCm {env.hip_version}"
        if env.hip_version
        else "MPS"
    )
    return Check(name="torch", status="ok", detail=f"torch {env.torch_version} ({build})")


def _check_gpu(env: Environment) -> list[Check]:
    if env.cuda_available and env.gpus:
        listed = ", ".join(
            f"{g.name} ({g.memory_total_mib} MiB)" if g.memory_total_mib else g.name
            for g in env.gpus
        )
        checks = [Check(name="gpu", status="ok", detail=f"{len(env.gpus)} GPU(s): {listed}")]
        if env.bf16_supported is False:
            checks.append(
                Check(
                    name="bf16",
                    status="warn",
                    detail="this GPU does not support bf16",
                    fix='use mixed_precision = "fp16"',
                )
            )
        elif env.bf16_supported:
            checks.append(Check(name="bf16", status="ok", detail="bf16 supported"))
        return checks
    if env.mps_available:
        return [Check(name="gpu", status="ok", detail="Apple MPS (no CUDA)")]
    seen = [g.name for g in env.gpus]
    if seen and env.torch_cpu_only:
        return [
            Check(
                name="gpu",
                status="warn",
                detail=f"nvidia-smi sees {', '.join(seen)}, but torch is CPU-only",
                fix="install a CUDA build of torch in this venv (see the torch check)",
            )
        ]
    if seen:
        return [
            Check(
                name="gpu",
                status="warn",
                detail=f"nvidia-smi sees {', '.join(seen)}, but torch sees no CUDA device",
                fix="check the NVIDIA driver against torch's CUDA version and CUDA_VISIBLE_DEVICES",
            )
        ]
    return [
        Check(
            name="gpu",
            status="warn",
            detail="no GPU visible: training runs on the CPU (hours where a GPU takes minutes)",
            fix="run on a machine with an NVIDIA GPU and a CUDA build of torch",
        )
    ]


def _check_requirements(env: Environment, py: str) -> Check:
    missing = [d for d in _REQUIRED_PACKAGES if getattr(env, _PACKAGES[d]) is None]
    if missing:
        return Check(
            name="requirements",
            status="fail",
            detail=f"missing: {', '.join(missing)}",
            fix=f"cd {_quote(str(env.sd_scripts_dir))} && {py} -m pip install -r requirements.txt",
        )
    found = ", ".join(f"{d} {getattr(env, _PACKAGES[d])}" for d in _REQUIRED_PACKAGES[:3])
    return Check(name="requirements", status="ok", detail=found)


def _check_lycoris(env: Environment, py: str) -> Check:
    version = env.lycoris_version
    if version is None:
        return Check(
            name="lycoris",
            status="warn",
            detail="lycoris-lora is not installed: LoCon/LoHa/LoKr/IA3 jobs cannot run (LoRA can)",
            fix=f"{py} -m pip install lycoris-lora",
        )
    # The verdicts come from the compatibility table (lycoris_compat.py, docs/networks.md).
    from .lycoris import describe_lycoris

    status, detail, fix = describe_lycoris(version)
    if fix is not None:
        fix = fix.replace("pip install", f"{py} -m pip install")
    return Check(name="lycoris", status=status, detail=detail, fix=fix)


def _check_optional(env: Environment) -> Check:
    have = [
        f"{d} {getattr(env, _PACKAGES[d])}" for d in _OPTIONAL_USES if getattr(env, _PACKAGES[d])
    ]
    missing = [
        f"{d} (for {use})" for d, use in _OPTIONAL_USES.items() if not getattr(env, _PACKAGES[d])
    ]
    parts = []
    if have:
        parts.append(", ".join(have))
    if missing:
        parts.append("not installed: " + ", ".join(missing))
    return Check(name="optional", status="ok", detail="; ".join(parts))


def _check_paths(env: Environment) -> Check:
    spaced = [str(p) for p in (env.sd_scripts_dir, env.python) if " " in str(p)]
    windows = (env.platform or "").startswith("win") or env.python.name.lower() == "python.exe"
    if not spaced:
        return Check(name="paths", status="ok", detail="no spaces in the install paths")
    if windows:
        return Check(
            name="paths",
            status="warn",
            detail=f"spaces in {', '.join(spaced)}: the kohya_ss GUI refuses them and Windows "
            "launchers split them",
            fix="move the install to a folder without spaces, e.g. C:\\kohya_ss",
        )
    return Check(
        name="paths",
        status="ok",
        detail=f"spaces in {', '.join(spaced)} (fine here: arguments are never split by a shell)",
    )
