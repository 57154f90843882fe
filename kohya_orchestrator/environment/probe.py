"""Probe the machine an install runs on: torch, CUDA, GPUs and package versions.

With :mod:`.discovery`, the only module besides ``launch/`` that reads ``os.environ`` or starts
processes. The orchestrator never imports torch: everything about torch is asked of the kohya
venv's Python in one subprocess (:func:`probe_environment`), which prints one JSON line;
``nvidia-smi``, when it is on PATH, adds each GPU's used memory (or the GPUs torch cannot see).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .discovery import Install, Layout, read_commit

__all__ = [
    "PACKAGES",
    "Environment",
    "GpuInfo",
    "parse_nvidia_smi",
    "probe_environment",
    "probe_modules",
    "probe_package_versions",
]

# Distribution names asked of importlib.metadata inside the kohya venv, and the Environment field
# each one fills.
PACKAGES: dict[str, str] = {
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
_PROBE_MARKER = "KOHYA_ORCH_PROBE "


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
""".replace("__PACKAGES__", repr(tuple(PACKAGES))).replace("__MARKER__", repr(_PROBE_MARKER))


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
        for dist, field_name in PACKAGES.items():
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
    facts = _ask(install, _VERSIONS_SCRIPT, dists, timeout_s)
    return None if facts is None else {d: _opt_str(facts.get(d)) for d in dists}


def _ask(
    install: Install, script: str, args: Sequence[str], timeout_s: float
) -> dict[str, object] | None:
    """Run a short marked-JSON ``script`` in the install's Python (sd-scripts folder); its facts,
    or None when the interpreter could not be asked."""
    try:
        done = subprocess.run(
            [str(install.python), "-c", script, *args],
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
    return None if problem else facts


_MODULES_SCRIPT = r"""
import importlib.util, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = importlib.util.find_spec(name) is not None
    except Exception:
        out[name] = False
sys.stdout.write(__MARKER__ + json.dumps(out) + "\n")
""".replace("__MARKER__", repr(_PROBE_MARKER))


def probe_modules(
    install: Install, modules: Sequence[str], timeout_s: float = 60
) -> dict[str, bool] | None:
    """Whether each top-level module can be imported by the install's Python (found, not imported).

    One short subprocess in the sd-scripts folder (``importlib.util.find_spec``: nothing is
    imported, so it stays fast). None when the interpreter could not be asked.
    """
    if not modules:
        return {}
    facts = _ask(install, _MODULES_SCRIPT, modules, timeout_s)
    return None if facts is None else {m: bool(facts.get(m)) for m in modules}


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
