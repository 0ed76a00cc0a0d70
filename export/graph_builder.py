"""A small ONNX graph builder: named nodes, named initializers, opset-aware helpers.

RADON builds its decoder graphs directly from checkpoint weights, as onnxruntime-genai's model builder
does, rather than tracing PyTorch: the IO names are exactly contract 4's, contrib ops are emitted where a
lowering wants them, and every Linear stays one ``MatMul`` whose weight is an initializer with a stable
name (``layers.3.attn.qkv.weight``), which quantization tools and per-layer sensitivity reports can
address. This module knows nothing about transformers; the lowerings do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MS_DOMAIN = "com.microsoft"
# numpy dtype name -> ONNX element type, and back
ONNX_DTYPES: dict[str, int] = {
    "float32": TensorProto.FLOAT,
    "float16": TensorProto.FLOAT16,
    "int64": TensorProto.INT64,
    "int32": TensorProto.INT32,
    "bool": TensorProto.BOOL,
}
DTYPE_NAMES: dict[int, str] = {v: k for k, v in ONNX_DTYPES.items()}


class GraphBuilder:
    """Accumulates nodes, initializers and graph IO; ``model()`` returns the ModelProto.

    ``opset`` is the ai.onnx opset; helpers such as ``reduce_mean`` emit the form that opset needs.
    Node names are unique: ``op(..., name="layers.0.attn.qkv.MatMul")`` or an automatic
    ``<OpType>_<n>``. Constants are deduplicated by value.
    """

    def __init__(self, name: str, opset: int, ms_opset: int | None = None, sink: Any = None) -> None:
        self.name = name
        self.sink = sink  # an onnx_stream.WeightSink: large initializers go to its file as they are added
        self.opset = opset
        self.ms_opset = ms_opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._counts: dict[str, int] = {}
        self._consts: dict[tuple[str, bytes, tuple[int, ...]], str] = {}
        self._node_names: set[str] = set()
        self.domains: dict[str, int] = {}  # other custom domains used (a TensorRT plugin's), with their opset

    # ---- names ------------------------------------------------------------------------------
    def _fresh(self, prefix: str) -> str:
        n = self._counts.get(prefix, 0)
        self._counts[prefix] = n + 1
        return f"{prefix}_{n}"

    # ---- graph IO -----------------------------------------------------------------------------
    def add_input(self, name: str, dtype: str, shape: Sequence[int | str]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, ONNX_DTYPES[dtype], list(shape)))
        return name

    def add_output(self, name: str, dtype: str, shape: Sequence[int | str]) -> str:
        self.outputs.append(helper.make_tensor_value_info(name, ONNX_DTYPES[dtype], list(shape)))
        return name

    # ---- initializers -------------------------------------------------------------------------
    def weight(self, name: str, array: np.ndarray) -> str:
        """A named initializer (a model weight); the name must be new. With a sink, its bytes are written
        out now and the initializer only refers to them (ONNX external data)."""
        if name in self.initializers:
            raise ValueError(f"initializer {name} defined twice")
        array = np.ascontiguousarray(array)
        self.initializers[name] = (
            self.sink.tensor(name, array) if self.sink else numpy_helper.from_array(array, name)
        )
        return name

    def const(self, value: Any, dtype: str = "int64") -> str:
        """A small constant initializer, shared between all users of the same value."""
        array = np.asarray(value, dtype=dtype)
        key = (dtype, array.tobytes(), array.shape)
        if key not in self._consts:
            self._consts[key] = self.weight(self._fresh("const"), array)
        return self._consts[key]

    # ---- nodes --------------------------------------------------------------------------------
    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        *,
        outputs: int | Sequence[str] = 1,
        name: str | None = None,
        domain: str = "",
        **attrs: Any,
    ) -> Any:
        """Add one node; returns its output name, or a list when it has several outputs."""
        node_name = name or self._fresh(op_type)
        if node_name in self._node_names:
            raise ValueError(f"node {node_name} defined twice")
        self._node_names.add(node_name)
        if isinstance(outputs, int):
            out_names = [f"{node_name}/out{i}" if outputs > 1 else f"{node_name}/out" for i in range(outputs)]
        else:
            out_names = list(outputs)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        if domain not in ("", "ai.onnx", MS_DOMAIN):
            self.domains.setdefault(domain, 1)
        self.nodes.append(
            helper.make_node(op_type, list(inputs), out_names, name=node_name, domain=domain, **attrs)
        )
        return out_names[0] if len(out_names) == 1 else out_names

    def ms(self, op_type: str, inputs: Sequence[str], **kwargs: Any) -> Any:
        """A com.microsoft contrib op (onnxruntime only)."""
        if self.ms_opset is None:
            raise ValueError(f"{op_type}: this graph was built without the com.microsoft domain")
        return self.op(op_type, inputs, domain=MS_DOMAIN, **kwargs)

    # ---- opset-aware helpers ------------------------------------------------------------------
    def reduce_mean(self, x: str, axes: Sequence[int], keepdims: int = 1, name: str | None = None) -> str:
        if self.opset >= 18:  # axes became an input in opset 18
            return self.op("ReduceMean", [x, self.const(list(axes))], keepdims=keepdims, name=name)
        return self.op("ReduceMean", [x], axes=list(axes), keepdims=keepdims, name=name)

    def split(self, x: str, sizes: Sequence[int], axis: int, name: str | None = None) -> list[str]:
        """Split into pieces of static ``sizes`` (the ``split`` input form, valid from opset 13)."""
        out = self.op("Split", [x, self.const(list(sizes))], outputs=len(sizes), axis=axis, name=name)
        return out if isinstance(out, list) else [out]

    def unsqueeze(self, x: str, axes: Sequence[int], name: str | None = None) -> str:
        return self.op("Unsqueeze", [x, self.const(list(axes))], name=name)

    def squeeze(self, x: str, axes: Sequence[int], name: str | None = None) -> str:
        return self.op("Squeeze", [x, self.const(list(axes))], name=name)

    def reshape(self, x: str, shape: Sequence[int] | str, name: str | None = None) -> str:
        target = shape if isinstance(shape, str) else self.const(list(shape))
        return self.op("Reshape", [x, target], name=name)

    def dim(self, x: str, axis: int, name: str | None = None) -> str:
        """``x.shape[axis]`` as an int64 tensor of shape [1]."""
        if self.opset >= 15:
            return self.op("Shape", [x], start=axis, end=axis + 1, name=name)
        shape = self.op("Shape", [x])
        return self.op("Slice", [shape, self.const([axis]), self.const([axis + 1])], name=name)

    def cast(self, x: str, dtype: str, name: str | None = None) -> str:
        return self.op("Cast", [x], to=ONNX_DTYPES[dtype], name=name)

    # ---- result -------------------------------------------------------------------------------
    def model(self, doc: str = "", producer_version: str = "") -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, self.name, self.inputs, self.outputs, initializer=list(self.initializers.values())
        )
        opsets = [helper.make_opsetid("", self.opset)]
        if self.ms_opset is not None:
            opsets.append(helper.make_opsetid(MS_DOMAIN, self.ms_opset))
        opsets += [helper.make_opsetid(d, v) for d, v in sorted(self.domains.items())]
        model = helper.make_model(
            graph, opset_imports=opsets, producer_name="radon", producer_version=producer_version
        )
        # IR version: the one onnxruntime reads for this opset, not onnx's newest (older runtimes refuse it)
        model.ir_version = min(onnx.IR_VERSION, 10)
        model.doc_string = doc
        return model
