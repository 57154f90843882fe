"""The failure table: every rule matches its own real example, remedies render, and
``classify_failure`` picks the error that explains a run."""

from __future__ import annotations

from typing import Any

import pytest

from kohya_orchestrator.events import (
    ERROR_CATEGORIES,
    FAILURE_RULES,
    ChildError,
    FailureRule,
    classify_failure,
    parse_log,
)
from kohya_orchestrator.events.failures import classify_exception, classify_message


@pytest.mark.parametrize("rule", FAILURE_RULES, ids=lambda r: f"{r.category}-{r.example[:20]}")
def test_rule_matches_its_example(rule: FailureRule) -> None:
    assert rule.category in ERROR_CATEGORIES
    found = classify_exception(rule.example) if rule.scope == "exception" else None
    if rule.scope == "message":
        found = classify_message(rule.example)
    assert found is not None
    category, remedy = found
    assert category == rule.category
    assert remedy is not None
    assert "{" not in remedy  # every placeholder was filled


def test_missing_module_remedy_names_the_pip_package() -> None:
    rule = next(r for r in FAILURE_RULES if r.example.endswith("No module named 'lycoris'"))
    _, remedy = classify_exception(rule.example)
    assert remedy is not None
    assert "<venv python> -m pip install lycoris-lora" in remedy


def test_unknown_exceptions_are_generic() -> None:
    # The last line of f_badargs_lora's traceback.
    line = "ValueError: invalid literal for int() with base 10: 'notanumber'"
    assert classify_exception(line) == ("exception", None)
    assert classify_message(line) is None


def test_examples_come_from_their_fixture(load_capture: Any) -> None:
    for rule in FAILURE_RULES:
        if rule.fixture is not None:
            errors = [
                e for e in parse_log(load_capture(rule.fixture).text) if e.kind == "child_error"
            ]
            assert rule.example in [e.message for e in errors], rule


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("a_lora_accelerate", None),
        ("b_loha", "lycoris_duplicated_name"),
        ("b_loha_preset", None),
        ("d_ia3_ly34", "lycoris_ia3_keyerror"),
        ("e_prodigy", None),
        ("f_badargs_lora", "exception"),
        ("f_missing_dir", "no_data"),
        ("g_sigint_accelerate_group", "interrupted"),
        ("h_columns200", None),
        ("h_simplelog", None),
    ],
)
def test_classify_failure_of_parsed_captures(
    load_capture: Any, name: str, category: str | None
) -> None:
    text = load_capture(name).text
    from_events = classify_failure(parse_log(text))
    # Console lines are parsed first, then classified: the same answer.
    from_lines = classify_failure(parse_log("\n".join(text.splitlines()) + "\n"))
    assert from_events == from_lines
    assert (from_events.category if from_events else None) == category


def test_specific_errors_beat_generic_ones() -> None:
    def err(seq: int, category: Any) -> ChildError:
        return ChildError(seq=seq, message=category, category=category)

    errors = [err(0, "launcher_failed"), err(1, "exception"), err(2, "oom"), err(3, "interrupted")]
    best = classify_failure(errors)
    assert best is not None
    assert best.category == "oom"
    assert classify_failure([]) is None
    assert classify_failure(parse_log("")) is None


def test_text_must_be_parsed_first() -> None:
    with pytest.raises(TypeError, match="parse_log"):
        classify_failure("Traceback (most recent call last):\nKeyboardInterrupt\n")  # type: ignore[arg-type]


def test_message_rules_are_anchored() -> None:
    # Message rules run on every log message: they must only fire on a message that *is* the
    # failure, not on one quoting it.
    for rule in FAILURE_RULES:
        if rule.scope == "message":
            assert rule.pattern.pattern.startswith("^"), rule
