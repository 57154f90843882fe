"""Job-aware preflight: does the install's Python have what *this* job needs?

Before a launch (and in ``doctor JOB``): the optimizer's package (``prodigyopt`` for Prodigy,
``bitsandbytes`` for the 8-bit and paged optimizers, ``schedulefree``, ``dadaptation``,
``lion_pytorch``, the module of a ``module.Class`` optimizer), the attention backend
(``xformers``; ``sdpa`` needs torch 2), the tracker (``tensorboard``, ``wandb``), and for a job
that needs a GPU that torch sees one (with bf16 where the job asks for it, and the memory its
VRAM tier was made for). The LyCORIS version against the algo is ``environment/lycoris.py``.

:func:`job_requirements` and :func:`check_gpu` are pure; :func:`preflight` asks the install's
Python which modules it can import (one short subprocess, nothing imported).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import Problem
from ..models import TrainingJob
from ..models.optimizer import CustomOptimizer
from .discovery import Install
from .probe import Environment, probe_modules

__all__ = ["Requirement", "check_gpu", "job_requirements", "preflight", "vram_tier"]


@dataclass(frozen=True)
class Requirement:
    """A module the job needs in the install's Python."""

    module: str
    """Top-level import name, as sd-scripts imports it (``prodigyopt``, ``bitsandbytes``)."""
    where: str
    """The job key that needs it."""
    why: str
    package: str
    """What ``pip install`` takes."""


# optimizer type (lowercase) -> (module, package); sd-scripts imports them in train_util.get_optimizer
_OPTIMIZER_MODULES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^prodigy$"), "prodigyopt", "prodigyopt"),
    (re.compile(r"^dadapt"), "dadaptation", "dadaptation"),
    (re.compile(r"schedulefree$"), "schedulefree", "schedulefree"),
    (re.compile(r"(8bit|^paged)"), "bitsandbytes", "bitsandbytes"),
    (re.compile(r"^lion$"), "lion_pytorch", "lion-pytorch"),
)


def job_requirements(job: TrainingJob) -> list[Requirement]:
    """The modules the job's settings make sd-scripts import."""
    out: list[Requirement] = []
    kind = job.optimizer.type
    if isinstance(job.optimizer, CustomOptimizer):
        module = kind.split(".")[0]
        out.append(Requirement(module, "optimizer.type", f"optimizer {kind}", module))
    else:
        for pattern, module, package in _OPTIMIZER_MODULES:
            if pattern.search(kind.lower()):
                out.append(Requirement(module, "optimizer.type", f"optimizer {kind}", package))
                break
    if job.training.attention == "xformers":
        out.append(Requirement("xformers", "training.attention", "attention xformers", "xformers"))
    tracker = job.training.log_with
    for name in ("tensorboard", "wandb"):
        if tracker in (name, "all"):
            out.append(Requirement(name, "training.log_with", f"log_with {tracker}", name))
    return out


def vram_tier(job: TrainingJob) -> int | None:
    """The GPU memory (GB) the job's preset overlay was made for (``oilpaint+vram-8gb`` -> 8)."""
    match = re.search(r"vram-(\d+)gb", job.preset or "")
    return int(match.group(1)) if match else None


def _gpu_reasons(job: TrainingJob) -> list[str]:
    t = job.training
    reasons = []
    if t.mixed_precision in ("fp16", "bf16"):
        reasons.append(f"mixed_precision = {t.mixed_precision}")
    if t.attention == "xformers":
        reasons.append("attention = xformers")
    if t.fp8_base:
        reasons.append("fp8_base")
    if any(r.module == "bitsandbytes" for r in job_requirements(job)):
        reasons.append(f"optimizer {job.optimizer.type} (bitsandbytes runs on CUDA)")
    return reasons


def check_gpu(job: TrainingJob, environment: Environment) -> list[Problem]:
    """A job that needs a GPU, on an install whose torch sees none (or too small a one)."""
    if environment.torch_version is None:
        return []  # doctor's torch check says it; the probe could not tell
    reasons = _gpu_reasons(job)
    problems: list[Problem] = []
    has_gpu = environment.cuda_available or environment.mps_available
    if reasons and not has_gpu:
        build = (
            f"torch {environment.torch_version} is a CPU-only build"
            if environment.torch_cpu_only
            else f"torch {environment.torch_version} sees no GPU (driver, or CUDA_VISIBLE_DEVICES)"
        )
        problems.append(
            Problem(
                "training.mixed_precision" if "mixed_precision" in reasons[0] else "training",
                f"this job needs a GPU ({', '.join(reasons)}), and {build}",
                "install a CUDA build of torch in the kohya venv (python -m kohya_orchestrator "
                'doctor says which), or for a CPU test run: --set training.mixed_precision="no"',
            )
        )
        return problems
    if job.training.mixed_precision == "bf16" and environment.bf16_supported is False:
        problems.append(
            Problem(
                "training.mixed_precision",
                "this GPU has no bf16 support (torch.cuda.is_bf16_supported() is False)",
                'use --set training.mixed_precision="fp16"',
            )
        )
    tier = vram_tier(job)
    sizes = [g.memory_total_mib for g in environment.gpus if g.memory_total_mib]
    if tier is not None and sizes and max(sizes) < tier * 1024 * 0.9:
        have = max(sizes) / 1024
        lower = [t for t in (8, 12, 16, 24) if t * 1024 * 0.9 <= max(sizes)]
        problems.append(
            Problem(
                "preset",
                f"the job's settings are made for {tier} GB of GPU memory ({job.preset}), and the "
                f"largest GPU here has {have:.1f} GB: expect out of memory",
                f"use the preset with --vram {lower[-1]}"
                if lower
                else "use a GPU with more memory (or the cloud)",
                severity="warning",
            )
        )
    return problems


def preflight(job: TrainingJob, install: Install, environment: Environment | None) -> list[Problem]:
    """Every module the job needs that the install's Python lacks, and the GPU checks.

    Errors for what would stop sd-scripts; the memory tier is a warning. Without an
    ``environment`` (no probe) only the modules are checked.
    """
    problems: list[Problem] = []
    needed = job_requirements(job)
    found = probe_modules(install, sorted({r.module for r in needed}))
    if found is not None:
        for req in needed:
            if found.get(req.module, True):
                continue
            problems.append(
                Problem(
                    req.where,
                    f"{req.why} needs the '{req.module}' module, and the kohya venv "
                    f"({install.python}) does not have it: sd-scripts would stop with ImportError",
                    f"{install.python} -m pip install {req.package}",
                )
            )
    if environment is not None:
        problems += check_gpu(job, environment)
        problems += _check_sdpa(job, environment)
    return problems


def _check_sdpa(job: TrainingJob, environment: Environment) -> list[Problem]:
    version = environment.torch_version or ""
    major = re.match(r"(\d+)\.", version)
    if job.training.attention != "sdpa" or major is None or int(major.group(1)) >= 2:
        return []
    return [
        Problem(
            "training.attention",
            f"sdpa attention needs torch 2 or later; the kohya venv has torch {version}",
            'use training.attention = "xformers" (or "none"), or update torch',
        )
    ]
