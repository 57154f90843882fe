"""Import a kohya_ss GUI preset or saved configuration (JSON) as a preset of this project.

The GUI keys its JSON by its own form field names, not sd-scripts' (``LoRA_type``,
``optimizer``, ``max_resolution``, ``lr_warmup`` in percent, ``epoch``, ``xformers`` as a bool
or ``"xformers"``/``"sdpa"``, numbers often as strings, ``optimizer_args`` / ``network_args`` as
one space-separated string). A GUI preset is an overlay of its form: the keys it leaves out keep
whatever the form showed. Imported, they come from the job format's defaults instead.

The GUI's known traps are fixed, not copied, and each fix is reported:

- It drops every ``0``/``False``/``""`` from the TOML it writes, so a meaningful zero
  (``max_grad_norm = 0``: no clipping; ``seed = 0``) never reached sd-scripts. Kept here.
- It writes ``decompose_both=False`` for LoKr, which LyCORIS reads as *true* (it tests the raw
  string). Imported as false, what the checkbox says.
- It writes the old ``use_cp`` after ``use_tucker``, and LyCORIS lets the old name win, so the
  "use tucker" checkbox could be overridden. The checkbox (``use_tucker``) is imported.
- ``train_on_input`` (iA3) and ``rank_dropout_scale`` are not read by LyCORIS' kohya entry point,
  and it writes ``conv_dim``/``conv_alpha`` for iA3: dropped.
- ``epoch`` becomes ``max_train_steps`` through a formula that ignores bucketing (runs end
  early); imported as ``max_train_epochs``, which sd-scripts counts exactly.

The field tables and value reading are in :mod:`.gui_fields`, the network in
:mod:`.gui_network`, the other sections in :mod:`.gui_mapper`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import ConfigError, Problem
from ..models import TrainingJob
from ..models.arguments import Arguments
from ..models.dataset import DatasetConfig
from ..models.family import DEFAULT_FAMILY
from ..models.model import model_section
from ..models.optimizer import SchedulerConfig
from ..models.sampling import SamplingConfig
from ..models.training import TrainingConfig
from .gui_fields import (
    EXTRA_FIELDS,
    GUI_ONLY_FIELDS,
    SIMPLE_FIELDS,
    SPECIAL_FIELDS,
    as_text,
    loads_json_lenient,
)
from .gui_mapper import GuiMapper
from .gui_network import NETWORK_MODELS, map_network
from .layers import Layer, compose_layers
from .loading import validate_job

__all__ = ["GuiImport", "gui_to_job_dict", "import_gui_preset"]


@dataclass(frozen=True)
class GuiImport:
    """A GUI file turned into job data, and what could not be carried over or was fixed."""

    source: Path
    data: dict[str, Any]
    """The partial job (the preset format: no ``[epochs_from_data]``, no ``extends``)."""
    problems: list[Problem]
    """Warnings: keys not imported, GUI traps fixed, values changed on the way."""
    job: TrainingJob
    """The merged result, validated (over a placeholder model and data when the file has none)."""

    @property
    def complete(self) -> bool:
        """True when the file names its model, its images and a training length."""
        model = self.data.get("model", {})
        dataset = self.data.get("dataset", {})
        training = self.data.get("training", {})
        return bool(
            model.get("pretrained_model_name_or_path")
            and dataset.get("subsets")
            and ("max_train_epochs" in training or "max_train_steps" in training)
        )

    def to_toml(self, out: str | None = None) -> str:
        """The preset file text, with a header saying how to run it."""
        from ..render._writer import dumps

        target = out or "imported.toml"
        header = [
            f"{self.source.stem}: imported from the kohya_ss GUI file {self.source.name} by "
            "kohya_orchestrator.",
            "",
            "Run it:",
            f"  python -m kohya_orchestrator preset {target} --data img --model /models/base.safetensors",
            "Override one key:",
            f"  python -m kohya_orchestrator preset {target} --data img --set network.network_dim=16",
        ]
        if self.complete:
            header += ["or, since it names its model and images:"]
            header += [f"  python -m kohya_orchestrator train {target}"]
        header += [
            "",
            "Keys the GUI file left out come from the job format's defaults (the GUI would keep",
            "whatever its form showed). Keys that were not imported are listed by import-preset.",
        ]
        order = ["name", "description", "model", "dataset", "network", "optimizer", "scheduler"]
        order += ["training", "sampling", "extra_args"]
        return dumps({k: self.data[k] for k in order if k in self.data}, header=header)


def gui_to_job_dict(
    gui: Mapping[str, Any], arguments: Arguments | None = None
) -> tuple[dict[str, Any], list[Problem]]:
    """Map a GUI preset/config object onto job data.

    Args:
        gui: The parsed JSON object.
        arguments: What the install that will run the job accepts (its argument manifest);
            default: the built-in list of sd-scripts 48d368fa.

    Returns:
        ``(data, warnings)``: the partial job, and every key not imported or value fixed.

    Raises:
        ConfigError: A value cannot be read, or the network type is not supported.
    """
    m = GuiMapper(gui)
    m.simple()
    family = m.model()
    m.buckets(family)
    m.resolution()
    m.attention()
    m.length()
    m.scheduler()
    m.optimizer()
    m.learning_rates()
    m.noise_and_loss()
    map_network(m)
    m.data()
    m.prompts()
    m.additional(family, arguments)
    m.unknown()
    if m.errors:
        raise ConfigError(m.errors + m.problems, source="the kohya_ss GUI file")
    order = ["model", "dataset", "network", "optimizer", "scheduler", "training", "sampling"]
    data = {k: _in_field_order(k, m.out[k]) for k in [*order, "extra_args"] if m.out.get(k)}
    return data, m.problems


def _in_field_order(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """A section's keys in the job model's field order (how a job file is written)."""
    from ..models.optimizer import optimizer_tag

    models: dict[str, type[BaseModel]] = {
        "model": model_section(str(values.get("family", DEFAULT_FAMILY))),
        "dataset": DatasetConfig,
        "scheduler": SchedulerConfig,
        "training": TrainingConfig,
        "sampling": SamplingConfig,
    }
    model = models.get(section)
    if section == "network":
        model = NETWORK_MODELS.get(str(values.get("algo")))
    elif section == "optimizer":
        from ..models import optimizer as optmod

        model = getattr(optmod, optimizer_tag(values), None)
    if model is None:
        return values
    fields = list(model.model_fields)
    if "algo" in fields:
        fields.insert(0, fields.pop(fields.index("algo")))
    if "type" in fields:
        fields.insert(0, fields.pop(fields.index("type")))
    rank = {name: i for i, name in enumerate(fields)}
    return dict(sorted(values.items(), key=lambda kv: rank.get(kv[0], len(rank))))


_PLACEHOLDER: dict[str, dict[str, Any]] = {
    "model": {"pretrained_model_name_or_path": "placeholder/model"},
    "dataset": {"subsets": [{"image_dir": "/placeholder/10_placeholder"}]},
}


def import_gui_preset(path: Path, arguments: Arguments | None = None) -> GuiImport:
    """Read a kohya_ss GUI preset or saved config (JSON) and check it as a job.

    Args:
        path: The ``.json`` file.

    Returns:
        The job data, the warnings, and the validated merged job (over a placeholder model and
        data when the file names none).

    Raises:
        ConfigError: The file cannot be read, is not a GUI object, or the result is not a valid
            job (every problem, each naming the GUI file or the placeholder as its source).
    """
    path = Path(path)
    lenient = False
    try:
        if path.suffix.lower() == ".toml":  # the GUI saves its configs as TOML too
            from .loading import read_toml

            gui = read_toml(path, what="GUI config")
        else:
            gui, lenient = loads_json_lenient(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(
            [Problem(str(path), "file not found", "check the path")], source=str(path)
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            [
                Problem(
                    str(path), f"not a readable JSON file: {exc}", "export it again from the GUI"
                )
            ],
            source=str(path),
        ) from None
    if not isinstance(gui, dict):
        raise ConfigError(
            [Problem(str(path), "expected a JSON object of GUI settings", None)], source=str(path)
        )
    known = set(SIMPLE_FIELDS) | set(EXTRA_FIELDS) | SPECIAL_FIELDS | GUI_ONLY_FIELDS
    if not known & set(gui):
        shown = ", ".join(list(gui)[:6])
        raise ConfigError(
            [
                Problem(
                    str(path),
                    f"not a kohya_ss GUI file: none of its keys ({shown or 'none'}) is a GUI "
                    "setting",
                    "give a preset from kohya_ss' presets/lora/ or a config saved by the GUI",
                )
            ],
            source=str(path),
        )
    try:
        data, problems = gui_to_job_dict(gui, arguments)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source=str(path)) from None
    if lenient:
        problems.insert(
            0,
            Problem(
                path.name,
                "trailing commas (not JSON, as hand-copied files often have) were read past",
                None,
                "warning",
                "import-fixed",
            ),
        )
    name = as_text(gui.get("output_name")) or path.stem
    data = {
        "name": name,
        "description": f"Imported from the kohya_ss GUI file {path.name}.",
        **data,
    }
    base: dict[str, Any] = {k: dict(v) for k, v in _PLACEHOLDER.items()}
    training = data.get("training", {})
    if "max_train_epochs" not in training and "max_train_steps" not in training:
        base["training"] = {"max_train_epochs": 1}
    layers = [Layer("placeholder (not in the GUI file)", base), Layer(path.name, data)]
    composed = compose_layers(layers)
    job = validate_job(
        composed.data, source=str(path), provenance=composed.provenance, arguments=arguments
    )
    return GuiImport(source=path, data=data, problems=problems, job=job)
