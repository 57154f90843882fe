"""Run inside the kohya venv, cwd = sd-scripts: let sd-scripts itself read rendered files.

Usage: python _sd_oracle.py SCRIPT CONFIG.toml DATASET.toml
Prints one JSON line: the keys sd-scripts would ignore, the config values as sd-scripts' parser
ends up with them, and the dataset blueprint after its voluptuous schema and fallbacks.
This file is ours; it only calls sd-scripts' public functions.
"""

import importlib
import json
import sys

import toml

script, config_path, dataset_path = sys.argv[1:4]
module = importlib.import_module(script.removesuffix(".py"))
from library import config_util, train_util  # noqa: E402  (sd-scripts' own package)

parser = module.setup_parser()
defaults = vars(parser.parse_args([]))
sys.argv = [script, "--config_file", config_path]
args = parser.parse_args()
args = train_util.read_config_from_file(args, parser)
seen = vars(args)
ignored = sorted(k for k in seen if k not in defaults)
user_config = toml.load(dataset_path)
sanitizer = config_util.ConfigSanitizer(True, True, bool(getattr(args, "masked_loss", False)), True)
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
                    "image_dir": s.params.image_dir,
                    "num_repeats": s.params.num_repeats,
                    "caption_extension": getattr(s.params, "caption_extension", None),
                    "class_tokens": getattr(s.params, "class_tokens", None),
                    "is_reg": getattr(s.params, "is_reg", None),
                }
                for s in d.subsets
            ],
        }
    )
values = {k: v for k, v in seen.items() if isinstance(v, (str, int, float, bool, list, type(None)))}
print(
    "ORACLE "
    + json.dumps({"ignored": ignored, "values": values, "datasets": datasets}, default=str)
)
