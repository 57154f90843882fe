"""Load, compose and validate job files: TOML layers -> one dict -> one TrainingJob.

Layers merge as plain dicts before validation (base < preset < job file < --set overrides), then
the result is validated once, so every problem is reported at once and names the layer that
contributed the bad value.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, Problem
from ..models import TrainingJob
from ..models.job import RuleViolations
from ..models.optimizer import KNOWN_OPTIMIZERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "Layer",
    "compose_layers",
    "deep_merge",
    "load_job",
    "parse_set_overrides",
    "problems_from_validation_error",
    "read_toml",
    "resolve_relative_paths",
    "validate_job",
]


@dataclass(frozen=True)
class Layer:
    """One source of job settings, with a name used in error messages."""

    name: str
    data: Mapping[str, Any]
    base_dir: Path | None = None


@dataclass
class Composed:
    """The merged dict plus which layer set each dotted key."""

    data: dict[str, Any]
    provenance: dict[str, str] = field(default_factory=dict)


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


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge tables recursively; anything else in ``override`` replaces the base value."""
    out: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _leaf_paths(data: Mapping[str, Any], prefix: str = "") -> Iterable[str]:
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        yield path
        if isinstance(value, Mapping):
            yield from _leaf_paths(value, path)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    yield from _leaf_paths(item, f"{path}[{i}]")


def compose_layers(layers: Sequence[Layer]) -> Composed:
    """Merge layers in order (later wins) and record which layer set each key."""
    data: dict[str, Any] = {}
    provenance: dict[str, str] = {}
    for layer in layers:
        layer_data = dict(layer.data)
        if layer.base_dir is not None:
            layer_data = resolve_relative_paths(layer_data, layer.base_dir)
        data = deep_merge(data, layer_data)
        for path in _leaf_paths(layer_data):
            provenance[path] = layer.name
    return Composed(data, provenance)


def _parse_value(text: str) -> Any:
    try:
        value: Any = tomllib.loads(f"v = {text}")["v"]
        return value
    except tomllib.TOMLDecodeError:
        return text


def parse_set_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["network.network_dim=32", "training.output_name=my style"]`` into nested dicts.

    Values are read as TOML values (``32``, ``1e-4``, ``true``, ``[1, 2]``, ``"quoted"``); anything
    that is not valid TOML is taken as a plain string.
    """
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(
                Problem(
                    f"--set {item}",
                    "expected key.path=value",
                    "e.g. --set network.network_dim=32",
                )
            )
            continue
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                problems.append(
                    Problem(f"--set {item}", f"'{part}' was already set to a value", None)
                )
                break
            node = nxt
        else:
            node[parts[-1]] = _parse_value(value.strip())
    if problems:
        raise ConfigError(problems, source="--set overrides")
    return out


# Keys whose values are filesystem paths, resolved against the folder of the file that set them.
_PATH_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("vae", "tokenizer_cache_dir"),
    "training": ("output_dir", "logging_dir", "resume"),
    "network": ("network_weights",),
    "subset": ("image_dir", "metadata_file"),
}


def _is_relative(value: str) -> bool:
    if not value or value.startswith(("~", "$")):
        return False
    return not (PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute())


def _resolve(value: Any, base_dir: Path) -> Any:
    if isinstance(value, str) and _is_relative(value):
        return str(base_dir / value)
    if isinstance(value, str) and value.startswith("~"):
        return str(Path(value).expanduser())
    return value


def resolve_relative_paths(data: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """Make relative paths absolute against ``base_dir`` (pure: joins paths, reads nothing).

    The base model path is resolved only when it is written like a path (``./``, ``../`` or a
    file extension), since ``org/name`` is a Hugging Face id.
    """
    out = dict(data)
    for section in ("model", "training", "network"):
        if isinstance(out.get(section), Mapping):
            sec = dict(out[section])
            for key in _PATH_KEYS[section]:
                if key in sec:
                    sec[key] = _resolve(sec[key], base_dir)
            if section == "model" and isinstance(sec.get("pretrained_model_name_or_path"), str):
                p = sec["pretrained_model_name_or_path"]
                if p.startswith(("./", "../", ".\\", "..\\")) or Path(p).suffix in (
                    ".safetensors",
                    ".ckpt",
                    ".pt",
                    ".bin",
                ):
                    sec["pretrained_model_name_or_path"] = _resolve(p, base_dir)
            if section == "network" and isinstance(sec.get("preset"), str):
                preset = sec["preset"]
                if preset.endswith(".toml") or "/" in preset or "\\" in preset:
                    sec["preset"] = _resolve(preset, base_dir)
            out[section] = sec
    if isinstance(out.get("dataset"), Mapping):
        ds = dict(out["dataset"])

        def fix_subsets(subsets: Any) -> Any:
            if not isinstance(subsets, list):
                return subsets
            fixed = []
            for s in subsets:
                if isinstance(s, Mapping):
                    s = dict(s)
                    for key in _PATH_KEYS["subset"]:
                        if key in s:
                            s[key] = _resolve(s[key], base_dir)
                fixed.append(s)
            return fixed

        if "subsets" in ds:
            ds["subsets"] = fix_subsets(ds["subsets"])
        if isinstance(ds.get("datasets"), list):
            ds["datasets"] = [
                {**d, "subsets": fix_subsets(d.get("subsets"))} if isinstance(d, Mapping) else d
                for d in ds["datasets"]
            ]
        out["dataset"] = ds
    return out


# ----------------------------------------------------------------------------- error conversion
def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation can hold (through Annotated, Optional, list, unions)."""
    origin = get_origin(annotation)
    if origin is None:
        return [annotation]
    out: list[Any] = []
    for arg in get_args(annotation):
        if isinstance(arg, type) or get_origin(arg) is not None:
            out += _unwrap(arg)
    return out


