"""SmoothQuant for static INT8: move activation outliers into the weights before calibrating.

Xiao et al., "SmoothQuant: Accurate and Efficient Post-Training Quantization for Large Language Models"
(2022), section 4: a Linear ``Y = X W`` equals ``(X diag(s)^-1) (diag(s) W)`` for any positive ``s``.
Real models' activations carry a few input channels tens to hundreds of times the median (SmolLM2-135M:
the inputs of ``down_proj`` and ``o_proj`` and some hidden channels), which one per-tensor int8 scale
cannot hold; per-channel weight scales can. With

    s_j = max|X_j|^alpha / max_k |W_jk|^(1 - alpha)

the activation's channel j is divided by s_j and the weight's input row j multiplied by it, so the
activation's range is flattened at the price of the weight's (``alpha`` sets the split). The graph
computes the same function in float32 (to rounding): ``1/s`` is folded into what makes ``X``:

- ``norm``: the RMSNorm / LayerNorm whose output ``X`` is (its weight, and its bias, divided by ``s``);
  the fused ``Skip*Normalization`` of the ``ort`` lowering and the portable lowering's ``Mul`` by the
  norm weight alike; used for the attention's QKV, the MLP's fc_in and the LM head;
- ``columns``: the gated MLP's ``silu(gate) * up`` is linear in ``up``, so fc_out's ``1/s`` divides the
  ``up`` columns of fc_in's weight (and bias): exact, and nothing is added to the graph;
- ``mul``: otherwise (the attention output before ``o_proj``, GPT-2's FastGelu), a ``Mul`` by ``1/s``
  before the ``MatMul``: the Q/DQ pair then quantizes the Mul's output, per tensor as before.

The per-channel maxima of every unit's input are measured on the calibration feeds (prefill and
decode) of the fp32 graph (``input_absmax``); the weights are transformed as they are read
(``Smoothed.array``), one at a time, so smoothing holds no second copy of the model. The factors are
saved beside the calibration table (``smoothing.npz``), so ``radon quantize --calibration DIR`` applies
exactly the smoothing that the table was measured on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from radon.errors import RadonError
from radon.export.quantize.graph import Unit
from radon.export.quantize.reader import statistics_session_options
from radon.export.quantize.stream import Source

log = logging.getLogger(__name__)

SMOOTHING_FILE = "smoothing.npz"
# s is clipped to [MIN_FACTOR, MAX_FACTOR]: a channel that never fires (max |X| = 0) or a weight row of
# zeros would otherwise give 0 or inf
MIN_FACTOR, MAX_FACTOR = 1e-4, 1e4
# the ops whose first output is a normalized activation times a per-channel weight (and bias): the
# index of that weight and bias among their inputs
NORMS: dict[str, tuple[int, int | None]] = {
    "SkipSimplifiedLayerNormalization": (2, None),
    "SkipLayerNormalization": (2, 3),
    "SimplifiedLayerNormalization": (1, None),
    "LayerNormalization": (1, 2),
    "RMSNormalization": (1, None),
}


@dataclass
class Fold:
    """Where a unit's ``1/s`` goes: ``kind`` norm | columns | mul, and what it changes."""

    kind: str
    tensors: list[str]  # the initializers divided by s (norm weight and bias; fc_in's weight and bias)
    offset: int = 0  # columns: the first of the producer's output columns that X's channels are


