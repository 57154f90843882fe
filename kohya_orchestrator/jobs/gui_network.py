"""The kohya_ss GUI's network fields (``LoRA_type`` and the LyCORIS options) as ``[network]``.

The GUI's network traps are fixed here, each reported: ``decompose_both=False`` (which LyCORIS
reads as true), ``use_cp`` overriding the ``use_tucker`` checkbox, and the options LyCORIS'
kohya entry point never reads (``train_on_input``, ``rank_dropout_scale``, iA3's conv sizes).
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Callable
from typing import Any

from ..models.family import DEFAULT_FAMILY, profile
from ..models.network import LYCORIS_BUILTIN_PRESETS, NETWORK_MODELS
from .gui_fields import GuiReader, as_text, csv_list
from .import_toml import _literal

__all__ = ["LORA_TYPES", "NETWORK_MODELS", "map_network"]

# GUI LoRA_type -> (algo, trains 3x3 convs with networks.lora)
LORA_TYPES: dict[str, tuple[str, bool]] = {
    "Standard": ("lora", False),
    "Kohya LoCon": ("lora", True),
    "LoCon": ("locon", True),
    "LyCORIS/LoCon": ("locon", True),
    "LyCORIS/LoHa": ("loha", True),
    "LyCORIS/LoKr": ("lokr", True),
    "LyCORIS/iA3": ("ia3", False),
    "LyCORIS/DyLoRA": ("dylora", True),
    "Kohya DyLoRA": ("dylora", True),
    "LyCORIS/Native Fine-Tuning": ("full", False),
    "LyCORIS/Diag-OFT": ("diag-oft", False),
    "LyCORIS/BOFT": ("boft", False),
    "Flux1": ("lora", False),  # networks.lora_flux (the family's own LoRA module)
}


def map_network(m: GuiReader) -> None:
    """``[network]`` from LoRA_type and its fields, fixing the GUI's traps on the way."""
    lora_type = as_text(m.gui.get("LoRA_type")) or "Standard"
    if lora_type not in LORA_TYPES:
        close = difflib.get_close_matches(lora_type, list(LORA_TYPES), n=1)
        m.error(
            "LoRA_type",
            f"'{lora_type}' is not supported",
            (f"did you mean '{close[0]}'? " if close else "")
            + "supported: "
            + ", ".join(LORA_TYPES),
        )
        return
    algo, convs = LORA_TYPES[lora_type]
    if lora_type == "Kohya DyLoRA":
        m.warn(
            "LoRA_type",
            "kohya's own networks.dylora is imported as LyCORIS' dylora (same idea, "
            "LyCORIS' implementation)",
        )
    net: dict[str, Any] = {"algo": algo}
    family = m.out.get("model", {}).get("family", DEFAULT_FAMILY)
    blocks = as_text(m.gui.get("train_blocks"))
    if algo == "lora" and blocks and profile(family).train_blocks:
        net["train_blocks"] = blocks  # FLUX.1's LoRA: all / single / double
    lycoris = algo != "lora"
    net["network_dim"] = m.get("network_dim", "int")
    net["network_alpha"] = m.get("network_alpha", "float")
    if lycoris:
        net["preset"] = as_text(m.gui.get("LyCORIS_preset"))
    if algo == "ia3" and net.get("preset") in LYCORIS_BUILTIN_PRESETS:
        m.warn(
            "LyCORIS_preset",
            f"LyCORIS' built-in preset '{net['preset']}' gives iA3 nothing to train on SD "
            "with lycoris-lora 4.x (optimizer got an empty parameter list); left out, so "
            "IA3's default preset file is used",
        )
        net["preset"] = None
    if convs:
        net["conv_dim"] = m.get("conv_dim", "int_off")
        net["conv_alpha"] = m.get("conv_alpha", "off")
        if net.get("preset") in ("attn-mlp", "attn-only") and net["conv_dim"]:
            m.warn(
                "conv_dim",
                f"preset '{net['preset']}' trains no conv layers, so conv_dim is ignored; not "
                "imported",
            )
            net["conv_dim"] = net["conv_alpha"] = None
    elif algo == "ia3" and (m.get("conv_dim", "int_off") or m.get("conv_alpha", "off")):
        m.warn(
            "conv_dim",
            "the GUI writes conv_dim/conv_alpha for iA3, which has neither; not imported",
        )
    for key in ("use_scalar", "dora_wd", "bypass_mode", "train_norm", "rescaled"):
        net[key] = m.get(key, "bool")
    for key in ("rank_dropout", "module_dropout"):
        net[key] = m.get(key, "off")
    net["constraint"] = m.get("constrain", "off")
    if algo == "dylora":
        net["block_size"] = m.get("unit", "int_off")
    if algo == "lokr":
        net["factor"] = m.get("factor", "int")
        both = m.get("decompose_both", "flag")
        if both is False:
            m.warn(
                "decompose_both",
                "the GUI writes decompose_both=False, which LyCORIS reads as TRUE (it tests "
                "the raw string); imported as false, what the checkbox says",
            )
        net["decompose_both"] = both or None
    _tucker(m, net, algo)
    if algo == "ia3" and "train_on_input" in m.gui:
        m.warn(
            "train_on_input",
            "LyCORIS' kohya entry point does not read train_on_input (it is a preset-file "
            "setting); not imported",
            "IA3's default network preset already trains on the MLP input",
        )
    if m.get("rank_dropout_scale", "bool"):
        m.warn(
            "rank_dropout_scale",
            "LyCORIS' kohya entry point does not read rank_dropout_scale; not imported",
        )
    if algo == "lora":
        for key in ("block_dims", "conv_block_dims"):
            net[key] = _csv_field(m, key, int)
        for key in ("block_alphas", "conv_block_alphas"):
            net[key] = _csv_field(m, key, float)
        for key in ("down_lr_weight", "mid_lr_weight", "up_lr_weight"):
            net[key] = as_text(m.gui.get(key))
        net["block_lr_zero_threshold"] = m.get("block_lr_zero_threshold", "off")
    for key in (
        "loraplus_lr_ratio",
        "loraplus_unet_lr_ratio",
        "loraplus_text_encoder_lr_ratio",
    ):
        net[key] = m.get(key, "off")
    _network_args(m, net)
    fields = NETWORK_MODELS[algo].model_fields
    for key, value in net.items():
        if value is None:
            continue
        if key in fields:
            m.set("network", key, value)
        elif key in ("network_dim", "network_alpha", "conv_dim", "conv_alpha"):
            continue  # the GUI writes these for every type; this algo has none
        else:
            m.warn(key, f"algo {algo} does not use '{key}'; not imported")


