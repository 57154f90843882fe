"""Run inside the kohya venv, cwd = sd-scripts: let networks.lora read block LR weights.

Usage: python _sd_lr_weight_oracle.py CASES.json
CASES.json is a list of {"sdxl": bool, "kwargs": {down_lr_weight/mid_lr_weight/up_lr_weight}}.
Prints one JSON line: for each case, {"weights": [...]} (what ``parse_block_lr_kwargs`` returns,
the per-block weights the network is built with) or {"error": "<exception type>"}.
This file is ours; it only calls sd-scripts' functions.
"""

import json
import sys

from networks import lora  # sd-scripts' own package (PYTHONPATH = the checkout)

with open(sys.argv[1], encoding="utf-8") as f:
    cases = json.load(f)
out = []
for case in cases:
    try:
        weights = lora.parse_block_lr_kwargs(case["sdxl"], case["kwargs"])
        out.append({"weights": weights})
    except Exception as exc:
        out.append({"error": type(exc).__name__})
print("ORACLE " + json.dumps(out))
