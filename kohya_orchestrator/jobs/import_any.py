"""``import-config``: any config a kohya user already has, made on any machine, as a job.

Formats (told apart by their keys, not their names):

- sd-scripts' ``--config_file`` TOML, flat or sectioned (``[model_arguments]``, ...), with its
  ``--dataset_config`` or ``train_data_dir`` folders; the Colab notebooks'
  ``training_config.toml`` + ``dataset_config.toml`` are this format (a ``dataset_config``
  path from the notebook's machine is looked up beside the config);
- LoRA_Easy_Training_Scripts' TOML (:mod:`.import_easy`);
- the kohya_ss GUI's saved config, JSON or TOML (:mod:`.import_gui`'s mapper).

Paths from another machine become placeholders or the user's own (:mod:`.import_paths`);
hand-edited JSON with trailing commas is read, with a note; a file none of whose keys is a
setting of any of these is refused as "not a kohya config".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Problem
from ..models import TrainingJob
from ..models.arguments import Arguments
from ..models.family import FAMILIES
from ..models.model import DATA_PLACEHOLDER, OUTPUT_PLACEHOLDER
from ..models.sd_args import known_args
from .gui_fields import (
    as_text,
    loads_json_lenient,
)
from .import_dataset import subsets_from_dirs
from .import_easy import easy_to_kohya, is_easy_config
from .import_paths import LocalPaths, foreign_basename, localize_paths
from .import_toml import _flatten, job_dict_from_kohya
from .layers import Layer, compose_layers
from .loading import read_toml, validate_job

__all__ = ["ConfigImport", "import_config"]

# A key only the kohya_ss GUI writes (sd-scripts has none of these names).
_GUI_MARKERS = {"LoRA_type", "max_resolution", "lr_warmup", "epoch", "LyCORIS_preset"}


@dataclass(frozen=True)
class ConfigImport:
    """An imported config: its format, the job data, the notes and the validated job."""

    format: str
    data: dict[str, Any]
    problems: list[Problem]
    job: TrainingJob


def _read(path: Path) -> tuple[dict[str, Any], list[Problem]]:
    if path.suffix.lower() != ".json":
        return read_toml(path, what="config"), []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), "config not found", "check the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), f"cannot read it: {exc}", None)]) from None
    try:
        value, fixed = loads_json_lenient(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [Problem(str(path), f"not JSON: {exc}", "fix the syntax at that line")],
            source=str(path),
        ) from None
    if not isinstance(value, dict):
        raise ConfigError([Problem(str(path), "expected a JSON object of settings", None)])
    notes = []
    if fixed:
        notes.append(
            Problem(
                str(path.name),
                "trailing commas (not JSON, as hand-copied files often have) were read past",
                None,
                "warning",
                "import-fixed",
            )
        )
    return value, notes


def _not_kohya(path: Path, keys: list[str]) -> ConfigError:
    shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
    return ConfigError(
        [
            Problem(
                str(path),
                f"not a kohya config: none of its keys ({shown or 'none'}) is a setting of "
                "sd-scripts, the kohya_ss GUI or LoRA_Easy_Training_Scripts",
                "give an sd-scripts config.toml, a GUI saved config (.json/.toml) or a "
                "LoRA_Easy TOML",
            )
        ],
        source=str(path),
    )


def _dataset_beside(
    flat: Mapping[str, Any], config_path: Path
) -> tuple[Path | None, list[Problem]]:
    """The ``dataset_config`` a config names, here or (made elsewhere) beside the config."""
    named = flat.get("dataset_config")
    if not isinstance(named, str) or not named:
        return None, []
    if Path(named).is_file():
        return Path(named), []
    beside = config_path.parent / foreign_basename(named)
    if beside.is_file():
        note = Problem(
            "dataset_config",
            f"{named} is not on this machine; read {beside} (beside the config) instead",
            None,
            "warning",
            "import-fixed",
        )
        return beside, [note]
    return None, [
        Problem(
            "dataset_config",
            f"{named} is not on this machine, nor beside the config; its subsets are imported "
            "as the placeholder <data>",
            "give it with --dataset FILE, or the images with --data DIR",
            "warning",
            "import-placeholder",
        )
    ]


def _from_gui(
    gui: dict[str, Any], arguments: Arguments | None, local: LocalPaths
) -> tuple[dict[str, Any], list[Problem]]:
    from .import_gui import gui_to_job_dict

    notes: list[Problem] = []
    train, reg = as_text(gui.pop("train_data_dir", None)), as_text(gui.pop("reg_data_dir", None))
    data, problems = gui_to_job_dict(gui, arguments)
    subsets = subsets_from_dirs(train, reg, notes, local)
    errors = [p for p in notes if p.severity == "error"]
    if errors:
        raise ConfigError(errors)
    if subsets:
        data.setdefault("dataset", {})["subsets"] = subsets
    name = as_text(gui.get("output_name"))
    return ({"name": name, **data} if name else data), problems + notes


def _complete(data: dict[str, Any], local: LocalPaths, problems: list[Problem]) -> None:
    """What a config names nowhere (images in a dataset config that is not here, a GUI preset's
    output folder): ``--data``/``--output``, else placeholders ``validate`` lists."""
    dataset = data.setdefault("dataset", {})
    if not dataset.get("subsets") and not dataset.get("datasets"):
        if local.data is not None:
            dataset["subsets"] = subsets_from_dirs(str(local.data), None, problems)
        else:
            dataset["subsets"] = [{"image_dir": DATA_PLACEHOLDER}]
    training = data.setdefault("training", {})
    if not training.get("output_dir"):
        training["output_dir"] = str(local.output) if local.output else OUTPUT_PLACEHOLDER


def import_config(
    config_path: Path,
    dataset_path: Path | None = None,
    *,
    family: str | None = None,
    arguments: Arguments | None = None,
    local: LocalPaths | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ConfigImport:
    """Read any supported config into a validated job.

    Args:
        config_path: The config file (its keys say its format).
        dataset_path: sd-scripts' ``--dataset_config`` file, when separate.
        family: The model family, when the keys cannot say it.
        arguments: What the install that will run it accepts (default: the built-in list).
        local: This machine's data, model and output (paths not here become placeholders).
        overrides: ``--set`` values, applied last.

    Raises:
        ConfigError: Not a kohya config, a value that cannot be a job, or a missing file.
    """
    local = local or LocalPaths()
    doc, notes = _read(config_path)
    if _GUI_MARKERS & set(doc):
        fmt = "kohya_ss GUI config"
        try:
            data, problems = _from_gui(dict(doc), arguments, local)
        except ConfigError as exc:
            raise ConfigError(exc.problems, source=str(config_path)) from None
        data, placed = localize_paths(data, local, origin=config_path.name)
        problems += placed
    else:
        dataset_cfg: dict[str, Any] | None = None
        if is_easy_config(doc):
            fmt = "LoRA_Easy_Training_Scripts TOML"
            config, dataset_cfg, easy_family, problems = easy_to_kohya(doc)
            family = family or easy_family
        else:
            fmt = "sd-scripts config"
            config, problems = doc, []
            if dataset_path is None:
                dataset_path, problems = _dataset_beside(_flatten(doc), config_path)
            if dataset_path is not None:
                dataset_cfg = read_toml(dataset_path, what="dataset config")
        flat = _flatten(config)
        known = set().union(*(known_args(f) for f in FAMILIES)) | {"train_data_dir"}
        if not known & set(flat):
            raise _not_kohya(config_path, list(flat))
        data, more = job_dict_from_kohya(
            config,
            dataset_cfg,
            family=family,
            arguments=arguments,
            local=local,
            origin=config_path.name,
        )
        problems += more
        if isinstance(flat.get("output_name"), str) and flat["output_name"]:
            data = {"name": flat["output_name"], **data}
    problems = notes + problems
    _complete(data, local, problems)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ConfigError(errors, source=str(config_path))
    layers = [Layer(config_path.name, data)]
    if overrides:
        layers.append(Layer("--set", dict(overrides), base_dir=Path.cwd()))
    composed = compose_layers(layers)
    job = validate_job(
        composed.data,
        source=str(config_path),
        provenance=composed.provenance,
        arguments=arguments,
    )
    return ConfigImport(format=fmt, data=composed.data, problems=problems, job=job)
