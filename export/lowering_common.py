"""Pieces both attention lowerings share: graph IO, embeddings, Linear layers, MLP activations, LM head.

A lowering (``lowering_portable``, ``lowering_ort``; a ``trt-plugin`` lowering will be a third) decides
how attention, norms and residuals are expressed; everything else is built here so that the two graphs
differ only where they must. Precision is decided at build time: weights are stored in the graph's
float dtype, statistics that overflow float16 (norm variance, softmax) are computed in float32, and
``logits`` are always float32 so that sampling and parity see the same numbers on every precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from radon.errors import RadonError
from radon.export.decoder_spec import DecoderSpec, WeightTable, io_table
from radon.export.graph_builder import GraphBuilder
from radon.runtime.contract import LOGITS_TO_KEEP  # the initializer the runtime replaces (transformers' name)

PRECISIONS = {"fp32": "float32", "fp16": "float16"}
GELU_TANH_C = math.sqrt(2.0 / math.pi)  # transformers' NewGELUActivation / torch gelu(approximate="tanh")
# Added to the scores of masked keys. Finite, not -inf, so a row whose keys are all padding stays finite
# (its output is unused, but a NaN there would reach real rows through 0 * NaN in later layers). float16
# leaves headroom below its lowest value (-65504) so that bias + score cannot round to -inf.
MASK_VALUE = {"float32": float(np.finfo(np.float32).min), "float16": -30000.0}
# The tied LM head's nodes, in graph order (``tied_head``): flatten, Gemm(transB=1) on the embedding,
# the (B, T) shape, the (B, T, vocab) target, unflatten.
TIED_HEAD_NODES = (
    "lm_head.flatten",
    "lm_head.Gemm",
    "lm_head.Shape",
    "lm_head.shape.Concat",
    "lm_head.unflatten",
)
# ``logits_to_keep``'s value in the graph: more positions than any sequence, so every position's logits
# (T - KEEP_ALL cannot overflow for T >= 0)
KEEP_ALL = int(np.iinfo(np.int64).max)


@dataclass
class DecoderGraph:
    """The state of one build: the builder, the architecture, the weights, the float dtype."""

    b: GraphBuilder
    spec: DecoderSpec
    weights: WeightTable  # float32, keyed by initializer name, made when read
    precision: str  # "fp32" | "fp16"
    used: set[str] = field(default_factory=set)

    @property
    def fdt(self) -> str:
        """The graph's float dtype name: float32 or float16."""
        return PRECISIONS[self.precision]

    def param(self, name: str) -> str:
        """The initializer ``name`` in the graph's float dtype (added on first use)."""
        if name not in self.used:
            if name not in self.weights:
                raise RadonError(f"export: weight {name} is missing from the checkpoint")
            self.b.weight(name, self.weights[name].astype(self.fdt, copy=False))
            self.used.add(name)
        return name

    def has(self, name: str) -> bool:
        return name in self.weights

    def scalar(self, value: float, dtype: str | None = None) -> str:
        return self.b.const(np.array(value), dtype or self.fdt)

    def to_f32(self, x: str) -> str:
        return x if self.fdt == "float32" else self.b.cast(x, "float32")

    def from_f32(self, x: str) -> str:
        return x if self.fdt == "float32" else self.b.cast(x, self.fdt)


def declare_io(g: DecoderGraph) -> dict[str, list[dict]]:
    """Add contract 4's graph inputs and outputs; returns the IO table the manifest records."""
    table = io_table(g.spec, g.fdt)
    for t in table["inputs"]:
        g.b.add_input(t["name"], t["dtype"], t["shape"])
    for t in table["outputs"]:
        g.b.add_output(t["name"], t["dtype"], t["shape"])
    return table


