"""A tied LM head: the fp32 graph stores the embedding table once, and every quantizer still sees the
head as the Linear unit ``lm_head`` (``graph.untie_lm_head``), quantized apart from the embedding.

The reference is the same weights exported untied (the head its own MatMul on a copy, as before tying):
quantizing either artifact must give the same function, bit for bit. The model is a decisive random
tiny Mistral without a tokenizer (calibration on synthetic ids) and parity is off: these tests are about
graph structure, not language quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

VOCAB = 320


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ "tied" and "untied" fp32 ort artifacts of the same weights."""
    from radon import HybridTransformerModel, save_checkpoint
    from radon.config import ModelConfig
    from radon.export.exporter import export_onnx
    from radon_testing import decisive_

    root = tmp_path_factory.mktemp("tied")
    cfg = ModelConfig.from_json("tiny_mistral").to_dict()
    cfg.update(tie_word_embeddings=True, intermediate_size=128, vocab_size=VOCAB)
    tied = decisive_(HybridTransformerModel(ModelConfig.from_dict(cfg)))
    untied = HybridTransformerModel(ModelConfig.from_dict({**cfg, "tie_word_embeddings": False}))
    untied.load_state_dict(tied.state_dict())  # lm_head.weight: a copy of the embedding
    out = {}
    for name, model in (("tied", tied), ("untied", untied)):
        save_checkpoint(model, root / f"ckpt_{name}")
        out[name] = export_onnx(
            root / f"ckpt_{name}", root / name, attention="ort", parity=False, threads=1
        ).path
    return out


def _logits(path: Path, ids: np.ndarray) -> np.ndarray:
    from radon.runtime.session import DecoderSession

    return DecoderSession(path, threads=1).step(ids, np.ones_like(ids)).logits


def test_the_fp32_graph_stores_the_table_once(fp32: dict[str, Path]) -> None:
    model = onnx.load(str(fp32["tied"] / "model.onnx"))
    assert [t.name for t in model.graph.initializer if VOCAB in t.dims] == ["embed_tokens.weight"]
    gemm = next(n for n in model.graph.node if n.name == "lm_head.Gemm")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute}
    assert gemm.input[1] == "embed_tokens.weight" and attrs == {"transB": 1}
    table = 4 * VOCAB * 64
    sizes = {k: (v / "model.onnx").stat().st_size for k, v in fp32.items()}
    assert sizes["untied"] - sizes["tied"] >= table - 1024  # one (vocab, hidden) float32 table less
    ids = np.random.default_rng(0).integers(4, VOCAB, size=(2, 24))
    np.testing.assert_array_equal(_logits(fp32["tied"], ids), _logits(fp32["untied"], ids))


def test_untie_gives_the_head_its_own_matmul(fp32: dict[str, Path]) -> None:
    from radon.export.quantize.graph import units_of, untie_lm_head

    model = onnx.load(str(fp32["tied"] / "model.onnx"))
    assert untie_lm_head(model) and not untie_lm_head(model)  # once; then nothing is tied
    onnx.checker.check_model(model)
    plain = onnx.load(str(fp32["untied"] / "model.onnx"))
    assert units_of(model) == units_of(plain)  # the units the quantizers see, as before tying