def _tags(model: type[BaseModel]) -> set[str]:
    tags = {model.__name__}
    for key in ("algo", "kind"):
        f = model.model_fields.get(key)
        if f is not None:
            tags |= {str(a) for a in get_args(f.annotation)}
    return tags


def _walk(loc: Sequence[Any]) -> tuple[str, type[BaseModel] | None]:
    """Turn a pydantic location into the user's dotted path, and find the model it ends in."""
    models: list[Any] = [TrainingJob]
    path = ""
    for seg in loc:
        if isinstance(seg, int):
            path += f"[{seg}]"
            continue
        candidates = [m for m in models if isinstance(m, type) and issubclass(m, BaseModel)]
        # A discriminator tag picks one member of a union; it is not part of the user's path.
        tagged = [m for m in candidates if seg in _tags(m)] if len(candidates) > 1 else []
        if tagged:
            models = tagged[:1]
            continue
        nxt: list[Any] = []
        for m in candidates:
            f = m.model_fields.get(seg)
            if f is not None:
                nxt += _unwrap(f.annotation)
        if not nxt and not candidates:
            # inside a plain union member such as 'tuple[int, int]': not a user-visible key
            continue
        if not nxt and ("[" in seg or seg in ("int", "float", "str", "bool", "list", "tuple")):
            continue
        path = f"{path}.{seg}" if path else seg
        models = nxt
    final = [m for m in models if isinstance(m, type) and issubclass(m, BaseModel)]
    return path, final[0] if len(final) == 1 else None


def _parent_model(loc: Sequence[Any]) -> type[BaseModel] | None:
    return _walk(loc[:-1])[1]