@dataclass
class Smoothing:
    """The smoothing of a graph: alpha, and for each smoothed unit its factors ``s`` and their fold."""

    alpha: float
    factors: dict[str, np.ndarray] = field(default_factory=dict)  # unit -> s, (in,) float32
    folds: dict[str, Fold] = field(default_factory=dict)
    act_max: dict[str, np.ndarray] = field(default_factory=dict)  # unit -> max |X| per channel, before

    def spread(self, unit: str) -> float:
        """The smoothed input's largest channel range over its median one: a per-tensor int8 scale leaves
        the median channel about 127 / spread levels."""
        x = self.act_max[unit] / self.factors[unit]
        return float(x.max() / max(float(np.median(x)), 1e-12))

    def outliers(self, max_spread: float) -> dict[str, float]:
        """Units whose smoothed input still spreads past ``max_spread`` (-> their spread), worst first."""
        got = {u: self.spread(u) for u in self.factors if u in self.act_max}
        return {u: round(v, 1) for u, v in sorted(got.items(), key=lambda kv: -kv[1]) if v > max_spread}

    def save(self, path: Path) -> None:
        meta = {u: {"kind": f.kind, "tensors": f.tensors, "offset": f.offset} for u, f in self.folds.items()}
        np.savez(path, **{f"s:{u}": s for u, s in self.factors.items()}, **{f"x:{u}": x for u, x in self.act_max.items()},
                 meta=np.array(json.dumps({"alpha": self.alpha, "folds": meta})))  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> Smoothing:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            factors = {k[2:]: z[k].astype(np.float32) for k in z.files if k.startswith("s:")}
            act_max = {k[2:]: z[k].astype(np.float32) for k in z.files if k.startswith("x:")}
        folds = {u: Fold(f["kind"], list(f["tensors"]), int(f["offset"])) for u, f in meta["folds"].items()}
        return cls(float(meta["alpha"]), factors, folds, act_max)

    def summary(self) -> dict[str, Any]:
        """What the manifest records: alpha, and per unit the fold and the range of its factors."""
        return {
            "alpha": self.alpha,
            "method": "SmoothQuant: s = max|X|^alpha / max|W|^(1 - alpha) per input channel",
            "units": {
                u: {"fold": self.folds[u].kind, "s_min": round(float(s.min()), 4), "s_max": round(float(s.max()), 4)}
                | ({"spread": round(self.spread(u), 1)} if u in self.act_max else {})
                for u, s in self.factors.items()
            },
        }  # fmt: skip


def factors(act_max: np.ndarray, w_max: np.ndarray, alpha: float) -> np.ndarray:
    """SmoothQuant's per-channel ``s = max|X|^alpha / max|W|^(1 - alpha)``, clipped to a safe range."""
    a = np.maximum(act_max.astype(np.float64), 1e-8)
    w = np.maximum(w_max.astype(np.float64), 1e-8)
    return np.clip(a**alpha / w ** (1.0 - alpha), MIN_FACTOR, MAX_FACTOR).astype(np.float32)


def _readers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """tensor -> the nodes that read its values (a ``Shape`` reads only its shape, which smoothing keeps)."""
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        if n.op_type == "Shape":
            continue
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def plan_folds(src: Source, units: Sequence[Unit]) -> dict[str, Fold]:
    """For each MatMul unit, where its ``1/s`` can be folded (see the module docstring)."""
    model = src.model
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    readers = _readers(model)
    outputs = {o.name for o in model.graph.output}
    by_weight = {u.weight: u for u in units}
    folds: dict[str, Fold] = {}
    for u in units:
        if u.op_type != "MatMul":
            continue
        node = next(n for n in model.graph.node if n.name == u.node)
        x = node.input[0]
        sole = len(readers.get(x, [])) == 1 and x not in outputs
        # through a Slice over positions only (the ort lowering's logits_to_keep before the head)
        prod = producer.get(x)
        while sole and prod is not None and _position_slice(src, prod, inits):
            x = prod.input[0]
            sole = len(readers.get(x, [])) == 1 and x not in outputs
            prod = producer.get(x)
        folds[u.name] = (
            (_norm_fold(prod, x, inits, readers) if sole else None)
            or (_columns_fold(src, prod, producer, inits, readers, by_weight) if sole else None)
            or Fold("mul", [])
        )
    return folds


def _position_slice(src: Source, node: onnx.NodeProto, inits: dict[str, TensorProto]) -> bool:
    """A Slice along the batch or position axes of a (B, T, C) activation: it leaves every channel whole."""
    if node.op_type != "Slice" or len(node.input) < 4 or node.input[3] not in inits:
        return False
    return all(int(a) in (0, 1) for a in src.array(node.input[3]))


def _only_reader(name: str, node: onnx.NodeProto, readers: dict[str, list[onnx.NodeProto]]) -> bool:
    return [n.name for n in readers.get(name, [])] == [node.name]


def _norm_fold(node: onnx.NodeProto | None, x: str, inits: dict[str, TensorProto],
               readers: dict[str, list[onnx.NodeProto]]) -> Fold | None:  # fmt: skip
    if node is None or node.output[0] != x:
        return None
    if node.op_type in NORMS:
        wi, bi = NORMS[node.op_type]
        names = [node.input[wi]] + (
            [node.input[bi]] if bi is not None and len(node.input) > bi and node.input[bi] else []
        )
    elif node.op_type == "Mul" and any(
        i in inits and i.endswith(".weight") and len(inits[i].dims) == 1 for i in node.input
    ):
        names = [next(i for i in node.input if i in inits and i.endswith(".weight"))]  # the portable RMSNorm
    else:
        return None
    if not all(n in inits and _only_reader(n, node, readers) for n in names):
        return None
    return Fold("norm", names)


