"""INT8 through onnxruntime's quantizers: static explicit Q/DQ, and dynamic (block-wise, onnxruntime only).

- **static** (``--precision int8``): ``onnxruntime.quantization.quantize_static`` in ``QuantFormat.QDQ``,
  weights per output channel (``MatMul`` axis 1) and symmetric, activations per tensor and symmetric
  (TensorRT's INT8 is symmetric, so the same Q/DQ graph serves onnxruntime and TensorRT), ranges from
  ``calibrate.py``'s table (``calibration_cache_path``), so calibration runs once. Real models' outlier
  activation channels are first moved into the weights by SmoothQuant (``smooth.py``,
  ``DEFAULT_SMOOTH_ALPHA``), which ``calibrate.py`` applies before it measures the ranges, and units
  whose inputs stay too spread stay float32 (``OUTLIER_SPREAD``); the graph stays plain Q/DQ with
  per-tensor activations on the MatMul inputs, plus a ``Mul`` before each attention output projection.
- **dynamic** (``--precision int8-dynamic``, the CPU default): llama.cpp's ``Q8_0`` scheme in onnxruntime's
  ``MatMulNBits`` (``bits=8``): int8 weights, symmetric, one float scale per block of ``DYNAMIC_BLOCK``
  inputs of an output column, and (``accuracy_level`` 4) activations quantized to int8 at run time per
  block of the same size. No calibration. Per-tensor activation scales (onnxruntime's
  ``quantize_dynamic``, the recipe before this one) collapse on real pretrained models, whose
  activations carry outlier channels a hundred times the median: SmolLM2-135M went to KL 0.58 and 54%
  top-1; a block of 32 confines an outlier's scale to its own 32 inputs (KL 0.005). The signed int8
  activations also keep clear of the u8s8 saturation of AVX2 CPUs without VNNI (``REDUCE_RANGE``).
  docs/quantization.md, "INT8 on real models", has the candidates measured side by side.

Only the Linear ``MatMul``s with a constant weight are quantized (``graph.units_of``): attention,
norms, rotary and the KV cache stay float32, so the cache and the decode step's numerics are the
float graph's. The embedding ``Gather`` stays float32 in static Q/DQ (a Q/DQ pair on it would
dequantize the whole table every step); int8-dynamic stores it as an 8-bit ``GatherBlockQuantized``
(``int4.embedding_int8``; ``--no-embedding`` keeps it float32). Following onnxruntime's guide, S8S8 QDQ
is its CPU default.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from radon.export.quantize.calibrate import ort_method
from radon.export.quantize.graph import LM_HEAD_UNIT, Unit
from radon.export.quantize.smooth import Smoothing

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
# int8-dynamic: llama.cpp's Q8_0 block; 16 halves the activation error on SmolLM2 (KL 0.0047 -> 0.0030)
# for about 13% of the decode speed, 32 keeps Q8_0's speed (docs/quantization.md, "INT8 on real models").
DYNAMIC_BLOCK = 32
# MatMulNBits' compute type: 4 = int8 activations per block (the fast path); float32 compute (0) decodes
# about 100x slower on onnxruntime 1.32's CPU kernels for 8-bit weights.
DYNAMIC_ACCURACY_LEVEL = 4


# Static int8's SmoothQuant strength (smooth.py): the share of each activation channel's range moved into
# the weights. On SmolLM2-135M (held-out en / code / ru, against fp32) with every unit int8, 0.8 gave KL
# 0.10 / 0.11 / 0.14 and 0.5 gave 0.37 / 0.34 / 0.56; with FLOAT_UNITS float32, 0.35 / 0.5 / 0.65 / 0.75 /
# 0.85 gave 0.065 / 0.026 / 0.016 / 0.015 / 0.016 on English (docs/quantization.md, "Static INT8 on real
# models"). 0 = none.
DEFAULT_SMOOTH_ALPHA = 0.75
# The units static int8 leaves float32 by default (``--all-units`` quantizes them too), by name suffix:
# the MLP down projections, whose inputs carry real models' massive activations per token as well as
# per channel (SmolLM2: 3,559 against a median channel of 2.3), which per-channel smoothing cannot move
# and one per-tensor scale cannot hold; the attention output projections; and the LM head, whose input
# error every logit sees. On SmolLM2-135M, alpha 0.75: every unit int8 fails the gate at KL 0.10-0.14;
# these three float32 (the QKV and gate/up projections int8: half the Linear weights) give 0.013 / 0.014
# / 0.022 at 0.82x the fp32 size; without the attention outputs 0.015 / 0.016 / 0.026 at 0.77x.
FLOAT_UNITS: tuple[str, ...] = ("mlp.fc_out", "attn.out", "lm_head")
# A unit whose input, smoothed, still has a channel range over OUTLIER_SPREAD times its median channel's
# stays float32: one per-tensor scale would leave the median channel about 127 / spread levels.
# SmolLM2-135M at alpha 0.5: the down_proj inputs of layers 11 and 28 (massive activations, 1,500x and
# 290x the median channel before smoothing, 113x and 50x after); every other unit is under 25x.
OUTLIER_SPREAD = 32.0


def float_by_recipe(units: list[Unit], kept: list[str], suffixes: tuple[str, ...] = FLOAT_UNITS) -> list[str]:
    """The units static int8's recipe leaves float32 (``FLOAT_UNITS``) that ``--keep`` did not name already."""
    return [u.name for u in units if u.name.endswith(suffixes) and u.name not in kept]


