"""The dataset side of an imported sd-scripts config: ``--dataset_config`` tables, or the repeat
folders under ``train_data_dir``/``reg_data_dir``, and the sample prompt file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import Problem
from ..models.dataset import BucketOptions, CaptionOptions, parse_repeats_folder
from ..models.model import DATA_PLACEHOLDER
from .import_paths import LocalPaths
from .prompt_lines import parse_prompt_line

__all__ = ["DATASET_KEYS", "dataset_section", "prompts_file", "subsets_from_dirs"]

DATASET_KEYS = set(BucketOptions.model_fields) | set(CaptionOptions.model_fields)


def subsets_from_dirs(
    train: str | None,
    reg: str | None,
    problems: list[Problem],
    local: LocalPaths | None = None,
) -> list[dict[str, Any]]:
    """The repeat folders under ``train_data_dir``/``reg_data_dir``, as sd-scripts reads them.

    ``local`` (the importers that take ``--data``): a folder that is not here is read from
    ``local.data`` (the training images), else kept as a ``<data>`` placeholder with a note;
    without it, a missing folder is an error.
    """
    subsets: list[dict[str, Any]] = []
    for base, is_reg in ((train, False), (reg, True)):
        if not base:
            continue
        key = "train_data_dir" if not is_reg else "reg_data_dir"
        root = Path(base)
        if not root.is_dir() and local is not None:
            if local.data is not None and not is_reg:
                if not local.data.is_dir():
                    problems.append(Problem("--data", f"folder not found: {local.data}", None))
                    continue
                root = local.data
            else:
                placeholder: dict[str, Any] = {"image_dir": DATA_PLACEHOLDER}
                if is_reg:
                    placeholder["is_reg"] = True
                subsets.append(placeholder)
                problems.append(
                    Problem(
                        key,
                        f"{base} is not on this machine; its repeat folders are imported as the "
                        f"placeholder {DATA_PLACEHOLDER}",
                        "import again with --data DIR (the folder that holds 20_name/ ...)"
                        if not is_reg
                        else "set this subset's image_dir to your regularization folder",
                        "warning",
                        "import-placeholder",
                    )
                )
                continue
        if not root.is_dir():
            problems.append(Problem(key, f"folder not found: {base}", "fix the path"))
            continue
        for child in sorted(p for p in root.iterdir() if p.is_dir()):
            parsed = parse_repeats_folder(child.name)
            if parsed is None or parsed[0] < 1:
                problems.append(
                    Problem(
                        str(child),
                        "sd-scripts skips this folder (no <repeats>_ prefix)",
                        f"rename it, e.g. '10_{child.name}'",
                        "warning",
                    )
                )
                continue
            entry: dict[str, Any] = {"image_dir": str(child)}
            if is_reg:
                entry["is_reg"] = True
            subsets.append(entry)
    return subsets


def dataset_section(
    flat: dict[str, Any],
    dataset_cfg: Mapping[str, Any] | None,
    problems: list[Problem],
    local: LocalPaths | None = None,
) -> dict[str, Any]:
    ds: dict[str, Any] = {}
    if dataset_cfg is not None:
        general = dict(dataset_cfg.get("general", {}))
        ds.update({k: v for k, v in general.items() if k in DATASET_KEYS})
        for k in general:
            if k not in DATASET_KEYS:
                problems.append(Problem(f"dataset general.{k}", "not a dataset config key", None))
        blocks = list(dataset_cfg.get("datasets", []))
        if len(blocks) == 1:
            block = dict(blocks[0])
            ds["subsets"] = [dict(s) for s in block.pop("subsets", [])]
            ds.update(block)
        else:
            ds["datasets"] = [
                {**dict(b), "subsets": [dict(s) for s in b.get("subsets", [])]} for b in blocks
            ]
    else:
        for key in DATASET_KEYS - {"resolution"}:
            if key in flat:
                ds[key] = flat[key]
        ds["subsets"] = subsets_from_dirs(
            flat.get("train_data_dir"), flat.get("reg_data_dir"), problems, local
        )
    # sd-scripts falls back to the --config_file values for every subset (config_util.py:408-471)
    for key in CaptionOptions.model_fields:
        if key in flat:
            ds.setdefault(key, flat[key])
    ds.setdefault("caption_extension", ".caption")  # sd-scripts' own default
    ds.setdefault("enable_bucket", bool(flat.get("enable_bucket", False)))
    if "train_batch_size" in flat:
        ds.setdefault("batch_size", flat["train_batch_size"])
    if "resolution" in flat and "resolution" not in ds:
        res = flat["resolution"]
        if isinstance(res, str):
            parts = [int(p) for p in res.split(",")]
            ds["resolution"] = parts[0] if len(parts) == 1 else parts
        else:
            ds["resolution"] = res
    return ds


def prompts_file(path: str, problems: list[Problem]) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        problems.append(
            Problem(
                "sample_prompts",
                f"file not found: {path}; sampling not imported",
                "add [[sampling.prompts]] to the job",
                "warning",
            )
        )
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        parsed = parse_prompt_line(line)
        if parsed is None:
            continue
        prompt, notes = parsed
        for note, is_error in notes:
            problems.append(
                Problem("sample_prompts", note, None, "error" if is_error else "warning")
            )
        out.append(prompt)
    return out
