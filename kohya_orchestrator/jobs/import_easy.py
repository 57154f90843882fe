"""LoRA_Easy_Training_Scripts' saved TOML, read as the sd-scripts config its backend would run.

The front end saves its form as groups (``[general_args.args]``, ``[network_args.args]``,
``[optimizer_args.args]``, ``[saving_args.args]``, ...; each group's ``dataset_args`` table
holds dataset settings) plus ``[[subsets]]`` and ``[train_mode]``. Its backend
(``utils/validation.py`` in LoRA_Easy_Training_scripts_Backend) flattens every group's
``args`` into one set of sd-scripts arguments, skipping empty and false values; turns the
``network_args`` / ``optimizer_args`` / ``lr_scheduler_args`` tables into ``key=value`` lists;
picks ``lycoris.kohya`` when ``network_args`` has ``algo`` (``networks.dylora`` for ``unit``,
``networks.lora_fa`` for ``fa``); takes ``sdxl = true`` as the SDXL script and ``warmup_ratio``
as a share of the steps; writes the ``dataset_args`` into the dataset config's ``[general]``
and each subset (its ``name`` dropped) into one ``[[datasets]]`` block. This module does the
same, as data (it reads nothing and imports nothing of theirs), and says what it cannot carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import Problem
from ..models.family import DEFAULT_FAMILY, FAMILIES
from ..models.sd_args import known_args

__all__ = ["easy_to_kohya", "is_easy_config"]

# `sdxl = true` (its backend's switch for the SDXL script), as the GUI's checkbox names it; not
# `v2`, which is sd-scripts' own argument and passes through.
_CHECKBOXES = {
    p.gui_checkbox: name
    for name, p in FAMILIES.items()
    if p.gui_checkbox and p.gui_checkbox not in known_args(DEFAULT_FAMILY)
}
_TABLE_ARGS = ("network_args", "optimizer_args", "lr_scheduler_args")
_LIST_ARGS = {
    "down_lr_weight",
    "up_lr_weight",
    "block_dims",
    "block_alphas",
    "conv_block_dims",
    "conv_block_alphas",
}


def is_easy_config(doc: Mapping[str, Any]) -> bool:
    """True for a LoRA_Easy_Training_Scripts TOML (groups with an ``args`` table)."""
    groups = [v for k, v in doc.items() if k.endswith("_args") and isinstance(v, Mapping)]
    return (
        bool(groups)
        and all(set(g) <= {"args", "dataset_args"} for g in groups)
        and any("args" in g or "dataset_args" in g for g in groups)
    )


def _pairs(name: str, table: Mapping[str, Any]) -> list[str]:
    out = []
    for key, value in table.items():
        if name == "network_args" and key == "preset" and value == "":
            continue
        if name == "network_args" and key in _LIST_ARGS and isinstance(value, list):
            out.append(f"{key}={','.join(str(v) for v in value)}")
            continue
        if name == "optimizer_args" and value in ("true", "false"):
            value = str(value).capitalize()
        if isinstance(value, bool):
            value = str(value)
        out.append(f"{key}={value}")
    return out


def easy_to_kohya(
    doc: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], str | None, list[Problem]]:
    """The sd-scripts config and dataset config a LoRA_Easy TOML stands for.

    Returns:
        ``(config, dataset_config, family, notes)``: ``family`` is ``"sdxl"`` when the file
        says ``sdxl = true``, else None (left to the importer's detection).
    """
    notes: list[Problem] = []
    config: dict[str, Any] = {}
    general: dict[str, Any] = {}
    family: str | None = None
    for group, tables in doc.items():
        if not (group.endswith("_args") and isinstance(tables, Mapping)):
            continue
        for arg, value in dict(tables.get("args", {})).items():
            if arg == "fa":
                if value:
                    config["network_module"] = "networks.lora_fa"
                continue
            if arg in _TABLE_ARGS and isinstance(value, Mapping):
                if arg == "network_args" and "algo" in value:
                    config["network_module"] = "lycoris.kohya"
                elif arg == "network_args" and "unit" in value:
                    config["network_module"] = "networks.dylora"
                value = _pairs(arg, value)
            if arg in _CHECKBOXES:  # `sdxl = true`: the family's script, as the GUI's checkbox
                family = _CHECKBOXES[arg] if value else family
                continue
            if not value and not isinstance(value, Mapping):
                continue  # the backend passes no empty, zero or false value on
            config[arg] = value
        for arg, value in dict(tables.get("dataset_args", {})).items():
            if value in (None, "", [], False) or (arg == "max_token_length" and value == 75):
                continue
            general[arg] = value
    if "warmup_ratio" in config:
        config["lr_warmup_steps"] = float(config.pop("warmup_ratio"))
    if "lr_scheduler_type" in config:
        notes.append(
            Problem(
                "lr_scheduler_type",
                f"'{config['lr_scheduler_type']}' is a scheduler class of "
                "LoRA_Easy_Training_Scripts' backend (its custom_scheduler package): kept, but "
                "only an install that has that package can load it",
                "install LoRA_Easy's custom_scheduler beside sd-scripts, or remove "
                "extra_args.lr_scheduler_type and use a plain lr_scheduler",
                "warning",
            )
        )
    block_keys = {"resolution", "batch_size", "enable_bucket", "min_bucket_reso"}
    block_keys |= {"max_bucket_reso", "bucket_reso_steps", "bucket_no_upscale"}
    block = {k: general.pop(k) for k in list(general) if k in block_keys}
    subsets = []
    for i, raw in enumerate(doc.get("subsets", []) or []):
        if not isinstance(raw, Mapping):
            continue
        subset = {k: v for k, v in raw.items() if v not in (None, "", [], False) and k != "name"}
        if "image_dir" not in subset:
            notes.append(Problem(f"subsets[{i}]", "no image_dir; not imported", None, "warning"))
            continue
        subsets.append(subset)
    dataset = {"general": general, "datasets": [{**block, "subsets": subsets}]}
    mode = doc.get("train_mode", {})
    if isinstance(mode, Mapping) and mode.get("train_mode") not in (None, "lora"):
        notes.append(
            Problem(
                "train_mode",
                f"train_mode = {mode.get('train_mode')!r}: only LoRA training is imported",
                None,
            )
        )
    return config, dataset, family, notes
