"""sd-scripts' .txt prompt lines read back as ``[[sampling.prompts]]`` (both importers use it).

The format is sd-scripts' own (train_util.py load_prompts / line_to_prompt_dict): one prompt a
line, ``#`` as the first character makes a comment, options follow as ``--w 512``. The rules
that keep a prompt readable this way are in models/rules/sampling.py.
"""

from __future__ import annotations

from typing import Any

__all__ = ["parse_prompt_line"]

_PROMPT_OPTIONS = {
    "n": "negative_prompt",
    "w": "width",
    "h": "height",
    "s": "sample_steps",
    "d": "seed",
    "l": "scale",
    "ss": "sample_sampler",
}


def parse_prompt_line(line: str) -> tuple[dict[str, Any], list[tuple[str, bool]]] | None:
    """One line of sd-scripts' .txt prompt file as sampling-prompt data (train_util.py:6254).

    Returns None for blank lines and comments (``#`` as the first character, as sd-scripts reads
    them), else the prompt dict and notes ``(message, is_error)`` about options not carried over.
    """
    if not line.strip() or line.startswith("#"):
        return None
    parts = line.split(" --")
    prompt: dict[str, Any] = {"prompt": parts[0].strip()}
    notes: list[tuple[str, bool]] = []
    for part in parts[1:]:
        opt, _, value = part.partition(" ")
        opt, value = opt.strip(), value.strip()
        key = _PROMPT_OPTIONS.get(opt.lower())
        if key is None:
            notes.append((f"prompt option --{opt} not imported", False))
            continue
        try:
            if key in ("width", "height", "sample_steps", "seed"):
                prompt[key] = int(value)
            elif key == "scale":
                prompt[key] = float(value)
            else:
                prompt[key] = value
        except ValueError:
            notes.append((f"--{opt} {value!r} is not a number", True))
    return prompt, notes
