"""Run inside the kohya venv, cwd = sd-scripts: let a family's own script read rendered files.

Usage: python _sd_family_oracle.py SCRIPT CONFIG.toml [BUCKET_STEPS]
Everything sd-scripts does with the files before it loads a model, with its own functions: the
script's ``setup_parser``, ``train_util.read_config_from_file``, ``verify_training_args``, the
dataset blueprint (its voluptuous schema) and dataset group, the network module's import, and the
script's trainer class ``assert_extra_args``. Prints one line ``ORACLE <json>``: the keys the
parser does not define (sd-scripts would ignore them), the values as parsed, and the verdict of
each step. With BUCKET_STEPS, ``assert_extra_args`` also runs on the same datasets with
``bucket_reso_steps`` set to it (step ``bucket_probe``): how the script's own bucket check is
found. This file is ours; it only calls sd-scripts' public functions.
"""

import importlib
import inspect
import json
import sys
import traceback

import toml

script, config_path = sys.argv[1:3]
probe = int(sys.argv[3]) if len(sys.argv) > 3 else None
module = importlib.import_module(script.removesuffix(".py"))
import train_network  # noqa: E402
from library import config_util, train_util  # noqa: E402

out = {"steps": {}}


def step(name, fn):
    try:
        result = fn()
        out["steps"][name] = "ok"
        return result
    except BaseException as exc:
        out["steps"][name] = f"{type(exc).__name__}: {exc}"
        out.setdefault("tracebacks", {})[name] = traceback.format_exc()[-1500:]
        return None


parser = module.setup_parser()
defaults = vars(parser.parse_args([]))
sys.argv = [script, "--config_file", config_path]
args = parser.parse_args()
args = train_util.read_config_from_file(args, parser)
seen = vars(args)
out["ignored"] = sorted(k for k in seen if k not in defaults)
out["values"] = {
    k: v for k, v in seen.items() if isinstance(v, (str, int, float, bool, list, type(None)))
}
step("verify_training_args", lambda: train_util.verify_training_args(args))
step("prepare_dataset_args", lambda: train_util.prepare_dataset_args(args, True))


def group(bucket_steps=None):
    user_config = toml.load(args.dataset_config)
    if bucket_steps is not None:
        for table in [user_config.get("general", {}), *user_config.get("datasets", [])]:
            table["bucket_reso_steps"] = bucket_steps
    sanitizer = config_util.ConfigSanitizer(True, True, bool(args.masked_loss), True)
    blueprint = config_util.BlueprintGenerator(sanitizer).generate(user_config, args)
    train, _val = config_util.generate_dataset_group_by_blueprint(blueprint.dataset_group)
    return train


train_group = step("dataset_group", group)
step("network_module", lambda: importlib.import_module(args.network_module))
trainers = [
    c
    for _, c in inspect.getmembers(module, inspect.isclass)
    if issubclass(c, train_network.NetworkTrainer) and c.__module__ == module.__name__
]
out["trainer"] = trainers[0].__name__ if trainers else None
if trainers and train_group is not None:
    trainer = trainers[0]()
    step("assert_extra_args", lambda: trainer.assert_extra_args(args, train_group, None))
    if probe is not None:
        probe_group = group(probe)
        step("bucket_probe", lambda: trainers[0]().assert_extra_args(args, probe_group, None))
print("ORACLE " + json.dumps(out, default=str))
