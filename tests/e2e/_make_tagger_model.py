"""Run in the kohya venv: write a tiny synthetic WD14-format ONNX tagger (no download).

Usage: python _make_tagger_model.py MODEL_DIR/SmilingWolf_wd-v1-4-convnext-tagger-v2
The model maps a [1, 448, 448, 3] image to fixed tag probabilities: 4 ratings, then general
and character tags, in the selected_tags.csv layout sd-scripts' tagger reads.
"""

import csv
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
tags = [
    ("general", 9),
    ("sensitive", 9),
    ("questionable", 9),
    ("explicit", 9),
    ("oil_painting", 0),
    ("brush_strokes", 0),
    ("watermark", 0),
    ("no_humans", 0),
    ("some_character", 4),
]
logits = np.array([[3.0, -3, -3, -3, 3.0, 2.0, 1.5, -3.0, -3.0]], dtype=np.float32)
with (out / "selected_tags.csv").open("w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["tag_id", "name", "category", "count"])
    for i, (name, cat) in enumerate(tags):
        w.writerow([i, name, cat, 100])
x = helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [1, 448, 448, 3])
y = helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, [1, len(tags)])
zero = numpy_helper.from_array(np.zeros((1, len(tags)), dtype=np.float32), "zero")
bias = numpy_helper.from_array(logits, "bias")
nodes = [
    helper.make_node("ReduceMean", ["input_1"], ["m"], keepdims=0),  # [] scalar-ish per batch
    helper.make_node("Mul", ["zero", "m"], ["z"]),
    helper.make_node("Add", ["z", "bias"], ["l"]),
    helper.make_node("Sigmoid", ["l"], ["predictions_sigmoid"]),
]
graph = helper.make_graph(nodes, "tiny_wd14", [x], [y], initializer=[zero, bias])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, out / "model.onnx")
print("written", out)