def unsmoothed(by_recipe: list[str]) -> list[str]:
    """Of the recipe's float32 units, those SmoothQuant leaves alone: the LM head, whose input norm feeds
    nothing else, so smoothing it changes no int8 unit, and unsmoothed its weight stays the embedding's
    transpose, which a tied model then stores once (``tied.share_tied_table``)."""
    return [n for n in by_recipe if n == LM_HEAD_UNIT]


def static_options() -> dict[str, Any]:
    """``extra_options`` of the static quantizer; recorded in the recipe.

    Q/DQ goes on a MatMul's inputs only, not on its output (``OpTypesToExcludeOutputQuantization``;
    onnxruntime's QDQ quantizer adds an output pair by default): every reader of a Linear's output here
    is a float op (the residual add and norm, Split, GroupQueryAttention), so the pair would only round
    it once more, with one per-tensor scale over the residual stream's massive activations (SmolLM2-135M:
    down_proj outputs in the thousands): on SmolLM2-135M it was the largest part of static INT8's error
    (docs/quantization.md). TensorRT's explicit quantization wants Q/DQ on the inputs of its INT8 GEMMs,
    which is what stays.
    """
    return {
        "ActivationSymmetric": True, "WeightSymmetric": True, "MatMulConstBOnly": True,
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}, "OpTypesToExcludeOutputQuantization": ["MatMul"],
    }  # fmt: skip


def quantize_static_int8(
    typed_model: Path, out: Path, units: list[Unit], keep: list[str], table: Path, method: str
) -> dict[str, Any]:
    """Static Q/DQ INT8 of every Linear in ``units`` but ``keep``; returns the recipe's int8 section."""
    nodes = [u.node for u in units if u.op_type == "MatMul" and u.name not in keep]
    quantize_static_nodes(typed_model, out, nodes, table, method)
    return static_recipe(units, nodes, method)


def quantize_static_nodes(model: Path, out: Path, nodes: list[str], table: Path, method: str) -> None:
    """onnxruntime's ``quantize_static`` on the MatMul ``nodes`` of the model at ``model``, with the
    ranges of the calibration ``table`` (the whole model, or one node of it: ``stream.quantize_qdq``)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    without_preprocessing_advice(
        quantize_static,
        str(model), str(out), calibration_data_reader=None, quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"], per_channel=True, reduce_range=REDUCE_RANGE, activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8, nodes_to_quantize=nodes, calibrate_method=ort_method(method),
        extra_options=static_options(), calibration_cache_path=str(table),
    )  # fmt: skip


def static_recipe(
    units: list[Unit],
    nodes: list[str],
    method: str,
    smoothing: Smoothing | None = None,
    outliers: dict[str, float] | None = None,
    by_recipe: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "format": "QDQ", "tool": "onnxruntime.quantization.quantize_static", "weights": f"int8, per channel, symmetric{WEIGHT_RANGE}",
        "activations": "int8, per tensor, symmetric, static (calibrated)", "method": method,
        "quantized": [u.name for u in units if u.node in nodes], "extra_options": static_options(),
        "smoothing": smoothing.summary() if smoothing is not None else None,
        "outliers_float32": outliers or {},
        "float32_by_recipe": {"suffixes": list(FLOAT_UNITS), "units": by_recipe or []},
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
                          block_size: int = DYNAMIC_BLOCK) -> dict[str, Any]:  # fmt: skip
    """Dynamic INT8 (``MatMulNBits`` bits=8, int8 activations per block) of every Linear in ``units`` but ``keep``."""
    import onnx

    from radon.export.quantize.int4 import import_nbits_quantizer

    nbits = import_nbits_quantizer()
    model = onnx.load(str(typed_model))
    nodes = [u.node for u in units if u.op_type == "MatMul" and u.name not in keep]
    exclude = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.name not in nodes]
    q = nbits.MatMulNBitsQuantizer(model, block_size=block_size, is_symmetric=True,
                                   accuracy_level=DYNAMIC_ACCURACY_LEVEL, nodes_to_exclude=exclude,
                                   algo_config=dynamic_config(block_size))  # fmt: skip
    q.process()
    result = q.model.model
    del result.graph.value_info[:]  # the typing pass's annotations; onnxruntime infers its own
    onnx.save_model(result, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=out.name + ".data", size_threshold=1024)  # fmt: skip
    return dynamic_recipe(units, nodes, block_size)


def dynamic_config(block_size: int = DYNAMIC_BLOCK) -> Any:
    """The quantizer config of int8-dynamic's MatMuls (8-bit symmetric blocks, int8 activations)."""
    from onnxruntime.quantization import QuantFormat

    from radon.export.quantize.int4 import import_nbits_quantizer

    return import_nbits_quantizer().DefaultWeightOnlyQuantConfig(
        block_size=block_size, is_symmetric=True, accuracy_level=DYNAMIC_ACCURACY_LEVEL,
        quant_format=QuantFormat.QOperator, op_types_to_quantize=("MatMul",), bits=8,
    )  # fmt: skip


def dynamic_recipe(units: list[Unit], nodes: list[str], block_size: int = DYNAMIC_BLOCK) -> dict[str, Any]:
    return {
        "format": "MatMulNBits", "tool": "onnxruntime.quantization.matmul_nbits_quantizer",
        "weights": f"int8, symmetric, blocks of {block_size} along the input (bits=8)",
        "activations": f"int8, per block of {block_size}, quantized at run time (accuracy_level {DYNAMIC_ACCURACY_LEVEL})",
        "block_size": block_size, "accuracy_level": DYNAMIC_ACCURACY_LEVEL, "quantized": [u.name for u in units if u.node in nodes],
    }  # fmt: skip
