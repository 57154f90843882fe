"""``lora export-diff IA3_FILE --base MODEL``: an IA3 file as exact weight differences for that base.

ComfyUI and Forge do not load IA3 files (docs/networks.md); all three clients load ``.diff``
weights. The file is large and right only on ``--base``.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``lora export-diff``."""
    parser.add_argument(
        "--base",
        metavar="MODEL",
        help="export-diff: the base model the IA3 file was trained on (a .safetensors/.ckpt "
        "checkpoint or a diffusers folder)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="export-diff: the new file (default: FILE-diff-<base>.safetensors beside FILE; an "
        "existing file is never replaced)",
    )
    parser.add_argument("--sd-scripts", metavar="PATH", help="export-diff: the kohya install")


def _default_out(ia3: Path, base: Path) -> Path:
    return ia3.with_name(f"{ia3.stem}-diff-{base.stem}.safetensors")


def run_export(args: argparse.Namespace) -> int:
    """Check the file, then let the install's Python write the differences."""
    from pathlib import Path

    from ...environment.discovery import require_install
    from ...environment.ia3_diff import export_ia3_diff
    from ...errors import ConfigError, Problem
    from ...models.family import profile
    from ...outputs.lora import inspect_lora
    from ...ui.messages import hint, ok

    ia3 = Path(args.file)
    if not args.base:
        raise ConfigError(
            [Problem("--base", "export-diff needs the base model", "--base MODEL")],
            source=args.file,
        )
    base = Path(args.base).expanduser()
    info = inspect_lora(ia3)
    problems = []
    if info.algo != "ia3":
        problems.append(
            Problem(
                str(ia3),
                f"not an IA3 file ({info.algo or 'unknown'}): ComfyUI, Forge and A1111 load it "
                "as it is",
                "lora inspect FILE shows how it loads",
            )
        )
    family = info.family
    if family is not None and profile(family).script != "train_network.py":
        problems.append(
            Problem(
                str(ia3),
                f"trained on {profile(family).title}: export-diff reads SD 1.x/2.x models only",
                "train LoKr or LoRA for ComfyUI and Forge",
            )
        )
    if not base.exists():
        problems.append(Problem("--base", f"not found: {base}", "give the base model's path"))
    out = Path(args.out).expanduser() if args.out else _default_out(ia3, base)
    if out.exists():
        problems.append(
            Problem("--out", f"{out} exists; it is never replaced", "give another --out")
        )
    if problems:
        raise ConfigError(problems, source=str(ia3))
    install = require_install(Path(args.sd_scripts).expanduser() if args.sd_scripts else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "kohya_orchestrator.exported_from": ia3.name,  # names only: no user path travels
        "kohya_orchestrator.base_model": base.name,
        "kohya_orchestrator.note": "IA3 as exact weight differences (.diff); valid on this base "
        "model only",
    }
    if info.base_model_version:
        metadata["ss_base_model_version"] = info.base_model_version
    v2 = bool(family and profile(family).v2)
    done = export_ia3_diff(install, ia3, base, out, v2=v2, metadata=metadata)
    ok(f"wrote {done.path}: {done.modules} modules, {done.size_bytes / 2**20:.1f} MiB")
    hint(f"valid on {base.name} only; ComfyUI, Forge and AUTOMATIC1111 load it as a LoRA")
    return 0
