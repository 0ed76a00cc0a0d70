"""INT4's cheap pieces against independent references: asymmetric GPTQ blocks as onnxruntime's MatMulNBits
reads them, round to nearest as onnxruntime's quantizer stores it, each unit's output error against numpy,
the Fisher diagonal against per-token autograd, and the estimated per-unit KL against the KL measured with
onnxruntime, unit by unit, on the trained tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from radon.export.quantize import gptq

K, N, BLOCK = 256, 40, 32


def _matmulnbits(
    x: np.ndarray, b: np.ndarray, scales: np.ndarray, zp: np.ndarray | None, k: int, n: int
) -> np.ndarray:
    """onnxruntime's MatMulNBits (float32 compute, accuracy_level 0) on ``x`` with the given blocks."""
    import onnxruntime as ort

    inputs = ["x", "b", "s"] + (["z"] if zp is not None else [])
    node = helper.make_node("MatMulNBits", inputs, ["y"], domain="com.microsoft", K=k, N=n, bits=4,
                            block_size=BLOCK, accuracy_level=0)  # fmt: skip
    inits = [numpy_helper.from_array(b, "b"), numpy_helper.from_array(scales, "s")]
    if zp is not None:
        inits.append(numpy_helper.from_array(zp, "z"))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_asymmetric_gptq_blocks_run_in_matmulnbits_as_numpy_decodes_them() -> None:
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((K, N)) * 0.05 + 0.02).astype(np.float32)  # off-centre: zero points matter
    x = rng.standard_normal((64, K)).astype(np.float32)
    q, scales, zeros = gptq.gptq_blocks(w, x.T @ x, BLOCK, symmetric=False)
    assert zeros is not None and (zeros != gptq.ZERO_POINT).any()
    b, s, z = gptq.pack(q, BLOCK), np.ascontiguousarray(scales.T), gptq.pack_zero_points(zeros)
    assert z.shape == (N, K // BLOCK // 2)
    # numpy's reading of the stored bytes: (q - zero point) * scale, block by block
    ours = (q.astype(np.float32) - np.repeat(zeros, BLOCK, 0)) * np.repeat(scales, BLOCK, 0)
    assert np.allclose(gptq.dequantize_asymmetric(b, s, z, BLOCK), ours)
    y = _matmulnbits(x, b, s, z, K, N)
    assert np.allclose(y, x @ ours, atol=1e-4, rtol=1e-4)
    # and the blocks are a good quantization of w: within a step of every weight the GPTQ way leaves them
    rtn = gptq.rtn(w, BLOCK, symmetric=False)
    assert np.abs(rtn - w).max() <= np.repeat(scales, BLOCK, 0).max()
    # GPTQ's asymmetric blocks beat round-to-nearest's on the layer's outputs over its inputs
    assert np.linalg.norm(x @ ours - x @ w) < np.linalg.norm(x @ rtn - x @ w)


def test_asymmetric_gptq_blocks_replace_the_quantizers_in_the_graph() -> None:
    """--no-symmetric with GPTQ: onnxruntime's quantizer builds MatMulNBits with zero points, GPTQ's blocks
    overwrite all three tensors, and the graph computes x @ the dequantized weights."""
    import onnxruntime as ort

    from radon.export.quantize.graph import units_of
    from radon.export.quantize.int4 import Int4Options, Plan, quantize_int4

    rng = np.random.default_rng(4)
    w = (rng.standard_normal((K, N)) * 0.05 + 0.02).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "l.weight"], ["y"], name="l.MatMul")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])], [numpy_helper.from_array(w, "l.weight")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    units = units_of(model)
    x = rng.standard_normal((64, K)).astype(np.float32)
    q, scales, zeros = gptq.gptq_blocks(w, x.T @ x, BLOCK, symmetric=False)
    assert zeros is not None
    solved = {
        units[0].name: (gptq.pack(q, BLOCK), np.ascontiguousarray(scales.T), gptq.pack_zero_points(zeros))
    }
    opts = Int4Options(block_size=BLOCK, symmetric=False, accuracy_level=0)
    out = quantize_int4(model, units, Plan([units[0].name]), opts, solved)
    inits = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    assert np.array_equal(inits["l.weight_zero_points"].reshape(N, -1), gptq.pack_zero_points(zeros))
    y = ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x[:1]}
    )[0]
    dq = (q.astype(np.float32) - np.repeat(zeros, BLOCK, 0)) * np.repeat(scales, BLOCK, 0)
    assert np.allclose(y, x[:1] @ dq, atol=1e-4)


