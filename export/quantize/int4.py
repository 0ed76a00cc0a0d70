"""INT4 weight-only, block-wise: ``MatMulNBits`` for onnxruntime, block-quantized ``DequantizeLinear`` for TensorRT.

Built on onnxruntime's ``matmul_nbits_quantizer`` (``MatMulNBitsQuantizer``; its wheel needs ``onnx-ir``
and ``ml_dtypes`` without declaring them):

- ``matmulnbits`` format: every Linear ``MatMul`` becomes ``com.microsoft.MatMulNBits`` (4 bits, one
  float scale per ``block_size`` inputs of an output column (by default the largest of 128, 64 and 32
  that divides every input: ``auto_block_size``); asymmetric by default since 2026-12-07 (a 4-bit zero
  point per block, as llama.cpp's Q4_1 and k-quants' minimums): onnxruntime 1.32's CPU kernel runs them
  as fast as symmetric blocks, and they cost 15% less KL on SmolLM2; ``symmetric=True`` drops the zero
  points, as llama.cpp's Q4_0 and onnxruntime-genai's int4).
  Algorithms: ``rtn`` (onnxruntime's ``DefaultWeightOnlyQuantConfig``: round to nearest, C++ kernels),
  ``gptq`` (the same blocks, rounded by GPTQ on calibration text: ``gptq.py``), ``hqq``
  (``HQQWeightOnlyQuantConfig``: half-quadratic optimisation of scales and zero points, no data).
  The embedding becomes ``com.microsoft.GatherBlockQuantized`` (4-bit blocks along the hidden axis);
  the LM head is a Linear like any other. Kept units (mixed precision) are int8-dynamic's recipe
  (``int8.quantize_dynamic_int8``: 8-bit ``MatMulNBits`` in blocks of 32 with int8 activations per
  block; the embedding: 8-bit ``GatherBlockQuantized``) or stay float32. Blocks rather than
  onnxruntime's per-tensor dynamic INT8: a real model's outlier activations break per-tensor scales
  (docs/quantization.md, "INT8 on real models").
- ``qdq`` format, for TensorRT: ``DequantizeLinear`` with the opset-21 ``block_size`` attribute on int4
  weights with an explicit zero zero-point (symmetric; TensorRT's weight-only INT4 takes no other),
  feeding the float ``MatMul``: the symmetric ``MatMulNBits`` graph rewritten (``block_dq.py``), so both
  spellings hold the same weights. The embedding and kept units stay float32 (the quantizer has no 8-bit
  Q/DQ for MatMul, and an int4 ``Gather`` has no standard-op form that onnxruntime runs).

``accuracy_level`` is ``MatMulNBits``' compute type on the CPU: 0 unset (float32), 4 = int8 activations
per block (what onnxruntime-genai's CPU int4 uses; faster, and a little less exact).
"""

from __future__ import annotations

import copy
import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from radon.errors import RadonError
from radon.export.quantize import gptq
from radon.export.quantize.gptq import Solved
from radon.export.quantize.graph import EMBED_UNIT, Unit

log = logging.getLogger(__name__)

ALGORITHMS = ("rtn", "gptq", "hqq")
FORMATS = ("matmulnbits", "qdq")
BLOCK_SIZES = (32, 64, 128)  # the CLI's choices; llama.cpp and genai use 32, GPTQ and AWQ models mostly 128
DEFAULT_BLOCK_SIZE = 32  # int8-dynamic's embedding blocks, and the int4 blocks a caller of quantize_int4 gets
KEEP_PRECISIONS = ("int8", "fp32")
QDQ_OPSET = 21  # DequantizeLinear's block_size attribute and int4 types
EIGHT_BIT_BLOCK = 32  # a kept unit's blocks: int8-dynamic's (int8.DYNAMIC_BLOCK)