def _did_you_mean(word: str, options: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _message(err: Mapping[str, Any]) -> tuple[str, str | None]:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    loc = err["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        parent = _parent_model(loc)
        options = list(parent.model_fields) if parent else []
        if parent is not None and "algo" in parent.model_fields:
            from ..models.network import Network

            others = [m for m in _unwrap(Network) if key in m.model_fields]
            if others:
                algo = get_args(parent.model_fields["algo"].annotation)[0]
                users = ", ".join(
                    str(get_args(m.model_fields["algo"].annotation)[0]) for m in others
                )
                return (
                    f"algo '{algo}' does not use '{key}'",
                    f"remove it ('{key}' applies to: {users})",
                )
        hint = _did_you_mean(key, options)
        if parent is not None and not hint:
            hint = "allowed keys here: " + ", ".join(options)
        return f"unknown key '{key}'", hint
    if kind == "missing":
        return "required key is missing", "add it"
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        options = [
            o.strip().strip("'") for o in expected.replace(" or ", ",").split(",") if o.strip()
        ]
        hint = _did_you_mean(str(value), options)
        allowed = "allowed: " + ", ".join(options)
        return f"unknown value {_describe(value)}", f"{hint} {allowed}" if hint else allowed
    if kind == "union_tag_invalid":
        options = [o.strip().strip("'") for o in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag"))
        hint = _did_you_mean(tag, options)
        allowed = "allowed: " + ", ".join(options)
        what = str(ctx.get("discriminator", "")).strip("'")
        return f"unknown {what} '{tag}'", f"{hint} {allowed}" if hint else allowed
    if kind == "union_tag_not_found":
        return "missing the key that says which kind this is", f"add {ctx.get('discriminator')}"
    if kind == "unknown_optimizer":
        t = value.get("type") if isinstance(value, Mapping) else value
        hint = _did_you_mean(str(t), KNOWN_OPTIMIZERS)
        known = (
            "known: "
            + ", ".join(KNOWN_OPTIMIZERS)
            + ", or a dotted path like pytorch_optimizer.CAME"
        )
        return f"unknown optimizer type {_describe(t)}", f"{hint} {known}" if hint else known
    if kind == "unknown_algo":
        from ..models.network import ALGOS

        t = value.get("algo") if isinstance(value, Mapping) else value
        hint = _did_you_mean(str(t), ALGOS)
        allowed = "allowed: " + ", ".join(ALGOS)
        return f"unknown algo {_describe(t)}", f"{hint} {allowed}" if hint else allowed
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {_describe(value)}", None
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }[kind]
        bound = next(iter(ctx.values()), "?")
        return f"must be {sign} {bound} (got {_describe(value)})", None
    if kind == "string_unicode":  # a lone surrogate: it cannot be written to any file
        return (
            "contains a character that cannot be written as UTF-8 (a lone surrogate)",
            "remove it (it usually comes from a broken copy and paste)",
        )
    if kind in ("string_too_short", "too_short"):
        return "must not be empty", None
    if kind == "string_pattern_mismatch":
        return f"{_describe(value)} contains characters not allowed in a file name", None
    if kind == "value_error":
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        return msg, None
    return str(err.get("msg", kind)), None


def problems_from_validation_error(
    exc: ValidationError, provenance: Mapping[str, str] | None = None
) -> list[Problem]:
    """Convert pydantic errors into Problems with the user's dotted paths and did-you-mean hints."""
    problems: list[Problem] = []
    seen_union: set[str] = set()
    for err in exc.errors():
        ctx = err.get("ctx") or {}
        inner = ctx.get("error")
        if isinstance(inner, RuleViolations):
            problems += list(inner.problems)
            continue
        path, _ = _walk(err["loc"])
        raw_loc = [str(s) for s in err["loc"]]
        member = next(
            (i for i, s in enumerate(raw_loc) if "[" in s or s in ("int", "float", "str", "bool")),
            None,
        )
        if member is not None:
            path, _ = _walk(err["loc"][:member])
            # one problem per smart-union field, not one per member type
            if path in seen_union:
                continue
            seen_union.add(path)
            if path.endswith("resolution"):
                problems.append(
                    Problem(
                        path, f"expected 512 or [width, height], got {_describe(err.get('input'))}"
                    )
                )
                continue
        message, hint = _message(err)
        if err["type"] == "unknown_optimizer":
            path = f"{path}.type"
        elif err["type"] == "unknown_algo":
            path = f"{path}.algo"
        problems.append(Problem(path, message, hint))
    if provenance:
        problems = [_with_origin(p, provenance) for p in problems]
    return problems


def _with_origin(problem: Problem, provenance: Mapping[str, str]) -> Problem:
    path = problem.path
    while path:
        origin = provenance.get(path)
        if origin is not None:
            return Problem(
                problem.path, f"{problem.message} (set by {origin})", problem.hint, problem.severity
            )
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return problem


def validate_job(
    data: Mapping[str, Any],
    *,
    source: str | None = None,
    provenance: Mapping[str, str] | None = None,
) -> TrainingJob:
    """Validate a composed dict into a TrainingJob, or raise ConfigError with every problem."""
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
        return TrainingJob.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(problems_from_validation_error(exc, provenance), source=source) from None


def load_job(
    path: Path,
    *,
    overrides: Sequence[str] = (),
    base_layers: Sequence[Layer] = (),
) -> TrainingJob:
    """Read a job file, merge it over ``base_layers`` and under ``--set`` overrides, validate once."""
    path = Path(path)
    data = read_toml(path)
    layers = [*base_layers, Layer(f"job file {path.name}", data, path.parent.resolve())]
    if overrides:
        layers.append(Layer("--set", parse_set_overrides(overrides), Path.cwd()))
    composed = compose_layers(layers)
    return validate_job(composed.data, source=str(path), provenance=composed.provenance)


def job_to_dict(job: TrainingJob) -> dict[str, Any]:
    """The job as plain data, leaving out defaults but keeping every discriminator."""
    data = job.model_dump(mode="json", exclude_defaults=True)
    data["model"] = job.model.model_dump(mode="json", exclude_defaults=True)
    data["model"]["pretrained_model_name_or_path"] = job.model.pretrained_model_name_or_path
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
