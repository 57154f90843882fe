"""Load and validate job files: TOML layers -> one dict -> one TrainingJob, and back to TOML.

The layers (:mod:`.layers`) are merged first, then the result is validated once, so every problem
is reported at once (:mod:`.problems`) and names the layer that contributed the bad value.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError, Problem
from ..models import TrainingJob
from ..models.arguments import Arguments
from ..models.family import DEFAULT_FAMILY
from .layers import Layer, compose_layers, parse_set_overrides
from .problems import problems_from_validation_error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "RUN_JOB_JSON",
    "dump_job_toml",
    "job_to_dict",
    "load_job",
    "read_job_file",
    "read_toml",
    "validate_job",
]

RUN_JOB_JSON = "job.json"
"""The validated job a run directory keeps (launch/rundir.py); ``train`` reads it to rerun."""


def read_toml(path: Path, *, what: str = "job file") -> dict[str, Any]:
    """Read a TOML file, turning every failure into a ConfigError that says where."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [Problem(str(path), f"{what} not found", "check the path")], source=str(path)
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            [Problem(str(path), f"is a folder, not a {what}", "give the path of a .toml file")],
            source=str(path),
        ) from None
    except OSError as exc:
        raise ConfigError(
            [Problem(str(path), f"cannot read {what}: {exc.strerror}", None)], source=str(path)
        ) from None
    try:
        # utf-8-sig: Windows editors (Notepad) start UTF-8 files with a byte-order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(str(path), f"not UTF-8 text (byte {exc.start})", "save the file as UTF-8")],
            source=str(path),
        ) from None
    try:
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            [Problem(str(path), f"malformed TOML: {exc}", "fix the syntax at that line")],
            source=str(path),
        ) from None


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            [Problem(str(path), "job file not found", "check the path")], source=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [Problem(str(path), f"cannot read the job file: {exc}", None)], source=str(path)
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [Problem(str(path), f"malformed JSON: {exc}", "fix the syntax at that line")],
            source=str(path),
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem(str(path), "a job is a JSON object of sections", "pass a run's job.json")],
            source=str(path),
        )
    return data


def read_job_file(path: Path) -> tuple[Path, dict[str, Any]]:
    """The job file's data: a TOML job file, a JSON job (a run's ``job.json``), or a run
    directory (its ``job.json``: train the same job again). Returns the file read and its data."""
    path = Path(path)
    if path.is_dir() and (path / RUN_JOB_JSON).is_file():
        path = path / RUN_JOB_JSON
    elif path.is_dir():
        raise ConfigError(
            [
                Problem(
                    str(path),
                    f"is a folder without {RUN_JOB_JSON}: not a job file or a run directory",
                    "give a job file (.toml) or a run directory (runs/<id>)",
                )
            ],
            source=str(path),
        )
    if path.suffix.lower() == ".json":
        return path, _read_json(path)
    return path, read_toml(path)


def validate_job(
    data: Mapping[str, Any],
    *,
    source: str | None = None,
    provenance: Mapping[str, str] | None = None,
    arguments: Arguments | None = None,
) -> TrainingJob:
    """Validate a composed dict into a TrainingJob, or raise ConfigError with every problem.

    ``arguments``: what the sd-scripts that will run the job accepts (``extra_args`` are checked
    against it; ``environment.manifest.arguments_of`` reads an install's); default: the built-in
    list of sd-scripts 48d368fa.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            [
                Problem(
                    "",
                    f"a job is a table of sections ([model], [dataset], ...), not "
                    f"{type(data).__name__}",
                    "pass a dict (Python) or a TOML file (load_job)",
                )
            ],
            source=source,
        )
    try:
        context = {"arguments": arguments} if arguments is not None else None
        return TrainingJob.model_validate(dict(data), context=context)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation_error(exc, provenance), source=source) from None


def load_job(
    path: Path,
    *,
    overrides: Sequence[str] = (),
    base_layers: Sequence[Layer] = (),
    arguments: Arguments | None = None,
) -> TrainingJob:
    """Read a job file, merge it over ``base_layers`` and under ``--set`` overrides, validate once.

    ``path`` may also be a run directory or its ``job.json`` (:func:`read_job_file`).
    """
    path, data = read_job_file(Path(path))
    layers = [*base_layers, Layer(f"job file {path.name}", data, path.parent.resolve())]
    if overrides:
        layers.append(Layer("--set", parse_set_overrides(overrides), Path.cwd()))
    composed = compose_layers(layers)
    return validate_job(
        composed.data, source=str(path), provenance=composed.provenance, arguments=arguments
    )


def job_to_dict(job: TrainingJob) -> dict[str, Any]:
    """The job as plain data, leaving out defaults but keeping every discriminator."""
    data = job.model_dump(mode="json", exclude_defaults=True)
    model = job.model.model_dump(mode="json", exclude_defaults=True)
    model.pop("family", None)  # each section's default is its own family: say it unless sd15
    head: dict[str, Any] = {
        "pretrained_model_name_or_path": job.model.pretrained_model_name_or_path
    }
    if job.model.family != DEFAULT_FAMILY:
        head["family"] = job.model.family
    data["model"] = {**head, **model}
    data.setdefault("dataset", {})
    data["network"] = {"algo": job.network.algo, **data.get("network", {})}
    data["optimizer"] = {"type": job.optimizer.type, **data.get("optimizer", {})}
    cleaned: dict[str, Any] = _drop_none(data)
    return cleaned


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def dump_job_toml(job: TrainingJob, *, header: Sequence[str] = ()) -> str:
    """The job as a job file (TOML) that loads back to an equal job."""
    from ..render._writer import dumps

    data = job_to_dict(job)
    order = [
        "version",
        "name",
        "description",
        "preset",
        "model",
        "dataset",
        "network",
        "optimizer",
        "scheduler",
        "training",
        "sampling",
        "extra_args",
    ]
    ordered = {k: data[k] for k in order if k in data}
    return dumps(ordered, header=header)
