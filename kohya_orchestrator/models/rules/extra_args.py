"""Rules on ``[extra_args]``: names sd-scripts knows, not modelled, not secrets, not ours."""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from ...errors import Problem
from ..arguments import BUILTIN, ArgSpec, Arguments, check_value
from .base import JobView

__all__ = ["check_extra_args"]


def _modelled_keys(job: JobView) -> dict[str, str]:
    """Every key a section of the job format models -> that section (first section wins)."""
    out: dict[str, str] = {}
    for section, field in type(job).__pydantic_fields__.items():
        if section == "model":  # the job's own family's section
            for key in type(job.model).model_fields:
                out.setdefault(key, section)
            continue
        ann = field.annotation
        for model in getattr(ann, "__args__", (ann,)):
            for key in getattr(model, "model_fields", {}):
                out.setdefault(key, section)
    return out


# sd-scripts arguments that carry credentials -> the environment variable the library that uses
# them reads by itself (wandb.login, huggingface_hub) when the argument is not given.
_SECRETS = {"wandb_api_key": "WANDB_API_KEY", "huggingface_token": "HF_TOKEN"}


def check_extra_args(job: JobView, arguments: Arguments | None = None) -> Iterator[Problem]:
    """``arguments``: what the install that will run the job accepts (default: the built-in list)."""
    source = arguments or BUILTIN
    family = job.model.family
    known = source.names(family)
    if known is None:  # the install lacks the family's script: check_before_launch says so
        known = BUILTIN.names(family) or frozenset()
    modelled = _modelled_keys(job)
    for key in job.extra_args:
        where = f"extra_args.{key}"
        if key in _SECRETS:
            yield Problem(
                where,
                "a secret in a job file would be written in clear into config.toml, job.json and "
                "the queue",
                f"remove it and set {_SECRETS[key]} in the environment instead (the trainer "
                "inherits it, and nothing records it)",
            )
        elif key in modelled and key not in ("extra_args",):
            yield Problem(
                where,
                f"'{key}' is part of the job format",
                f"set it as {modelled[key]}.{key} instead",
            )
        elif key in job.model.profile.ignored_args:
            yield Problem(
                where,
                f"{job.model.script} parses '{key}' but never reads it (only the family's full "
                "fine-tuning script does); it would have no effect",
                "remove it",
            )
        elif key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else f"check the name against {job.model.script} --help, or drop it"
            )
            yield Problem(
                where,
                f"{source.label} has no argument '{key}' for {job.model.script}; sd-scripts would "
                "silently ignore it",
                f"{hint}; {source.fix}" if source.builtin else hint,
            )
        elif key in (
            "config_file",
            "dataset_config",
            "output_config",
            "sample_prompts",
            "network_module",
            "network_args",
            "optimizer_args",
            "optimizer_type",
            "train_data_dir",
            "reg_data_dir",
            "in_json",
        ):
            yield Problem(where, f"'{key}' is written by kohya_orchestrator", "remove it")
        else:
            spec = source.spec(family, key)
            wrong = None if spec is None else check_value(spec, job.extra_args[key])
            if wrong is not None:
                yield Problem(where, f"{wrong} ({source.label})", _value_hint(spec))


def _value_hint(spec: ArgSpec | None) -> str:
    if spec is None or not spec.help:
        return "see the script's --help"
    return f"its help: {' '.join(spec.help.split())[:200]}"
