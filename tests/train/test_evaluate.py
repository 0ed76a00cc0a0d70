"""Bits per byte and perplexity, checked against independent computations, and the two baselines."""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from radon import HybridTransformerModel, ModelConfig, save_checkpoint
from radon.baselines import UnigramModel, gzip_bpb
from radon.evaluate import guess_lang, token_nll, window_starts
from radon.tokenizer import load_tokenizer
from radon_testing import decisive_

Cli = Callable[..., tuple[int, str, str]]


def _model(vocab: int, window: int | None = None, seed: int = 0) -> HybridTransformerModel:
    cfg = ModelConfig.from_json("tiny_mistral")
    cfg.vocab_size, cfg.sliding_window = vocab, window
    torch.manual_seed(seed)
    return decisive_(HybridTransformerModel(cfg), std=0.05, seed=seed).eval()


def _numpy_bits(model: HybridTransformerModel, ids: list[int]) -> float:
    """-sum log2 p(ids[t] | ids[:t]) from one plain forward, softmax done in numpy (float64)."""
    with torch.no_grad():
        logits = model(torch.tensor([ids]), use_cache=False).logits[0].double().numpy()
    logits = logits[:-1] - logits[:-1].max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return float(-logp[np.arange(len(ids) - 1), ids[1:]].sum() / math.log(2))


def test_eval_bpb_matches_a_direct_numpy_sum(cli: Cli, tokenizer_dir: Path, tmp_path: Path) -> None:
    tok = load_tokenizer(tokenizer_dir)
    model = _model(tok.vocab_size)
    ckpt = save_checkpoint(model, tmp_path / "ckpt", tokenizer=tok)
    texts = {"ru_a.txt": "Мороз и солнце; день чудесный!\n", "ru_b.txt": "Ещё ты дремлешь, друг прелестный.\n",
             "code_x.txt": "def f(x):\n    return x * 2\n"}  # fmt: skip
    for name, body in texts.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    rc, out, err = cli("eval", ckpt, "--text", *[tmp_path / n for n in texts], "--context", "128", "--json")
    assert rc == 0, err
    report = json.loads(out)
    bits = {}
    for row in report["files"]:
        name = Path(row["name"]).name
        ids = [1] + tok.encode(texts[name])
        bits[name] = _numpy_bits(model, ids)
        n_bytes = len(texts[name].encode("utf-8"))
        assert row["tokens"] == len(ids) - 1 and row["bytes"] == n_bytes
        assert row["bpb"] == pytest.approx(bits[name] / n_bytes, rel=1e-5)
        assert row["perplexity"] == pytest.approx(2 ** (bits[name] / (len(ids) - 1)), rel=1e-5)
    langs = {row["lang"]: row for row in report["languages"]}
    ru_bytes = sum(len(texts[n].encode()) for n in ("ru_a.txt", "ru_b.txt"))
    assert langs["ru"]["bpb"] == pytest.approx((bits["ru_a.txt"] + bits["ru_b.txt"]) / ru_bytes, rel=1e-5)
    assert set(langs) == {"ru", "code"}


def test_strided_windows_equal_one_full_pass_when_context_covers_the_window() -> None:
    """A 2-layer window-8 model sees at most 2 x (8 - 1) = 14 tokens back. With context 32 and stride 16
    every scored token has >= 16 tokens of context, so the strided sum must equal one full forward over
    the whole sequence (RoPE is relative: a window's positions restarting at 0 change nothing)."""
    model = _model(320, window=8, seed=1)
    ids = torch.randint(4, 320, (200,), generator=torch.Generator().manual_seed(0)).tolist()
    strided = token_nll(model, ids, context=32, stride=16, batch_size=5)
    full = token_nll(model, ids, context=256, stride=128)
    assert strided.shape == full.shape == (199,)
    np.testing.assert_allclose(strided, full, rtol=1e-4, atol=1e-5)
    assert float(strided.sum() / math.log(2)) == pytest.approx(_numpy_bits(model, ids), rel=1e-5)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 300), context=st.integers(2, 64), data=st.data())
