"""Calibration: text from the training corpora, feeds for both graph paths, the tables it writes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from radon.errors import RadonError


def test_reader_covers_prefill_and_decode(fp32: dict[str, Path]) -> None:
    from radon.export.quantize.reader import DecoderCalibrationReader, build_feeds
    from radon.runtime.session import DecoderSession

    session = DecoderSession(fp32["ort"], threads=1)
    keep = session.keep  # W - 1 = 7 for the tiny model
    samples = [np.arange(4, 4 + n, dtype=np.int64) for n in (5, 20)]
    reader = DecoderCalibrationReader(build_feeds(session, samples))
    assert len(reader) == 4 and reader.paths() == {"prefill": 2, "decode": 2}
    feeds = []
    while (f := reader.get_next()) is not None:
        feeds.append(f)
    assert len(feeds) == 4 and reader.get_next() is None
    reader.rewind()
    assert reader.get_next() is feeds[0]
    prefill, decode = feeds[2], feeds[3]  # the 20-token sample
    assert prefill["input_ids"].shape == (1, 20) and prefill["past_key_values.0.key"].shape[2] == 0
    assert decode["input_ids"].tolist() == [[23]] and decode["position_ids"].tolist() == [[19]]
    # the past is the rolling buffer the runtime keeps (W - 1 positions), and the mask covers it + 1
    assert decode["past_key_values.1.value"].shape[2] == keep
    assert decode["attention_mask"].shape == (1, keep + 1)
    # the decode feed reproduces the prefill's last logits: the past is the real one
    full = session.session.run(["logits"], prefill)[0][0, -1]
    step = session.session.run(["logits"], decode)[0][0, -1]
    np.testing.assert_allclose(step, full, atol=1e-4)


def test_calibrate_writes_table_trt_cache_and_meta(
    fp32: dict[str, Path], corpus: Path, tmp_path: Path
) -> None:
    import onnxruntime.quantization.calibrate as oc

    from radon.export.quantize import calibrate_artifact, read_trt_cache
    from radon.export.quantize.calibrate import amax_of

    c = calibrate_artifact(
        fp32["portable"], tmp_path / "cal", samples=6, seq_len=32, method="minmax", threads=1
    )
    assert c.meta["paths"] == {"prefill": 6, "decode": 6}
    data = c.meta["data"]
    assert data["source"].startswith("training text") and set(data["files"]) == {
        "ru.txt",
        "en.txt",
        "code.txt",
    }
    assert len(data["sha256"]) == 64
    table = oc.load_tensors_data(c.table)
    header, scales = read_trt_cache(c.trt_cache)
    assert header == "TRT-100900-EntropyCalibration2"
    amax = amax_of(table)
    masks = {k for k, a in amax.items() if a > 1e30}  # the portable graph's banded mask (float32 lowest)
    assert masks and set(scales) == set(amax) - masks  # masking constants are not activations: not cached
    amax = {k: a for k, a in amax.items() if k not in masks}
    assert len(scales) > 50  # every float activation, not only the MatMul inputs
    for name, a in amax.items():
        assert scales[name] == pytest.approx(max(a / 127.0, 1e-12), rel=1e-6)
    # a second run on the same text gives the same token ids and the same ranges
    again = calibrate_artifact(
        fp32["portable"], tmp_path / "cal2", samples=6, seq_len=32, method="minmax", threads=1
    )
    assert again.meta["data"]["sha256"] == data["sha256"]
    assert (tmp_path / "cal2" / "calibration.cache").read_text() == c.trt_cache.read_text()


def test_entropy_calibration_leaves_masks_out(fp32: dict[str, Path], tmp_path: Path) -> None:
    """The default method: histograms over both paths, without the mask constants that would overflow them."""
    from radon.export.quantize import calibrate_artifact, read_trt_cache

    c = calibrate_artifact(fp32["portable"], tmp_path / "cal", samples=4, seq_len=32, threads=1)
    assert c.method == "entropy" and c.meta["paths"] == {"prefill": 4, "decode": 4}
    _, scales = read_trt_cache(c.trt_cache)
    assert len(scales) > 50 and max(scales.values()) < 1e28


def test_trt_cache_format(tmp_path: Path) -> None:
    from radon.export.quantize.trt_cache import read_trt_cache, scale_hex, version_code, write_trt_cache

    assert (
        version_code("10.9.0") == 100900 and version_code("8.6.1") == 8601 and version_code("10.13") == 101300
    )
    assert scale_hex(1.0) == "3f800000" and scale_hex(0.0078125) == "3c000000"
    path = write_trt_cache(tmp_path / "c.cache", {"b/out": 127.0, "a/out": 0.5, "zero": 0.0}, "10.3.0")
    lines = path.read_text().splitlines()
    assert lines[0] == "TRT-100300-EntropyCalibration2"
    assert lines[1] == "a/out: " + format(struct.unpack(">I", struct.pack(">f", 0.5 / 127))[0], "x")
    assert lines[2] == "b/out: 3f800000"  # amax 127 -> scale 1.0
    _, scales = read_trt_cache(path)
    assert scales["zero"] > 0  # an all-zero tensor still gets a positive scale
    with pytest.raises(RadonError, match="--trt-version"):
        version_code("ten")


def test_calibration_set_refuses_held_out_and_empty(corpus: Path, trained: Path, tmp_path: Path) -> None:
    from radon.export.quantize.calibration_data import load_calibration_set
    from radon.tokenizer import load_tokenizer

    tok = load_tokenizer(trained / "tokenizer")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(RadonError, match="empty"):
        load_calibration_set([empty], tok, samples=4, vocab_size=512)
    with pytest.raises(RadonError, match="held-out"):
        load_calibration_set([corpus / "eval" / "en_eval.txt"], tok, samples=4, vocab_size=512)
    cs = load_calibration_set(None, tok, samples=7, seq_len=32, vocab_size=512)  # RADON_DATA's training files
    assert len(cs.samples) == 7 and all(s.size == 32 for s in cs.samples)
    assert cs.source.startswith("training text")
