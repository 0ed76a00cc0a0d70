"""``radon bench --architectures``: GPT-2 against Mistral in PyTorch, measured (never the seed's claim)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from radon.bench.architectures import BenchSettings, compare, format_report, parse_config_spec
from radon.errors import RadonError

Cli = Callable[..., tuple[int, str, str]]
SMALL = BenchSettings(batch=1, prompt=16, new_tokens=8, runs=1, rounds=1, threads=1, kv_context=4096)


def test_overrides_build_the_mistral_twin() -> None:
    gpt2 = parse_config_spec("small")
    twin = parse_config_spec("small:model_type=mistral,tie_word_embeddings=true,sliding_window=128")
    assert (twin.model_type, twin.hidden_size, twin.num_layers, twin.sliding_window) == (
        "mistral",
        256,
        6,
        128,
    )
    assert (gpt2.intermediate_size, twin.intermediate_size) == (1024, 768)  # derived afresh for SwiGLU
    back = parse_config_spec("tiny_mistral:model_type=gpt2")  # a Mistral base loses its window and GQA
    assert back.sliding_window is None and back.num_kv_heads == back.num_attention_heads
    with pytest.raises(RadonError, match="num_layer: unknown key"):
        parse_config_spec("tiny_gpt2:num_layer=3")


def test_measures_speed_memory_and_kv_cache() -> None:
    a, b = compare("tiny_gpt2", "tiny_mistral", SMALL, isolated=False)
    for r in (a, b):
        assert r["prefill_tokens_per_s"] > 0 and r["decode_tokens_per_s"] > 0 and r["weight_bytes"] > 0
    # GPT-2: 2 layers x (k, v) x 4 heads x 16 dims x fp32, for all 24 tokens
    assert a["kv_cache_bytes"] == 2 * 2 * 4 * 16 * 4 * 24 and a["kv_cache_tokens_held"] == 24
    # Mistral: 2 kv heads, and a rolling buffer of window - 1 = 7 positions
    assert b["kv_cache_bytes"] == 2 * 2 * 2 * 16 * 4 * 7 and b["kv_cache_tokens_held"] == 7
    report = format_report([a, b], SMALL)
    assert "B/A: prefill" in report and "3-5x" not in report and "not equal size" not in report


def test_cli_runs_each_architecture_in_its_own_process(cli: Cli) -> None:
    rc, out, err = cli("bench", "--architectures", "tiny_gpt2", "small", "--prompt-tokens", "8", "--new-tokens", "4",
                       "--runs", "1", "--rounds", "1", "--threads", "1", "--json")  # fmt: skip
    assert rc == 0, err
    results = json.loads(out)["results"]
    assert [r["model_type"] for r in results] == ["gpt2", "gpt2"]
    assert all(r["peak_memory_bytes"] > 0 for r in results)
    assert results[1]["parameters"] > 10 * results[0]["parameters"]


def test_modes_are_exclusive(cli: Cli, tmp_path: object) -> None:
    rc, _, err = cli("bench", "--architectures", "tiny_gpt2")
    assert rc == 2 and "exactly two configs" in err
    rc, _, err = cli("bench", "--architectures", "tiny_gpt2", "tiny_mistral", "--compare")
    assert rc == 2 and "--compare belongs to" in err
    rc, _, err = cli("bench", "a", "b")  # several artifacts are fine; these do not exist
    assert rc == 2 and "a: no such artifact folder" in err
    rc, _, err = cli("bench", "--architectures", "tiny_gpt2", "tiny_mistral", "--spinning", "off")
    assert rc == 2 and "--spinning" in err and "belong to `radon bench ARTIFACT`" in err


def test_artifact_mode_dispatches_to_the_runtime_benchmark(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    calls: list[tuple[object, dict]] = []
    fake = types.ModuleType("radon.bench.runtime")
    fake.run = lambda artifact, **kw: calls.append((artifact, kw)) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "radon.bench.runtime", fake)
    rc, _, err = cli("bench", "art", "art-int4", "--compare", "--new-tokens", "16", "--cache", "ring",
                     "--spinning", "on,off", "--huge-pages", "off")  # fmt: skip
    assert rc == 0, err
    ((artifacts, kw),) = calls
    assert [str(a) for a in artifacts] == ["art", "art-int4"] and kw["compare"] and kw["new_tokens"] == 16
    assert kw["cache"] == "ring" and kw["spinning"] == "on,off" and kw["huge_pages"] == "off"


def test_artifact_mode_without_the_runtime_benchmark_is_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "radon.bench.runtime", None)  # as in a build without it
    rc, _, err = cli("bench", "some-artifact")
    assert rc == 2 and "radon.bench.runtime) is not in this build yet" in err
