"""Run inside the kohya venv, cwd = sd-scripts: let sd-scripts itself read many rendered jobs.

Usage: python _sd_schema_oracle.py CASES.json
CASES.json is a list of {"script", "config", "dataset"}. Prints one JSON line: for each case,
what sd-scripts ends up with -- the keys its parser does not define (it would ignore them), the
parsed values, whether ``verify_training_args`` accepts them, the ``network_args`` and
``optimizer_args`` / ``lr_scheduler_args`` as its trainer splits them ("key=value", one "="), and
the dataset blueprint after its voluptuous schema. This file is ours; it only calls sd-scripts'
public functions and reads its parsed values.
"""

import ast
import importlib
import json
import sys

import toml
from library import config_util, train_util

parsers = {}
defaults = {}


def split_args(items, literal):
    """'k=v' strings as sd-scripts' trainer splits them: exactly one '=' (else it stops)."""
    out = {}
    for item in items or []:
        parts = item.split("=")
        if len(parts) != 2:
            return {"__error__": "not one '=': " + item}
        key, value = parts
        if literal:
            try:
                value = ast.literal_eval(value)
            except Exception as exc:  # sd-scripts would stop here
                return {"__error__": f"{item}: {type(exc).__name__}"}
            if isinstance(value, tuple):
                value = list(value)
        out[key] = value
    return out


def read(case):
    script = case["script"]
    if script not in parsers:
        module = importlib.import_module(script[: -len(".py")])
        parsers[script] = module.setup_parser()
        defaults[script] = vars(parsers[script].parse_args([]))
    parser = parsers[script]
    sys.argv = [script, "--config_file", case["config"]]
    args = parser.parse_args()
    args = train_util.read_config_from_file(args, parser)
    seen = vars(args)
    result = {"ignored": sorted(k for k in seen if k not in defaults[script])}
    try:
        train_util.verify_training_args(args)
        result["verify"] = None
    except BaseException as exc:
        result["verify"] = f"{type(exc).__name__}: {exc}"
    result["values"] = {
        k: v for k, v in seen.items() if isinstance(v, (str, int, float, bool, list, type(None)))
    }
    result["network_kwargs"] = split_args(seen.get("network_args"), literal=False)
    result["optimizer_kwargs"] = split_args(seen.get("optimizer_args"), literal=True)
    result["scheduler_kwargs"] = split_args(seen.get("lr_scheduler_args"), literal=True)
    user_config = toml.load(case["dataset"])
    sanitizer = config_util.ConfigSanitizer(
        True, True, bool(getattr(args, "masked_loss", False)), True
    )
    blueprint = config_util.BlueprintGenerator(sanitizer).generate(user_config, args)
    datasets = []
    for d in blueprint.dataset_group.datasets:
        datasets.append(
            {
                "resolution": list(d.params.resolution) if d.params.resolution else None,
                "batch_size": d.params.batch_size,
                "enable_bucket": d.params.enable_bucket,
                "subsets": [
                    {
                        name: getattr(s.params, name, None)
                        for name in (
                            "image_dir",
                            "num_repeats",
                            "caption_extension",
                            "class_tokens",
                            "is_reg",
                            "shuffle_caption",
                            "keep_tokens",
                            "flip_aug",
                            "color_aug",
                            "random_crop",
                            "caption_dropout_rate",
                            "caption_tag_dropout_rate",
                            "caption_dropout_every_n_epochs",
                            "caption_prefix",
                            "caption_suffix",
                            "keep_tokens_separator",
                            "secondary_separator",
                            "enable_wildcard",
                        )
                    }
                    for s in d.subsets
                ],
            }
        )
    result["datasets"] = datasets
    return result


with open(sys.argv[1], encoding="utf-8") as f:
    cases = json.load(f)
results = []
for case in cases:
    try:
        results.append(read(case))
    except BaseException as exc:
        results.append({"error": f"{type(exc).__name__}: {exc}"})
print("ORACLE " + json.dumps(results, default=str))
