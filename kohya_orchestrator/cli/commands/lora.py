"""``lora inspect FILE``: what a trained LoRA file says about itself (header only, no torch)."""

from __future__ import annotations

# Only argparse at import time (`--help` must stay fast); the rest is imported in run().
import argparse

from ._lora_export import add_export_arguments, run_export

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from ...outputs.lora import LoraInfo

__all__ = ["add_parser", "run"]

HELP = "inspect a trained LoRA file's metadata (header only, no torch)"

_DESCRIPTION = """\
Read a LoRA/LyCORIS .safetensors file's header: the network (module, algo, dim/alpha, args), the
base model (name, hash), resolution, epochs and steps, optimizer and learning rate, the image
folders with their repeats, the most frequent caption tags, training time, and the tensors (count,
dtype, size). Only the header is read, never the tensor data: a multi-GB file takes milliseconds.
Works on LoRA, LoCon, LoHa, LoKr and IA3 files, and on files without sd-scripts' ss_* metadata
(the algorithm and rank are then inferred from the tensor names).
"""

_EPILOG = """\
examples:
  python -m kohya_orchestrator lora inspect out/my_style.safetensors
  python -m kohya_orchestrator lora inspect out/my_style-000004.safetensors --tags 20
  python -m kohya_orchestrator lora inspect out/my_style.safetensors --json | jq .algo
  python -m kohya_orchestrator lora export-diff out/my_ia3.safetensors --base ~/models/v1-5-pruned-emaonly.safetensors

next: python -m kohya_orchestrator runs compare runs/*-ia3 runs/*-loha   # several runs side by side
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``lora`` verb.

    Args:
        subparsers: The main parser's subparsers.
    """
    parser = subparsers.add_parser(
        "lora",
        help=HELP,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "action",
        choices=("inspect", "export-diff"),
        help="inspect; export-diff: an IA3 file as exact weight differences for one base model "
        "(ComfyUI and Forge do not load IA3)",
    )
    parser.add_argument("file", metavar="FILE", help="a .safetensors LoRA file")
    add_export_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print everything as JSON")
    parser.add_argument(
        "--tags", type=int, default=10, metavar="N", help="how many top tags to show (default 10)"
    )
    parser.add_argument("--raw", action="store_true", help="also list every metadata key")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Inspect one file, or export an IA3 file's differences."""
    import sys
    from pathlib import Path

    if args.action == "export-diff":
        return run_export(args)

    from ...outputs.lora import inspect_lora

    info = inspect_lora(Path(args.file))
    if args.json:
        data = info.model_dump(mode="json")
        data["top_tags"] = [t.model_dump() for t in info.top_tags(max(args.tags, 0))]
        import json

        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return 0
    _print(info, tags=max(args.tags, 0), raw=args.raw)
    return 0


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def _warmup(info: LoraInfo) -> str:
    ratio = info.lr_warmup_ratio
    if ratio is None:
        return str(info.lr_warmup_steps or 0)
    # sd-scripts: int(ratio * max_train_steps) (train_util.py get_scheduler_fix)
    total = info.max_train_steps
    steps = f" = {int(ratio * total)} steps" if total else ""
    return f"{ratio:g} of the steps{steps}"


