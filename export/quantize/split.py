"""INT4: the fused attention projection cut in two, so that V's columns can be kept at 8 bits alone.

RADON's graphs compute Q, K and V with one MatMul (``layers.N.attn.qkv``, columns ``[q | k | v]``),
and a MatMulNBits node has one bit width. The mixed INT4 recipe keeps the attention projections at 8 bits
first (``sensitivity.KEEP_FIRST``); measured on SmolLM2-135M, V's columns alone at 8 bits in every layer
do more for the KL than the whole fused projection at 8 bits and cost a fifth of its bytes
(docs/quantization.md, "INT4: V apart"). So, for the mixed INT4 recipe only, each fused projection
whose width is ``(heads + 2 kv_heads) x head_dim`` becomes two Linear units on the same input:

    qkv.MatMul(x, W)  ->  Concat(qk.MatMul(x, W[:, :q+k]), v.MatMul(x, W[:, q+k:]), axis=-1)

The Concat gives back the fused output under its old name, so every reader (the lowering's Split,
a bias Add) is untouched. The two weights are views of the stored one: ``stream.Source`` reads them
from the fp32 file column by column (``Source.derive``), so nothing is held twice. The Fisher pass
runs the artifact as it is (fused); ``fisher_of_halves`` cuts its per-column diagonals the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import helper

FUSED = ".attn.qkv"
QK = ".attn.qk"
V = ".attn.v"


@dataclass(frozen=True)
class Halves:
    """One fused projection cut in two: the unit names and where the V columns start."""

    fused: str  # "layers.3.attn.qkv"
    qk: str  # "layers.3.attn.qk"
    v: str  # "layers.3.attn.v"
    qk_columns: int


def split_qkv(src: Any, architecture: Any) -> dict[str, Halves]:
    """Cut every fused ``*.attn.qkv`` MatMul of ``src`` (a ``stream.Source``) whose weight is ``[K, q+2kv]``
    into the qk and v MatMuls and a Concat, in place; returns fused unit -> ``Halves``. A projection of
    another width (not RADON's fused layout) is left whole."""
    q = architecture.num_attention_heads * architecture.head_dim
    kv = architecture.num_kv_heads * architecture.head_dim
    graph = src.model.graph
    headers = {t.name: t for t in graph.initializer}
    out: dict[str, Halves] = {}
    nodes = list(graph.node)
    del graph.node[:]
    for node in nodes:
        weight = headers.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        base = node.input[1].removesuffix(".weight") if weight is not None else ""
        if weight is None or not base.endswith(FUSED) or list(weight.dims)[1:] != [q + 2 * kv]:
            graph.node.append(node)
            continue
        halves = Halves(base, base.removesuffix(FUSED) + QK, base.removesuffix(FUSED) + V, q + kv)
        k = int(weight.dims[0])
        for name, columns in ((halves.qk, slice(0, q + kv)), (halves.v, slice(q + kv, q + 2 * kv))):
            width = columns.stop - columns.start
            header = graph.initializer.add()  # no data: ``Source.array`` reads it from the stored weight
            header.name, header.data_type = f"{name}.weight", weight.data_type
            header.dims.extend([k, width])
            src.derive(f"{name}.weight", weight, columns)
            graph.node.append(
                helper.make_node(
                    "MatMul", [node.input[0], f"{name}.weight"], [f"{name}.MatMul/out"], name=f"{name}.MatMul"
                )  # fmt: skip
            )
        graph.node.append(
            helper.make_node(
                "Concat",
                [f"{halves.qk}.MatMul/out", f"{halves.v}.MatMul/out"],
                list(node.output),
                name=f"{base}.Concat",
                axis=-1,
            )  # fmt: skip
        )
        out[base] = halves
    used = {i for n in graph.node for i in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return out


def fused_names(names: list[str], splits: dict[str, Halves]) -> list[str]:
    """``names`` with each half replaced by its fused unit (once), for what runs the artifact as it is."""
    back = {h.qk: f for f, h in splits.items()} | {h.v: f for f, h in splits.items()}
    return list(dict.fromkeys(back.get(n, n) for n in names))


def halves_of(names: list[str], splits: dict[str, Halves]) -> list[str]:
    """``names`` (``--keep``) with each fused unit that was cut replaced by its two halves."""
    out: list[str] = []
    for n in names:
        out += [splits[n].qk, splits[n].v] if n in splits else [n]
    return out


def fisher_of_halves(fisher: dict[str, np.ndarray], splits: dict[str, Halves]) -> dict[str, np.ndarray]:
    """The fused units' per-column Fisher diagonals cut at the V columns, under the halves' names."""
    out = {n: f for n, f in fisher.items() if n not in splits}
    for fused, h in splits.items():
        if fused in fisher:
            out[h.qk], out[h.v] = fisher[fused][: h.qk_columns], fisher[fused][h.qk_columns :]
    return out


def describe(splits: dict[str, Halves]) -> dict[str, Any] | None:
    """The recipe's record of the cut (None where nothing was cut)."""
    if not splits:
        return None
    first = next(iter(splits.values()))
    return {"units": len(splits), "qk_columns": first.qk_columns, "as": "qk.MatMul + v.MatMul + Concat"}
