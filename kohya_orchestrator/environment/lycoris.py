"""Check a job against the LyCORIS compatibility table (:mod:`.lycoris_table`).

:func:`check_network_compat` turns the table into problems for a job and an installed version;
``validate --sd-scripts``, ``train`` (before anything starts, :func:`check_before_launch`) and
``doctor`` (:func:`describe_lycoris`) use it. :func:`network_guidance` adds LyCORIS' own advice,
which needs no install.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import Problem
from ..models import (
    AdaFactorOptimizer,
    DAdaptOptimizer,
    FullNetwork,
    IA3Network,
    LoKrNetwork,
    LoraNetwork,
    ProdigyOptimizer,
    TrainingJob,
)
from ..models.network import native_module
from .lycoris_table import (
    COVERED,
    FULL_FILE,
    FULL_WEIGHT_ERROR,
    IA3_FILE,
    IA3_KEYERROR,
    MEASURED_VERSIONS,
    UPGRADE_COMMAND,
    V3,
    V4,
    effective_preset,
    is_covered,
    lookup,
)
from .probe import probe_package_versions

if TYPE_CHECKING:
    from .discovery import Install
    from .probe import Environment

__all__ = [
    "check_before_launch",
    "check_network_compat",
    "describe_lycoris",
    "network_guidance",
]


def check_network_compat(
    job: TrainingJob, lycoris_version: str | None, *, python: str | Path | None = None
) -> list[Problem]:
    """Problems of this job with the installed lycoris-lora (None: not installed).

    Errors are combinations the table says fail (with the message users would see and the fix);
    a warning says the version is outside what the table covers. ``lora`` jobs never use LyCORIS.
    ``python`` (the kohya venv's interpreter) makes the pip commands in the fixes exact.
    """
    problems = _compat_problems(job, lycoris_version)
    if python is None:
        return problems
    pip = f"{python} -m pip install"
    return [replace(p, hint=p.hint.replace("pip install", pip)) if p.hint else p for p in problems]


def _compat_problems(job: TrainingJob, lycoris_version: str | None) -> list[Problem]:
    n = job.network
    if isinstance(n, LoraNetwork) or native_module(n) is not None:
        return []  # sd-scripts' own modules: no LyCORIS involved
    family = job.model.family
    if lycoris_version is None:
        return [
            Problem(
                "network.algo",
                f"algo '{n.algo}' needs LyCORIS, and lycoris-lora is not installed in the kohya "
                "venv (sd-scripts would stop with ModuleNotFoundError: No module named 'lycoris')",
                f"install it into the kohya venv: {UPGRADE_COMMAND}",
            )
        ]
    if not is_covered(lycoris_version):
        return [
            Problem(
                "network.algo",
                f"lycoris-lora {lycoris_version} is outside the versions kohya_orchestrator has "
                f"checked ({', '.join(str(r) for r in COVERED)}; trained with "
                f"{' and '.join(MEASURED_VERSIONS)})",
                f"to be safe: {UPGRADE_COMMAND}",
                severity="warning",
            )
        ]
    row = lookup(n.algo, getattr(n, "preset", None), lycoris_version, family)
    if row is None or row.outcome == "trains":
        return []
    preset = effective_preset(getattr(n, "preset", None))
    given = "" if getattr(n, "preset", None) else " (LyCORIS' default when none is given)"
    where = "network.algo" if row.message in (IA3_KEYERROR, FULL_WEIGHT_ERROR) else "network.preset"
    return [
        Problem(
            where,
            f"algo '{n.algo}' with preset '{preset}'{given} fails on lycoris-lora "
            f"{lycoris_version} with {family}: {row.message}",
            row.fix,
        )
    ]


def network_guidance(job: TrainingJob) -> list[Problem]:
    """Warnings from LyCORIS' own guidance that need no install (ly:docs/Algo-List.md)."""
    n, o = job.network, job.optimizer
    out: list[Problem] = []
    adaptive = isinstance(o, ProdigyOptimizer | DAdaptOptimizer | AdaFactorOptimizer)
    lr = o.unet_lr or o.learning_rate
    if isinstance(n, IA3Network) and not adaptive and lr < 1e-3:
        out.append(
            Problem(
                "optimizer.learning_rate",
                f"IA3 needs a much higher learning rate than LoRA (LyCORIS: about 5e-3 to 1e-2); "
                f"at {lr:g} it barely moves",
                "set optimizer.learning_rate = 5e-3",
                severity="warning",
            )
        )
    if isinstance(n, FullNetwork) and not adaptive and lr > 1e-5:
        out.append(
            Problem(
                "optimizer.learning_rate",
                f"algo 'full' is native fine-tuning: {lr:g} is a LoRA learning rate and will "
                "wreck the model (LyCORIS' example uses 2e-6)",
                "set optimizer.learning_rate = 2e-6",
                severity="warning",
            )
        )
    if isinstance(n, LoKrNetwork) and n.network_dim >= 10000 and n.network_alpha != 1.0:
        out.append(
            Problem(
                "network.network_alpha",
                f"LoKr at full dimension (network_dim {n.network_dim}) ignores alpha",
                "remove network_alpha, or use a small dim with factor = -1",
                severity="warning",
            )
        )
    return out


def describe_lycoris(version: str) -> tuple[Literal["ok", "warn"], str, str | None]:
    """Status, detail and fix of the ``lycoris`` line of ``doctor`` for an installed version."""
    if version in V4:
        return (
            "warn",
            f"lycoris-lora {version}: its presets full/full-lin/unet-only fail on SD1/SD2 with "
            "'duplicated lora name' and its built-in ia3 preset matches no module ('optimizer "
            "got an empty parameter list')",
            "kohya_orchestrator's defaults avoid both: preset=attn-mlp for every algo but ia3, "
            f"preset={IA3_FILE} for ia3; for conv layers use preset={FULL_FILE} "
            f"(measured with {MEASURED_VERSIONS[-1]}; docs/networks.md)",
        )
    if version in V3:
        full = lookup("full", "attn-mlp", version, "sd15")
        if full is not None and full.outcome == "fails":
            return (
                "warn",
                f"lycoris-lora {version}: algo=ia3 fails with {IA3_KEYERROR}; algo=full fails with "
                f"{FULL_WEIGHT_ERROR}",
                f"for ia3 and full, upgrade: {UPGRADE_COMMAND} (the other algos train on {version})",
            )
        return (
            "warn",
            f"lycoris-lora {version}: algo=ia3 fails with {IA3_KEYERROR}",
            f"for ia3, upgrade: {UPGRADE_COMMAND} (every other algo trains on {version})",
        )
    return (
        "ok",
        f"lycoris-lora {version} (not in kohya_orchestrator's compatibility table; trained with "
        f"{' and '.join(MEASURED_VERSIONS)})",
        None,
    )


# ------------------------------------------------------------------------- before a launch
def check_before_launch(
    job: TrainingJob, install: Install, environment: Environment | None, *, probe: bool = True
) -> list[Problem]:
    """The blocking compatibility problems of a job with an install (what ``train`` checks).

    Uses ``environment.lycoris_version`` when a probe was given, else asks the install's Python
    (one short subprocess), unless ``probe`` is False. Returns only errors: a job that would fail.
    First of all, the family's script must be in the install (an older sd-scripts has no
    ``flux_train_network.py``).
    """
    script = job.model.script
    if not (install.sd_scripts_dir / script).is_file():
        title = job.model.profile.title
        return [
            Problem(
                "model.family",
                f"{script} is not in this sd-scripts ({install.sd_scripts_dir}): it is older "
                f"than {title} training",
                "update sd-scripts (git pull in that folder, then its requirements) or make a "
                "new install: python -m kohya_orchestrator install",
            )
        ]
    if isinstance(job.network, LoraNetwork):
        return []
    if environment is not None:
        if environment.python_version is None:
            return []  # the probe could not run the interpreter; doctor says why
        version = environment.lycoris_version
    elif probe:
        versions = probe_package_versions(install, ("lycoris-lora",))
        if versions is None:
            return []  # the interpreter could not be asked; the launch will tell
        version = versions.get("lycoris-lora")
    else:
        return []
    problems = check_network_compat(job, version, python=install.python)
    return [p for p in problems if p.severity == "error"]
