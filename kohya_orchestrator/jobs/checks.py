"""Checks that need the filesystem (models do no I/O): paths exist, outputs are not overwritten."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import Problem
from ..models import DreamBoothSubset, FineTuningSubset, TrainingJob
from ..models.model import is_placeholder, is_placeholder_path, looks_like_hub_id
from .model_file import check_model_family

_BASE_KEY = "model.pretrained_model_name_or_path"

__all__ = ["check_outputs", "check_paths", "is_placeholder", "looks_like_hub_id"]


def _missing(path: str, key: str, what: str, hint: str) -> Problem:
    return Problem(key, f"{what} does not exist: {path}", hint)


def check_paths(job: TrainingJob, *, placeholders: str = "error") -> list[Problem]:
    """Every path in the job that should exist but does not.

    A placeholder (``<...>``, as shipped in presets) is reported with ``placeholders`` as its
    severity: a warning for ``validate``, an error before a launch.
    """
    problems: list[Problem] = []
    m = job.model
    fam = m.profile
    for key, value in m.component_paths().items():
        if key == "model.tokenizer_cache_dir" and not Path(value).exists():
            problems.append(_missing(value, key, "path", "fix the path or remove the key"))
            continue
        if is_placeholder(value):
            problems.append(
                Problem(
                    key,
                    f"{value} is a placeholder",
                    f"give the path of the file: --set {key}=/path/to/{value[1:-1]}",
                    placeholders,
                    "placeholder",
                )
            )
        elif Path(value).exists():
            continue
        elif looks_like_hub_id(value) and key == "model.pretrained_model_name_or_path":
            if not fam.hub_ids:
                problems.append(
                    Problem(
                        key,
                        f"{fam.title} loads local files only, not a Hugging Face id ({value})",
                        "download the .safetensors file and give its path",
                    )
                )
        elif key == "model.pretrained_model_name_or_path":
            problems.append(
                _missing(
                    value,
                    key,
                    "base model",
                    "give the path of your .safetensors checkpoint (or diffusers folder)"
                    + (", or a Hugging Face id such as org/name" if fam.hub_ids else ""),
                )
            )
        else:
            problems.append(_missing(value, key, "path", "fix the path or remove the key"))
    base = m.pretrained_model_name_or_path
    mismatch = None if is_placeholder(base) else check_model_family(m.family, base, _BASE_KEY)
    if mismatch is not None:
        problems.append(mismatch)
    logs = job.training.logging_dir
    if logs and is_placeholder_path(logs) and not is_placeholder_path(job.training.output_dir):
        problems.append(
            Problem(
                "training.logging_dir",
                f"{logs} is a placeholder",
                "give the folder for the logs: --set training.logging_dir=DIR",
                placeholders,
                "placeholder",
            )
        )
    if is_placeholder_path(job.training.output_dir):
        problems.append(
            Problem(
                "training.output_dir",
                f"{job.training.output_dir} is a placeholder",
                "give the folder for checkpoints and samples: --set training.output_dir=DIR",
                placeholders,
                "placeholder",
            )
        )
    for where, subset in job.dataset.all_subsets():
        folder = getattr(subset, "image_dir", None)
        if isinstance(subset, DreamBoothSubset) and is_placeholder_path(subset.image_dir):
            wanted = (
                "your folder of repeat folders (20_name/ ...)"
                if is_placeholder(folder or "")
                else f"the folder that holds '{subset.folder_name}'"
            )
            problems.append(
                Problem(
                    f"{where}.image_dir",
                    f"{subset.image_dir} is a placeholder",
                    f"import again with --data DIR ({wanted}), or edit image_dir in the job file",
                    placeholders,
                    "placeholder",
                )
            )
        elif isinstance(subset, DreamBoothSubset):
            p = Path(subset.image_dir)
            if not p.exists():
                problems.append(
                    _missing(
                        subset.image_dir,
                        f"{where}.image_dir",
                        "image folder",
                        "point it at a folder of images such as img/20_my style "
                        "(python -m kohya_orchestrator dataset inspect img)",
                    )
                )
            elif not p.is_dir():
                problems.append(
                    Problem(
                        f"{where}.image_dir",
                        f"not a folder: {subset.image_dir}",
                        "give the folder that holds the images",
                    )
                )
        elif isinstance(subset, FineTuningSubset):
            if not Path(subset.metadata_file).is_file():
                problems.append(
                    _missing(
                        subset.metadata_file,
                        f"{where}.metadata_file",
                        "metadata file",
                        "give the .json/.jsonl written by sd-scripts' finetune tools",
                    )
                )
    n = job.network
    if n.network_weights and is_placeholder_path(n.network_weights):
        problems.append(
            Problem(
                "network.network_weights",
                f"{n.network_weights} is a placeholder",
                "give the LoRA to start from: --set network.network_weights=FILE, or remove it",
                placeholders,
                "placeholder",
            )
        )
    elif n.network_weights and not Path(n.network_weights).exists():
        problems.append(
            _missing(
                n.network_weights,
                "network.network_weights",
                "weights file",
                "fix the path or remove network_weights",
            )
        )
    preset = getattr(n, "preset", None)
    if (
        isinstance(preset, str)
        and (preset.endswith(".toml") or "/" in preset)
        and not Path(preset).is_file()
    ):
        problems.append(
            _missing(
                preset,
                "network.preset",
                "LyCORIS preset file",
                "fix the path, or use a built-in preset such as attn-mlp",
            )
        )
    if job.training.resume and not Path(job.training.resume).is_dir():
        problems.append(
            _missing(
                job.training.resume,
                "training.resume",
                "state folder",
                "give a '<name>-state' folder saved with save_state",
            )
        )
    return problems


def check_outputs(job: TrainingJob) -> list[Problem]:
    """Refuse to start a job whose final file would overwrite an existing one."""
    t = job.training
    out = Path(t.output_dir)
    final = out / f"{t.output_name}.{t.save_model_as}"
    problems: list[Problem] = []
    if out.exists() and not out.is_dir():
        problems.append(Problem("training.output_dir", f"not a folder: {out}", "choose a folder"))
    elif final.exists():
        problems.append(
            Problem(
                "training.output_name",
                f"{final} already exists and would be overwritten",
                "choose another output_name (--set training.output_name=...) or move the file",
            )
        )
    elif out.is_dir() and not t.resume:  # resuming continues into the same folder on purpose
        stale = sorted(out.glob(f"{glob_escape(t.output_name)}-*.{t.save_model_as}"))
        if stale:
            problems.append(
                Problem(
                    "training.output_name",
                    f"{len(stale)} checkpoint(s) of an earlier run with this name are in {out} "
                    f"(e.g. {stale[0].name}) and would be overwritten",
                    "choose another output_name or output_dir",
                )
            )
    return problems


def glob_escape(text: str) -> str:
    """Escape glob metacharacters in a file name."""
    return re.sub(r"([*?\[])", r"[\1]", text)
