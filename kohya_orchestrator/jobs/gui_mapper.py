"""The kohya_ss GUI's form, section by section, as job data (the network: ``gui_network``).

Each method reads the fields of one section, sets the job keys they map to, and reports what it
could not carry over or had to fix: zeros the GUI drops (kept), ``epoch`` (imported as
``max_train_epochs``), ``lr_warmup`` in percent, one attention switch, options sd-scripts lacks.
"""

from __future__ import annotations

import difflib
import shlex
from typing import Any

from pydantic import BaseModel

from ..errors import Problem
from ..models.arguments import Arguments
from ..models.dataset import DatasetConfig
from ..models.family import DEFAULT_FAMILY, FAMILIES, profile
from ..models.model import PATH_FIELDS, model_section
from ..models.optimizer import SchedulerConfig
from ..models.sampling import SamplingConfig
from ..models.sd_args import known_args
from ..models.training import TrainingConfig
from .gui_fields import (
    EXTRA_FIELDS,
    GUI_ONLY_FIELDS,
    SIMPLE_FIELDS,
    SPECIAL_FIELDS,
    BadValue,
    GuiReader,
    as_text,
    convert,
)
from .import_dataset import subsets_from_dirs as _subsets_from_dirs
from .import_toml import _literal, _optimizer
from .prompt_lines import parse_prompt_line

__all__ = ["GuiMapper"]


# additional_parameters options whose values are "key=value" strings: tables in the job format
_KEY_VALUE_TABLES = {"lr_scheduler_args": "scheduler"}
# network options the GUI has no field for, written in additional_parameters
_NETWORK_KEYS = {
    "network_train_unet_only", "network_train_text_encoder_only", "scale_weight_norms",
    "network_dropout",
}  # fmt: skip


