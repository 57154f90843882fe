"""Pydantic validation errors turned into Problems: the user's dotted path, what and how to fix.

Discriminator tags never show in a path, a smart union gives one problem per field, and unknown
keys and values get a did-you-mean hint. With the layers' provenance, each problem names the
layer that set the value.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..errors import Problem
from ..models import TrainingJob
from ..models.job import RuleViolations
from ..models.optimizer import KNOWN_OPTIMIZERS

__all__ = ["problems_from_validation_error"]


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
    for key in ("algo", "kind", "family"):
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
    if kind == "unknown_family":
        from ..models.family import FAMILIES

        t = value.get("family") if isinstance(value, Mapping) else value
        hint = _did_you_mean(str(t), FAMILIES)
        allowed = "allowed: " + ", ".join(FAMILIES)
        return f"unknown value {_describe(t)}", f"{hint} {allowed}" if hint else allowed
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
        elif err["type"] == "unknown_family":
            path = f"{path}.family"
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
