"""Quantization that holds one fp32 weight at a time (int8-dynamic, static int8 and int4).

The fp32 artifact is opened as a skeleton (``onnx_stream.load_skeleton``: the graph, every weight read
from its file when asked), so ``radon quantize`` never holds the fp32 model. Each Linear unit is
quantized in a graph of its own that holds only its weight, by onnxruntime's own per-node quantizers:
``DefaultWeightOnlyQuantizer.quantize`` (the node step of ``MatMulNBitsQuantizer.process``) for
int8-dynamic, ``quantize_static`` on a one-node model for static Q/DQ. Its nodes and tensors take the
unit's place in the output model; the float tensors that stay (norms, the embedding, units kept
float32) are read in afterwards. The output is the in-memory ModelProto the rest of the pipeline works on
as before (embedding, tied table, checker, save): quantized weights are a quarter of the fp32 bytes.
The results equal the whole-model quantizers' node for node and tensor for tensor
(tests/quantize/test_quant_stream.py). gpt-fast's quantize step works the same way: a state dict
made weight by weight, then the model converted.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from radon.export.onnx_stream import WeightSink, load_skeleton
from radon.export.quantize.graph import LM_HEAD_UNIT, Unit, untie_lm_head

log = logging.getLogger(__name__)


class Source:
    """An fp32 artifact's graph with its weights left in the file: ``array(name)`` reads one."""

    def __init__(self, model_path: Path) -> None:
        self.model, self.index = load_skeleton(model_path)
        self.tied = False
        # weights read from stored ones: the untied LM head (the table's transpose), the cut QKV's halves
        self._derived: dict[str, Callable[[], np.ndarray]] = {}

    def untie_lm_head(self) -> bool:
        """``graph.untie_lm_head`` on the skeleton: ``lm_head.weight`` is read as the table's transpose."""
        from radon.export.lowering_common import TIED_HEAD_NODES

        gemm = next((n for n in self.model.graph.node if n.name == TIED_HEAD_NODES[1]), None)
        table = gemm.input[1] if gemm is not None else None
        self.tied = untie_lm_head(self.model, with_data=False)
        if self.tied and table is not None:
            index = self.index
            self._derived[f"{LM_HEAD_UNIT}.weight"] = lambda: index.array(table).T
        return self.tied

    def derive(self, name: str, stored: TensorProto, columns: slice) -> None:
        """``name`` is read as the ``columns`` of the stored weight whose header is ``stored`` (kept here:
        ``split.split_qkv`` takes it out of the graph)."""
        header, index = TensorProto(), self.index
        header.CopyFrom(stored)
        self._derived[name] = lambda: index.array(header.name, header)[:, columns]

    def array(self, name: str) -> np.ndarray:
        if name in self._derived:
            return np.ascontiguousarray(self._derived[name]())
        return self.index.array(name)

    def add_to(self, tensors: Any, name: str) -> None:
        """Add the initializer ``name``, with its data, to ``tensors`` (a graph's repeated ``initializer``).

        Made in place: a TensorProto built apart and appended would be copied once more."""
        header = next(t for t in self.model.graph.initializer if t.name == name)
        t = tensors.add()
        if not self._in_file(name):  # an inline constant of the skeleton
            t.CopyFrom(header)
            return
        array = self.array(name)
        t.name, t.data_type = name, helper.np_dtype_to_tensor_dtype(array.dtype)
        t.dims.extend(array.shape)
        t.raw_data = array.tobytes()

    def _in_file(self, name: str) -> bool:
        return name in self.index.where or name in self._derived

    def write(self, folder: Path, name: str = "model.onnx", model: onnx.ModelProto | None = None) -> Path:
        """``model`` (default: the skeleton; e.g. its typed copy) with the weights as external data in
        ``folder``, streamed a tensor at a time, for onnxruntime's whole-model tools (the calibrator)."""
        sink = WeightSink(folder / f"{name}.data")
        copy = onnx.ModelProto()
        copy.CopyFrom(model if model is not None else self.model)
        model = copy
        for t in model.graph.initializer:
            if self._in_file(t.name):
                t.CopyFrom(sink.tensor(t.name, self.array(t.name)))
        sink.close()
        onnx.save_model(model, str(folder / name))
        return folder / name


Replacement = tuple[
    list[onnx.NodeProto], list[TensorProto], dict[str, str]
]  # nodes, tensors, renamed outputs


def _assemble(src: Source, replace: Callable[[onnx.NodeProto], Replacement | None], targets: set[str],
              keep_value_info: bool = False) -> onnx.ModelProto:  # fmt: skip
    """The skeleton's nodes, the ``targets`` replaced by ``replace(node)``'s nodes; as initializers, the
    source's that the other nodes read (with data, in source order), then the new tensors in node order
    (where the whole-model quantizers put them). A replacement may rename an output (the Q/DQ pair
    after it); the nodes that follow read the new name. Each unit's tensors are copied in as it is done,
    so no unit's graph (and fp32 weight) outlives it."""
    out = onnx.ModelProto()
    out.CopyFrom(src.model)
    del out.graph.node[:]
    del out.graph.initializer[:]
    if not keep_value_info:
        del out.graph.value_info[:]
    read = {i for n in src.model.graph.node if n.name not in targets for i in n.input}
    read |= {o.name for o in src.model.graph.output}
    for t in src.model.graph.initializer:
        if t.name in read:
            src.add_to(out.graph.initializer, t.name)
    renames: dict[str, str] = {}
    for node in src.model.graph.node:
        got = replace(node) if node.name in targets else None
        nodes, tensors, renamed = got if got is not None else ([node], [], {})
        for n in nodes:
            for i, name in enumerate(n.input):
                if name in renames:
                    n.input[i] = renames[name]
        out.graph.node.extend(nodes)
        out.graph.initializer.extend(tensors)
        renames.update(renamed)
        del got, nodes, tensors
    return out


