"""What an install will be: pure decisions, no I/O (the machine's facts come in as arguments).

``install`` builds a kohya-ss sd-scripts install the rest of the product finds and ``doctor``
passes: an sd-scripts checkout at a known-good commit and a venv with the torch build that fits
the machine, sd-scripts' own requirements, lycoris-lora and the optimizer packages the presets use.
This module decides *which* of each; :mod:`kohya_orchestrator.installer.steps` does it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_SOURCE",
    "MARKER",
    "PINNED_COMMIT",
    "InstallOptions",
    "TorchChoice",
    "choose_torch",
    "explain_failure",
    "filter_requirements",
    "parse_cuda_version",
]

# The sd-scripts commit the product is built and tested against: its argument list
# (models/sd_args.py), the captured logs the parser is tested on, and the e2e lab all come from it.
PINNED_COMMIT = "48d368fa557731ad0488c07304dfeba8c07910eb"
DEFAULT_SOURCE = "https://github.com/kohya-ss/sd-scripts.git"
# Written last into the install folder; its presence means "finished" and names the layout.
MARKER = "kohya-orchestrator-install.json"
PYTORCH_INDEX = "https://download.pytorch.org/whl/"

# Driver CUDA version (what nvidia-smi's header reports: the newest CUDA the driver can run) ->
# the newest PyTorch CUDA build it can run. sd-scripts at the pinned commit documents torch 2.6.0
# with torchvision 0.21.0 (README, "cu124"); RTX 50xx (Blackwell) cards need a cu128 build, which
# starts at torch 2.7.
_CUDA_BUILDS: tuple[tuple[tuple[int, int], str, str, str], ...] = (
    ((12, 8), "cu128", "2.7.1", "0.22.1"),
    ((12, 6), "cu126", "2.6.0", "0.21.0"),
    ((12, 4), "cu124", "2.6.0", "0.21.0"),
    ((11, 8), "cu118", "2.6.0", "0.21.0"),
)
_CPU_BUILD = ("2.6.0", "0.21.0")
BUILDS = ("auto", "cpu", *(b[1] for b in _CUDA_BUILDS))

# lycoris-lora: the newest version in the measured compatibility table (docs/networks.md).
LYCORIS = "lycoris-lora==4.1.3"
# Packages the presets and verbs use beyond sd-scripts' requirements: LyCORIS networks, and the
# WD14 tagger's ONNX runtime (`dataset tag`). Prodigy, Lion, schedule-free and Adafactor come with
# sd-scripts' own requirements; bitsandbytes (AdamW8bit) too, where a GPU can use it.
_EXTRAS = (LYCORIS, "onnx", "onnxruntime")


@dataclass(frozen=True)
class TorchChoice:
    """Which torch build to install and why.

    Attributes:
        build: ``cpu`` or a CUDA build tag such as ``cu124``.
        packages: pip requirement specifiers, torch first.
        index_url: Where pip takes them from; None means pip's own configured index (PyPI).
        reason: One line for the user: what was detected and what was chosen.
    """

    build: str
    packages: tuple[str, ...]
    index_url: str | None
    reason: str

    @property
    def cpu_only(self) -> bool:
        """True when the chosen build cannot use an NVIDIA GPU."""
        return self.build == "cpu"


@dataclass(frozen=True)
class InstallOptions:
    """Everything ``install`` is asked to do (the CLI's options, resolved to values).

    Attributes:
        target: The install folder; gets ``sd-scripts/``, ``venv/``, ``install.log`` and the marker.
        source: sd-scripts git URL or local git directory (a bare clone is enough).
        ref: Commit (or tag/branch) to check out.
        torch_build: ``auto`` (from nvidia-smi), ``cpu`` or a CUDA build tag.
        torch_packages: Overrides the torch requirement specifiers (e.g. ``torch==2.14.1``).
        torch_index: Overrides the index torch comes from; ``"pypi"`` means pip's own index.
        python: Interpreter that creates the venv (None: pick a supported one).
        pip_args: Extra arguments for every ``pip install`` (e.g. ``--no-index``, ``--find-links``).
        extras: Packages installed after sd-scripts' requirements.
        register: Write ``sd_scripts = ...`` to the user config when it names no install.
    """

    target: Path
    source: str = DEFAULT_SOURCE
    ref: str = PINNED_COMMIT
    torch_build: str = "auto"
    torch_packages: tuple[str, ...] = ()
    torch_index: str | None = None
    python: Path | None = None
    pip_args: tuple[str, ...] = ()
    extras: tuple[str, ...] = field(default=_EXTRAS)
    register: bool = True


_CUDA_RE = re.compile(r"CUDA Version\s*:\s*(\d+)\.(\d+)")


def parse_cuda_version(nvidia_smi_output: str) -> tuple[int, int] | None:
    """The driver's CUDA version from plain ``nvidia-smi`` output (its header line).

    Args:
        nvidia_smi_output: What ``nvidia-smi`` printed.

    Returns:
        (major, minor), or None when the output names none (no driver, or an error message).
    """
    match = _CUDA_RE.search(nvidia_smi_output)
    return None if match is None else (int(match.group(1)), int(match.group(2)))


def choose_torch(
    build: str,
    cuda: tuple[int, int] | None,
    system: str,
    *,
    packages: tuple[str, ...] = (),
    index: str | None = None,
) -> TorchChoice:
    """Pick the torch build for this machine.

    Args:
        build: ``auto``, ``cpu`` or a CUDA build tag (``cu118``, ``cu124``, ``cu126``, ``cu128``).
        cuda: The driver's CUDA version (:func:`parse_cuda_version`), None without an NVIDIA GPU.
        system: ``platform.system()``: ``Linux``, ``Windows`` or ``Darwin``.
        packages: Replace the chosen torch/torchvision specifiers.
        index: Replace the chosen index; ``"pypi"`` means pip's own index.

    Returns:
        The choice, with the reason in words.

    Raises:
        ValueError: An unknown build tag (the CLI only offers known ones).
    """
    if build not in BUILDS:
        raise ValueError(f"unknown torch build {build!r}; known: {', '.join(BUILDS)}")
    if build == "auto":
        if cuda is None:
            tag, why = "cpu", "no NVIDIA driver found (nvidia-smi): the CPU build"
        else:
            fits = [b for b in _CUDA_BUILDS if cuda >= b[0]]
            if fits:
                tag = fits[0][1]
                why = f"the driver supports CUDA {cuda[0]}.{cuda[1]}: the {tag} build"
            else:
                tag = "cpu"
                why = (
                    f"the driver supports only CUDA {cuda[0]}.{cuda[1]}, older than any build "
                    "sd-scripts runs on (11.8): the CPU build; update the NVIDIA driver"
                )
    else:
        tag, why = build, f"the {build} build, as asked"
    if tag == "cpu":
        torch, vision = _CPU_BUILD
    else:
        _, _, torch, vision = next(b for b in _CUDA_BUILDS if b[1] == tag)
    chosen: tuple[str, ...] = (f"torch=={torch}", f"torchvision=={vision}")
    # macOS has no CUDA builds, and PyPI's macOS wheels are the ones with MPS support.
    url: str | None = None if system == "Darwin" else PYTORCH_INDEX + tag
    if packages:
        chosen = packages
        why += f"; packages as asked: {' '.join(packages)}"
    if index is not None:
        url = None if index == "pypi" else index
        why += f"; from {'pip’s own index' if url is None else url}, as asked"
    return TorchChoice(build=tag, packages=chosen, index_url=url, reason=why)


def filter_requirements(text: str, *, cpu_only: bool) -> tuple[list[str], list[str]]:
    """sd-scripts' ``requirements.txt`` as lines pip can install into our venv.

    Drops ``-e .`` (the scripts import ``library`` from their own folder, which is where the
    product runs them) and, on a CPU-only install, bitsandbytes (it needs a GPU to be of use).

    Args:
        text: The file's content.
        cpu_only: Whether the chosen torch build is the CPU one.

    Returns:
        (lines to install, one note per dropped line).
    """
    keep: list[str] = []
    notes: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-e", "--editable")):
            notes.append(f"left out {line!r}: the scripts import library/ from their own folder")
            continue
        name = re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower()
        if cpu_only and name == "bitsandbytes":
            notes.append("left out bitsandbytes: a CPU-only install cannot use 8-bit optimizers")
            continue
        keep.append(line)
    return keep, notes


# (pattern in the failed command's output, what it means, how to fix it); first match wins.
_FAILURES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"No space left on device|\[Errno 28\]"),
        "the disk is full",
        "free some space (a CUDA install needs about 9 GB) or pass another DIR, then run "
        "install again: finished steps are kept",
    ),
    (
        re.compile(
            r"Could not resolve host|Temporary failure in name resolution|Failed to establish a "
            r"new connection|Network is unreachable|Max retries exceeded|Could not fetch URL|"
            r"Connection (?:refused|timed out|reset)|ConnectTimeout|ReadTimeout|"
            r"unable to access '[^']*'",
        ),
        "the network or the package index cannot be reached",
        "check the connection (or a proxy: HTTPS_PROXY), or install offline from a local "
        "wheel folder with --pip-arg=--no-index --pip-arg=--find-links=DIR",
    ),
    (
        re.compile(r"ResolutionImpossible|conflicting dependencies"),
        "pip cannot install the asked versions together",
        "read which packages conflict in the log; --torch-packages picks another torch",
    ),
    (
        re.compile(r"Could not find a version that satisfies|No matching distribution found"),
        "pip found no matching package for this Python and platform",
        "check that the index is reachable and the version exists for this Python (sd-scripts "
        "supports 3.10-3.12): --python picks another interpreter, --torch-packages and "
        "--torch-index another torch",
    ),
    (
        re.compile(
            r"does not appear to be a git repository|not a git repository|"
            r"repository '[^']*' (?:not found|does not exist)",
            re.IGNORECASE,
        ),
        "the --from source is not a git repository of sd-scripts",
        "pass a git URL (default: " + DEFAULT_SOURCE + ") or a local git directory",
    ),
    (
        re.compile(
            r"reference is not a tree|did not match any|unknown revision|"
            r"not our ref|couldn't find remote ref",
            re.IGNORECASE,
        ),
        "the asked commit is not in the source repository",
        "fetch a newer copy of sd-scripts, or pass --ref with a commit it has",
    ),
)


def explain_failure(output: str) -> tuple[str, str] | None:
    """What a failed git or pip command's output means, in words, with the fix.

    Args:
        output: The tail of the command's combined output.

    Returns:
        (what went wrong, how to fix it), or None when the output matches nothing known.
    """
    for pattern, what, fix in _FAILURES:
        if pattern.search(output):
            return what, fix
    return None
