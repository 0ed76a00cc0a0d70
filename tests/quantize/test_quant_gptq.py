"""GPTQ: onnxruntime's MatMulNBits storage, round-to-nearest as its special case, and a lower error than
round-to-nearest where the inputs are correlated (numpy and onnxruntime's own quantizer as references)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from radon.errors import RadonError
from radon.export.quantize import gptq
from radon.export.quantize.int4 import Int4Options, Plan, import_nbits_quantizer, quantize_int4

K, N, BLOCK = 256, 48, 32


def ort_rtn(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime's symmetric 4-bit round-to-nearest of one MatMul weight: (B, scales) as it stores them."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, w.shape[1]])], [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    nbits = import_nbits_quantizer()
    cfg = nbits.DefaultWeightOnlyQuantConfig(block_size=BLOCK, is_symmetric=True, accuracy_level=4,
                                             op_types_to_quantize=("MatMul",), bits=4)  # fmt: skip
    q = nbits.MatMulNBitsQuantizer(model, block_size=BLOCK, is_symmetric=True, algo_config=cfg)
    q.process()
    inits = {t.name: numpy_helper.to_array(t) for t in q.model.model.graph.initializer}
    assert not any(name.endswith("zero_points") for name in inits)
    return inits["w_Q4"], inits["w_scales"]


@pytest.fixture(scope="module")
def weight() -> np.ndarray:
    return (np.random.default_rng(0).standard_normal((K, N)) * 0.05).astype(np.float32)


def test_storage_is_onnxruntimes(weight: np.ndarray) -> None:
    b, scales = ort_rtn(weight)
    assert b.shape == (N, K // BLOCK, BLOCK // 2) and scales.shape == (N, K // BLOCK)
    assert np.array_equal(gptq.pack(gptq.unpack(b), BLOCK), b)
    ours = np.stack([gptq.block_scale(weight[i : i + BLOCK]) for i in range(0, K, BLOCK)])
    np.testing.assert_allclose(ours.T, scales, rtol=1e-6)
    values = gptq.round_to(weight, np.repeat(ours, BLOCK, axis=0))
    assert np.array_equal(values, gptq.unpack(b))
    # within half a step, or one step where the block's peak took -8 and a positive value clipped at +7
    step = np.repeat(np.abs(scales).T, BLOCK, axis=0)
    assert (np.abs(gptq.dequantize(b, scales, BLOCK) - weight) <= step + 1e-7).all()


def test_uncorrelated_inputs_give_round_to_nearest(weight: np.ndarray) -> None:
    """With H = c * I no input's rounding error can be compensated by another: GPTQ is RTN, bit for bit."""
    q, scales = gptq.gptq(weight, np.eye(K) * 3.0, BLOCK)
    b, ort_scales = ort_rtn(weight)
    assert np.array_equal(gptq.pack(q, BLOCK), b)
    np.testing.assert_allclose(scales.T, ort_scales, rtol=1e-6)