@dataclass(frozen=True)
class Int4Options:
    """How the 4-bit units are quantized; recorded in the manifest's recipe."""

    block_size: int = DEFAULT_BLOCK_SIZE
    algorithm: str = "gptq"  # RTN's blocks and kernel, rounded on calibration text (gptq.py)
    # None: by the format: asymmetric blocks (a 4-bit zero point each) for MatMulNBits, which run as fast as
    # symmetric ones on onnxruntime 1.32 and cost 15% less KL on SmolLM2; symmetric for qdq (TensorRT's
    # block DQ takes no zero point). docs/quantization.md, "INT4: act-order and zero points"
    symmetric: bool | None = None
    # gptq: each block's scale chosen by weighted rounding error, not taken from its range (gptq.searched_block)
    scale_search: bool = True
    # gptq: rows rounded by decreasing Hessian diagonal, block scales fixed first (gptq.gptq_blocks)
    act_order: bool = True
    accuracy_level: int = 4
    fmt: str = "matmulnbits"
    quantize_embedding: bool = True
    keep_precision: str = "int8"  # what a kept unit becomes: int8 (dynamic INT8 MatMul) or fp32

    def __post_init__(self) -> None:
        if self.symmetric is None:
            object.__setattr__(self, "symmetric", self.fmt == "qdq")

    def check(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise RadonError(f"--algorithm: must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.fmt not in FORMATS:
            raise RadonError(f"--int4-format: must be one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if self.block_size not in BLOCK_SIZES:
            raise RadonError(
                f"--block-size: must be one of {', '.join(map(str, BLOCK_SIZES))}, got {self.block_size}"
            )
        if self.keep_precision not in KEEP_PRECISIONS:
            raise RadonError(f"--keep-precision: must be int8 or fp32, got {self.keep_precision!r}")
        if self.fmt == "qdq" and not self.symmetric:
            raise RadonError(
                "--int4-format qdq: --no-symmetric writes zero points, which TensorRT's block DQ cannot take; "
                "drop --no-symmetric"
            )
        if self.fmt == "qdq" and self.algorithm == "hqq":
            raise RadonError(
                "--int4-format qdq: --algorithm hqq writes zero points, which TensorRT's block DQ cannot take; "
                "use rtn or gptq"
            )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def auto_block_size(units: list[Unit]) -> int:
    """``--block-size``'s default for int4: the largest of 128, 64 and 32 that divides every unit's blocked
    dimension. Fewer scales are less to read per token: on bench_100m, blocks of 128 decode faster
    than blocks of 32 (docs/quantization.md), at a KL that auto-mixed still holds to its budget."""
    for size in sorted(BLOCK_SIZES, reverse=True):
        if all(u.block_dim % size == 0 for u in units):
            return size
    u = next(u for u in units if u.block_dim % min(BLOCK_SIZES))
    raise RadonError(
        f"int4: no block size ({', '.join(map(str, BLOCK_SIZES))}) divides {_blocked_dim(u)}; "
        f"keep it wider with --keep {u.name}"
    )


def _blocked_dim(u: Unit) -> str:
    """ "layers.3.mlp.fc_out's input dimension 176": the dimension blocks run along, for messages."""
    return f"{u.name}'s {'input dimension' if u.op_type == 'MatMul' else 'hidden size'} {u.block_dim}"


def check_block_size(units: list[Unit], block_size: int) -> None:
    """Refuse a block size that does not divide a unit's blocked dimension, naming the unit."""
    for u in units:
        if u.block_dim % block_size:
            divisors = [b for b in BLOCK_SIZES if u.block_dim % b == 0]
            raise RadonError(
                f"--block-size {block_size} does not divide {_blocked_dim(u)}; "
                f"choose one of {', '.join(map(str, divisors)) or 'none (no supported block size fits)'}"
            )


@dataclass
class Plan:
    """Which unit gets which precision."""

    int4: list[str]
    int8: list[str] = field(default_factory=list)
    fp32: list[str] = field(default_factory=list)

    def precision_of(self, name: str) -> str:
        return "int4" if name in self.int4 else "int8" if name in self.int8 else "fp32"


def import_nbits_quantizer() -> Any:
    """``onnxruntime.quantization.matmul_nbits_quantizer``, imported without reconfiguring logging.

    The module calls ``logging.basicConfig(level=INFO)`` at import, which would turn on INFO for every
    logger of a library user: the root logger is restored, and onnxruntime's quantization loggers (one
    INFO line per node) are set to WARNING.
    """
    import sys

    name = "onnxruntime.quantization.matmul_nbits_quantizer"
    if name not in sys.modules:
        root = logging.getLogger()
        level, handlers = root.level, list(root.handlers)
        __import__(name)
        for h in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(h)
        root.setLevel(level)
    for logger in list(logging.root.manager.loggerDict):
        if logger.startswith("onnxruntime.quantization"):
            logging.getLogger(logger).setLevel(logging.WARNING)
    return sys.modules[name]


def _quantizer(model: onnx.ModelProto, config: Any, exclude: list[str], opts: Int4Options) -> onnx.ModelProto:
    q = import_nbits_quantizer().MatMulNBitsQuantizer(model, block_size=opts.block_size, is_symmetric=opts.symmetric,
                             accuracy_level=opts.accuracy_level or None, nodes_to_exclude=exclude,
                             algo_config=config)  # fmt: skip
    q.process()
    return q.model.model


def _matmul_config(opts: Int4Options) -> Any:
    """The quantizer's config for the 4-bit MatMuls: HQQ, or round-to-nearest (whose nodes GPTQ refills)."""
    from onnxruntime.quantization import QuantFormat

    nbits = import_nbits_quantizer()
    DefaultWeightOnlyQuantConfig, HQQWeightOnlyQuantConfig = (  # noqa: N806
        nbits.DefaultWeightOnlyQuantConfig, nbits.HQQWeightOnlyQuantConfig,
    )  # fmt: skip

    if opts.algorithm == "hqq":
        return HQQWeightOnlyQuantConfig(block_size=opts.block_size, bits=4, op_types_to_quantize=("MatMul",))
    return DefaultWeightOnlyQuantConfig(
        block_size=opts.block_size, is_symmetric=opts.symmetric or opts.fmt == "qdq",
        accuracy_level=opts.accuracy_level or None, quant_format=QuantFormat.QOperator,
        op_types_to_quantize=("MatMul",), bits=4,
    )  # fmt: skip


def _quantize_embedding(model: onnx.ModelProto, unit: Unit, opts: Int4Options) -> None:
    """Replace the embedding ``Gather`` by ``GatherBlockQuantized`` (4-bit blocks along hidden), in place.

    Calls the quantizer's per-node method rather than ``process()``, which would also force the default
    domain to opset 21 (``ReduceMean`` changed form in 18, so an opset-17 graph would become invalid).
    """
    nbits = import_nbits_quantizer()
    cfg = nbits.DefaultWeightOnlyQuantConfig(block_size=opts.block_size, is_symmetric=opts.symmetric,
                                       op_types_to_quantize=("Gather",), quant_axes=(("Gather", 1),), bits=4)  # fmt: skip
    quantizer = nbits.DefaultWeightOnlyQuantizer(cfg)
    graph = model.graph
    for k, node in enumerate(graph.node):
        if node.name == unit.node:
            new = quantizer.quantize(node, [graph])
            graph.node.remove(node)
            for j, n in enumerate(new):
                graph.node.insert(k + j, n)
            break
    used = {i for n in graph.node for i in n.input}
    for init in [t for t in graph.initializer if t.name == unit.weight and t.name not in used]:
        graph.initializer.remove(init)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    model.ir_version = max(model.ir_version, 10)  # int4 initializers need IR 10


def embedding_int8(model: onnx.ModelProto, unit: Unit, opts: Int4Options) -> None:
    """Replace the embedding ``Gather`` by an 8-bit ``GatherBlockQuantized`` (``bits=8``), in place.

    onnxruntime's quantizer writes 4-bit ``GatherBlockQuantized`` only; its kernel also takes 8 bits
    (uint8 data, one scale and zero point per block along hidden). The encoding is the asymmetric block
    scheme of the quantizer's ``quantize_ndarray`` with 255 levels, in numpy.
    """
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    w = numpy_helper.to_array(inits[unit.weight]).astype(np.float32)
    vocab, hidden = w.shape
    bs = opts.block_size
    blocks = w.reshape(vocab, hidden // bs, bs)
    lo = np.minimum(blocks.min(-1, keepdims=True), 0.0)
    hi = np.maximum(blocks.max(-1, keepdims=True), 0.0)
    scale = np.where(hi > lo, (hi - lo) / 255.0, 1.0).astype(np.float32)
    zp = np.clip(np.round(-lo / scale), 0, 255)
    q = np.clip(np.round(blocks / scale + zp), 0, 255).astype(np.uint8)
    base = unit.weight
    graph.initializer.extend([
        numpy_helper.from_array(q.reshape(vocab, hidden), f"{base}_Q8"),
        numpy_helper.from_array(scale.reshape(vocab, hidden // bs), f"{base}_scales"),
        numpy_helper.from_array(zp.reshape(vocab, hidden // bs).astype(np.uint8), f"{base}_zero_points"),
    ])  # fmt: skip
    for k, node in enumerate(graph.node):
        if node.name == unit.node:
            new = helper.make_node(
                "GatherBlockQuantized", [f"{base}_Q8", node.input[1], f"{base}_scales", f"{base}_zero_points"],
                list(node.output), name=f"{node.name}_Q8", domain="com.microsoft", gather_axis=0, quantize_axis=1,
                block_size=bs, bits=8,
            )  # fmt: skip
            graph.node.remove(node)
            graph.node.insert(k, new)
            break
    graph.initializer.remove(inits[unit.weight])
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    model.ir_version = max(model.ir_version, 10)


def dynamic_int8(model: onnx.ModelProto, units: list[Unit]) -> onnx.ModelProto:
    """``model`` with the MatMuls of ``units`` in dynamic INT8 (``int8.quantize_dynamic_int8``'s recipe),
    through a temporary folder (the quantizer writes files); the dtype annotations are dropped again."""
    from radon.export.quantize.calibrate import save_typed_model
    from radon.export.quantize.int8 import quantize_dynamic_int8

    with tempfile.TemporaryDirectory(prefix="radon-int8-keep-") as tmp:
        typed = save_typed_model(model, Path(tmp))
        out_path = Path(tmp) / "keep_int8.onnx"
        quantize_dynamic_int8(typed, out_path, units, keep=[])
        out = onnx.load(str(out_path))  # external data, if any, is read while the folder exists
    del out.graph.value_info[:]
    return out


def quantize_int4(
    model: onnx.ModelProto, units: list[Unit], plan: Plan, opts: Int4Options, solved: Solved | None = None
) -> onnx.ModelProto:
    """A copy of ``model`` with ``plan.int4`` units at 4 bits, ``plan.int8`` at 8 bits, the rest float32.

    ``solved``: GPTQ's blocks per unit (``gptq.solve``), required by ``--algorithm gptq``.
    """
    opts.check()
    if opts.algorithm == "gptq" and solved is None:
        raise RadonError("--algorithm gptq: solve the blocks first (radon.export.quantize.gptq.solve)")
    plan = effective_plan(plan, opts)
    by_name = {u.name: u for u in units}
    matmuls = [u for u in units if u.op_type == "MatMul"]
    check_block_size([by_name[n] for n in plan.int4 + plan.int8], opts.block_size)
    if opts.fmt == "qdq":
        if plan.int8:
            raise RadonError(
                "--int4-format qdq: kept units stay float32 (no 8-bit Q/DQ MatMul); use --keep-precision fp32"
            )
        default = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        if default < QDQ_OPSET:
            raise RadonError(
                f"--int4-format qdq: block-quantized DequantizeLinear needs opset {QDQ_OPSET}; this artifact is "
                f"opset {default}. Re-export it with: radon export onnx CKPT --attention portable --opset {QDQ_OPSET}"
            )
    out = copy.deepcopy(model)
    eight = [u for u in matmuls if u.name in plan.int8]
    if eight:  # first, on the float graph that quantize_dynamic types; MatMulNBits leaves its nodes alone
        out = dynamic_int8(out, eight)
    four = [u for u in matmuls if u.name in plan.int4]
    if four:
        out = _quantizer(out, _matmul_config(opts), [u.node for u in matmuls if u not in four], opts)
        if solved is not None:
            gptq.apply(out, four, solved)
    return _finish(out, by_name.get(EMBED_UNIT), plan, opts)


def quantize_int4_streamed(
    src: Any, units: list[Unit], plan: Plan, opts: Int4Options, solved: Solved | None = None
) -> onnx.ModelProto:
    """``quantize_int4`` on a ``stream.Source``: each Linear is quantized in a graph of its own holding
    only its weight (4 bits by onnxruntime's quantizer, then GPTQ's blocks; kept units by int8-dynamic's
    8-bit config), so the fp32 model is never resident (``stream.py``). Same nodes and tensors."""
    from radon.export.quantize.int8 import dynamic_config
    from radon.export.quantize.stream import quantize_nbits_mixed

    opts.check()
    if opts.algorithm == "gptq" and solved is None:
        raise RadonError("--algorithm gptq: solve the blocks first (radon.export.quantize.gptq.solve)")
    if opts.fmt == "qdq" and plan.int8:
        raise RadonError(
            "--int4-format qdq: kept units stay float32 (no 8-bit Q/DQ MatMul); use --keep-precision fp32"
        )
    plan = effective_plan(plan, opts)
    by_name = {u.name: u for u in units}
    check_block_size([by_name[n] for n in plan.int4 + plan.int8], opts.block_size)
    four_config, eight_config = _matmul_config(opts), dynamic_config()
    configs = {u.name: four_config for u in units if u.op_type == "MatMul" and u.name in plan.int4}
    configs |= {u.name: eight_config for u in units if u.op_type == "MatMul" and u.name in plan.int8}
    out = quantize_nbits_mixed(src, units, configs)
    if solved is not None:
        gptq.apply(out, [u for u in units if u.op_type == "MatMul" and u.name in plan.int4], solved)
    return _finish(out, by_name.get(EMBED_UNIT), plan, opts)


def _finish(out: onnx.ModelProto, embed: Unit | None, plan: Plan, opts: Int4Options) -> onnx.ModelProto:
    """The embedding at its precision (an int8 one in int8-dynamic's blocks of 32, so that a tied table
    can be stored once, ``tied.py``), then the TensorRT spelling where asked."""
    if embed is not None and EMBED_UNIT in plan.int4:
        _quantize_embedding(out, embed, opts)
    elif embed is not None and EMBED_UNIT in plan.int8:
        embedding_int8(out, embed, replace(opts, block_size=EIGHT_BIT_BLOCK))
    if opts.fmt == "qdq":
        from radon.export.quantize.block_dq import matmulnbits_to_dq

        matmulnbits_to_dq(out)
    return out


def effective_plan(plan: Plan, opts: Int4Options) -> Plan:
    """The plan as written: an embedding that cannot be block-quantized here (``--no-embedding``, or the
    ``qdq`` format: an int4 ``Gather`` has no standard-op form onnxruntime runs) is float32."""
    if (EMBED_UNIT in plan.int4 or EMBED_UNIT in plan.int8) and (
        not opts.quantize_embedding or opts.fmt == "qdq"
    ):
        return Plan([n for n in plan.int4 if n != EMBED_UNIT], [n for n in plan.int8 if n != EMBED_UNIT],
                    [*plan.fp32, EMBED_UNIT])  # fmt: skip
    return plan