def test_every_token_is_scored_exactly_once(n: int, context: int, data: st.DataObject) -> None:
    stride = data.draw(st.integers(1, context - 1))
    windows = window_starts(n, context, stride)
    counts = np.zeros(n, dtype=int)
    for start, first in windows:
        end = min(n, start + context)
        assert start < first <= end and end - start == min(n, context)
        counts[first:end] += 1
        if start > 0:
            assert first - start >= context - stride  # the promised minimum context
    assert counts[0] == 0 and (counts[1:] == 1).all()


def test_gzip_baseline_is_gzip_minus_9() -> None:
    text = "the quick brown fox jumps over the lazy dog\n" * 50
    data = text.encode()
    assert gzip_bpb(text) == 8 * len(gzip.compress(data, 9, mtime=0)) / len(data)
    assert gzip_bpb(text) < 0.5  # repetitive text compresses well


def test_unigram_baseline_by_hand() -> None:
    # counts over a 4-token vocabulary, add-one: p = (c + 1) / (N + V) = (3, 1, 2, 2) / 8
    uni = UnigramModel.fit([[0, 0, 2], [3]], vocab_size=4)
    assert uni.counts.tolist() == [2, 0, 1, 1] and uni.tokens == 4
    assert uni.bits([0, 1, 2]) == pytest.approx(-(math.log2(3 / 8) + math.log2(1 / 8) + math.log2(2 / 8)))

    class Chars:  # a tokenizer: one id per character a-d
        def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
            return ["abcd".index(c) for c in text]

    assert uni.bpb("abc", Chars()) == pytest.approx(uni.bits([0, 1, 2]) / 3)


def test_eval_reports_both_baselines(
    cli: Cli, corpus: Path, tokenizer_dir: Path, tiny_config: Path, tmp_path: Path
) -> None:
    from radon.train import TrainConfig, train

    files = {lang: [corpus / f"{lang}.txt"] for lang in ("ru", "code")}
    train(ModelConfig.from_json(tiny_config), TrainConfig(steps=3, batch_size=2, context=32, threads=1, eval_every=0,
          max_bytes_per_language=30_000), files, load_tokenizer(tokenizer_dir), tmp_path / "ck", progress=False)  # fmt: skip
    rc, out, err = cli("eval", tmp_path / "ck", "--text", corpus / "eval" / "ru_eval.txt", f"code={corpus / 'eval' / 'code_eval.txt'}",
                       "--baselines", "--max-bytes", "3000")  # fmt: skip
    assert rc == 0, err
    assert "| language | tokens |" in out and "gzip bits/byte" in out and "unigram bits/byte" in out
    assert "fitted on the" in out and "first 3,000 bytes" in out


def test_eval_bad_input(cli: Cli, tmp_path: Path, tokenizer_dir: Path) -> None:
    rc, _, err = cli("eval", tmp_path / "missing", "--text", tmp_path / "x.txt")
    assert rc == 2 and "missing: no such checkpoint folder" in err
    save_checkpoint(_model(512), tmp_path / "no-tok")
    rc, _, err = cli("eval", tmp_path / "no-tok", "--text", tmp_path / "x.txt")
    assert rc == 2 and "has no tokenizer/" in err
    ckpt = save_checkpoint(_model(512), tmp_path / "ck", tokenizer=load_tokenizer(tokenizer_dir))
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    rc, _, err = cli("eval", ckpt, "--text", tmp_path / "empty.txt")
    assert rc == 2 and "empty" in err
    rc, _, err = cli("eval", ckpt, "--text", tmp_path / "empty.txt", "--context", "4096")
    assert rc == 2 and "max_position_embeddings" in err


def test_language_from_file_name() -> None:
    assert [guess_lang(p) for p in ("eval/ru_eval.txt", "en.txt", "code_eval.txt", "notes.txt", "english.txt")] == [
        "ru", "en", "code", "other", "other",
    ]  # fmt: skip
