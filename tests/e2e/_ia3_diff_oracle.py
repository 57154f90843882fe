"""Run inside the kohya venv: is ``W + m * diff`` what LyCORIS' own IA3 module makes of W?

Usage: python _ia3_diff_oracle.py IA3_FILE DIFF_FILE BASE_DIFFUSERS_FOLDER
Prints ``ORACLE {json}``: per strength, the largest difference (relative to the weight's scale)
between LyCORIS' merged weight (``IA3Module.get_merged_weight``, its own code) and the base
weight plus the exported ``.diff`` at that strength; and the module counts. This file is ours;
it only calls LyCORIS', diffusers' and transformers' public classes.
"""

import json
import sys

from diffusers import UNet2DConditionModel
from lycoris.modules.ia3 import IA3Module
from safetensors.torch import load_file
from transformers import CLIPTextModel

ia3_path, diff_path, base = sys.argv[1:4]
ia3 = load_file(ia3_path)
diffs = load_file(diff_path)
modules = {}
for prefix, model in (
    ("lora_unet", UNet2DConditionModel.from_pretrained(base, subfolder="unet")),
    ("lora_te", CLIPTextModel.from_pretrained(base, subfolder="text_encoder")),
):
    for name, module in model.named_modules():
        if name:
            modules[prefix + "_" + name.replace(".", "_")] = module
names = sorted(k[: -len(".weight")] for k in ia3 if k.endswith(".weight"))
worst = {"1.0": 0.0, "0.6": 0.0}
for name in names:
    org = modules[name]
    on_input = bool(int(ia3[name + ".on_input"])) if name + ".on_input" in ia3 else False
    lyco = IA3Module(name, org, multiplier=1.0, train_on_input=on_input)
    lyco.weight.data.copy_(ia3[name + ".weight"].float().view_as(lyco.weight))
    base_w = org.weight.detach().float()
    scale = base_w.abs().max().item() or 1.0
    for m in (1.0, 0.6):
        theirs = lyco.get_merged_weight(multiplier=m)[0].float()
        ours = base_w + m * diffs[name + ".diff"].float()
        err = (theirs - ours).abs().max().item() / scale
        worst[str(m)] = max(worst[str(m)], err)
extra = sorted(k for k in diffs if k[: -len(".diff")] not in set(names))
print(
    "ORACLE "
    + json.dumps(
        {
            "ia3_modules": len(names),
            "diff_modules": len(diffs),
            "extra": extra,
            "worst": worst,
            "dtype": str(next(iter(diffs.values())).dtype),
        }
    )
)
