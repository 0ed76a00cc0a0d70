"""Streamed quantization (export/quantize/stream.py) equals onnxruntime's whole-model quantizers.

``radon quantize --precision int8-dynamic | int8`` quantizes each Linear in a graph of its own that
holds only its weight. The reference is what it did before: the whole typed model through
``MatMulNBitsQuantizer.process()`` (int8-dynamic) or ``quantize_static`` (static Q/DQ with the same
calibration table). Nodes must be the same (in order for int8-dynamic; as a set for Q/DQ, whose
quantizer orders nodes its own way) and every initializer the same name, type, shape and bytes.
Random weights are enough: this compares graphs and tensors, not quality.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

pytest.importorskip("onnx_ir")

from radon.export.quantize import stream  # noqa: E402
from radon.export.quantize.calibrate import save_typed_model  # noqa: E402
from radon.export.quantize.graph import annotate_types, units_of, untie_lm_head  # noqa: E402
from radon.export.quantize.int8 import (  # noqa: E402
    dynamic_config,
    quantize_dynamic_int8,
    quantize_static_int8,
    quantize_static_nodes,
)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random-weight fp32 artifacts: Mistral (ort, portable at opset 21) and a tied GPT-2 (ort)."""
    from radon.export.exporter import export_onnx
    from radon_testing import radon_checkpoint

    root = tmp_path_factory.mktemp("qstream")
    out = {}
    for name, config, lowering, opset in (("mistral_ort", "tiny_mistral", "ort", 17),
                                          ("mistral_portable", "tiny_mistral", "portable", 21),
                                          ("gpt2_ort", "tiny_gpt2", "ort", 17)):  # fmt: skip
        ckpt = radon_checkpoint(root / f"ckpt_{name}", config)
        out[name] = export_onnx(
            ckpt, root / name, attention=lowering, opset=opset, parity=False, threads=1
        ).path
    return out


def _whole(artifact: Path) -> onnx.ModelProto:
    model = onnx.load(str(artifact / "model.onnx"))
    untie_lm_head(model)
    return model


def _source(artifact: Path) -> stream.Source:
    src = stream.Source(artifact / "model.onnx")
    src.untie_lm_head()
    return src


def _tensors(model: onnx.ModelProto) -> dict[str, tuple]:
    """name -> (type, dims, bytes). Not the serialized proto: a tensor read back from external data
    carries an explicit ``data_location: DEFAULT`` that one made in memory leaves unset."""
    from onnx import numpy_helper

    return {
        t.name: (t.data_type, tuple(t.dims), numpy_helper.to_array(t).tobytes())
        for t in model.graph.initializer
    }


@pytest.mark.parametrize("name", ["mistral_ort", "mistral_portable", "gpt2_ort"])
def test_int8_dynamic_streamed_equals_whole_model(artifacts, tmp_path, name):
    whole = _whole(artifacts[name])
    units = units_of(whole)
    quantize_dynamic_int8(save_typed_model(whole, tmp_path), tmp_path / "q.onnx", units, keep=[])
    expected = onnx.load(str(tmp_path / "q.onnx"))
    src = _source(artifacts[name])
    assert units_of(src.model) == units
    got = stream.quantize_nbits(src, units, [], dynamic_config())
    assert [n.SerializeToString() for n in got.graph.node] == [
        n.SerializeToString() for n in expected.graph.node
    ]
    assert _tensors(got) == _tensors(expected)
    assert [t.name for t in got.graph.initializer] == [t.name for t in expected.graph.initializer]
    assert (got.ir_version, list(got.opset_import)) == (expected.ir_version, list(expected.opset_import))


@pytest.mark.parametrize("name", ["mistral_ort", "gpt2_ort"])
def test_int8_static_streamed_equals_whole_model(artifacts, tmp_path, name):
    from radon.export.quantize.api import calibrate_artifact

    calib = calibrate_artifact(artifacts[name], tmp_path / "cal", samples=4, seq_len=16, threads=1)
    whole = _whole(artifacts[name])
    units = units_of(whole)
    keep = [units[1].name]  # one unit left float32, as --keep does
    quantize_static_int8(save_typed_model(whole, tmp_path), tmp_path / "q.onnx", units, keep, calib.table,
                         calib.method)  # fmt: skip
    expected = onnx.load(str(tmp_path / "q.onnx"))
    src = _source(artifacts[name])
    got = stream.quantize_qdq(src, annotate_types(src.model), units, keep,
                              lambda one, q, nodes: quantize_static_nodes(one, q, nodes, calib.table, calib.method))  # fmt: skip
    key = lambda n: n.SerializeToString()  # noqa: E731
    assert sorted(map(key, got.graph.node)) == sorted(map(key, expected.graph.node))
    assert _tensors(got) == _tensors(expected)
    assert (got.ir_version, list(got.opset_import)) == (expected.ir_version, list(expected.opset_import))


def test_source_reads_the_untied_head_as_the_tables_transpose(artifacts):
    import numpy as np
    from onnx import numpy_helper

    whole = _whole(artifacts["gpt2_ort"])
    src = _source(artifacts["gpt2_ort"])
    head = next(t for t in whole.graph.initializer if t.name == "lm_head.weight")
    np.testing.assert_array_equal(src.array("lm_head.weight"), numpy_helper.to_array(head))


@pytest.mark.parametrize("threshold", [2**31, 0], ids=["inline", "external"])
def test_save_writes_what_onnx_save_writes(artifacts, tmp_path, threshold):
    """The quantizer's ``_save`` streams the tensors out (no serialized copy of the model): same bytes,
    packed int4 included."""
    import numpy as np
    from onnx import TensorProto, helper

    from radon.export.build import DATA_FILE
    from radon.export.quantize.pipeline import _save

    src = _source(artifacts["mistral_ort"])
    model = stream.quantize_nbits(src, units_of(src.model), [], dynamic_config())
    int4 = np.arange(4096, dtype=np.int8) % 16 - 8
    model.graph.initializer.append(helper.make_tensor("packed_int4", TensorProto.INT4, [4096], int4))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    reference = onnx.ModelProto()
    reference.CopyFrom(model)  # onnx.save_model moves tensors to external data in place
    if threshold:
        onnx.save_model(reference, str(tmp_path / "a" / "model.onnx"))
    else:
        onnx.save_model(reference, str(tmp_path / "a" / "model.onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=DATA_FILE, size_threshold=1024)  # fmt: skip
    written = _save(model, tmp_path / "b", "model.onnx", threshold)
    assert written == (["model.onnx"] if threshold else ["model.onnx", DATA_FILE])
    for name in written:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
