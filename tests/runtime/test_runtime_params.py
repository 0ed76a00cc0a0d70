"""``radon.runtime.params``: the one parameter set and validation (no model needed, no torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radon.errors import ConfigError
from radon.runtime.params import (
    check_bool,
    check_stop_strings,
    check_text,
    make_params,
    plan_budget,
)

FLOATS = ("temperature", "top_p", "min_p", "repetition_penalty")


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, np.float32("nan")], ids=["nan", "inf", "-inf", "np-nan"]
)
def test_non_finite_floats_are_refused_by_name(name: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: must be a finite number"):
        make_params(**{name: value})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seed": -1}, r"^seed: must be in \[0, 2\*\*63\), got -1"),
        ({"seed": 2**63}, r"^seed: must be in \[0, 2\*\*63\)"),
        ({"seed": True}, "^seed: expected an integer, got bool"),
        ({"top_k": True}, "^top_k: expected an integer, got bool"),
        ({"top_k": 2.0}, "^top_k: expected an integer, got float"),
        ({"max_new_tokens": 2**63}, "^max_new_tokens: must be <= 9223372036854775807"),
        ({"temperature": "1"}, "^temperature: expected a number, got str"),
        ({"use_cache": 1}, "^use_cache: expected true or false, got int"),
        ({"stop": [[1, -2]]}, r"^stop\[0\]: must be >= 0"),
        ({"stop": "ab"}, "^stop: expected a list of token-id lists"),
        ({"do_sample": True, "temperature": 0}, "^temperature: 0 means greedy"),
        ({"beams": 2}, "^beams: not a generation parameter"),
    ],
)  # fmt: skip
def test_wrong_types_and_ranges_are_refused_by_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_params(**kwargs)


def test_numpy_scalars_and_ints_for_floats_are_accepted() -> None:
    p = make_params(temperature=np.float32(0.5), top_k=np.int64(3), seed=np.uint64(7), top_p=1)
    assert (p.temperature, p.top_k, p.seed, p.top_p) == (0.5, 3, 7, 1.0)
    assert isinstance(p.temperature, float) and isinstance(p.top_p, float)


def test_numpy_bools_are_bools_and_numpy_ints_are_not() -> None:
    # numpy 2 names its scalar numpy.bool (1.x: numpy.bool_, the Triton environment's numpy)
    assert check_bool("use_cache", np.True_) is True and check_bool("use_cache", np.bool_(False)) is False
    with pytest.raises(ConfigError, match="use_cache: expected true or false"):
        check_bool("use_cache", np.int64(1))


def test_do_sample_follows_transformers() -> None:
    assert make_params().greedy and make_params(temperature=0.7, do_sample=False).greedy
    sampled = make_params(do_sample=True)
    assert not sampled.greedy and sampled.temperature == 1.0
    assert not make_params(temperature=0.7).greedy


def test_text_checks_name_the_field_and_never_echo_the_bad_character() -> None:
    with pytest.raises(ConfigError) as info:
        check_text("prompt", "ok\ud800")
    assert str(info.value) == "prompt: not valid UTF-8 text (lone surrogate U+D800 at character 2)"
    with pytest.raises(ConfigError, match=r"^--prompt: not valid UTF-8 text \(byte 0xe9 at character 3\)"):
        check_text("--prompt", b"caf\xe9".decode("utf-8", "surrogateescape"))
    assert check_text("prompt", "Привет, RADON!") == "Привет, RADON!"
    assert check_stop_strings("stop", "x") == ["x"]
    for bad, message in (([""], "up to 4 non-empty"), (list("abcde"), "up to 4"), (["\udfff"], r"stop\[0\]")):
        with pytest.raises(ConfigError, match=message):
            check_stop_strings("stop", bad)


def test_max_length_is_a_ceiling_capped_at_the_limit_and_the_context() -> None:
    seed = plan_budget(7, 4096, max_length=32000, limit=1024)  # the seed's request on the default server
    assert (seed.new_tokens, seed.max_length, seed.capped_by, seed.requested) == (
        1024,
        1031,
        "max_tokens_limit",
        32000,
    )
    ctx = plan_budget(7, 100, max_length=32000, limit=1024)
    assert (ctx.new_tokens, ctx.max_length, ctx.capped_by) == (93, 100, "max_position_embeddings")
    inside = plan_budget(7, 100, max_length=20, limit=1024)
    assert (inside.new_tokens, inside.capped_by, inside.param) == (13, None, "max_length")
    assert plan_budget(7, 100, max_new_tokens=5, max_length=9).new_tokens == 5  # max_new_tokens wins
    assert plan_budget(7, 30).new_tokens == 23  # the default, lowered to what the context leaves


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_length": 7}, "^max_length: 7 leaves no room after the 7-token prompt"),
        ({"max_new_tokens": 94}, r"^max_new_tokens: the prompt \(7 tokens\) \+ 94 new tokens exceed"),
        ({"max_new_tokens": 51, "limit": 50}, "^max_new_tokens: 51 is over this server's limit of 50"),
        ({"max_new_tokens": 0, "new_name": "max_tokens"}, "^max_tokens: must be > 0"),
    ],
)  # fmt: skip
def test_budget_refusals_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_budget(7, 100, **kwargs)
    with pytest.raises(ConfigError, match="^messages: 100 tokens leave no room"):
        plan_budget(100, 100, prompt_name="messages")