def quantize_nbits(src: Source, units: list[Unit], keep: Iterable[str], config: Any) -> onnx.ModelProto:
    """``MatMulNBitsQuantizer(model, algo_config=config, nodes_to_exclude=...).process()`` for the Linear
    ``units`` not in ``keep``, one weight at a time (QOperator ``MatMulNBits``; no value_info kept)."""
    kept = set(keep)
    return quantize_nbits_mixed(
        src, units, {u.name: config for u in units if u.op_type == "MatMul" and u.name not in kept}
    )


def quantize_nbits_mixed(src: Source, units: list[Unit], configs: dict[str, Any]) -> onnx.ModelProto:
    """``quantize_nbits`` with a quantizer config per unit (unit name -> config; e.g. 4 bits for most,
    int8-dynamic's 8 bits for the units mixed precision keeps wider); the other units stay float32."""
    from radon.export.quantize.int4 import import_nbits_quantizer

    nbits = import_nbits_quantizer()
    quantizers = {id(c): nbits.DefaultWeightOnlyQuantizer(c) for c in configs.values()}
    targets = {u.node: u for u in units if u.op_type == "MatMul" and u.name in configs}

    def replace(node: onnx.NodeProto) -> Replacement:
        unit = targets[node.name]
        graph = onnx.GraphProto()
        src.add_to(graph.initializer, unit.weight)
        nodes = quantizers[id(configs[unit.name])].quantize(node, [graph])
        return list(nodes), [t for t in graph.initializer if t.name != unit.weight], {}

    out = _assemble(src, replace, set(targets))
    opsets = {o.domain: o for o in out.opset_import}
    if "com.microsoft" in opsets:  # the quantizer's set_opset_import("com.microsoft", 1)
        opsets["com.microsoft"].version = 1
    else:
        out.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return out


def quantize_qdq(src: Source, typed: onnx.ModelProto, units: list[Unit], keep: Iterable[str],
                 quantize: Callable[[Path, Path, list[str]], Any]) -> onnx.ModelProto:  # fmt: skip
    """Static Q/DQ of the Linear ``units`` not in ``keep``, each ``MatMul`` quantized alone: a model of
    that node (its activation typed as in ``typed``) is handed to ``quantize(in_path, out_path, [node])``
    (``int8.quantize_static_int8`` with the calibration table), and its nodes and tensors replace it."""
    kept = set(keep)
    targets = {u.node: u for u in units if u.op_type == "MatMul" and u.name not in kept}
    types = {vi.name: vi for vi in [*typed.graph.value_info, *typed.graph.input, *typed.graph.output]}
    model_level: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="radon-qdq-") as tmp:
        work = Path(tmp)

        def replace(node: onnx.NodeProto) -> Replacement:
            unit = targets[node.name]
            x, y = node.input[0], node.output[0]
            # y feeds a stand-in reader, as in the whole graph: the quantizer then names y's Q/DQ pair as
            # it does there (a graph output would keep its name), and y's readers are rewired to it
            reader = helper.make_node("Identity", [y], [_READER], name=_READER)
            graph = helper.make_graph(
                [node, reader], unit.name, [_value_info(types, x)], [_value_info(types, y, _READER)]
            )
            src.add_to(graph.initializer, unit.weight)
            one = helper.make_model(graph, opset_imports=list(src.model.opset_import))
            one.ir_version = src.model.ir_version
            onnx.save_model(one, str(work / "unit.onnx"))
            quantize(work / "unit.onnx", work / "unit_q.onnx", [node.name])
            q = onnx.load(str(work / "unit_q.onnx"))
            model_level.update(ir_version=q.ir_version, opset_import=list(q.opset_import))
            nodes = [_copy_node(n) for n in q.graph.node if n.name != _READER]
            renamed = next(n.input[0] for n in q.graph.node if n.name == _READER)
            return nodes, list(q.graph.initializer), {y: renamed} if renamed != y else {}

        out = _assemble(src, replace, set(targets), keep_value_info=True)
    if model_level:
        out.ir_version = model_level["ir_version"]
        del out.opset_import[:]
        out.opset_import.extend(model_level["opset_import"])
    return out


def _copy_node(n: onnx.NodeProto) -> onnx.NodeProto:
    c = onnx.NodeProto()
    c.CopyFrom(n)
    return c


_READER = "radon.unit_output"  # the stand-in reader of a unit's output in ``quantize_qdq``


def _value_info(
    types: dict[str, onnx.ValueInfoProto], name: str, as_name: str | None = None
) -> onnx.ValueInfoProto:
    """``name``'s element type (float32 when unknown) under ``as_name``, shape left open."""
    vi = types.get(name)
    elem = (
        vi.type.tensor_type.elem_type
        if vi is not None and vi.type.tensor_type.elem_type
        else TensorProto.FLOAT
    )
    return helper.make_tensor_value_info(as_name or name, elem, None)
