"""INT8 through onnxruntime's quantizers: static explicit Q/DQ, and dynamic (weights only).

- **static** (``--precision int8``): ``onnxruntime.quantization.quantize_static`` in ``QuantFormat.QDQ``,
  weights per output channel (``MatMul`` axis 1) and symmetric, activations per tensor and symmetric
  (TensorRT's INT8 is symmetric, so the same Q/DQ graph serves onnxruntime and TensorRT), ranges from
  ``calibrate.py``'s table (``calibration_cache_path``), so calibration runs once.
- **dynamic** (``--precision int8-dynamic``): ``quantize_dynamic``, weights per channel in int8 and
  activations quantized at run time per tensor from their own min/max (onnxruntime's
  ``DynamicQuantizeMatMul``/``MatMulInteger``): no calibration, onnxruntime only.

Only the Linear ``MatMul``s with a constant weight are quantized (``graph.units_of``): attention,
norms, rotary and the KV cache stay float32, so the cache and the decode step's numerics are the
float graph's. The embedding ``Gather`` stays float32 in static Q/DQ (a Q/DQ pair on it would
dequantize the whole table every step); int8-dynamic, which is onnxruntime-only anyway, stores it as an
8-bit ``GatherBlockQuantized`` (``int4.embedding_int8``; ``--no-embedding`` keeps it float32). Following onnxruntime's guide, S8S8 QDQ is its CPU default.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from radon.export.quantize.calibrate import ort_method
from radon.export.quantize.graph import Unit

log = logging.getLogger(__name__)
# Weights use 7 bits of range ([-64, 63] in int8). onnxruntime's x86 kernels multiply uint8 activations by
# int8 weights with vpmaddubsw on CPUs without VNNI (AVX2 only: AMD Zen 2/3, older Intel): it sums two
# products in int16 and saturates when both are near full range (2 x 255 x 127 > 32767). Per-channel
# scales put every column at full range, so there it cost a mean KL of 0.0145 and 11% of top-1 on the
# test model, against 1e-4 with 7-bit weights; VNNI machines do not saturate either way. An artifact runs
# on CPUs its builder never saw, so the safe range is the only default (onnxruntime's own advice for
# non-VNNI machines; docs/quantization.md, "Saturation").
REDUCE_RANGE = True
WEIGHT_RANGE = ", 7-bit range (reduce_range)" if REDUCE_RANGE else ""


def static_options() -> dict[str, Any]:
    """``extra_options`` of the static quantizer; recorded in the recipe."""
    return {
        "ActivationSymmetric": True, "WeightSymmetric": True, "MatMulConstBOnly": True,
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
    }  # fmt: skip


def quantize_static_int8(
    typed_model: Path, out: Path, units: list[Unit], keep: list[str], table: Path, method: str
) -> dict[str, Any]:
    """Static Q/DQ INT8 of every Linear in ``units`` but ``keep``; returns the recipe's int8 section."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    nodes = [u.node for u in units if u.op_type == "MatMul" and u.name not in keep]
    without_preprocessing_advice(
        quantize_static,
        str(typed_model), str(out), calibration_data_reader=None, quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"], per_channel=True, reduce_range=REDUCE_RANGE, activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8, nodes_to_quantize=nodes, calibrate_method=ort_method(method),
        extra_options=static_options(), calibration_cache_path=str(table),
    )  # fmt: skip
    return {
        "format": "QDQ", "tool": "onnxruntime.quantization.quantize_static", "weights": f"int8, per channel, symmetric{WEIGHT_RANGE}",
        "activations": "int8, per tensor, symmetric, static (calibrated)", "method": method,
        "quantized": [u.name for u in units if u.node in nodes], "extra_options": static_options(),
    }  # fmt: skip


class _NoPreprocessingAdvice(logging.Filter):
    """onnxruntime's quantizers warn on the root logger to run its shape-inference pre-processing; RADON's
    graphs are built typed (``typed_model``), so the advice does not apply and only alarms users."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return "consider to run pre-processing" not in msg and "consider pre-processing" not in msg


def without_preprocessing_advice(fn: Any, *args: Any, **kwargs: Any) -> Any:
    root = logging.getLogger()
    quiet = _NoPreprocessingAdvice()
    root.addFilter(quiet)
    try:
        return fn(*args, **kwargs)
    finally:
        root.removeFilter(quiet)


def quantize_dynamic_int8(typed_model: Path, out: Path, units: list[Unit], keep: list[str],
                          per_channel: bool = True) -> dict[str, Any]:  # fmt: skip
    """Dynamic INT8 (weights int8, activations at run time) of every Linear in ``units`` but ``keep``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = [u.node for u in units if u.op_type == "MatMul" and u.name not in keep]
    extra = {"MatMulConstBOnly": True}
    without_preprocessing_advice(
        quantize_dynamic,
        str(typed_model), str(out), op_types_to_quantize=["MatMul"], per_channel=per_channel,
        reduce_range=REDUCE_RANGE, weight_type=QuantType.QInt8, nodes_to_quantize=nodes, extra_options=extra,
    )  # fmt: skip
    return {
        "format": "dynamic", "tool": "onnxruntime.quantization.quantize_dynamic",
        "weights": f"int8, {'per channel' if per_channel else 'per tensor'}, symmetric{WEIGHT_RANGE}",
        "activations": "uint8, per tensor, quantized at run time", "quantized": [u.name for u in units if u.node in nodes],
        "extra_options": extra,
    }  # fmt: skip