def test_symmetric_rtn_matches_onnxruntime_quantizer() -> None:
    from radon.export.quantize.int4 import import_nbits_quantizer

    w = (np.random.default_rng(1).standard_normal((256, 48)) * 0.05).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 48])], [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    nbits = import_nbits_quantizer()
    cfg = nbits.DefaultWeightOnlyQuantConfig(
        block_size=BLOCK, is_symmetric=True, op_types_to_quantize=("MatMul",), bits=4
    )
    q = nbits.MatMulNBitsQuantizer(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                                   block_size=BLOCK, is_symmetric=True, algo_config=cfg)  # fmt: skip
    q.process()
    inits = {t.name: numpy_helper.to_array(t) for t in q.model.model.graph.initializer}
    assert np.array_equal(gptq.rtn(w, BLOCK), gptq.dequantize(inits["w_Q4"], inits["w_scales"], BLOCK))


def test_output_error_is_the_mean_squared_change_of_each_output() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 64)).astype(np.float32)
    w = rng.standard_normal((64, 8)).astype(np.float32)
    approx = w + rng.standard_normal((64, 8)).astype(np.float32) * 0.01
    got = gptq.output_error(w, approx, x.T @ x, x.shape[0])
    assert np.allclose(got, ((x @ approx - x @ w) ** 2).mean(0), rtol=1e-4)


@pytest.fixture(scope="module")
def tiny(fp32: dict[str, Path]):  # noqa: ANN201
    from radon.export.quantize.graph import units_of
    from radon.export.quantize.stream import Source
    from radon.runtime.contract import read_manifest

    art = fp32["ort"]
    manifest = read_manifest(art)
    src = Source(art / manifest.model_file)
    src.untie_lm_head()
    return art, manifest, src, units_of(src.model)


def test_fisher_diagonal_equals_per_token_autograd(tiny, trained: Path) -> None:
    """The hooks' sums on the streamed reference model equal the squared gradients taken directly with
    torch.autograd.grad at one Linear's output of the checkpoint itself, loaded whole, for the same drawn
    tokens; and the streamed model holds no layer's weights between runs, one layer's during a run."""
    import torch

    from radon.checkpoint import load_model
    from radon.export.quantize import fisher

    art, manifest, src, units = tiny
    model = fisher.reference_model(art, manifest, src)
    layer_params = [p for n, p in model.named_parameters() if ".layers." in n]
    assert layer_params and all(p.is_meta for p in layer_params)  # nothing of the layers is held
    unit = next(u for u in units if u.name == "layers.1.mlp.fc_out")
    ids = np.random.default_rng(3).integers(4, manifest.architecture.vocab_size, 24)
    loaded: list[int] = []
    watch = [
        block.mlp.register_forward_pre_hook(
            lambda _m, _a: loaded.append(
                sum(not p.is_meta for b in model.stack.layers for p in b.parameters())
            )
        )
        for block in model.stack.layers
    ]
    got = fisher.fisher_diagonals(model, manifest, [unit], [ids])[unit.name]
    for h in watch:
        h.remove()
    per_layer = sum(p.numel() > 0 for p in model.stack.layers[0].parameters())
    # each layer ran twice (forward, then recomputed for the backward pass), alone
    assert len(loaded) == 2 * len(model.stack.layers) and set(loaded) == {per_layer}
    assert all(p.is_meta for n, p in model.named_parameters() if ".layers." in n)

    whole = load_model(trained)  # the checkpoint itself, every weight loaded, no streaming
    name = fisher.module_names(model, manifest, [unit])[unit.name]
    seen: list[torch.Tensor] = []
    handle = dict(whole.named_modules())[name].register_forward_hook(lambda _m, _i, o: seen.append(o))
    with torch.enable_grad():
        whole.embed_tokens.weight.requires_grad_(True)  # a graph to differentiate through
        logits = whole(torch.from_numpy(ids)[None], use_cache=False).logits[0].float()
        whole.embed_tokens.weight.requires_grad_(False)
        logp = torch.log_softmax(logits, -1)
        drawn = torch.multinomial(
            logp.detach().exp(), 1, generator=torch.Generator().manual_seed(fisher.SEED)
        )[:, 0]
        (g,) = torch.autograd.grad(logp.gather(-1, drawn[:, None]).sum(), seen[0])
    handle.remove()
    want = (g.double() ** 2).reshape(-1, g.shape[-1]).sum(0) / ids.size
    assert got.shape == (unit.shape[1],) and np.allclose(got, want.numpy(), rtol=1e-5, atol=1e-12)