def _columns_fold(src: Source, node: onnx.NodeProto | None, producer: dict[str, onnx.NodeProto], inits: dict[str, TensorProto],
                  readers: dict[str, list[onnx.NodeProto]], by_weight: dict[str, Unit]) -> Fold | None:  # fmt: skip
    """``X = act(gate) * up`` with ``gate, up = Split(x @ W (+ b))``: divide W's (and b's) ``up`` columns."""
    if node is None or node.op_type != "Mul":
        return None
    for up in node.input:
        split = producer.get(up)
        if split is None or split.op_type != "Split" or not _only_reader(up, node, readers):
            continue
        sizes = _split_sizes(src, split, inits)
        k = list(split.output).index(up)
        if sizes is None or k == 0:  # the first output is the gate, which the activation reads
            continue
        h, bias = split.input[0], None
        prod = producer.get(h)
        if prod is not None and prod.op_type == "Add":  # a Linear's bias
            bias = next((i for i in prod.input if i in inits), None)
            prod = next((producer.get(i) for i in prod.input if i not in inits), None)
        if prod is None or prod.op_type != "MatMul" or prod.input[1] not in by_weight:
            continue
        return Fold("columns", [prod.input[1]] + ([bias] if bias else []), int(sum(sizes[:k])))
    return None


def _split_sizes(src: Source, split: onnx.NodeProto, inits: dict[str, TensorProto]) -> list[int] | None:
    if len(split.input) > 1 and split.input[1] in inits:
        return [int(v) for v in src.array(split.input[1])]
    for a in split.attribute:
        if a.name == "split":
            return list(a.ints)
    return None


class Smoothed(Source):
    """``base``'s graph with a ``Smoothing`` applied: the weights are scaled as they are read, and a
    unit folded as ``mul`` gets its ``Mul`` node (and the ``1/s`` initializer, inline) in the graph."""

    def __init__(self, base: Source, smoothing: Smoothing) -> None:
        self.model = onnx.ModelProto()  # a copy of the skeleton (no weights): base stays unsmoothed
        self.model.CopyFrom(base.model)
        self.index, self.tied, self._derived = base.index, base.tied, base._derived
        self.smoothing = smoothing
        # initializer -> [(axis, offset, divide?, s)] applied on read: rows of a unit's weight times s;
        # a norm's weight, or fc_in's up columns, divided by s
        self._ops: dict[str, list[tuple[int, int, bool, np.ndarray]]] = {}
        nodes = {n.name: n for n in self.model.graph.node}
        units = {n.input[1].removesuffix(".weight"): n for n in nodes.values() if n.op_type == "MatMul"}
        for name, s in smoothing.factors.items():
            fold = smoothing.folds[name]
            matmul = units.get(name)
            if matmul is None:
                raise RadonError(
                    f"smoothing: the graph has no unit {name!r} (smoothing made for another model?)"
                )
            self._ops.setdefault(matmul.input[1], []).append((0, 0, False, s))
            if fold.kind == "mul":
                self._insert_mul(matmul, name, s)
            for t in fold.tensors:
                self._ops.setdefault(t, []).append((0 if fold.kind == "norm" or t != fold.tensors[0] else 1,
                                                    fold.offset, True, s))  # fmt: skip

    def _insert_mul(self, matmul: onnx.NodeProto, name: str, s: np.ndarray) -> None:
        g = self.model.graph
        inv = numpy_helper.from_array((1.0 / s).astype(np.float32), f"{name}.smooth_inv")
        g.initializer.append(inv)
        x = matmul.input[0]
        mul = helper.make_node("Mul", [x, inv.name], [f"{name}.smooth/out"], name=f"{name}.smooth.Mul")
        nodes = list(g.node)
        at = next(i for i, n in enumerate(nodes) if n.name == matmul.name)
        nodes[at].input[0] = mul.output[0]
        nodes.insert(at, mul)
        del g.node[:]
        g.node.extend(nodes)

    def array(self, name: str) -> np.ndarray:
        a = super().array(name)
        for axis, offset, divide, s in self._ops.get(name, []):
            a = np.array(a, dtype=np.float32)  # a writable copy
            f = 1.0 / s if divide else s
            if a.ndim == 1:  # a norm's weight or bias, or fc_in's bias: channels offset.. of it
                a[offset : offset + s.size] *= f
            elif axis == 0:  # the input rows of an (in, out) weight
                a *= f[:, None]
            else:  # fc_in's up columns
                a[:, offset : offset + s.size] *= f[None, :]
        return a