def _csv_field(m: GuiReader, key: str, cast: Callable[[str], Any]) -> list[Any] | None:
    try:
        return csv_list(m.gui.get(key), cast)
    except ValueError:
        m.error(key, f"expected comma-separated numbers, got {m.gui.get(key)!r}")
        return None


def _tucker(m: GuiReader, net: dict[str, Any], algo: str) -> None:
    tucker = m.get("use_tucker", "flag")
    old = m.get("use_cp", "flag")
    if algo not in ("locon", "loha", "lokr"):
        return
    if tucker is None and old is not None:
        net["use_tucker"] = old or None  # an old GUI file: use_cp was the checkbox
        return
    if old is not None and tucker is not None and old != tucker:
        m.warn(
            "use_cp",
            f"use_cp = {old} disagrees with use_tucker = {tucker}: the GUI writes use_cp "
            f"after use_tucker and LyCORIS lets the old name win, so a GUI run used "
            f"use_tucker = {old}; imported as use_tucker = {tucker}, the checkbox",
        )
    net["use_tucker"] = tucker or None


def _network_args(m: GuiReader, net: dict[str, Any]) -> None:
    text = as_text(m.gui.get("network_args"))
    if not text:
        return
    for item in shlex.split(text):
        key, sep, value = item.partition("=")
        if not sep:
            m.error("network_args", f"'{item}' has no '='", "write key=value")
            continue
        key, value = key.strip(), value.strip()
        if key == "algo":
            continue
        if value.lower() in ("true", "false"):
            net[key] = value.lower() == "true"
        elif key == "preset":
            net[key] = value
        else:
            net[key] = _literal(value)
