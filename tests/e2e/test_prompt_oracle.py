"""e2e: sd-scripts' own prompt reader gives back every sample prompt a valid job renders.

A hypothesis strategy builds jobs with hostile prompt texts (CJK, quotes, backslashes, ``--``,
``#``, option-like starts such as ``n ...`` or ``ſ 3``, unicode spaces and line separators) and
valid numbers. Each job is either refused by validation, every problem naming a key path, a reason
and a fix, or its rendered ``sample_prompts.txt`` is read by sd-scripts' ``load_prompts`` (the
real reader, in the e2e lab's venv) and must come back with exactly the job's prompt, negative
prompt, size, steps, seed, scale and sampler. All examples go to ONE subprocess call.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from lab_oracle import collect_examples, run_lab_oracle

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import load_job, validate_job
from kohya_orchestrator.models import TrainingJob
from kohya_orchestrator.models.sampling import SAMPLERS
from kohya_orchestrator.render.toml import render_sample_prompts

pytestmark = pytest.mark.e2e
ORACLE = Path(__file__).with_name("_sd_prompt_oracle.py")
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "render"
EXAMPLES = max(300, settings.default.max_examples)  # --hypothesis-profile=long: 3000

BASE: dict[str, Any] = {
    "model": {"pretrained_model_name_or_path": "/m/sd15.safetensors"},
    "dataset": {"subsets": [{"image_dir": "/d/img/20_zengxin oilpaint"}]},
    "training": {"max_train_epochs": 10},
}

HOSTILE = [
    " --",
    " --n x",
    " --w 64",
    "--",
    " -",
    "-",
    "#",
    "# ",
    "n ",
    "N ",
    "w 5",
    "W 12",
    "d 9",
    "s 3",
    "ſ 3",  # LATIN SMALL LETTER LONG S: re.IGNORECASE reads it as "s"
    "l 2",
    "l .",
    "g 1",
    "ss ",
    "cn ",
    "ctr 1",
    "rcfg ",
    "fs ",
    "w x",
    "曾鑫 油画",
    "港口 🎨",
    '"quoted"',
    "'single'",
    "\\",
    "C:\\models\\x",
    "(detail:1.2)",
    " ",
    "  ",
    "\t",
    "\u3000",  # ideographic space
    "\xa0",  # no-break space
    "\u2028",  # line separator (not a line break for readlines, but whitespace for strip)
    "\x85",
    "\x0b",
    "\x0c",
    "\x1c",
    "\n",
    "\r",
    "\r\n",
    "\ufeff",
    "5e-05",
    "１２",  # fullwidth digits
    "٣",  # arabic-indic digit three
    "\ud800",  # a lone surrogate: cannot be written as UTF-8
]

WORDS = ["a photo of zengxin", "oil painting", "lighthouse", "x", ", ", " ", "曾鑫", "(detail:1.2)"]

# Benign words twice as often as hostile fragments, so that both outcomes are common.
fragment = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(HOSTILE),
    st.sampled_from(WORDS),
    st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(WORDS),
)
text = st.lists(fragment, min_size=1, max_size=5).map("".join)
eights = st.integers(8, 512).map(lambda n: n * 8)
size = st.one_of(st.none(), eights)
odd_size = st.one_of(st.none(), eights, st.integers(64, 4096))
steps = st.one_of(st.none(), st.integers(1, 1000))
seed = st.one_of(st.none(), st.integers(0, 2**64 - 1), st.sampled_from([0, 1]))
odd_seed = st.one_of(seed, st.integers(2**64, 2**70))
scale = st.one_of(
    st.none(),
    st.floats(min_value=0, max_value=1e6, exclude_min=True, allow_nan=False, allow_infinity=False),
    st.sampled_from([5e-05, 1e-07, 1e16, 7.5, 7.0, 0.1, 1e22, 5e-324]),
)
negative = st.one_of(st.none(), st.none(), st.just(""), text)


@st.composite
def prompt_entry(draw: st.DrawFn, odd: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"prompt": draw(text)}
    for key, strategy in (
        ("negative_prompt", negative),
        ("width", odd_size if odd else size),
        ("height", odd_size if odd else size),
        ("sample_steps", steps),
        ("seed", odd_seed if odd else seed),
        ("scale", scale),
        ("sample_sampler", st.one_of(st.none(), st.sampled_from(SAMPLERS))),
    ):
        value = draw(strategy)
        if value is not None:
            entry[key] = value
    return entry


@st.composite
def job_data(draw: st.DrawFn) -> dict[str, Any]:
    odd = draw(st.integers(0, 4)) == 0  # one job in five may get sizes/seeds sd-scripts changes
    sampling: dict[str, Any] = {
        "sample_every_n_epochs": 1,
        "prompts": draw(st.lists(prompt_entry(odd), min_size=1, max_size=2)),
    }
    for key, strategy in (
        ("negative_prompt", negative),
        ("width", odd_size if odd else size),
        ("height", odd_size if odd else size),
        ("sample_steps", steps),
        ("seed", odd_seed if odd else seed),
        ("scale", scale),
    ):
        value = draw(strategy)
        if value is not None:
            sampling[key] = value
    data = copy.deepcopy(BASE)
    data["sampling"] = sampling
    return data


def _collect() -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = collect_examples(job_data(), EXAMPLES)
    return examples


def _expected(job: TrainingJob) -> list[dict[str, Any]]:
    """What the job means for each prompt, in sd-scripts' prompt-dict keys (None: not given)."""
    s = job.sampling
    res = job.dataset.resolution
    default_w, default_h = (res, res) if isinstance(res, int) else res
    out = []
    for p in s.prompts:
        negative = p.negative_prompt if p.negative_prompt is not None else s.negative_prompt
        out.append(
            {
                "prompt": p.prompt,
                "negative_prompt": negative or None,
                "width": p.width or s.width or default_w,
                "height": p.height or s.height or default_h,
                "sample_steps": p.sample_steps or s.sample_steps,
                "seed": p.seed if p.seed is not None else s.seed,
                "scale": p.scale or s.scale,
                "sample_sampler": p.sample_sampler,
            }
        )
    return out


