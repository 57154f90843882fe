"""Diagnose a probed environment: one verdict per check, with its fix (what ``doctor`` prints).

Pure: :func:`diagnose` reads the facts :func:`~.probe.probe_environment` found (or a hand-built
:class:`~.probe.Environment`) and starts nothing. The ``lycoris`` verdict comes from the
LyCORIS compatibility table (:mod:`.lycoris`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..models.family import FAMILIES
from .lycoris import describe_lycoris
from .manifest import ArgManifest
from .probe import PACKAGES, Environment

__all__ = ["Check", "CheckStatus", "check_manifest", "diagnose"]

CheckStatus = Literal["ok", "warn", "fail"]

_REQUIRED_PACKAGES = ("accelerate", "diffusers", "transformers", "toml", "voluptuous")
_OPTIONAL_USES = {
    "xformers": "--xformers attention",
    "prodigyopt": "optimizer Prodigy, which the oilpaint, lokr-style and sdxl-* presets use; "
    "doctor JOB says what a job needs",
}
_SUPPORTED_PYTHON = ((3, 10), (3, 12))


class Check(BaseModel):
    """One verdict of :func:`diagnose`: what was checked, the result, and how to fix it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Short name of the thing checked, e.g. 'torch'.")
    status: CheckStatus = Field(description="ok, warn or fail.")
    detail: str = Field(description="What was found.")
    fix: str | None = Field(default=None, description="How to fix it, when not ok.")


def diagnose(environment: Environment) -> list[Check]:
    """Turn probed facts into verdicts with fixes (what ``doctor`` prints).

    Args:
        environment: What :func:`~.probe.probe_environment` found (or a hand-built one).

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
    family_scripts = dict.fromkeys(p.script for p in FAMILIES.values())  # in profile order
    shown = [s for s in family_scripts if s in env.scripts]
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
    missing = [d for d in _REQUIRED_PACKAGES if getattr(env, PACKAGES[d]) is None]
    if missing:
        return Check(
            name="requirements",
            status="fail",
            detail=f"missing: {', '.join(missing)}",
            fix=f"cd {_quote(str(env.sd_scripts_dir))} && {py} -m pip install -r requirements.txt",
        )
    found = ", ".join(f"{d} {getattr(env, PACKAGES[d])}" for d in _REQUIRED_PACKAGES[:3])
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
    # The verdicts come from the compatibility table (lycoris_table.py, docs/networks.md).
    status, detail, fix = describe_lycoris(version)
    if fix is not None:
        fix = fix.replace("pip install", f"{py} -m pip install")
    return Check(name="lycoris", status=status, detail=detail, fix=fix)


def _check_optional(env: Environment) -> Check:
    have = [f"{d} {getattr(env, PACKAGES[d])}" for d in _OPTIONAL_USES if getattr(env, PACKAGES[d])]
    missing = [
        f"{d} (for {use})" for d, use in _OPTIONAL_USES.items() if not getattr(env, PACKAGES[d])
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


def check_manifest(manifest: ArgManifest | None, cached: bool, error: str | None) -> Check:
    """The ``arguments`` verdict: which sd-scripts the jobs are checked against, and since when."""
    if manifest is None:
        return Check(
            name="arguments",
            status="warn",
            detail=f"could not read the install's own arguments ({error}); jobs are checked "
            "against the built-in list of sd-scripts 48d368fa",
            fix="fix the probe's error above, then run doctor again",
        )
    counts = ", ".join(f"{name} {len(args)}" for name, args in sorted(manifest.scripts.items()))
    when = f"read {manifest.made_at[:10]}" + (" (cached)" if cached else "")
    detail = f"{manifest.label}: {counts} arguments; {when}"
    if manifest.errors:
        broken = "; ".join(f"{name}: {why}" for name, why in sorted(manifest.errors.items()))
        return Check(
            name="arguments",
            status="warn",
            detail=f"{detail}; could not build: {broken}",
            fix="those families cannot train with this install until their imports work",
        )
    return Check(name="arguments", status="ok", detail=detail)
