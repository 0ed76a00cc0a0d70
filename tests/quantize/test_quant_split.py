"""INT4's cut of the fused attention projection (``split.py``): the cut graph computes what the artifact
computes, and the shipped mixed recipe keeps V's half at 8 bits apart from Q and K's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def _logits(model: Path, ids: np.ndarray) -> np.ndarray:
    from radon.export.quantize.reader import prefill_feed_for
    from radon.runtime.contract import read_manifest

    manifest = read_manifest(model.parent, verify=False)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    feed = {k: v for k, v in prefill_feed_for(manifest, ids).items() if k in wanted}
    return session.run(["logits"], feed)[0]


def test_the_cut_graph_computes_the_artifacts_logits(fp32: dict[str, Path], tmp_path: Path) -> None:
    """Both lowerings: the two half MatMuls and their Concat give the fused MatMul's logits (onnxruntime on
    the artifact as exported is the reference), and the halves' weights are the stored columns."""
    import shutil

    from radon.export.quantize.split import split_qkv
    from radon.export.quantize.stream import Source
    from radon.runtime.contract import read_manifest

    ids = np.arange(3, 40, dtype=np.int64)
    for lowering in ("ort", "portable"):
        art = fp32[lowering]
        manifest = read_manifest(art)
        src = Source(art / manifest.model_file)
        splits = split_qkv(src, manifest.architecture)
        assert len(splits) == manifest.architecture.num_layers
        h = splits["layers.0.attn.qkv"]
        fused = Source(art / manifest.model_file).array("layers.0.attn.qkv.weight")
        assert np.array_equal(src.array(f"{h.qk}.weight"), fused[:, : h.qk_columns])
        assert np.array_equal(src.array(f"{h.v}.weight"), fused[:, h.qk_columns :])
        assert not any(t.name.endswith("attn.qkv.weight") for t in src.model.graph.initializer)
        out = tmp_path / lowering
        out.mkdir()
        for name in ("radon_manifest.json", "config.json"):
            shutil.copy2(art / name, out / name)
        cut = src.write(out, manifest.model_file)
        onnx.checker.check_model(str(cut))
        want, got = _logits(art / manifest.model_file, ids), _logits(cut, ids)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * float(np.abs(want).max()))


def test_the_default_int4_keeps_v_apart_at_8_bits(quantized) -> None:
    """The auto-mixed recipe cuts every fused projection, V's half goes first at 8 bits (the prior), and
    the graph computes each projection as qk + v + Concat."""
    from quant_testing import attrs

    r = quantized("int4_default", precision="int4")
    q = r.manifest.quantization
    assert q["int4"]["split_qkv"]["units"] == 2
    layers = q["layers"]
    assert not any(u.endswith("attn.qkv") for u in layers)
    assert all(layers[f"layers.{i}.attn.v"] == "int8" for i in range(2))
    model = onnx.load(str(r.path / "model.onnx"))
    concat = [n for n in model.graph.node if n.op_type == "Concat" and n.name.endswith("attn.qkv.Concat")]
    assert len(concat) == 2
    bits = {
        n.name.split(".MatMul")[0]: attrs(n)["bits"] for n in model.graph.node if n.op_type == "MatMulNBits"
    }
    assert bits["layers.0.attn.v"] == 8


def test_the_halves_round_as_the_fused_columns(quantized) -> None:
    """GPTQ rounds every output column on its own (one Hessian of the shared input): the cut projection's
    4-bit halves are the fused projection's blocks column for column."""
    from onnx import numpy_helper

    from radon.export.quantize.int4 import Int4Options

    plain = quantized(
        "int4_gptq_all", precision="int4", auto_mixed_budget=None, int4=Int4Options(algorithm="gptq")
    )
    capped = quantized("int4_auto_nothing_fits", precision="int4", max_size_ratio=plain.sizes["ratio"] / 2)
    assert capped.manifest.quantization["layers"]["layers.0.attn.qk"] == "int4"
    inits = [
        {t.name: t for t in onnx.load(str(r.path / "model.onnx")).graph.initializer} for r in (plain, capped)
    ]
    for suffix in ("Q4", "scales"):
        fused = numpy_helper.to_array(inits[0][f"layers.0.attn.qkv.weight_{suffix}"])  # (N, ...): N first
        qk = numpy_helper.to_array(inits[1][f"layers.0.attn.qk.weight_{suffix}"])
        assert np.array_equal(qk.reshape(-1), fused.reshape(fused.shape[0], -1)[: qk.shape[0]].reshape(-1))