class GuiMapper(GuiReader):
    """Maps every section of a GUI object but the network (``gui_network.map_network``)."""

    def simple(self) -> None:
        for key, (section, target, kind) in SIMPLE_FIELDS.items():
            value = self.get(key, kind)
            if value is None:
                continue
            if kind == "zero" and value == 0:
                self.warn(
                    key,
                    f"{key} = 0: the GUI drops zeros from the TOML it writes, so sd-scripts never "
                    "saw it; kept as 0",
                    "max_grad_norm = 0 turns gradient clipping off; seed = 0 is a fixed seed",
                )
            self.set(section, target, value)
        extra = {}
        for key, kind in EXTRA_FIELDS.items():
            value = self.get(key, kind)
            if value is not None:
                extra[key] = value
        if extra:
            self.out["extra_args"] = extra

    def model(self) -> str:
        # The GUI marks a family with its checkbox; newer families first, as the GUI can leave an
        # older box ticked.
        ticked = [
            p.name
            for p in reversed(FAMILIES.values())
            if p.gui_checkbox is not None and self.get(p.gui_checkbox, "bool")
        ]
        family = ticked[0] if ticked else None
        if family:
            self.set("model", "family", family)
        family = family or DEFAULT_FAMILY
        fam = profile(family)
        skip = self.get("clip_skip", "int")
        if skip is not None and skip > 1:
            if not fam.uses_clip_skip:
                self.warn("clip_skip", f"clip_skip = {skip}: SDXL ignores it; not imported")
            else:
                self.set("model", "clip_skip", skip)
        if "pretrained_model_name_or_path" not in self.out.get("model", {}):
            default = fam.default_model
            if default is not None:
                self.set("model", "pretrained_model_name_or_path", default)
                self.warn(
                    "pretrained_model_name_or_path",
                    f"no base model in the file (GUI presets leave paths out); using {default}",
                    "give yours with --model PATH when running the preset",
                )
        # A family's GUI panel (sdxl_*) counts only with that family's box ticked, and cached
        # text-encoder outputs only where the family can cache them.
        panel = fam.gui_checkbox if family in ticked else None
        if panel and self.get(f"{panel}_no_half_vae", "bool"):
            self.set("model", "no_half_vae", True)
        if fam.caches_text_encoder_outputs and self.get("sdxl_cache_text_encoder_outputs", "bool"):
            self.set("training", "cache_text_encoder_outputs", True)
        if panel and panel.endswith("_checkbox"):  # FLUX.1's own panel: flux1_cache_text_...
            prefix = panel.removesuffix("_checkbox")
            for key in ("cache_text_encoder_outputs", "cache_text_encoder_outputs_to_disk"):
                if self.get(f"{prefix}_{key}", "bool"):
                    self.set("training", key, True)
        self._family_fields(family)
        return family

    def _family_fields(self, family: str) -> None:
        """The family's own form fields (FLUX.1's ae, clip_l, t5xxl, guidance_scale, ...), which
        the GUI names as the script's arguments, as the job's model section does; the SD form
        fields another family's section has no place for are dropped with a note."""
        section = model_section(family).model_fields
        model = self.out.get("model", {})
        for key in [k for k in model if k not in section]:
            value = model.pop(key)
            self.warn(
                key,
                f"{key} = {value!r} is an SD 1.x/SDXL setting; {profile(family).title} has no "
                "use for it; not imported",
                None,
            )
        handled = set(SIMPLE_FIELDS) | SPECIAL_FIELDS | {"family"}
        for key in model_section(family).model_fields:
            if key in handled or key not in self.gui or key in self.out.get("model", {}):
                continue
            raw = self.gui[key]
            if raw is None or raw == "" or raw is False:
                continue
            self.set("model", key, self._path_or_text(key, raw) if key in PATH_FIELDS else raw)
        base = self.out.get("model", {}).get("pretrained_model_name_or_path")
        if isinstance(base, str):
            self.out["model"]["pretrained_model_name_or_path"] = self._path_or_text(
                "pretrained_model_name_or_path", base
            )

    def _path_or_text(self, key: str, value: Any) -> Any:
        """A GUI preset's instruction in a path field ("put the full path to ae.sft here") becomes
        a placeholder (``<ae.sft>``) that ``validate`` lists and ``train`` refuses."""
        if not isinstance(value, str) or not value.lower().startswith("put "):
            return value
        named = [w for w in value.split() if "." in w.strip(".")]
        placeholder = f"<{named[0].strip('.')}>" if named else f"<{key}>"
        self.warn(
            key,
            f"'{value}' is the preset's instruction, not a path; imported as the placeholder "
            f"{placeholder}",
            f"give the file: --set model.{key}=/path/to/it",
        )
        return placeholder

    def resolution(self) -> None:
        text = as_text(self.gui.get("max_resolution"))
        if text is None:
            return
        try:
            sides = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
        except ValueError:
            self.error("max_resolution", f"expected '512,512', got {text!r}", "fix the value")
            return
        if len(sides) == 1 or (len(sides) == 2 and sides[0] == sides[1]):
            self.set("dataset", "resolution", sides[0])
        elif len(sides) == 2:
            self.set("dataset", "resolution", sides)
        else:
            self.error("max_resolution", f"expected '512,512', got {text!r}", "fix the value")

    def attention(self) -> None:
        if "xformers" not in self.gui and "mem_eff_attn" not in self.gui:
            return
        raw = self.gui.get("xformers")
        choice = str(raw).strip().lower() if isinstance(raw, str) else raw
        if choice is True or choice == "xformers":
            self.set("training", "attention", "xformers")
        elif choice == "sdpa":
            self.set("training", "attention", "sdpa")
        elif self.get("mem_eff_attn", "bool"):
            self.set("training", "attention", "mem_eff_attn")
        else:
            self.set("training", "attention", "none")
            self.warn(
                "xformers",
                "no attention kernel chosen (xformers off, no sdpa): imported as attention = "
                "'none', which is slow and memory-hungry on a GPU",
                "set training.attention = 'sdpa'",
            )

    def length(self) -> None:
        epochs = self.get("max_train_epochs", "int_off")
        steps = self.get("max_train_steps", "int_off")
        gui_epochs = self.get("epoch", "int_off")
        if epochs:
            self.set("training", "max_train_epochs", epochs)
            if steps:
                self.warn(
                    "max_train_steps",
                    "both max_train_epochs and max_train_steps are set; sd-scripts uses the "
                    "epochs, so the steps were not imported",
                )
        elif steps:
            self.set("training", "max_train_steps", steps)
        elif gui_epochs:
            self.set("training", "max_train_epochs", gui_epochs)
            self.warn(
                "epoch",
                f"the GUI turns epoch = {gui_epochs} into max_train_steps with a formula that "
                "ignores bucketing (runs end early); imported as max_train_epochs, which "
                "sd-scripts counts exactly",
                "check the steps with: python -m kohya_orchestrator plan JOB.toml",
            )
        else:
            self.warn(
                "epoch",
                "no training length in the file (epoch, max_train_epochs and max_train_steps "
                "are unset or 0)",
                "add training.max_train_epochs to the imported file, or --set it",
            )

    def buckets(self, family: str) -> None:
        """A ``bucket_reso_steps`` the family's script refuses (the GUI's presets carry 1) becomes
        the family's step, with a note."""
        dataset = self.out.get("dataset", {})
        step = dataset.get("bucket_reso_steps")
        need = profile(family).bucket_step
        if isinstance(step, int) and not isinstance(step, bool) and step % need:
            dataset["bucket_reso_steps"] = need
            self.warn(
                "bucket_reso_steps",
                f"{step}: {profile(family).script} stops on it (it must be a multiple of {need}); "
                f"imported as {need}",
                f"another multiple of {need}: --set dataset.bucket_reso_steps=...",
            )

    def scheduler(self) -> None:
        sched = as_text(self.gui.get("lr_scheduler"))
        steps = self.get("lr_warmup_steps", "int_off")
        percent = self.get("lr_warmup", "off")
        warmup: int | float | None = None
        if steps:
            warmup = steps
        elif percent:
            if percent >= 100:
                self.error("lr_warmup", f"{percent}% of the steps", "use a value below 100")
            else:
                warmup = round(percent / 100.0, 6)
        if warmup and sched == "constant":
            self.warn(
                "lr_warmup",
                "the 'constant' schedule takes no warmup (sd-scripts stops with an error); the "
                "warmup was not imported",
                "use lr_scheduler = 'constant_with_warmup' to keep a warmup",
            )
            warmup = None
        self.set("scheduler", "lr_warmup_steps", warmup)
        args = as_text(self.gui.get("lr_scheduler_args"))
        if args:
            parsed = {}
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                if not sep:
                    self.error("lr_scheduler_args", f"'{item}' has no '='", "write key=value")
                    continue
                parsed[key.strip()] = _literal(value.strip())
            self.set("scheduler", "lr_scheduler_args", parsed or None)

    def optimizer(self) -> None:
        flat: dict[str, Any] = {}
        name = as_text(self.gui.get("optimizer"))
        if name:
            flat["optimizer_type"] = name
        args = as_text(self.gui.get("optimizer_args"))
        if args:
            flat["optimizer_args"] = args
        if not flat:
            return
        problems: list[Problem] = []
        opt = _optimizer(flat, problems)
        for p in problems:
            self.error(p.path, p.message, p.hint)  # _optimizer names the key already
        opt.pop("learning_rate", None)  # _optimizer's sd-scripts default; the GUI's comes next
        if not name:
            opt.pop("type", None)
        for key, value in opt.items():
            self.set("optimizer", key, value)

    def learning_rates(self) -> None:
        unet = self.get("unet_lr", "float")
        te_raw = self.gui.get("text_encoder_lr")
        if isinstance(te_raw, list):
            te_raw = te_raw[0] if te_raw else None
        try:
            te = convert("float", te_raw)
        except BadValue as exc:
            self.error("text_encoder_lr", str(exc), "fix the value")
            te = None
        # The GUI's own rule: a zero LR on one side trains only the other (lora_gui.py).
        if "network_train_unet_only" in self.gui or "network_train_text_encoder_only" in self.gui:
            unet_only = self.get("network_train_unet_only", "bool")
            te_only = self.get("network_train_text_encoder_only", "bool")
        else:
            unet_only = te == 0 and bool(unet)
            te_only = unet == 0 and bool(te)
        if unet_only:
            self.set("network", "network_train_unet_only", True)
        if te_only:
            self.set("network", "network_train_text_encoder_only", True)
        if unet:
            self.set("optimizer", "unet_lr", unet)
        if te and not unet_only:
            self.set("optimizer", "text_encoder_lr", te)

    def noise_and_loss(self) -> None:
        kind = as_text(self.gui.get("noise_offset_type")) or "Original"
        if kind.lower() == "multires":
            self.set(
                "training",
                "multires_noise_iterations",
                self.get("multires_noise_iterations", "int_off"),
            )
            self.set(
                "training", "multires_noise_discount", self.get("multires_noise_discount", "off")
            )
            # the GUI passes these to sd-scripts only with the "Original" noise offset (its
            # lora_gui.py): with Multires they never reached the trainer
            training = self.out.get("training", {})
            for key in ("adaptive_noise_scale", "noise_offset_random_strength"):
                if training.pop(key, None) not in (None, False):
                    self.warn(
                        key,
                        "set, but the GUI passes it only with noise_offset_type 'Original' (this "
                        "file uses Multires), so sd-scripts never saw it; not imported",
                        None,
                    )
        else:
            self.set("training", "noise_offset", self.get("noise_offset", "off"))
        loss = as_text(self.gui.get("loss_type"))
        if loss and loss != "l2":
            self.set("training", "loss_type", loss)
            extra = self.out.setdefault("extra_args", {})
            for key, kind_ in (("huber_c", "float"), ("huber_schedule", "str")):
                value = self.get(key, kind_)
                if value is not None:
                    extra[key] = value
            if not extra:
                self.out.pop("extra_args")
        weight = self.get("prior_loss_weight", "float")
        if weight is not None and weight != 1.0:
            self.set("training", "prior_loss_weight", weight)
        top = self.get("max_timestep", "int_off")
        if top is not None and top != 1000:
            self.set("training", "max_timestep", top)
        log_with = as_text(self.gui.get("log_with"))
        if log_with in ("tensorboard", "wandb", "all"):
            self.set("training", "log_with", log_with)
        stop = self.get("stop_text_encoder_training", "off")
        if stop:
            self.warn(
                "stop_text_encoder_training",
                f"{stop:g}%: train_network.py has no such option (sd-scripts ignores it); not "
                "imported",
                "to freeze the text encoder, set optimizer.text_encoder_lr = 0",
            )

    def data(self) -> None:
        if as_text(self.gui.get("dataset_config")):
            self.warn(
                "dataset_config",
                "the dataset TOML it names is not imported",
                "import it with import-config, or give the images with --data DIR",
            )
        train = as_text(self.gui.get("train_data_dir"))
        reg = as_text(self.gui.get("reg_data_dir"))
        if not train and not reg:
            return
        problems: list[Problem] = []
        subsets = _subsets_from_dirs(train, reg, problems)
        for p in problems:
            self.warn(
                p.path,
                p.message + " (no subsets imported from it)",
                "give the images with --data DIR when running the preset",
            )
        if subsets:
            self.set("dataset", "subsets", subsets)

    def prompts(self) -> None:
        text = self.gui.get("sample_prompts")
        prompts: list[dict[str, Any]] = []
        for line in str(text or "").splitlines():
            parsed = parse_prompt_line(line)
            if parsed is None:
                continue
            prompt, notes = parsed
            for note, is_error in notes:
                (self.error if is_error else self.warn)("sample_prompts", note)
            prompts.append(prompt)
        if prompts:
            self.set("sampling", "prompts", prompts)
        elif self.out.get("sampling", {}).keys() & {
            "sample_every_n_epochs",
            "sample_every_n_steps",
        }:
            for key in ("sample_every_n_epochs", "sample_every_n_steps"):
                self.out["sampling"].pop(key, None)
            self.warn(
                "sample_every_n_epochs",
                "a sampling cadence without sample prompts; not imported",
                "add [[sampling.prompts]] to the imported file to get sample images",
            )

    def additional(self, family: str, arguments: Arguments | None = None) -> None:
        """``additional_parameters``: options the install (``arguments``, else the built-in list of
        sd-scripts 48d368fa) has go to ``[extra_args]``."""
        text = as_text(self.gui.get("additional_parameters"))
        if not text:
            return
        try:
            tokens = shlex.split(text)
        except ValueError as exc:
            self.error("additional_parameters", f"cannot split it: {exc}")
            return
        sections: dict[str, type[BaseModel]] = {
            "model": model_section(family),
            "dataset": DatasetConfig,
            "scheduler": SchedulerConfig,
            "training": TrainingConfig,
            "sampling": SamplingConfig,
        }
        known = (arguments.names(family) if arguments else None) or known_args(family)
        i = 0
        while i < len(tokens):
            token = tokens[i]
            i += 1
            if not token.startswith("--"):
                self.warn("additional_parameters", f"'{token}' is not an option; not imported")
                continue
            key = token[2:].replace("-", "_")
            values: list[str] = []
            while i < len(tokens) and not tokens[i].startswith("--"):
                values.append(tokens[i])  # nargs options take several: --lr_scheduler_args a=1 b=2
                i += 1
            value: Any = True if not values else _literal(values[0])
            if len(values) > 1:
                value = [_literal(v) for v in values]
            if key in _KEY_VALUE_TABLES:  # "k=v" strings; the job format keeps them as a table
                table = self._key_values(key, values)
                if table is None:
                    continue
                value = table
            where = next((s for s, m in sections.items() if key in m.model_fields), None)
            if key in ("max_grad_norm", "learning_rate", "unet_lr", "text_encoder_lr"):
                where = "optimizer"
            if key in _NETWORK_KEYS:
                where = "network"
            if where is not None:
                self.set(where, key, value)
            elif key in known:
                self.out.setdefault("extra_args", {})[key] = value
            else:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                self.warn(
                    "additional_parameters",
                    f"--{key}: sd-scripts has no such argument (it would fail); not imported",
                    f"did you mean '--{close[0]}'?" if close else None,
                )

    def _key_values(self, key: str, values: list[str]) -> dict[str, Any] | None:
        table: dict[str, Any] = {}
        for item in values:
            name, sep, text = item.partition("=")
            if not sep:
                self.error(
                    "additional_parameters", f"--{key}: '{item}' has no '='", "write key=value"
                )
                return None
            table[name.strip()] = _literal(text.strip())
        self.warn(
            "additional_parameters",
            f"--{key} {' '.join(values)}: imported as the table {key} = {table}",
            None,
        )
        return table

    def unknown(self) -> None:
        mapped = set(SIMPLE_FIELDS) | set(EXTRA_FIELDS) | SPECIAL_FIELDS | GUI_ONLY_FIELDS
        family = self.out.get("model", {}).get("family", DEFAULT_FAMILY)
        mapped |= set(model_section(family).model_fields)  # the family's own fields, mapped above
        boxes = [p.gui_checkbox for p in FAMILIES.values() if p.gui_checkbox]
        mapped |= set(boxes) | {"train_blocks"}
        for box in (b for b in boxes if b.endswith("_checkbox")):  # flux1_cache_text_... above
            prefix = box.removesuffix("_checkbox")
            mapped |= {
                f"{prefix}_cache_text_encoder_outputs",
                f"{prefix}_cache_text_encoder_outputs_to_disk",
            }
        for key in self.gui:
            if key in mapped or self.gui[key] in (None, "", False, []):
                continue  # an empty or unticked field asks for nothing (a newer GUI's form)
            close = difflib.get_close_matches(key, sorted(mapped), n=1)
            self.warn(
                key,
                f"not a kohya_ss GUI setting this importer knows; not imported "
                f"(value {self.gui[key]!r})",
                f"did you mean '{close[0]}'?" if close else "set it with --set if it matters",
            )