def _reason(message: str) -> str:
    """A problem message without its numbers and quoted text, to count refusals by kind."""
    head = message.split(";")[0].split(", which")[0].split(", so")[0]
    return re.sub(r"'[^']*'", "'…'", re.sub(r"\d+", "N", head))


def _read_with_sd_scripts(lab: Path, files: list[Path]) -> list[list[dict[str, Any]]]:
    result: list[list[dict[str, Any]]] = run_lab_oracle(lab, ORACLE, *files)
    return result


def test_sd_scripts_reads_every_accepted_prompt_exactly(e2e_lab: Path, tmp_path: Path) -> None:
    examples = _collect()
    assert len(examples) >= EXAMPLES * 0.9
    accepted: list[tuple[dict[str, Any], TrainingJob, Path]] = []
    reasons: Counter[str] = Counter()
    for i, data in enumerate(examples):
        try:
            job = validate_job(data)
        except ConfigError as exc:
            problems = exc.problems
        else:
            problems = []
        if problems:
            for p in problems:
                assert p.path.startswith("sampling."), (data, p)
                assert p.message and p.hint, (data, p)
                reasons[_reason(p.message)] += 1
            continue
        text = render_sample_prompts(job)
        assert text is not None
        path = tmp_path / f"{i:04d}.txt"
        path.write_text(text, encoding="utf-8", newline="\n")
        accepted.append((data, job, path))
    refused = len(examples) - len(accepted)
    # Both outcomes must be exercised, or the property says little.
    assert len(accepted) >= 50 and refused >= 50, (len(accepted), refused, reasons)
    # The golden prompt files ride along in the same call.
    goldens = sorted(GOLDEN.glob("*/sample_prompts.txt"))
    assert goldens
    for path in goldens:
        accepted.append(({"golden": path.parent.name}, load_job(path.with_name("job.toml")), path))

    parsed = _read_with_sd_scripts(e2e_lab, [path for _, _, path in accepted])
    assert len(parsed) == len(accepted)
    prompts = 0
    for (data, job, path), got in zip(accepted, parsed, strict=True):
        want = _expected(job)
        assert len(got) == len(want), (data, path.read_text(encoding="utf-8"), got)
        for g, w in zip(got, want, strict=True):
            g.pop("enum")
            assert set(g) <= set(w), (data, g)
            assert {k: g.get(k) for k in w} == w, (data, path.read_text(encoding="utf-8"))
            prompts += 1
    jobs = len(accepted) - len(goldens)
    print(
        f"\nprompt oracle: {len(examples)} jobs; {jobs} accepted and {refused} refused; "
        f"{prompts} prompt lines (with {len(goldens)} golden files) all read back exactly by "
        f"sd-scripts; refusals by kind: {dict(reasons)}"
    )