@pytest.mark.parametrize("precision", ["int8-dynamic", "int8", "int4"])
def test_quantizing_tied_matches_quantizing_untied(
    fp32: dict[str, Path], tmp_path: Path, precision: str
) -> None:
    """Static int8 keeps the embedding and the head float32 (int8.FLOAT_UNITS): the head reads the
    embedding's table again, as in the fp32 graph, and computes what the untied artifact's float head
    does. int8-dynamic and all-4-bit int4 put both uses at the same precision: the table is stored once
    (tied.py), the embedding reading the head's blocks."""
    from radon.export.quantize import quantize_artifact

    kwargs = dict(precision=precision, parity=False, samples=8, seq_len=32, threads=1, auto_mixed_budget=None)
    q = {k: quantize_artifact(v, tmp_path / k, **kwargs) for k, v in fp32.items()}
    ids = np.random.default_rng(1).integers(4, VOCAB, size=(2, 24))
    tied, untied = _logits(q["tied"].path, ids), _logits(q["untied"].path, ids)
    model = onnx.load(str(q["tied"].path / "model.onnx"))
    head = [n for n in model.graph.node if n.name.startswith("lm_head")]
    record = q["tied"].manifest.quantization["tied_table"]
    table_bytes = 4 * VOCAB * 64
    if precision == "int8":
        assert record.startswith("stored once: the LM head reads the float32 embedding table"), record
        gemm = next(n for n in head if n.op_type == "Gemm")
        assert gemm.input[1] == "embed_tokens.weight" and "MatMul" not in {n.op_type for n in head}
        assert "lm_head.weight" not in {t.name for t in model.graph.initializer}
        assert "lm_head.weight" not in q["tied"].manifest.weights["embed_tokens.weight"]
        np.testing.assert_allclose(tied, untied, rtol=0, atol=1e-4)  # a Gemm, not a MatMul: the same sums
        assert q["untied"].sizes["bytes"] - q["tied"].sizes["bytes"] >= 0.9 * table_bytes
        return
    assert "Gemm" not in {n.op_type for n in head}
    assert {n.op_type for n in head} & {"MatMul", "MatMulNBits"}
    assert "lm_head.weight" in q["tied"].manifest.weights["embed_tokens.weight"]
    assert record.startswith("stored once"), record
    nbits = next(n for n in head if n.op_type == "MatMulNBits")
    gather = next(n for n in model.graph.node if n.op_type == "GatherBlockQuantized")
    assert gather.input[0] == nbits.input[1]  # one table, read by both
    view = next(n for n in model.graph.node if n.output[0] == gather.input[2])
    assert view.op_type == "Reshape" and view.input[0] == nbits.input[2]  # and one set of scales
    table = VOCAB * 64 * (1 if precision == "int8-dynamic" else 0.5)
    assert q["untied"].sizes["bytes"] - q["tied"].sizes["bytes"] >= 0.9 * table
    if precision == "int4":  # asymmetric blocks: the head's zero points, unpacked a block a byte
        assert len(nbits.input) == 4 and gather.input[3] == "embed_tokens.shared_zero_points"
        from radon.export.quantize.graph import units_of, untie_lm_head, weight_bytes
        from radon.export.quantize.sensitivity import plan_bytes

        source = onnx.load(str(fp32["tied"] / "model.onnx"))
        untie_lm_head(source)
        units, qi = units_of(source), q["tied"].manifest.quantization
        others = weight_bytes(source) - sum(4 * u.numel for u in units)
        planned = plan_bytes(units, qi["layers"], qi["int4"]["block_size"], qi["int4"]["symmetric"], True)
        shapes = 2 * 3 * 8  # the two Reshapes' int64 shapes (tied.py)
        assert planned + others + shapes == weight_bytes(model), (
            "the size cap counts what the artifact stores"
        )
    # the same weights, rounded once instead of twice: the tied artifact is as close to the float model as
    # the untied one (KL against the fp32 logits, within a margin; GPTQ rounds the two heads differently)
    ref = _logits(fp32["untied"], ids)
    kl_tied, kl_untied = _kl(ref, tied), _kl(ref, untied)
    assert kl_tied < 1.5 * kl_untied + 1e-3, (kl_tied, kl_untied)


def _kl(ref: np.ndarray, other: np.ndarray) -> float:
    """Mean KL(ref || other) over positions, from logits."""
    p = np.exp(ref - ref.max(-1, keepdims=True))
    q = np.exp(other - other.max(-1, keepdims=True))
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    return float((p * (np.log(p) - np.log(q))).sum(-1).mean())


@pytest.mark.parametrize("bits", [8, 4])
def test_gather_reads_matmulnbits_blocks_as_numpy_dequantizes_them(bits: int) -> None:
    """The onnxruntime contract tied.py rests on: GatherBlockQuantized on a 3-D uint8 table blocked along
    its last axis, with no zero points, returns what numpy dequantizes from MatMulNBits' B layout
    (implicit zero point 2^(bits-1), low nibble first), and MatMulNBits on the same bytes multiplies by it."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    vocab, hidden, bs = 64, 96, 32
    rng = np.random.default_rng(0)
    kb = hidden // bs
    if bits == 8:
        q = rng.integers(0, 256, (vocab, kb, bs)).astype(np.uint8)
        values = q.astype(np.float32) - 128
    else:
        lo, hi = rng.integers(0, 16, (vocab, kb, bs // 2)), rng.integers(0, 16, (vocab, kb, bs // 2))
        q = (lo | (hi << 4)).astype(np.uint8)
        values = np.stack([lo, hi], -1).reshape(vocab, kb, bs).astype(np.float32) - 8
    scales = ((rng.random((vocab, kb)) + 0.5) * 0.01).astype(np.float32)
    table = (values * scales[:, :, None]).reshape(vocab, hidden)
    inits = [numpy_helper.from_array(q, "B"), numpy_helper.from_array(scales, "S"),
             numpy_helper.from_array(scales.reshape(vocab, kb, 1), "S3")]  # fmt: skip
    nodes = [
        helper.make_node("GatherBlockQuantized", ["B", "ids", "S3"], ["rows"], domain="com.microsoft",
                         gather_axis=0, quantize_axis=2, block_size=bs, bits=bits),
        helper.make_node("MatMulNBits", ["x", "B", "S"], ["y"], domain="com.microsoft", K=hidden, N=vocab,
                         bits=bits, block_size=bs),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, hidden])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=inits,
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 10
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids, x = np.array([3, 7, 63]), rng.standard_normal((2, hidden)).astype(np.float32)
    rows, y = session.run(None, {"ids": ids, "x": x})
    np.testing.assert_array_equal(rows.reshape(3, hidden), table[ids])
    np.testing.assert_allclose(y, x @ table.T, rtol=1e-4, atol=1e-4)
