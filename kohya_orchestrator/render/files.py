"""Write rendered files to a folder: the one place rendering touches the disk.

A job whose LyCORIS preset is a file kohya_orchestrator ships (``kohya_orchestrator:<name>``) gets
a copy of that file in the folder (``lycoris-<name>.toml``), and the config names the copy: LyCORIS
reads presets from a path, and a path into the installed package would tie the rendered files to
this machine's site-packages.
"""

from __future__ import annotations

from pathlib import Path

from .._fs import write_atomic
from ..errors import ConfigError, Problem
from ..models import TrainingJob
from .lycoris_presets import shipped_preset_file
from .toml import RenderedFiles, RenderPaths, render_job

__all__ = [
    "CONFIG_NAME",
    "DATASET_NAME",
    "PROMPTS_NAME",
    "render_into",
    "shipped_preset_file",
    "write_rendered",
]

CONFIG_NAME = "config.toml"
DATASET_NAME = "dataset.toml"
PROMPTS_NAME = "sample_prompts.txt"


def render_into(job: TrainingJob, folder: Path, *, trainer_cwd: bool = False) -> RenderedFiles:
    """Render with the config pointing at files inside ``folder`` (absolute paths).

    The caller writes :func:`shipped_preset_file` into ``folder`` too when it is not None.
    ``trainer_cwd``: the trainer runs with ``folder`` as its working directory, so the preset
    copy is named by its bare file name. sd-scripts stores every ``network_args`` string in each
    output's ``ss_network_args``; an absolute path would carry the user's home into every
    published file.
    """
    folder = folder.resolve()
    preset = shipped_preset_file(job)
    return render_job(
        job,
        RenderPaths(
            str(folder / DATASET_NAME),
            str(folder / PROMPTS_NAME),
            lycoris_preset=None
            if preset is None
            else (preset[0] if trainer_cwd else str(folder / preset[0])),
        ),
    )


def write_rendered(job: TrainingJob, folder: Path, *, force: bool = False) -> list[Path]:
    """Render the job into ``folder``; refuses to replace existing files unless ``force``."""
    files = render_into(job, folder)
    targets = {CONFIG_NAME: files.config_toml, DATASET_NAME: files.dataset_toml}
    if files.sample_prompts is not None:
        targets[PROMPTS_NAME] = files.sample_prompts
    preset = shipped_preset_file(job)
    if preset is not None:
        targets[preset[0]] = preset[1]
    existing = [name for name in targets if (folder / name).exists()]
    if existing and not force:
        raise ConfigError(
            [
                Problem(
                    str(folder),
                    f"already holds {', '.join(existing)}; nothing was written",
                    "choose an empty folder or pass --force to replace them",
                )
            ],
            source="render",
        )
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in targets.items():
        write_atomic(folder / name, text)
        written.append(folder / name)
    return written