def embed(g: DecoderGraph) -> str:
    """Token embeddings (+ GPT-2's learned positions): (B, T, hidden)."""
    b = g.b
    x = b.op("Gather", [g.param("embed_tokens.weight"), "input_ids"], name="embed_tokens.Gather")
    if g.spec.arch == "gpt2":
        pos = b.op("Gather", [g.param("wpe.weight"), "position_ids"], name="wpe.Gather")
        x = b.op("Add", [x, pos], name="embed.Add")
    return x


def linear(g: DecoderGraph, x: str, base: str, *, bias: bool = True) -> str:
    """``x @ W (+ b)`` as one MatMul on the initializer ``{base}.weight`` (quantizers find it by name)."""
    y = g.b.op("MatMul", [x, g.param(f"{base}.weight")], name=f"{base}.MatMul")
    if bias and g.has(f"{base}.bias"):
        y = g.b.op("Add", [y, g.param(f"{base}.bias")], name=f"{base}.Add")
    return y


def activation(g: DecoderGraph, x: str, name: str) -> str:
    """The MLP non-linearity in standard ops (GELU tanh/erf, SiLU, ReLU)."""
    b, act = g.b, g.spec.activation_function
    if act in ("gelu_new", "gelu_pytorch_tanh"):  # 0.5 x (1 + tanh(c (x + 0.044715 x^3)))
        x3 = b.op("Mul", [b.op("Mul", [x, x]), x])
        inner = b.op("Mul", [b.op("Add", [x, b.op("Mul", [x3, g.scalar(0.044715)])]), g.scalar(GELU_TANH_C)])
        t = b.op("Add", [b.op("Tanh", [inner]), g.scalar(1.0)])
        return b.op("Mul", [b.op("Mul", [x, t]), g.scalar(0.5)], name=name)
    if act == "gelu":  # 0.5 x (1 + erf(x / sqrt 2))
        e = b.op("Add", [b.op("Erf", [b.op("Mul", [x, g.scalar(1 / math.sqrt(2.0))])]), g.scalar(1.0)])
        return b.op("Mul", [b.op("Mul", [x, e]), g.scalar(0.5)], name=name)
    if act == "silu":
        return b.op("Mul", [x, b.op("Sigmoid", [x])], name=name)
    if act == "relu":
        return b.op("Relu", [x], name=name)
    raise RadonError(f"export: activation {act!r} has no ONNX lowering")


def mlp(g: DecoderGraph, x: str, i: int, *, out_bias: bool = True) -> str:
    """fc_out(act(fc_in(x))) or Mistral's fc_out(silu(gate) * up); ``out_bias=False`` leaves fc_out's bias out."""
    b = g.b
    h = linear(g, x, f"layers.{i}.mlp.fc_in")
    if g.spec.arch != "gpt2":  # fc_in holds [gate | up]
        gate, up = b.split(h, [g.spec.intermediate_size] * 2, axis=-1, name=f"layers.{i}.mlp.Split")
        h = b.op("Mul", [activation(g, gate, f"layers.{i}.mlp.act"), up], name=f"layers.{i}.mlp.gate.Mul")
    else:
        h = activation(g, h, f"layers.{i}.mlp.act")
    return linear(g, h, f"layers.{i}.mlp.fc_out", bias=out_bias)