def _lines(info: LoraInfo, tags: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    dtypes = ", ".join(f"{k} x{v}" for k, v in info.dtypes.items()) or "-"
    rows.append(
        (
            "file",
            f"{info.path.name if info.path else '?'}  {_size(info.file_size_bytes)}, "
            f"{info.tensor_count} tensors ({dtypes}), tensor data {_size(info.tensor_bytes)}, "
            f"header {_size(info.header_bytes)}",
        )
    )
    net = f"{info.algo or '?'} ({info.network_module or 'module unknown'})"
    if info.uses_dim_alpha:
        net += f"  dim {_num(info.network_dim)}  alpha {_num(info.network_alpha)}"
    args = {k: v for k, v in info.network_args.items() if k != "algo" and v is not None}
    if args:
        net += "  args: " + " ".join(f"{k}={v}" for k, v in args.items())
    rows.append(("network", net))
    if info.modules:
        rows.append(("modules", ", ".join(f"{k} {v}" for k, v in info.modules.items())))
    base = [info.base_model_name or "?"]
    if info.base_model_version:
        family = info.family
        base.append(info.base_model_version + (f" (family {family})" if family else ""))
    if info.base_model_folder:
        base.append("hash not recorded (diffusers folder)")
    if info.base_model_hash:
        base.append(f"hash {info.base_model_hash}")
    if info.base_model_sha256:
        base.append(f"sha256 {info.base_model_sha256[:12]}…")
    rows.append(("base model", "  ".join(base)))
    res = f"{info.resolution[0]}x{info.resolution[1]}" if info.resolution else "?"
    epochs = f"{info.epoch or '?'}/{info.num_epochs or '?'}"
    steps = f"{info.steps or '?'}/{info.max_train_steps or '?'}"
    rows.append(
        (
            "training",
            f"resolution {res}  epoch {epochs}  steps {steps}  batch {info.batch_size or '?'}  "
            f"images x repeats {info.num_train_images if info.num_train_images is not None else '?'}"
            f"  precision {info.mixed_precision or '?'}  seed {info.seed if info.seed is not None else '?'}",
        )
    )
    lr = f"lr {_num(info.learning_rate)}"
    if info.unet_lr is not None or info.text_encoder_lr is not None:
        lr += f" (unet {_num(info.unet_lr)}, text encoder {_num(info.text_encoder_lr)})"
    opt_args = " ".join(f"{k}={v}" for k, v in info.optimizer_args.items())
    rows.append(
        (
            "optimizer",
            f"{info.optimizer_name or '?'}{f' ({opt_args})' if opt_args else ''}  {lr}  "
            f"scheduler {info.lr_scheduler or '?'}  warmup {_warmup(info)}",
        )
    )
    for d in info.dataset_dirs:
        extra = f"  class '{d.class_tokens}'" if d.class_tokens else ""
        kind = "  (regularisation)" if d.is_reg else ""
        rows.append(("dataset", f"{d.name}: {d.images} images x {d.repeats} repeats{extra}{kind}"))
    top = info.top_tags(tags) if tags else []
    if top:
        rows.append(("top tags", ", ".join(f"{t.tag} ({t.count})" for t in top)))
    if info.training_time_s is not None:
        started = (
            info.training_started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            if info.training_started_at
            else "?"
        )
        rows.append(
            ("time", f"{info.training_time_s:.1f} s from start to this save (started {started})")
        )
    if info.title or info.output_name:
        rows.append(("title", f"{info.title or info.output_name}"))
    for label, value in (
        ("trigger", info.trigger_phrase),
        ("author", info.author),
        ("license", info.license),
        ("tags", info.tags),
        ("description", info.description),
        ("date", info.date),
    ):
        if value:
            rows.append((label, value))
    if info.thumbnail_bytes:
        rows.append(("thumbnail", f"yes ({_size(info.thumbnail_bytes)} data URI)"))
    if info.clients_line:
        rows.append(("loads in", info.clients_line))
    if info.inferred:
        rows.append(("inferred", ", ".join(info.inferred) + " (from tensor names; no metadata)"))
    for note in info.notes:
        rows.append(("note", note))
    return rows


def _print(info: LoraInfo, *, tags: int, raw: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ...ui.messages import console

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in _lines(info, tags):
        table.add_row(key, escape(value))
    out = console()
    out.print(table)
    if raw:
        out.rule("metadata")
        for key in sorted(info.metadata):
            value = info.metadata[key]
            short = value if len(value) <= 200 else value[:200] + "…"
            out.print(f"[bold]{escape(key)}[/bold] = {escape(short)}")
