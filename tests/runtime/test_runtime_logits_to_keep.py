"""The runtime's prefill runs the LM head on the last position only (``DecoderSession(logits_to_keep=1)``).

The ``ort`` graph holds ``logits_to_keep`` as an initializer that the session replaces
(export/lowering_common.keep_last_positions); a graph without it (``portable``) is cut on the host;
artifacts from before, whose graph took it as an optional input, keep the fast prefill.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from radon.runtime.contract import LOGITS_TO_KEEP, read_manifest
from radon.runtime.engine import make_engine
from radon.runtime.session import DecoderSession, positions_from_mask


def graph_rows(session: DecoderSession, ids: np.ndarray) -> int:
    """How many positions' logits the graph itself computes for a prompt (the session's raw output)."""
    feeds = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "position_ids": positions_from_mask(np.ones_like(ids)),
    }
    for name, arr in zip(session._past_names, [t for kv in session.empty_past(ids.shape[0]) for t in kv]):
        feeds[name] = arr
    return session.session.run(["logits"], feeds)[0].shape[1]


@pytest.mark.parametrize("arch", ["mistral", "gpt2"])
def test_the_generators_session_computes_the_last_position_only(artifacts, padded, arch):
    from radon.runtime import load

    art = artifacts[(arch, "ort")]
    gen = load(art, threads=1, tokenizer=False)
    ids, mask = padded(2, 11, pad=3)
    assert gen.session.logits_to_keep == 1 and graph_rows(gen.session, ids) == 1
    full = DecoderSession(art, threads=1)
    assert graph_rows(full, ids) == 11  # contract 4 for everyone else (parity, calibration)
    want = full.step(ids, mask).logits[:, -1]
    for kind in ("shared" if arch == "mistral" else "ring", "copy"):
        for chunk in (None, 4):
            got = make_engine(gen.session, kind, prefill_chunk=chunk).prefill(
                ids[:1], mask[:1], positions_from_mask(mask[:1])
            )
            np.testing.assert_allclose(got, full.step(ids[:1]).logits[:, -1], rtol=0, atol=1e-4)
    out = gen.session.step(ids, mask)
    assert out.logits.shape == (2, 1, full.manifest.architecture.vocab_size)
    np.testing.assert_allclose(out.logits[:, -1], want, rtol=0, atol=1e-4)


def test_a_graph_without_the_initializer_is_cut_on_the_host(artifacts):
    art = artifacts[("mistral", "portable")]
    session = DecoderSession(art, threads=1, logits_to_keep=2)
    ids = np.arange(20, 29, dtype=np.int64)[None]
    assert graph_rows(session, ids) == 9
    np.testing.assert_allclose(
        session.step(ids).logits, DecoderSession(art, threads=1).step(ids).logits[:, -2:]
    )


def with_optional_input(src: Path, dst: Path) -> Path:
    """``src`` rebuilt as artifacts before this change were: ``logits_to_keep`` a graph input backed by an
    initializer of 0 (all positions), ``Greater(k, 0)`` choosing the cut; the manifest says ``True``."""
    shutil.copytree(src, dst)
    model = onnx.load(str(dst / "model.onnx"))
    g = model.graph
    start = next(n for n in g.node if n.name == "logits_to_keep.start")
    sub = next(n for n in g.node if n.name == "logits_to_keep.Sub")
    t, k = sub.input
    for init in [i for i in g.initializer if i.name == LOGITS_TO_KEEP]:
        g.initializer.remove(init)
    g.initializer.extend([numpy_helper.from_array(np.zeros(1, np.int64), LOGITS_TO_KEEP),
                          numpy_helper.from_array(np.zeros(1, np.int64), "old.zero")])  # fmt: skip
    g.input.append(helper.make_tensor_value_info(LOGITS_TO_KEEP, onnx.TensorProto.INT64, [1]))
    at = list(g.node).index(start)
    g.node.remove(start)
    g.node.insert(at, helper.make_node("Greater", [k, "old.zero"], ["old.on"], name="old.Greater"))
    g.node.insert(at + 1, helper.make_node("Max", [sub.output[0], "old.zero"], ["old.max"], name="old.Max"))
    g.node.insert(
        at + 2,
        helper.make_node("Where", ["old.on", "old.max", "old.zero"], list(start.output), name="old.Where"),
    )
    onnx.save(model, str(dst / "model.onnx"))
    return dst


def test_artifacts_with_the_optional_input_keep_the_fast_prefill(artifacts, tmp_path):
    art = with_optional_input(artifacts[("mistral", "ort")], tmp_path / "old")
    m = read_manifest(artifacts[("mistral", "ort")])
    old = dataclasses.replace(m, options={**m.options, LOGITS_TO_KEEP: True})
    ids = np.arange(20, 29, dtype=np.int64)[None]
    full = DecoderSession(art, manifest=old, threads=1, verify=False)
    assert graph_rows(full, ids) == 9
    session = DecoderSession(art, manifest=old, threads=1, verify=False, logits_to_keep=1)
    assert graph_rows(session, ids) == 1
    np.testing.assert_allclose(session.step(ids).logits, full.step(ids).logits[:, -1:], rtol=0, atol=1e-5)


def test_logits_to_keep_must_not_be_negative(artifacts):
    from radon.errors import RadonError

    with pytest.raises(RadonError, match="logits_to_keep"):
        DecoderSession(artifacts[("mistral", "ort")], threads=1, logits_to_keep=-1)
