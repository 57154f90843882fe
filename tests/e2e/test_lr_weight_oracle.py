"""e2e: block learning-rate weights mean to sd-scripts what the job says (issue 17, item 6).

Hypothesis draws ``down_lr_weight`` / ``mid_lr_weight`` / ``up_lr_weight`` strings for SD 1.5 and
SDXL: per-block lists of every length around the family's block count, empty and negative items,
single numbers, curves with and without ``+base``, and misspelt curves. Each job is validated by
the product; all of them go to ONE call of sd-scripts' own ``networks.lora.parse_block_lr_kwargs``
in the lab. A job accepted without a warning must come back as exactly the weights it lists (1.0
for a part it leaves out); a curve must come back as a full list; a job the product refuses must
be one sd-scripts stops on or reads differently (drops values, reads a negative as 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lab_oracle import run_lab_oracle

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models import job_warnings
from kohya_orchestrator.models.family import profile
from kohya_orchestrator.models.rules.lr_weights import CURVES

pytestmark = pytest.mark.e2e
ORACLE = Path(__file__).with_name("_sd_lr_weight_oracle.py")
EXAMPLES = max(300, settings.default.max_examples)  # --hypothesis-profile=long: 3000
KEYS = ("down_lr_weight", "mid_lr_weight", "up_lr_weight")
GOOD = ["0", "0.25", "0.5", "1", "1.5", "2"]
ITEMS = [*GOOD, "", "-0.5", "x"]


@st.composite
def weight(draw: st.DrawFn, count: int) -> str | None:
    kind = draw(
        st.sampled_from(["none"] * 3 + ["exact"] * 3 + ["any", "single", "curve", "bad_curve"])
    )
    if kind == "none":
        return None
    if kind == "exact":  # valid numbers, one per block
        return ",".join(draw(st.lists(st.sampled_from(GOOD), min_size=count, max_size=count)))
    if kind == "any":
        n = draw(st.integers(min_value=1, max_value=count + 2))
        return ",".join(draw(st.lists(st.sampled_from(ITEMS), min_size=n, max_size=n)))
    if kind == "single":
        return draw(st.sampled_from(["0.5", "1", "2"]))
    if kind == "curve":
        base = draw(st.sampled_from(["", "+0.5", "+.25", "+x"]))
        return draw(st.sampled_from(CURVES)) + base
    return draw(st.sampled_from(["sin", "Cosine", "reverse-linear", "zero"]))


@st.composite
def case(draw: st.DrawFn) -> dict[str, Any]:
    family = draw(st.sampled_from(["sd15", "sdxl"]))
    p = profile(family)
    counts = {"down_lr_weight": p.lr_weight_blocks, "mid_lr_weight": p.lr_weight_mid_blocks}
    counts["up_lr_weight"] = p.lr_weight_blocks
    values = {k: draw(weight(counts[k])) for k in KEYS}
    return {"family": family, "values": {k: v for k, v in values.items() if v is not None}}


def _collect() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case())
    def collect(c: dict[str, Any]) -> None:
        if c["values"]:
            cases.append(c)

    collect()
    return cases


def _verdict(c: dict[str, Any]) -> str:
    data = {
        "model": {"pretrained_model_name_or_path": "/m.safetensors", "family": c["family"]},
        "network": {"algo": "lora", **c["values"]},
        "dataset": {"subsets": [{"image_dir": "/d/10_a"}]},
        "training": {"max_train_epochs": 1},
    }
    try:
        job = validate_job(data)
    except ConfigError as err:
        problems = err.problems
    else:
        problems = []
    if problems:
        assert all(p.path.startswith("network.") and p.hint for p in problems), problems
        return "refused"
    warned = [w for w in job_warnings(job) if w.path.split(".")[-1] in KEYS]
    return "warned" if warned else "clean"


def _expected(c: dict[str, Any]) -> list[float]:
    p = profile(c["family"])
    parts = []
    for key, count in zip(
        KEYS, (p.lr_weight_blocks, p.lr_weight_mid_blocks, p.lr_weight_blocks), strict=True
    ):
        value = c["values"].get(key)
        parts += [1.0] * count if value is None else [float(x) for x in value.split(",")]
    return [1.0, *parts, 1.0] if c["family"] == "sdxl" else parts


def test_sd_scripts_reads_block_lr_weights_as_the_job_says(e2e_lab: Path, tmp_path: Path) -> None:
    cases = _collect()
    verdicts = [_verdict(c) for c in cases]
    path = tmp_path / "cases.json"
    path.write_text(
        json.dumps([{"sdxl": c["family"] == "sdxl", "kwargs": c["values"]} for c in cases]),
        encoding="utf-8",
    )
    results = run_lab_oracle(e2e_lab, ORACLE, path)
    assert len(results) == len(cases)
    seen = {"clean": 0, "warned": 0, "refused": 0}
    for c, verdict, got in zip(cases, verdicts, results, strict=True):
        seen[verdict] += 1
        curve = any("," not in c["values"].get(k, ",") for k in ("down_lr_weight", "up_lr_weight"))
        if verdict == "clean" and not curve:
            assert got == {"weights": _expected(c)}, c
        elif verdict == "clean":
            assert "weights" in got and len(got["weights"]) == len(_expected_shape(c)), (c, got)
        elif verdict == "refused":
            assert "error" in got or got["weights"] != _naive(c), (c, got)
    # every kind of verdict was exercised
    assert min(seen.values()) > 0, seen


def _expected_shape(c: dict[str, Any]) -> list[None]:
    p = profile(c["family"])
    n = 2 * p.lr_weight_blocks + p.lr_weight_mid_blocks + (2 if c["family"] == "sdxl" else 0)
    return [None] * n


def _naive(c: dict[str, Any]) -> list[float] | None:
    """The weights a reader who takes the job literally would expect (None: not a plain list)."""
    try:
        return _expected(c)
    except ValueError:
        return None
