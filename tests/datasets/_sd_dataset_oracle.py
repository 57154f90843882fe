"""Run inside the e2e lab's venv with cwd = sd-scripts: build datasets with sd-scripts' own code.

Usage: python _sd_dataset_oracle.py CASES.json
CASES.json is a list of {"argv": [...], "seed": int, "legacy": bool}. For each case this parses the
argv with sd-scripts' own argument functions, builds the dataset group exactly as train_network.py
does (from --dataset_config, or from --train_data_dir/--reg_data_dir when "legacy"), and prints one
JSON line "ORACLE [...]" with per-dataset bucket counts, lengths and image counts.
This file is ours; it only calls sd-scripts' public functions.
"""

import argparse
import json
import math
import random
import sys

from library import config_util, train_util  # sd-scripts' own package (cwd)

results = []
with open(sys.argv[1], encoding="utf-8") as f:
    cases = json.load(f)
for case in cases:
    parser = argparse.ArgumentParser()
    train_util.add_dataset_arguments(parser, True, True, True)
    train_util.add_training_arguments(parser, True)
    config_util.add_config_arguments(parser)
    args = parser.parse_args(case["argv"])
    train_util.prepare_dataset_args(args, True)
    if case.get("legacy"):
        subsets = config_util.generate_dreambooth_subsets_config_by_subdirs(
            args.train_data_dir, args.reg_data_dir
        )
        user_config = {"datasets": [{"subsets": subsets}]}
    else:
        user_config = config_util.load_user_config(str(args.dataset_config))
    random.seed(case["seed"])  # what accelerate's set_seed(args.seed) does before the datasets
    sanitizer = config_util.ConfigSanitizer(True, True, False, True)
    blueprint = config_util.BlueprintGenerator(sanitizer).generate(user_config, args)
    group, val_group = config_util.generate_dataset_group_by_blueprint(blueprint.dataset_group)
    datasets = []
    for ds in group.datasets:
        manager = ds.bucket_manager
        buckets = [
            {"resolution": list(reso), "count": len(items)}
            for reso, items in zip(manager.resos, manager.buckets, strict=False)
            if items
        ]
        datasets.append(
            {
                "buckets": buckets,
                "batches": len(ds),
                "train_images_with_repeats": ds.num_train_images,
                "reg_images_with_repeats": ds.num_reg_images,
                "subsets": [
                    {
                        "image_dir": s.image_dir,
                        "num_repeats": s.num_repeats,
                        "image_count": s.img_count,
                        "is_reg": s.is_reg,
                        "class_tokens": s.class_tokens,
                    }
                    for s in ds.subsets
                ],
            }
        )
    length = len(group)
    steps = None
    if args.max_train_epochs is not None:  # train_network.py: the step override
        steps = args.max_train_epochs * math.ceil(
            length / case.get("num_processes", 1) / args.gradient_accumulation_steps
        )
    results.append({"batches": length, "total_steps": steps, "datasets": datasets})
print("ORACLE " + json.dumps(results))
