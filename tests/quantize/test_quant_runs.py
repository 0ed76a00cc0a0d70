"""Quantized artifacts run unchanged in ``radon.runtime`` (every KV engine) and ``radon serve``, and the
benchmark's bytes-per-token counts their embedding table as stored.

The runtime's generator is checked against ``DecoderSession.greedy``, a separate plain loop (trim the
past to W - 1 positions, feed one token) over the same graph, for 3 x W new tokens past the window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radon.runtime.engine import ENGINES

PRECISIONS = ["int8", "int8-dynamic", "int4"]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_quantized_artifacts_generate_in_every_engine(quantized, precision: str) -> None:
    import radon.runtime
    from radon.runtime.session import DecoderSession

    path = quantized(precision, precision=precision).path
    window = radon.runtime.load(path, threads=1).window
    prompt = np.array([[1, 40, 41, 42, 43, 44]], np.int64)
    new = 3 * window
    want = DecoderSession(path, threads=1).greedy(prompt, new)
    for cache in ENGINES:
        gen = radon.runtime.load(path, threads=1, cache=cache)
        got = gen.generate(prompt, new, ignore_eos=True)
        assert np.array_equal(got, want), f"{precision}, cache {cache}: {got[0, 6:]} != {want[0, 6:]}"
        shapes = gen.last_engine.past_shapes()
        assert all(s[2] <= window for s in shapes), f"{cache}: the cache grew past the window: {shapes[0]}"


@pytest.mark.parametrize("precision", PRECISIONS)
def test_quantized_artifacts_serve(quantized, precision: str) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    import radon.runtime
    from radon.runtime.server import create_app

    path = quantized(precision, precision=precision).path
    want = radon.runtime.load(path, threads=1).generate_text("Привет, мир", 12, ignore_eos=True)
    app = create_app(radon.runtime.load(path, threads=1), model_name="q")
    with TestClient(app) as client:
        r = client.post("/v1/completions", json={"model": "q", "prompt": "Привет, мир", "max_tokens": 12,
                                                 "temperature": 0, "ignore_eos": True})  # fmt: skip
        assert r.status_code == 200, r.text
        text = r.json()["choices"][0]["text"]
        assert text == want and r.json()["usage"]["completion_tokens"] == 12, (
            f"{precision}: {text!r} != {want!r}"
        )


def test_bandwidth_bytes_count_the_embedding_as_stored(quantized, fp32: dict[str, Path]) -> None:
    from radon.bench.runtime import bytes_per_token, embedding_bytes
    from radon.runtime.contract import read_manifest

    m = read_manifest(fp32["ort"])
    a = m.architecture
    assert embedding_bytes(fp32["ort"] / m.model_file) == a.vocab_size * a.hidden_size * 4
    q = quantized("int4_plain", precision="int4", auto_mixed_budget=None).path  # the embedding at 4 bits
    qm = read_manifest(q)
    table = embedding_bytes(q / qm.model_file)
    # 4-bit codes (half a byte each), a float32 scale and a 4-bit zero point per block of >= 32 values:
    # at most 0.5 + 4/32 + 0.5/32 bytes per value, about 0.16 of float32
    n = a.vocab_size * a.hidden_size
    assert table is not None and n / 2 < table <= n * (0.5 + 4 / 32 + 0.5 / 32)
    file_bytes = (q / qm.model_file).stat().st_size
    assert 0 < bytes_per_token(q, qm, 0) == file_bytes - table