def weight_row_absmax(src: Source, units: Sequence[Unit]) -> dict[str, np.ndarray]:
    """max_k |W_jk| for each input row j of every MatMul unit's (in, out) weight, read one at a time."""
    return {u.name: np.abs(src.array(u.weight)).max(axis=1) for u in units if u.op_type == "MatMul"}


def input_absmax(src: Source, units: Sequence[Unit], feeds: Sequence[dict[str, np.ndarray]], work: Path,
                 threads: int | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """Per-channel max |X| of every MatMul unit's input over ``feeds``, on the graph of ``src``.

    The graph is written to ``work`` with those inputs as extra outputs (weights streamed a tensor at a
    time, then mapped by onnxruntime, which runs without prepacking: one copy of the weights).
    """
    import onnxruntime as ort

    model = onnx.ModelProto()
    model.CopyFrom(src.model)
    nodes = {n.name: n for n in model.graph.node}
    wanted = {u.name: nodes[u.node].input[0] for u in units if u.op_type == "MatMul"}
    have = {o.name for o in model.graph.output}
    for x in dict.fromkeys(wanted.values()):
        if x not in have:
            model.graph.output.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, None))
    del model.graph.value_info[:]
    path = src.write(work, "smooth_stats.onnx", model)
    del model
    opts = statistics_session_options(threads)
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = list(dict.fromkeys(wanted.values()))
    inputs = {i.name for i in session.get_inputs()}
    maxima: dict[str, np.ndarray] = {}
    for feed in feeds:
        got = session.run(names, {k: v for k, v in feed.items() if k in inputs})
        for n, v in zip(names, got):
            m = np.abs(v.reshape(-1, v.shape[-1])).max(axis=0) if v.size else None
            if m is not None:
                maxima[n] = np.maximum(maxima[n], m) if n in maxima else m
        del got
    del session
    for f in work.glob("smooth_stats.onnx*"):
        f.unlink()
    return {u: maxima[x] for u, x in wanted.items() if x in maxima}


def check_alpha(alpha: float) -> None:
    """``--smooth-alpha``: in (0, 1), or 0 for no smoothing."""
    if not (alpha == 0.0 or 0.0 < alpha < 1.0):
        raise RadonError(f"--smooth-alpha: must be in (0, 1), or 0 for no smoothing; got {alpha}")


def plan_smoothing(src: Source, units: Sequence[Unit], keep: Sequence[str], feeds: Sequence[dict[str, np.ndarray]],
                   alpha: float, work: Path, threads: int | None = None) -> Smoothing:  # fmt: skip
    """The smoothing of every quantized MatMul unit (not in ``keep``) at ``alpha``, measured on ``feeds``."""
    check_alpha(alpha)
    chosen = [u for u in units if u.op_type == "MatMul" and u.name not in set(keep)]
    folds = plan_folds(src, chosen)
    act = input_absmax(src, chosen, feeds, work, threads)
    w = weight_row_absmax(src, chosen)
    out = Smoothing(alpha)
    for u in chosen:
        out.factors[u.name] = factors(act[u.name], w[u.name], alpha)
        out.folds[u.name] = folds[u.name]
        out.act_max[u.name] = act[u.name]
    kinds = [f.kind for f in out.folds.values()]
    log.info("smoothing (alpha %.2f): %d units; folded into norms %d, fc_in columns %d, Mul nodes %d", alpha,
             len(kinds), kinds.count("norm"), kinds.count("columns"), kinds.count("mul"))  # fmt: skip
    return out


def smoothed_source(src: Source, smoothing: Smoothing | None) -> Source:
    """``src`` with ``smoothing`` applied (``src`` itself without one)."""
    return src if smoothing is None or not smoothing.factors else Smoothed(src, smoothing)