def test_correlated_inputs_lower_the_output_error(weight: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    mix = rng.standard_normal((K, K)) / np.sqrt(K) + np.eye(K)
    x = rng.standard_normal((4096, K)) @ mix  # correlated inputs, as a Linear's are
    q, scales = gptq.gptq(weight, x.T @ x, BLOCK)
    w_gptq = gptq.dequantize(gptq.pack(q, BLOCK), np.ascontiguousarray(scales.T), BLOCK)
    w_rtn = gptq.dequantize(*ort_rtn(weight), BLOCK)
    err = {name: float(np.square(x @ (w - weight)).mean()) for name, w in (("gptq", w_gptq), ("rtn", w_rtn))}
    assert err["gptq"] < 0.7 * err["rtn"], err


def test_act_order_with_uncorrelated_inputs_is_round_to_nearest(weight: np.ndarray) -> None:
    """Act-order fixes every block's scale on the original weights first: with a diagonal H (no error can
    move to another input, whatever the order) it stores onnxruntime's round-to-nearest blocks, bit for bit."""
    energy = np.diag(np.random.default_rng(2).uniform(0.5, 5.0, K))  # a different order than stored
    q, scales, zeros = gptq.gptq_blocks(weight, energy, BLOCK, act_order=True)
    b, ort_scales = ort_rtn(weight)
    assert zeros is None and np.array_equal(gptq.pack(q, BLOCK), b)
    np.testing.assert_allclose(scales.T, ort_scales, rtol=1e-6)


def test_act_order_lowers_the_output_error_where_inputs_fire_unevenly(weight: np.ndarray) -> None:
    """A few inputs fire far more than the rest (real models' outlier channels): rounding them first, while
    every other input is still free to absorb their error, leaves less error at the layer's output. The
    error is measured in numpy on the inputs themselves, for both blocks layouts."""
    rng = np.random.default_rng(3)
    gain = np.ones(K)
    gain[rng.choice(K, 12, replace=False)] = 12.0  # outlier channels, scattered over the blocks
    mix = rng.standard_normal((K, K)) / np.sqrt(K) + np.eye(K)
    x = (rng.standard_normal((4096, K)) @ mix) * gain
    for symmetric in (True, False):
        err = {}
        for order in (False, True):
            q, scales, zeros = gptq.gptq_blocks(weight, x.T @ x, BLOCK, symmetric=symmetric, act_order=order)
            zp = gptq.ZERO_POINT if zeros is None else np.repeat(zeros, BLOCK, 0)
            approx = (q.astype(np.float32) - zp) * np.repeat(scales, BLOCK, 0)
            err[order] = float(np.square(x @ (approx - weight)).mean())
        assert err[True] < 0.9 * err[False], (symmetric, err)


def test_gptq_refuses_what_it_cannot_write(weight: np.ndarray) -> None:
    Int4Options(algorithm="gptq", symmetric=False).check()  # asymmetric GPTQ blocks are written too
    model = helper.make_model(helper.make_graph([], "g", [], []))
    with pytest.raises(RadonError, match="solve the blocks first"):
        quantize_int4(model, [], Plan([]), Int4Options(algorithm="gptq"))
    with pytest.raises(RadonError, match="must divide the input dimension 48"):
        gptq.gptq(weight[:48], np.eye(48), BLOCK)


def test_gptq_artifact_beats_round_to_nearest_on_held_out_text(quantized) -> None:
    """All 4-bit, same blocks and kernel: GPTQ's KL against the checkpoint is lower than RTN's."""
    rtn = quantized(
        "int4_rtn_all", precision="int4", auto_mixed_budget=None, int4=Int4Options(algorithm="rtn")
    )
    r = quantized(
        "int4_gptq_all", precision="int4", auto_mixed_budget=None, int4=Int4Options(algorithm="gptq")
    )
    assert r.parity.passed
    assert r.parity.metrics["kl_mean"] < 0.8 * rtn.parity.metrics["kl_mean"], (
        r.parity.metrics,
        rtn.parity.metrics,
    )
    nodes = [n for n in onnx.load(str(r.path / "model.onnx")).graph.node if n.op_type == "MatMulNBits"]
    # the default MatMulNBits blocks are asymmetric: a zero point per block, MatMulNBits' fourth input
    assert nodes and all(len(n.input) == 4 and n.input[3].endswith("_zero_points") for n in nodes)
    q = r.manifest.quantization
    assert q["int4"]["algorithm"] == "gptq" and q["calibration"]["use"].startswith("GPTQ's Hessians")
    assert r.sizes["bytes"] == rtn.sizes["bytes"]  # the same storage, only the rounding differs


def test_a_hessian_budget_takes_more_passes_not_a_different_result(fp32, monkeypatch) -> None:
    """With room for one Hessian at a time, every distinct Linear input gets its own pass over the
    text, and the solved blocks are the same as from one pass."""
    from radon.export.quantize.graph import units_of
    from radon.runtime.contract import read_manifest

    model = onnx.load(str(fp32["ort"] / "model.onnx"))
    manifest = read_manifest(fp32["ort"])
    units = [u for u in units_of(model) if u.op_type == "MatMul"]
    rng = np.random.default_rng(0)
    samples = [rng.integers(4, manifest.architecture.vocab_size, 48) for _ in range(3)]
    calls: list[int] = []
    real = gptq.hessians
    monkeypatch.setattr(
        gptq, "hessians", lambda m, us, *a, **k: calls.append(len(us)) or real(m, us, *a, **k)
    )
    one = gptq.solve(model, units, manifest, samples, BLOCK, threads=1)
    assert calls == [len(units)]
    calls.clear()
    many = gptq.solve(model, units, manifest, samples, BLOCK, threads=1, budget=1)
    nodes = {n.name: n for n in model.graph.node}
    assert (
        len(calls) == len({nodes[u.node].input[0] for u in units}) > 1
    )  # qkv, out, fc_in, fc_out, lm_head inputs
    assert one.keys() == many.keys() == {u.name for u in units}
    for name in one:
        assert np.array_equal(one[name][0], many[name][0]) and np.array_equal(one[name][1], many[name][1])


def test_passes_are_balanced_and_in_graph_order() -> None:
    """SmolLM2-135M's Hessians (per layer 3 x 576^2 + 1536^2 float32, then the LM head's 576^2: 404 MB)
    against radon quantize's budget for its 538 MB: two passes of about equal size, in order."""
    per_layer = [576**2 * 4] * 3 + [1536**2 * 4]
    sizes = per_layer * 30 + [576**2 * 4]
    groups = [[f"g{i}"] for i in range(len(sizes))]  # stand-ins for the unit lists
    budget = int(gptq.HESSIAN_SHARE * 538_060_032)
    passes = gptq.split_passes(groups, sizes, budget)  # type: ignore[arg-type]
    assert len(passes) == 2
    assert [g for p in passes for g in p] == [g[0] for g in groups]  # contiguous, in order
    held = [sum(sizes[int(g[1:])] for g in p) for p in passes]
    assert max(held) <= budget + max(sizes) and max(held) - min(held) <= max(sizes)
    assert gptq.split_passes(groups, sizes, 1 << 40) == [[g[0] for g in groups]]
    assert gptq.split_passes([], [], budget) == []


def test_a_probe_runs_only_what_its_outputs_need(fp32) -> None:
    """The probe of layer 0's attention input holds no node of a later layer and no LM head, reads no
    past of a later layer, and gives the activation the whole graph gives (onnxruntime, both sides)."""
    import onnxruntime as ort

    from radon.export.quantize.graph import probe

    model = onnx.load(str(fp32["ort"] / "model.onnx"))
    mm = [n for n in model.graph.node if n.op_type == "MatMul"]
    first = mm[0].input[0]
    small = probe(model, [first])
    assert [o.name for o in small.graph.output] == [first]
    assert not any(n.name.startswith(("layers.1.", "lm_head")) for n in small.graph.node)
    assert len(small.graph.node) < len(model.graph.node) // 4
    assert not any(i.name.startswith("past_key_values.1.") for i in small.graph.input)
    whole = onnx.ModelProto()
    whole.CopyFrom(model)
    whole.graph.output.append(helper.make_tensor_value_info(first, TensorProto.FLOAT, None))
    ids = np.arange(5, 21, dtype=np.int64)[None]
    base = {"input_ids": ids, "attention_mask": np.ones_like(ids), "position_ids": np.arange(16)[None]}
    got = {}
    for key, m in (("probe", small), ("whole", whole)):
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        feed = {}
        for i in sess.get_inputs():
            if i.name in base:
                feed[i.name] = base[i.name]
            else:  # an empty past: (1, kv heads, 0, head_dim)
                feed[i.name] = np.zeros([1, i.shape[1], 0, i.shape[3]], np.float32)
        got[key] = sess.run([first], feed)[0]
    np.testing.assert_allclose(got["probe"], got["whole"], rtol=1e-6, atol=1e-6)
    with pytest.raises(RadonError, match="no node of the graph makes"):
        probe(model, ["no.such.tensor"])


@pytest.mark.parametrize("symmetric", [True, False])
def test_searched_scales_round_a_heavy_tailed_block_closer(symmetric: bool) -> None:
    """A block's scale by weighted error never rounds worse than the range's (the range is a candidate),
    and on heavy-tailed weights, as trained Linears have, it rounds better in total (about 6% here)."""
    rng = np.random.default_rng(2)
    rows = (rng.standard_t(3, (BLOCK, 512)) * 0.02).astype(np.float32)
    importance = rng.uniform(0.5, 2.0, BLOCK).astype(np.float32)

    def err(scale: np.ndarray, zero: np.ndarray) -> np.ndarray:
        q = np.clip(np.rint(rows / scale) + zero, 0, 15)
        return (importance[:, None] * (rows - (q - zero) * scale) ** 2).sum(0)

    if symmetric:
        plain = err(gptq.block_scale(rows), np.full(512, gptq.ZERO_POINT))
    else:
        plain = err(*gptq.asymmetric_block(rows))
    scale, zero = gptq.searched_block(rows, importance, symmetric)
    assert ((zero >= 0) & (zero <= 15)).all() and (scale != 0).all()
    searched = err(scale, zero)
    assert (searched <= plain * (1 + 1e-6)).all()
    assert searched.sum() < 0.98 * plain.sum()


def test_searched_gptq_blocks_lower_the_output_error_and_run_in_matmulnbits() -> None:
    """GPTQ with searched scales on heavy-tailed weights and correlated inputs: a lower output error than
    GPTQ on the range's scales, and onnxruntime's MatMulNBits computes x @ the blocks numpy decodes."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    w = (rng.standard_t(3, (K, N)) * 0.02).astype(np.float32)
    mix = rng.standard_normal((K, K)) / np.sqrt(K) + np.eye(K)
    x = (rng.standard_normal((2048, K)) @ mix).astype(np.float32)
    h = x.T @ x
    out = {}
    for search in (False, True):
        q, scales, _ = gptq.gptq_blocks(w, h, BLOCK, search=search)
        out[search] = (q, scales, gptq.dequantize(gptq.pack(q, BLOCK), np.ascontiguousarray(scales.T), BLOCK))
    err = {s: float(np.square(x @ (out[s][2] - w)).mean()) for s in out}
    # 0.95 with this seed
    assert err[True] < 0.98 * err[False], err
    q, scales, dq = out[True]
    node = helper.make_node("MatMulNBits", ["x", "b", "s"], ["y"], domain="com.microsoft", K=K, N=N, bits=4,
                            block_size=BLOCK, accuracy_level=0)  # fmt: skip
    inits = [numpy_helper.from_array(gptq.pack(q, BLOCK), "b"), numpy_helper.from_array(scales.T.copy(), "s")]
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, K])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x[:4]}
    )[0]
    np.testing.assert_allclose(y, x[:4] @ dq, atol=1e-3, rtol=1e-4)


def test_bands_cover_the_inputs_in_widths_every_block_divides() -> None:
    for k in (256, 576, 4096, 4224, 5632, 11008, 14336):
        bands = gptq.band_edges(k)
        assert bands[0][0] == 0 and bands[-1][1] == k
        assert all(a2 == b1 for (_, b1), (a2, _) in zip(bands, bands[1:]))  # contiguous
        widths = [b - a for a, b in bands]
        assert all(w <= gptq.BAND for w in widths) and len(bands) == -(-k // gptq.BAND)  # the fewest that fit
        assert len(bands) == 1 or all(w % gptq.LAZY_ROWS == 0 for w in widths)


def test_banded_gptq_is_gptq_where_the_bands_do_not_correlate(weight: np.ndarray, monkeypatch) -> None:
    """Two bands of 128 inputs with a block-diagonal Hessian (the same block twice, so the damping is the
    same too): nothing of one band's rounding can be compensated in the other, and the banded solve must
    give the whole solve's blocks bit for bit; with correlated bands it still beats round-to-nearest."""
    rng = np.random.default_rng(2)
    half = K // 2
    x = rng.standard_normal((4096, half)) @ (rng.standard_normal((half, half)) / np.sqrt(half) + np.eye(half))
    block = x.T @ x
    h = np.zeros((K, K))
    h[:half, :half] = h[half:, half:] = block
    whole = gptq.gptq_blocks(weight, h, BLOCK, search=True)
    monkeypatch.setattr(gptq, "BAND", half)
    assert gptq.band_edges(K) == [(0, half), (half, K)]
    banded = gptq.gptq_blocks(weight, h, BLOCK, search=True)
    assert np.array_equal(whole[0], banded[0]) and np.array_equal(whole[1], banded[1])
    # correlated across the bands (every input with every other, more than a real layer's): the
    # cross-band compensation is lost, not the rest
    xs = rng.standard_normal((4096, K)) @ (rng.standard_normal((K, K)) / np.sqrt(K) + np.eye(K))
    hc = xs.T @ xs
    errors = {}
    for name, band in (("banded", half), ("whole", K)):
        monkeypatch.setattr(gptq, "BAND", band)
        q, scales, _ = gptq.gptq_blocks(weight, hc, BLOCK)
        w = gptq.dequantize(gptq.pack(q, BLOCK), np.ascontiguousarray(scales.T), BLOCK)
        errors[name] = float(np.square(xs @ (w - weight)).mean())
    errors["rtn"] = float(np.square(xs @ (gptq.dequantize(*ort_rtn(weight), BLOCK) - weight)).mean())
    assert errors["whole"] <= errors["banded"] < errors["rtn"], errors
