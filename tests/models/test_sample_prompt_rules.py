"""Sample prompts sd-scripts' prompt-file reader would misread are refused (issue 17 item 1), and
the optimizer arguments sd-scripts' pinned libraries reject (items 3 and 4).

Each rule gets a job that breaks it (the key path, message and hint are checked) and a valid
neighbour. tests/e2e/test_prompt_oracle.py checks the accepted side against sd-scripts' own reader.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kohya_orchestrator.errors import ConfigError, Problem
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models.rules import MAX_TORCH_SEED

BASE: dict[str, Any] = {
    "model": {"pretrained_model_name_or_path": "/m/sd15.safetensors"},
    "dataset": {"subsets": [{"image_dir": "/d/img/20_zengxin oilpaint"}]},
    "training": {"max_train_epochs": 10},
}


def job(prompt: dict[str, Any] | None = None, **sampling: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["sampling"] = {
        "sample_every_n_epochs": 1,
        "prompts": [{"prompt": "a lighthouse", **(prompt or {})}],
        **sampling,
    }
    return data


def errors(data: dict[str, Any]) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        validate_job(data)
    return list(info.value.problems)


def only(data: dict[str, Any], path: str) -> Problem:
    found = errors(data)
    assert [p.path for p in found] == [path], found
    return found[0]


class TestPromptText:
    @pytest.mark.parametrize(
        "text", ["a photo", "w", "wx 5", "w x", "n", "n ", "so 3", "l x", "a #tag", "曾鑫 油画"]
    )
    def test_ok(self, text: str) -> None:
        assert validate_job(job({"prompt": text})).sampling.prompts[0].prompt == text

    def test_trailing_whitespace_is_kept_ok(self) -> None:
        # The prompt is never the end of the line (--w/--h follow), so sd-scripts keeps it.
        assert validate_job(job({"prompt": "cat "})).sampling.prompts[0].prompt == "cat "

    def test_option_separator(self) -> None:
        p = only(job({"prompt": "a --w 3"}), "sampling.prompts[0].prompt")
        assert p.message == (
            "contains ' --', where sd-scripts' prompt reader starts an option (--n, --w, ...); "
            "the rest of the text would be misread"
        )
        assert p.hint == "drop the space before '--' or the dashes (e.g. 'a--b' or 'a - b')"

    def test_dashes_without_space_ok(self) -> None:
        assert validate_job(job({"prompt": "a--b - c"})).sampling.prompts[0].prompt == "a--b - c"

    @pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\r\nb"])
    def test_multiline(self, text: str) -> None:
        p = only(job({"prompt": text}), "sampling.prompts[0].prompt")
        assert (p.message, p.hint) == (
            "is not a single line; sd-scripts reads one prompt per line",
            "put it on one line",
        )

    @pytest.mark.parametrize("text", [" ", "\t\u3000"])
    def test_blank(self, text: str) -> None:
        p = only(job({"prompt": text}), "sampling.prompts[0].prompt")
        assert (p.message, p.hint) == (
            "is blank; sd-scripts skips blank lines, so this sample would never be made",
            "write a prompt, or remove this entry",
        )

    @pytest.mark.parametrize("text", [" cat", "\u3000cat", "\xa0cat", "\u2028cat"])
    def test_leading_whitespace(self, text: str) -> None:
        p = only(job({"prompt": text}), "sampling.prompts[0].prompt")
        assert (p.message, p.hint) == (
            "begins with whitespace, which sd-scripts strips from each prompt line",
            "remove the leading whitespace",
        )

    def test_comment(self) -> None:
        p = only(job({"prompt": "#tag cat"}), "sampling.prompts[0].prompt")
        assert (p.message, p.hint) == (
            "begins with '#', so sd-scripts would skip the whole line as a comment",
            "reword the start of the prompt (move the '#' later)",
        )

    @pytest.mark.parametrize(
        ("text", "start", "option", "meaning"),
        [
            ("w 512 wide", "w 5", "w", "width"),
            ("H 7 things", "H 7", "h", "height"),
            ("d 9 lives", "d 9", "d", "seed"),
            ("s 3 cats", "s 3", "s", "steps"),
            ("\u017f 3 cats", "\u017f 3", "s", "steps"),  # long s: IGNORECASE reads it as s
            ("s \u0663", "s \u0663", "s", "steps"),  # a non-ASCII digit is still \\d
            ("l 2 cats", "l 2", "l", "CFG scale"),
            ("l .x", "l .", "l", "CFG scale"),
            ("g 1 cats", "g 1", "g", "guidance scale"),
            ("n ice cat", "n i", "n", "negative prompt"),
            ("SS euler cat", "SS e", "ss", "sampler"),
            ("cn tower", "cn t", "cn", "ControlNet image"),
            ("ctr x", "ctr x", "ctr", "CFG truncation ratio"),
            ("rcfg x", "rcfg x", "rcfg", "renorm CFG"),
            ("fs x", "fs x", "fs", "flow shift"),
        ],
    )
    def test_option_like_start(self, text: str, start: str, option: str, meaning: str) -> None:
        p = only(job({"prompt": text}), "sampling.prompts[0].prompt")
        assert p.message == (
            f"begins with {start!r}, which sd-scripts reads as its --{option} option "
            f"({meaning}), not as prompt text"
        )
        assert p.hint == "reword the start of the prompt (put another word first)"

    def test_lone_surrogate(self) -> None:
        # pydantic refuses text that cannot be written as UTF-8 before the rules run; the job
        # loader words it the same way as the rule for optional fields (jobs/problems.py _message).
        p = only(job({"prompt": "cat \ud800"}), "sampling.prompts[0].prompt")
        assert (
            p.message == "contains a character that cannot be written as UTF-8 (a lone surrogate)"
        )
        assert p.hint is not None and p.hint.startswith("remove it")

    def test_every_prompt_is_checked_with_its_index(self) -> None:
        data = job()
        data["sampling"]["prompts"].append({"prompt": "n ice"})
        assert [p.path for p in errors(data)] == ["sampling.prompts[1].prompt"]


class TestNegativePrompt:
    @pytest.mark.parametrize("text", ["", "n ice", "w 5", "#x", " lowres ", "s 3"])
    def test_ok(self, text: str) -> None:
        # After "--n " every character is the negative prompt's: option-like starts are fine.
        data = job({"negative_prompt": text}, negative_prompt=text)
        assert validate_job(data).sampling.negative_prompt == text

    @pytest.mark.parametrize("where", ["prompt", "section"])
    def test_option_separator(self, where: str) -> None:
        data = (
            job({"negative_prompt": "ugly --w 8"})
            if where == "prompt"
            else job(negative_prompt="ugly --w 8")
        )
        path = (
            "sampling.prompts[0].negative_prompt"
            if where == "prompt"
            else "sampling.negative_prompt"
        )
        assert "contains ' --'" in only(data, path).message

    def test_multiline(self) -> None:
        p = only(job(negative_prompt="a\nb"), "sampling.negative_prompt")
        assert p.message.startswith("is not a single line")

    def test_only_whitespace(self) -> None:
        p = only(job({"negative_prompt": " \u3000"}), "sampling.prompts[0].negative_prompt")
        assert (p.message, p.hint) == (
            "is only whitespace",
            'write a negative prompt, or "" for none',
        )

    @pytest.mark.parametrize("where", ["prompt", "section"])
    def test_lone_surrogate(self, where: str) -> None:
        # pydantic lets a lone surrogate into a `str | None` field; writing the file would fail.
        if where == "prompt":
            data, path = job({"negative_prompt": "a\ud800"}), "sampling.prompts[0].negative_prompt"
        else:
            data, path = job(negative_prompt="\udfff"), "sampling.negative_prompt"
        p = only(data, path)
        assert (p.message, p.hint) == (
            "contains a character that cannot be written as UTF-8 (a lone surrogate)",
            "remove it",
        )


class TestPromptNumbers:
    @pytest.mark.parametrize("key", ["width", "height"])
    def test_size_not_multiple_of_8(self, key: str) -> None:
        p = only(job({key: 500}), f"sampling.prompts[0].{key}")
        assert (p.message, p.hint) == (
            "500 is not a multiple of 8; sd-scripts rounds it down to 496",
            "use 496 or 504",
        )
        p = only(job(**{key: 1001}), f"sampling.{key}")
        assert p.hint == "use 1000 or 1008"

    def test_size_multiple_of_8_ok(self) -> None:
        s = validate_job(job({"width": 504, "height": 1016}, width=768, height=64)).sampling
        assert (s.prompts[0].width, s.prompts[0].height, s.width, s.height) == (504, 1016, 768, 64)

    def test_seed_above_torch_range(self) -> None:
        p = only(job({"seed": MAX_TORCH_SEED + 1}), "sampling.prompts[0].seed")
        assert p.message == (
            f"{MAX_TORCH_SEED + 1} is above {MAX_TORCH_SEED}, the largest seed torch takes; "
            "sampling would fail"
        )
        assert only(job(seed=2**70), "sampling.seed").hint == "use a smaller seed"

    def test_largest_seed_ok(self) -> None:
        data = job({"seed": MAX_TORCH_SEED}, seed=MAX_TORCH_SEED)
        assert validate_job(data).sampling.prompts[0].seed == MAX_TORCH_SEED


class TestAdafactorWarmupInit:
    """Issue 17 item 4: sd-scripts turns relative_step back on when warmup_init is set."""

    def _job(self, **optimizer: Any) -> dict[str, Any]:
        data = copy.deepcopy(BASE)
        data["optimizer"] = {"type": "AdaFactor", **optimizer}
        return data

    def test_warmup_init_without_relative_step(self) -> None:
        p = only(self._job(relative_step=False, warmup_init=True), "optimizer.warmup_init")
        assert p.message == (
            "Adafactor's warmup_init needs relative_step; with relative_step = false sd-scripts "
            "turns relative_step back on, ignoring learning_rate and the scheduler"
        )
        assert p.hint == (
            "remove warmup_init (or set it to false), or set optimizer.relative_step = true"
        )

    def test_through_extra_args(self) -> None:
        data = self._job(extra_args={"relative_step": 0, "warmup_init": 1})
        p = only(data, "optimizer.extra_args.warmup_init")
        assert p.message.startswith("Adafactor's warmup_init")

    def test_extra_args_win_over_the_typed_field(self) -> None:
        # Rendered after the typed fields, so sd-scripts keeps the extra_args value.
        data = self._job(relative_step=True, warmup_init=True, extra_args={"relative_step": False})
        assert only(data, "optimizer.warmup_init").path == "optimizer.warmup_init"
        ok = self._job(relative_step=False, warmup_init=True, extra_args={"relative_step": True})
        assert validate_job(ok).optimizer.type == "AdaFactor"

    @pytest.mark.parametrize(
        "optimizer",
        [
            {"relative_step": True, "warmup_init": True},
            {"warmup_init": True},
            {"relative_step": False, "warmup_init": False},
            {"relative_step": False},
        ],
    )
    def test_ok(self, optimizer: dict[str, Any]) -> None:
        assert validate_job(self._job(**optimizer)).optimizer.type == "AdaFactor"


class TestScheduleFreeArgs:
    """Issue 17 item 3: schedulefree 1.4's RAdamScheduleFree takes no warmup_steps."""

    def _job(self, type_: str, **optimizer: Any) -> dict[str, Any]:
        data = copy.deepcopy(BASE)
        data["optimizer"] = {"type": type_, **optimizer}
        return data

    def test_radam_warmup_steps(self) -> None:
        p = only(self._job("RAdamScheduleFree", warmup_steps=100), "optimizer.warmup_steps")
        assert p.message == (
            "RAdamScheduleFree (schedulefree 1.4, as sd-scripts pins it) takes no warmup_steps; "
            "training would stop with a TypeError"
        )
        assert p.hint == (
            "remove warmup_steps (RAdamScheduleFree warms up by itself), or use AdamWScheduleFree"
        )

    def test_radam_warmup_steps_in_extra_args(self) -> None:
        data = self._job("radamschedulefree", extra_args={"warmup_steps": 100})
        assert "takes no warmup_steps" in only(data, "optimizer.extra_args.warmup_steps").message

    def test_sgd_betas(self) -> None:
        p = only(self._job("SGDScheduleFree", betas=[0.9, 0.999]), "optimizer.betas")
        assert p.hint == (
            "remove betas (SGDScheduleFree takes momentum in extra_args), or use AdamWScheduleFree"
        )

    @pytest.mark.parametrize(
        ("type_", "optimizer"),
        [
            ("AdamWScheduleFree", {"warmup_steps": 100, "betas": [0.9, 0.999]}),
            ("SGDScheduleFree", {"warmup_steps": 100}),
            ("RAdamScheduleFree", {"betas": [0.9, 0.999], "weight_decay": 0.01}),
        ],
    )
    def test_ok(self, type_: str, optimizer: dict[str, Any]) -> None:
        assert validate_job(self._job(type_, **optimizer)).optimizer.type == type_
