"""The generator's API: stop ids and strings, eos, text in and out, streaming, refusals, providers."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import radon.runtime
from radon.checkpoint import load_model
from radon.errors import ConfigError, IntegrityError, RadonError

PROMPTS = ["Привет, как дела?", "The quick brown fox"]


@pytest.fixture(scope="module")
def text_ref(text_ckpt):
    return load_model(text_ckpt)


def test_stop_ids_and_eos_match_the_reference(text_gen, text_ref, padded):
    ids, mask = padded(2, 6, 2, vocab=text_gen.vocab_size)
    free = text_gen.generate(ids, 20, attention_mask=mask, ignore_eos=True)
    stop = [[int(free[0, 9]), int(free[0, 10])]]  # a two-token sequence row 0 will produce
    eos = int(free[1, 8])  # a token row 1 will produce, made the eos
    for kwargs in ({"stop": stop, "ignore_eos": True}, {"eos_token_id": eos}):
        ours = text_gen.generate(ids, 20, attention_mask=mask, **kwargs)
        ref = text_ref.generate(torch.from_numpy(ids), max_new_tokens=20, attention_mask=torch.from_numpy(mask),
                                **kwargs).numpy()  # fmt: skip
        np.testing.assert_array_equal(ours, ref, err_msg=str(kwargs))
    ours = text_gen.generate(ids, 20, attention_mask=mask, stop=stop, ignore_eos=True)
    assert (ours[0, 11:] == text_gen.pad_token_id).all(), "a stopped row continues with the pad id"


def test_text_batch_equals_single_prompts(text_gen):
    batch = text_gen.generate_text(PROMPTS, 24, ignore_eos=True)
    assert batch == [text_gen.generate_text(p, 24, ignore_eos=True) for p in PROMPTS]
    assert all(isinstance(t, str) and t for t in batch)


def test_stream_pieces_are_whole_utf8_and_add_up(text_gen):
    prompt = PROMPTS[0]
    pieces = list(text_gen.stream_text(prompt, 40, ignore_eos=True))
    ids = [p.token_id for p in pieces]
    text = "".join(p.text for p in pieces)
    assert text == text_gen.tokenizer.decode(ids), "streamed pieces must add up to decode(ids)"
    shown = ""
    for p in pieces:  # nothing is emitted early and taken back (a half character shown as U+FFFD)
        shown += p.text
        assert text.startswith(shown)
    assert pieces[-1].finish_reason == "length" and all(p.finish_reason is None for p in pieces[:-1])


def test_stop_string_cuts_the_text_and_ends_the_row(text_gen):
    free = text_gen.generate_text(PROMPTS[1], 40, ignore_eos=True)
    stop = free[10:13]
    assert stop.strip(), "the test needs a non-blank stop string"
    cut = free[: free.index(stop)]
    (done,) = text_gen.complete(PROMPTS[1], 40, ignore_eos=True, stop_strings=[stop])
    assert done.text == cut and done.finish_reason == "stop"
    streamed = list(text_gen.stream_text(PROMPTS[1], 40, ignore_eos=True, stop_strings=[stop]))
    assert "".join(p.text for p in streamed) == cut, "no piece may carry part of the stop string"
    assert streamed[-1].finish_reason == "stop"


def test_completion_counts_and_timings(text_gen):
    (c,) = text_gen.complete(PROMPTS[0], 12, ignore_eos=True)
    assert c.new_tokens == 12 and c.finish_reason == "length"
    assert c.prompt_tokens == len(text_gen.tokenizer.encode(PROMPTS[0], add_bos=True))
    assert 0 < c.prefill_s <= c.time_to_first_token_s <= c.total_s
    assert c.decode_tokens_per_s and c.decode_tokens_per_s > 0


def test_seeded_sampling_is_reproducible(text_gen):
    kwargs = dict(temperature=1.0, top_k=50, top_p=0.95, ignore_eos=True)
    a = text_gen.generate(np.array([[1, 50, 60, 70]]), 24, seed=11, **kwargs)
    b = text_gen.generate(np.array([[1, 50, 60, 70]]), 24, seed=11, **kwargs)
    c = text_gen.generate(np.array([[1, 50, 60, 70]]), 24, seed=12, **kwargs)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sliding_window_size": 4096}, "sliding_window_size: this artifact was exported with a sliding window of 16"),
        ({"max_new_tokens": 4095}, r"exceeds max_position_embeddings \(4096\)"),
        ({"max_new_tokens": None, "max_length": 3}, "max_length: 3 leaves no room"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"num_beams": 2}, "num_beams: not a generation parameter"),
    ],
)  # fmt: skip
def test_what_an_artifact_cannot_honour_is_refused(text_gen, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        text_gen.generate(np.array([[1, 50, 60, 70]]), **{"max_new_tokens": 4, **kwargs})


def test_flash_attention_is_honoured_by_the_fused_lowering_only(text_gen, artifacts):
    """``ort``'s GroupQueryAttention is the fused kernel: use_flash_attention=True runs (same ids);
    the ``portable`` lowering's standard ONNX ops are not, so it is refused by name."""
    ids = np.array([[1, 50, 60, 70]])
    np.testing.assert_array_equal(
        text_gen.generate(ids, 4, use_flash_attention=True), text_gen.generate(ids, 4)
    )
    portable = radon.runtime.load(artifacts[("mistral", "portable")], threads=1)
    with pytest.raises(ConfigError, match="use_flash_attention: an ONNX artifact with the portable lowering"):
        portable.generate(ids, 4, use_flash_attention=True)


def test_matching_window_and_flash_off_are_accepted(text_gen):
    out = text_gen.generate(
        np.array([[1, 50]]), 3, sliding_window_size=text_gen.window, use_flash_attention=False
    )
    assert out.shape == (1, 5)


@pytest.mark.parametrize(
    "ids, mask, message",
    [
        (np.array([[1, 2, 3]]), np.array([[1, 1, 0]]), "left-padded"),
        (np.array([[1, 99999]]), None, "ids must be in"),
        (np.zeros((1, 0), np.int64), None, "non-empty"),
        (np.array([[1, 2]]), np.array([[1, 1, 1]]), "attention_mask: expected shape"),
    ],
)
def test_bad_inputs_are_refused(text_gen, ids, mask, message):
    with pytest.raises(ConfigError, match=message):
        text_gen.generate(ids, 2, attention_mask=mask)


def test_text_api_needs_a_tokenizer(artifacts, text_gen):
    gen = radon.runtime.load(artifacts[("mistral", "ort")], threads=1)
    with pytest.raises(ConfigError, match="no tokenizer"):
        gen.generate_text("hello", 4)
    with pytest.raises(ConfigError, match="stop_strings"):
        gen.generate(np.array([[5, 6]]), 4, stop_strings=["x"])
    with pytest.raises(ConfigError, match="prompt is empty"):
        text_gen.encode("")


def test_providers_flag(text_artifact):
    gen = radon.runtime.load(text_artifact, providers="cpu", threads=1)
    assert gen.providers == ["CPUExecutionProvider"] and gen.cache == "shared"
    with pytest.raises(
        RadonError, match="CUDAExecutionProvider is not available.*available: .*CPUExecutionProvider"
    ):
        radon.runtime.load(text_artifact, providers=["cuda"])


def test_load_checks_hashes(text_artifact, tmp_path):
    bad = shutil.copytree(text_artifact, tmp_path / "bad")
    cfg = bad / "genai_config.json"
    cfg.write_text(cfg.read_text() + " ")
    with pytest.raises(IntegrityError, match="genai_config.json: sha256 mismatch"):
        radon.runtime.load(bad)
