"""Prefill and decode optimization profiles from the manifest, profile choice, and trtexec commands."""

from __future__ import annotations

import pytest

from radon.errors import ConfigError, RadonError
from radon.export.trt.manifest import read_model_spec
from radon.export.trt.profiles import ProfileLimits, as_json, choose_profile, from_json, profile_shapes
from radon.export.trt.trtexec import build_command, format_command, run_command, shape_spec


def test_sliding_window_profiles(make_artifact) -> None:  # noqa: ANN001
    """W = 8: decode's past goes up to W - 1 = 7 (the rolling buffer), prefill's up to the limit."""
    spec = read_model_spec(make_artifact())
    p = profile_shapes(spec, ProfileLimits(max_batch=4, opt_batch=2, max_prefill=128, opt_prefill=32))
    pre, dec = p["prefill"], p["decode"]
    assert pre["input_ids"] == ((1, 1), (2, 32), (4, 128))
    assert pre["attention_mask"] == ((1, 1), (2, 32), (4, 128))
    assert pre["past_key_values.0.key"] == ((1, 2, 0, 16), (2, 2, 0, 16), (4, 2, 0, 16))
    assert dec["input_ids"] == ((1, 1), (2, 1), (4, 1))
    assert dec["position_ids"] == ((1, 1), (2, 1), (4, 1))
    assert dec["past_key_values.1.value"] == ((1, 2, 1, 16), (2, 2, 7, 16), (4, 2, 7, 16))
    assert dec["attention_mask"] == ((1, 2), (2, 8), (4, 8))  # the buffer plus the new token: W keys
    assert set(pre) == set(dec) == {t.name for t in spec.inputs}


def test_full_attention_profiles(make_artifact) -> None:  # noqa: ANN001
    spec = read_model_spec(make_artifact(arch={"sliding_window": None, "max_position_embeddings": 4096}))
    p = profile_shapes(spec)
    assert p["prefill"]["input_ids"] == ((1, 1), (1, 256), (1, 2048))  # defaults: min(max positions, 2048)
    assert p["decode"]["past_key_values.0.key"] == ((1, 2, 1, 16), (1, 2, 1024, 16), (1, 2, 4095, 16))


def test_profile_limits_name_the_flag(make_artifact) -> None:  # noqa: ANN001
    spec = read_model_spec(make_artifact())
    with pytest.raises(ConfigError, match="--max-prefill"):
        profile_shapes(spec, ProfileLimits(max_prefill=10_000))
    with pytest.raises(ConfigError, match="--opt-batch"):
        profile_shapes(spec, ProfileLimits(max_batch=2, opt_batch=3))
    with pytest.raises(ConfigError, match="--opt-past"):
        profile_shapes(spec, ProfileLimits(opt_past=8))  # W - 1 = 7 at most


def test_choose_profile_by_shapes(make_artifact) -> None:  # noqa: ANN001
    spec = read_model_spec(make_artifact())
    profiles = from_json(as_json(profile_shapes(spec, ProfileLimits(max_prefill=64))))
    prompt = {"input_ids": (1, 10), "attention_mask": (1, 10), "past_key_values.0.key": (1, 2, 0, 16)}
    step = {"input_ids": (1, 1), "attention_mask": (1, 8), "past_key_values.0.key": (1, 2, 7, 16)}
    assert choose_profile(profiles, prompt) == 0
    assert choose_profile(profiles, step) == 1
    with pytest.raises(ConfigError, match="no optimization profile"):
        choose_profile(profiles, {"input_ids": (1, 65)})


def test_trtexec_build_command(make_artifact) -> None:  # noqa: ANN001
    spec = read_model_spec(make_artifact())
    profiles = profile_shapes(spec, ProfileLimits(max_prefill=64, opt_prefill=16))
    argv = build_command("art/model.onnx", "eng/model.plan", profiles, timing_cache="t.cache")
    assert argv[:4] == ["trtexec", "--onnx=art/model.onnx", "--saveEngine=eng/model.plan", "--stronglyTyped"]
    assert argv.index("--profile=0") < argv.index("--profile=1")
    i = argv.index("--profile=1")
    assert argv[i + 1].startswith("--minShapes=input_ids:1x1,attention_mask:1x2,")
    assert "past_key_values.0.key:1x2x7x16" in argv[i + 3]  # decode max: W - 1 past
    assert argv[-2:] == ["--timingCacheFile=t.cache", "--skipInference"]
    assert "--stronglyTyped" not in build_command("m.onnx", "e.plan", profiles, tensorrt_major=11)
    assert format_command(argv).count("\\\n") == len(argv) - 1


def test_trtexec_refuses_the_python_plugin(make_artifact) -> None:  # noqa: ANN001
    spec = read_model_spec(make_artifact())
    with pytest.raises(RadonError, match="cannot build a graph with the radon::SlidingWindowAttention"):
        build_command("m.onnx", "e.plan", profile_shapes(spec), uses_plugin=True)


def test_trtexec_run_command() -> None:
    argv = run_command(
        "e/model.plan", {"input_ids": (1, 1), "past_key_values.0.key": (1, 2, 7, 16)}, profile=1
    )
    assert argv == ["trtexec", "--loadEngine=e/model.plan", "--useProfile=1",
                    "--shapes=input_ids:1x1,past_key_values.0.key:1x2x7x16"]  # fmt: skip
    with pytest.raises(RadonError, match="cannot be written"):
        shape_spec({"a:b": (1,)})
