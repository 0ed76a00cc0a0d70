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
def test_quantizing_tied_equals_quantizing_untied(
    fp32: dict[str, Path], tmp_path: Path, precision: str
) -> None:
    from radon.export.quantize import quantize_artifact

    kwargs = dict(precision=precision, parity=False, samples=8, seq_len=32, threads=1, auto_mixed_budget=None)
    q = {k: quantize_artifact(v, tmp_path / k, **kwargs) for k, v in fp32.items()}
    ids = np.random.default_rng(1).integers(4, VOCAB, size=(2, 24))
    np.testing.assert_array_equal(_logits(q["tied"].path, ids), _logits(q["untied"].path, ids))
    head = {
        n.op_type
        for n in onnx.load(str(q["tied"].path / "model.onnx")).graph.node
        if n.name.startswith("lm_head")
    }
    assert "Gemm" not in head and head & {"MatMulInteger", "DynamicQuantizeMatMul", "MatMul", "MatMulNBits"}
    assert "lm_head.weight" in q["tied"].manifest.weights["embed_tokens.weight"]
    # both tables are stored (at their own precisions): the quantized files are the same size
    assert abs(q["tied"].sizes["bytes"] - q["untied"].sizes["bytes"]) < 1024