def keep_last_positions(g: DecoderGraph, x: str) -> str:
    """``x`` (B, T, hidden) cut to its last ``logits_to_keep`` positions (all of them when that is >= T).

    ``logits_to_keep`` is an int64 [1] initializer, not a graph input: an initializer that is also a
    graph input (an "overridable initializer") makes onnxruntime print a warning on every load, in every
    tool. It holds ``KEEP_ALL``, so whoever opens the graph as it is (parity, calibration, optimum,
    onnxruntime-genai, the Triton decoder) gets contract 4's full ``logits`` (B, T, vocab). The runtime
    builds its session with 1 in its place (``SessionOptions.add_initializer``;
    ``runtime.session.DecoderSession(logits_to_keep=1)``), so its prefill runs the LM head on the last
    position only: about a fifth of a 100M model's prefill, and (B, T, vocab) floats never exist.

    onnxruntime's graph optimizations read the *model's* value of a replaced initializer, so the value
    and the nodes are chosen so that none applies: ``Max(T - k, 0)`` reads the dynamic T (no constant
    folding), and ``T - k`` is not ``T - 0`` (with 0 as the default, ``NoopElimination`` removed the
    ``Sub`` at load and the session's value was never read).
    """
    b = g.b
    b.weight(LOGITS_TO_KEEP, np.array([KEEP_ALL], np.int64))
    t = b.dim(x, 1, name="logits_to_keep.seq_len")
    rest = b.op("Sub", [t, LOGITS_TO_KEEP], name="logits_to_keep.Sub")  # T - k: negative when k > T
    start = b.op("Max", [rest, b.const([0])], name="logits_to_keep.start")
    return b.op("Slice", [x, start, t, b.const([1])], name="logits_to_keep.Slice")


def lm_head(g: DecoderGraph, x: str, *, logits_to_keep: bool = False) -> None:
    """Logits (B, T, vocab) in float32, written to the graph output ``logits``; ``logits_to_keep`` adds
    the initializer that lets a session run the LM head on the last positions only (``keep_last_positions``).
    A head tied to the embedding reads the embedding table itself (``tied_head``)."""
    if logits_to_keep:
        x = keep_last_positions(g, x)
    if g.spec.tie_word_embeddings:
        y = tied_head(g, x)
    else:
        y = g.b.op("MatMul", [x, g.param("lm_head.weight")], name="lm_head.MatMul")
    if g.fdt == "float32":
        g.b.op("Identity", [y], outputs=["logits"], name="logits.Identity")
    else:
        g.b.op("Cast", [y], outputs=["logits"], to=1, name="logits.Cast")


def tied_head(g: DecoderGraph, x: str) -> str:
    """``x @ E^T`` on the embedding table ``E`` itself (vocab, hidden): a tied model stores one table.

    ``Gemm(transB=1)`` reads E as it is, so (B, T, hidden) is flattened to 2-D around it
    (``TIED_HEAD_NODES``; the quantizers rewrite this back to a MatMul on a copy, ``untie_lm_head``).
    A ``MatMul`` on ``Transpose(E)`` would be constant-folded by onnxruntime into a second table at load.
    """
    b = g.b
    n_flat, n_gemm, n_shape, n_concat, n_unflat = TIED_HEAD_NODES
    flat = b.reshape(x, [-1, g.spec.hidden_size], name=n_flat)
    y = b.op("Gemm", [flat, g.param("embed_tokens.weight")], transB=1, name=n_gemm)
    bt = b.op("Shape", [x], end=2, name=n_shape)  # (B, T)
    shape = b.op("Concat", [bt, b.const([g.spec.vocab_size])], axis=0, name=n_concat)
    return b.reshape(y, shape, name=n_unflat)


def past_length(g: DecoderGraph) -> tuple[str, str, str]:
    """(T, S, P) as int64 [1] tensors: new tokens, keys this step (mask width), past positions."""
    b = g.b
    t = b.dim("input_ids", 1, name="seq_len.Shape")
    s = b.dim("attention_mask", 1, name="total_len.Shape")
    p = b.op("Sub", [s, t], name="past_len.Sub")
    return t, s, p


def padding_bias(g: DecoderGraph, dtype: str, name: str) -> str:
    """(B, 1, 1, S): 0 where ``attention_mask`` is 1, ``MASK_VALUE[dtype]`` where it is 0."""
    b = g.b
    m = b.cast("attention_mask", dtype, name=f"{name}.Cast")
    neg = b.op(
        "Mul", [b.op("Sub", [b.const(1.0, dtype), m]), b.const(MASK_VALUE[dtype], dtype)], name=f"{name}.Mul"
    )
    return b.unsqueeze(neg, [1, 2], name=f"{name}.Unsqueeze")
