"""An IA3 file as exact weight differences for one base model: what ComfyUI and Forge can load.

ComfyUI has no IA3 adapter and Forge drops IA3 files whole (docs/networks.md). All three clients
(ComfyUI, Forge, AUTOMATIC1111) load a ``<module>.diff`` tensor, added to that module's weight at
the LoRA's strength. IA3 scales a layer's weight along one axis, ``W' = W * (1 + w)`` (the output
axis, or the input axis for ``on_input`` modules, LyCORIS' ``_ia3_weight``), so ``diff = W * w``
reproduces it exactly at any strength: ``W + m * diff = W * (1 + m * w)``. The price: the file
holds full weight matrices (large), and it is right only on the base model it was made from.

The tensors are computed by the install's own Python (torch, and sd-scripts' model loader for a
single-file checkpoint, diffusers' for a diffusers folder); the orchestrator never imports torch.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, Problem, SetupError
from .discovery import Install

__all__ = ["DiffExport", "export_ia3_diff"]

_MARK = "KOHYA_ORCH_IA3_DIFF="

# Runs in the install's Python with cwd = its sd-scripts folder:
#   python -c _CHILD IA3_FILE BASE OUT_FILE V2(0/1) METADATA_JSON
_CHILD = r"""
import json, os, sys
import torch
from safetensors.torch import load_file, save_file

ia3_path, base, out_path, v2, meta = sys.argv[1:6]
state = load_file(ia3_path)
if os.path.isdir(base):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder")
else:
    from library import model_util
    text_encoder, _vae, unet = model_util.load_models_from_stable_diffusion_checkpoint(
        v2 == "1", base
    )
modules = {}
for prefix, model in (("lora_unet", unet), ("lora_te", text_encoder)):
    for name, module in model.named_modules():
        if name:
            modules[prefix + "_" + name.replace(".", "_")] = module
out, missing = {}, []
for key in sorted(state):
    if not key.endswith(".weight"):
        continue
    name = key[: -len(".weight")]
    module = modules.get(name)
    if module is None or not hasattr(module, "weight"):
        missing.append(name)
        continue
    weight = module.weight.detach().float()
    scale = state[key].float().flatten()
    on_input = int(state[name + ".on_input"]) if name + ".on_input" in state else 0
    rest = [1] * (weight.dim() - 2)
    if on_input:
        diff = weight * scale.view(1, -1, *rest)
    else:
        diff = weight * scale.view(-1, 1, *rest)
    out[name + ".diff"] = diff.to(torch.float16).contiguous()  # as LoRA files ship
if out and not missing:
    save_file(out, out_path, metadata=json.loads(meta))
size = sum(t.numel() * t.element_size() for t in out.values())
print("KOHYA_ORCH_IA3_DIFF=" + json.dumps({"modules": len(out), "missing": missing, "bytes": size}))
"""


@dataclass(frozen=True)
class DiffExport:
    """What was written."""

    path: Path
    modules: int
    """Modules with a ``.diff`` tensor (every module the IA3 file trains)."""
    size_bytes: int


def _failed(what: str, hint: str | None = None) -> ConfigError:
    return ConfigError([Problem("lora export-diff", what, hint)])


def export_ia3_diff(
    install: Install,
    ia3_file: Path,
    base: Path,
    out: Path,
    *,
    v2: bool = False,
    metadata: dict[str, str] | None = None,
    timeout_s: float = 1800.0,
) -> DiffExport:
    """Write ``out``: the IA3 file's exact weight differences on ``base``.

    Args:
        install: The kohya install whose Python (torch, sd-scripts, diffusers) does the work.
        ia3_file: The IA3 ``.safetensors`` (SD 1.x/2.x, LyCORIS' kohya naming).
        base: The base model it was trained on: a single-file checkpoint or a diffusers folder.
        out: The new file (the caller makes sure it does not exist; it is written by the child
            only when every module was found).
        v2: The base is SD 2.x (sd-scripts' loader needs to be told).
        metadata: String metadata for the new file's header.

    Raises:
        ConfigError: A module of the IA3 file is not in the base model, or the child failed.
        SetupError: The install's Python could not be started.
    """
    partial = out.with_name(f".{out.name}.partial")  # renamed into place only when complete
    argv = [str(install.python), "-c", _CHILD, str(ia3_file), str(base), str(partial)]
    argv += ["1" if v2 else "0", json.dumps(metadata or {})]
    try:
        return _run(argv, install, ia3_file, base, out, partial, timeout_s)
    finally:
        partial.unlink(missing_ok=True)


def _run(
    argv: list[str],
    install: Install,
    ia3_file: Path,
    base: Path,
    out: Path,
    partial: Path,
    timeout_s: float,
) -> DiffExport:
    try:
        done = subprocess.run(
            argv,
            cwd=install.sd_scripts_dir,
            env={**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _failed(f"took over {timeout_s:g} s; nothing was written") from None
    except OSError as exc:
        raise SetupError(f"could not run {install.python}: {exc}") from None
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    found = [line[len(_MARK) :] for line in lines if line.startswith(_MARK)]
    if not found:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise _failed(
            f"the install's Python stopped (exit {done.returncode}): "
            + (" | ".join(tail) or "no output"),
            "check that BASE is the model the IA3 file was trained on",
        )
    report = json.loads(found[-1])
    if report["missing"]:
        names = ", ".join(report["missing"][:3])
        raise _failed(
            f"{len(report['missing'])} module(s) of the IA3 file are not in {base} ({names}); "
            "nothing was written",
            "give the base model the IA3 file was trained on (SD 1.x/2.x)",
        )
    if not report["modules"]:
        raise _failed(f"{ia3_file} has no IA3 weights; nothing was written")
    if out.exists():
        raise _failed(f"{out} appeared while exporting; it was not replaced")
    partial.replace(out)
    return DiffExport(path=out, modules=int(report["modules"]), size_bytes=int(report["bytes"]))