def test_fisher_in_a_child_process_equals_the_pass_in_process(tiny) -> None:
    """radon quantize runs the Fisher pass in a child (no torch in the quantize process): the same
    figures come back through its files, and a failing child is a RadonError naming the cause."""
    from radon.errors import RadonError
    from radon.export.quantize import fisher

    art, manifest, src, units = tiny
    picked = [u for u in units if u.name in ("layers.0.attn.qkv", "layers.1.mlp.fc_out", "lm_head")]
    rng = np.random.default_rng(5)
    samples = [rng.integers(4, manifest.architecture.vocab_size, n) for n in (24, 17)]
    here = fisher.fisher_diagonals(fisher.reference_model(art, manifest, src), manifest, picked, samples)
    child = fisher.fisher_in_child(art, [u.name for u in picked], samples, untie=src.tied, threads=1)
    assert set(child) == {u.name for u in picked} == set(here)
    for name, values in here.items():
        np.testing.assert_allclose(child[name], values, rtol=1e-6, atol=0)
    with pytest.raises(RadonError, match="Fisher pass failed: .*no such artifact folder"):
        fisher.fisher_in_child(art.parent / "missing", [u.name for u in picked], samples, untie=False)


def test_estimated_sensitivity_ranks_units_as_measured_kl_does(tiny, quantized) -> None:
    """Each unit alone at 4 bits (GPTQ), its KL on calibration text measured with onnxruntime, against the
    estimate (½ Σ Fisher x output error): the same order of magnitude, and a rank correlation >= 0.7."""
    from radon.export.parity_data import load_tokenizer
    from radon.export.quantize import fisher
    from radon.export.quantize.calibration_data import load_calibration_set
    from radon.export.quantize.int4 import Int4Options, Plan, quantize_int4_streamed
    from radon.export.quantize.sensitivity import estimate, mean_kl
    from radon.runtime.session import DecoderSession

    art, manifest, src, units = tiny
    matmuls = [u for u in units if u.op_type == "MatMul"]
    cal = load_calibration_set(None, load_tokenizer(art / "tokenizer"), samples=16, seq_len=64,
                               vocab_size=manifest.architecture.vocab_size)  # fmt: skip
    errors: dict[str, np.ndarray] = {}
    opts = Int4Options(block_size=64)  # the shipped blocks: asymmetric, searched scales, act-order
    solved = gptq.solve(src, matmuls, manifest, cal.samples, 64, threads=1, errors=errors, symmetric=opts.symmetric,
                        search=opts.scale_search, act_order=opts.act_order)  # fmt: skip
    model = fisher.reference_model(art, manifest, src)
    est = estimate(fisher.fisher_diagonals(model, manifest, matmuls, cal.samples[:8]), errors)
    reference = [DecoderSession(art, threads=1).step(s[None]).logits[0] for s in cal.samples[:8]]
    measured = {}
    tmp = Path(quantized("int4_plain", precision="int4", auto_mixed_budget=None).path).parent / "one_unit"
    tmp.mkdir(exist_ok=True)
    for u in matmuls:
        one = quantize_int4_streamed(src, units, Plan([u.name], [], [n.name for n in units if n is not u]), opts,
                                     {u.name: solved[u.name]})  # fmt: skip
        onnx.save_model(one, str(tmp / manifest.model_file))
        session = DecoderSession(tmp, manifest=manifest, threads=1, verify=False)
        measured[u.name] = mean_kl(reference, [session.step(s[None]).logits[0] for s in cal.samples[:8]])
    names = sorted(measured)
    e, m = np.array([est[n] for n in names]), np.array([measured[n] for n in names])
    rank = lambda a: np.argsort(np.argsort(a))  # noqa: E731
    rho = np.corrcoef(rank(e), rank(m))[0, 1]
    assert rho >= 0.7, (rho, dict(zip(names, zip(e, m))))
    assert 0.2 < e.sum() / m.sum() < 5, (e.sum(), m.sum())
