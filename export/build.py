"""Build a decoder ModelProto from a reference model, and save it (with external data past 2 GB).

The lowering table is the one place that knows which lowerings exist: ``portable``, ``ort`` and
``trt-plugin`` (whose attention node ``radon.export.trt`` writes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from radon import __version__
from radon.errors import RadonError
from radon.export import lowering_ort, lowering_portable, lowering_trt_plugin
from radon.export.decoder_spec import DecoderSpec, extract_weights
from radon.export.graph_builder import GraphBuilder
from radon.export.lowering_common import PRECISIONS, DecoderGraph
from radon.export.onnx_stream import WeightSink, save_streamed

log = logging.getLogger(__name__)

# name -> (builder, needs com.microsoft, description)
LOWERINGS: dict[str, tuple[Callable[..., dict], bool, str]] = {
    "portable": (lowering_portable.build, False, "standard ONNX ops, explicit banded causal mask"),
    "ort": (
        lowering_ort.build,
        True,
        "com.microsoft.GroupQueryAttention with local_window_size, fused norms",
    ),
    "trt-plugin": (
        lowering_trt_plugin.build,
        False,
        "radon.SlidingWindowAttention nodes for TensorRT's plugin (onnxruntime cannot run it)",
    ),
}
OPSETS = range(17, 22)  # LayerNormalization needs 17; 21 is the newest that TensorRT 10.x's parser reads
DEFAULT_OPSET = 17
MS_OPSET = 1
MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
# A protobuf cannot exceed 2 GiB; start external data a little below it, leaving room for the graph.
EXTERNAL_DATA_THRESHOLD = 2**31 - 64 * 2**20
FP16_MAX = float(np.finfo(np.float16).max)


@dataclass
class BuiltGraph:
    """A built decoder and what the manifest records about it."""

    model: onnx.ModelProto
    spec: DecoderSpec
    io: dict[str, list[dict]]
    weight_names: dict[str, list[str]]  # checkpoint tensor -> initializer names
    lowering: str
    precision: str
    opset: dict[str, int]
    options: dict[str, Any] = field(default_factory=dict)
    data: Path | None = None  # the data file the weights were streamed to (``build_graph(sink=...)``)

    @property
    def weight_bytes(self) -> int:
        return sum(int(np.prod(t.dims)) * _itemsize(t.data_type) for t in self.model.graph.initializer)


def _itemsize(data_type: int) -> int:
    return onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize


def check_request(lowering: str, precision: str, opset: int) -> None:
    """Refuse an unknown lowering, precision or opset with a message naming the flag."""
    if lowering not in LOWERINGS:
        raise RadonError(f"--attention: must be one of {', '.join(LOWERINGS)}, got {lowering!r}")
    if precision not in PRECISIONS:
        raise RadonError(f"--dtype: must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if opset not in OPSETS:
        raise RadonError(
            f"--opset: RADON's graphs are built for opsets {OPSETS.start}-{OPSETS.stop - 1}, got {opset}"
        )


def check_fp16(weights: dict[str, np.ndarray], weight_names: dict[str, list[str]]) -> None:
    """Refuse float16 when a weight does not fit it (|w| > 65504 becomes inf), naming the tensor."""
    onnx_to_ckpt = {o: c for c, names in weight_names.items() for o in names}
    for name, w in weights.items():
        peak = float(np.abs(w).max()) if w.size else 0.0
        if not np.isfinite(peak) or peak > FP16_MAX:
            raise RadonError(
                f"--dtype fp16: {onnx_to_ckpt.get(name, name)} holds values up to {peak:.3g}, beyond float16's "
                f"largest finite value {FP16_MAX:.0f}; its MatMul/Gather cannot take float16. Export with --dtype fp32"
            )


def build_graph(
    model: Any,
    *,
    lowering: str = "ort",
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    rotary: str = "outside",
    sink: WeightSink | None = None,
) -> BuiltGraph:
    """The decoder graph of ``model`` in one lowering and precision.

    ``model``: a ``HybridTransformerModel``, or a checkpoint's tensors read one at a time
    (``weights_source.CheckpointTensors``). ``sink``: stream every large initializer to its data file as
    the graph is built (the proto then holds references only; ``save_model`` writes the artifact from
    it); without one, the ModelProto holds every weight in memory.
    """
    check_request(lowering, precision, opset)
    spec = DecoderSpec.from_config(model.config)
    weights, names = extract_weights(model, spec)
    if precision == "fp16":
        check_fp16(weights, names)
    build, needs_ms, _ = LOWERINGS[lowering]
    b = GraphBuilder(f"radon_{spec.arch}_{lowering}", opset, MS_OPSET if needs_ms else None, sink=sink)
    g = DecoderGraph(b, spec, weights, precision)
    options: dict[str, Any] = {}
    if lowering == "ort":
        io = build(g, rotary=rotary)
        options["rotary"] = rotary if spec.arch != "gpt2" else "none"
        # lowering_common.keep_last_positions: an initializer a session may replace, not a graph input
        # (artifacts before it say True: an optional input, which onnxruntime warns about on every load)
        options["logits_to_keep"] = "initializer"
    else:
        io = build(g)
    doc = f"RADON {spec.model_type} decoder, {lowering} attention, {precision} (radon {__version__})"
    proto = b.model(doc=doc, producer_version=__version__)
    opsets = {"ai.onnx": opset, **({"com.microsoft": MS_OPSET} if needs_ms else {}), **b.domains}
    log.info("built %s graph: %d nodes, %d initializers", lowering, len(b.nodes), len(b.initializers))
    if sink is not None:
        sink.close()
    data = sink.path if sink is not None else None
    return BuiltGraph(proto, spec, io, names, lowering, precision, opsets, options, data)


def save_model(
    built: BuiltGraph, folder: Path, external_data_threshold: int = EXTERNAL_DATA_THRESHOLD
) -> list[str]:
    """Write ``model.onnx`` (and ``model.onnx.data`` when the weights exceed the threshold), check it with
    onnx's checker (``check_model``); returns the file names.

    A graph built with a sink writing ``folder/model.onnx.data`` is saved from that file: the graph is
    written and checked with its weights as external data (the checker then reads no weight), and below
    the threshold it is streamed into an inline ``model.onnx`` and the data file removed. The bytes are
    those ``onnx.save_model`` writes for the same graph in memory (``onnx_stream``).
    """
    path = folder / MODEL_FILE
    if built.data is not None:
        if built.data != folder / DATA_FILE:
            raise ValueError(f"save_model: the graph's weights are in {built.data}, not {folder / DATA_FILE}")
        save_streamed(built.model, path, built.data, inline=False)
        check_model(folder, built.lowering)
        if built.weight_bytes > external_data_threshold:
            log.info("weights are %d bytes: external data in %s", built.weight_bytes, DATA_FILE)
            return [MODEL_FILE, DATA_FILE]
        save_streamed(built.model, path, built.data, inline=True)
        built.data.unlink()
        return [MODEL_FILE]
    written = _save_in_memory(built, path, external_data_threshold)
    check_model(folder, built.lowering)
    return written


def _save_in_memory(built: BuiltGraph, path: Path, external_data_threshold: int) -> list[str]:
    if built.weight_bytes > external_data_threshold:
        log.info("weights are %d bytes: writing external data to %s", built.weight_bytes, DATA_FILE)
        onnx.save_model(
            built.model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
            location=DATA_FILE, size_threshold=1024,
        )  # fmt: skip
        return [MODEL_FILE, DATA_FILE]
    onnx.save_model(built.model, str(path))
    return [MODEL_FILE]


def check_model(folder: Path, lowering: str) -> None:
    """onnx's checker (by path, so external data is fine) with full shape inference on standard ops."""
    try:
        onnx.checker.check_model(str(folder / MODEL_FILE), full_check=lowering == "portable")
    except onnx.checker.ValidationError as exc:  # a builder bug, not a user error: say so
        raise RadonError(
            f"export: the {lowering} graph fails onnx's checker (please report): {exc}"
        ) from None
