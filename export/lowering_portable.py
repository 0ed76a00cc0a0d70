"""The ``portable`` lowering: standard ONNX ops only, an explicit banded causal mask (contract 6).

It runs on any ONNX runtime (onnxruntime on any provider, TensorRT's parser, other engines): no
contrib op, opset 17-21. Attention is spelled out as transformers' eager attention is:

    scores = (q / sqrt(hd)) @ k^T + bias      bias = 0 where allowed, MASK_VALUE elsewhere
    out    = softmax(scores) @ v

The band is built from ``attention_mask`` and slot indices, as ``radon.model.band_mask`` builds it:
this step's T queries are the last T of the S = past + T slots, and query slot i sees key slot j iff
j <= i, i - j < W and j is not padding (a query always sees itself, so padded rows stay finite).
Only slot *differences* enter, so a rolling buffer that drops old slots gives the same band; rotary
uses the absolute ``position_ids``. Grouped-query attention groups the query heads as
(kv_heads, heads_per_kv) in a 5-D MatMul instead of repeating K and V.
"""

from __future__ import annotations

import math

from radon.export.lowering_common import (
    MASK_VALUE,
    DecoderGraph,
    declare_io,
    embed,
    linear,
    lm_head,
    mlp,
    past_length,
)
from radon.runtime.contract import PAST_KEY, PAST_VALUE, PRESENT_KEY, PRESENT_VALUE


def band_bias(g: DecoderGraph) -> str:
    """(B, 1, T, S) float32: 0 where query slot i may see key slot j, MASK_VALUE elsewhere."""
    b, spec = g.b, g.spec
    t, s, p = past_length(g)
    q_slot = b.op("Range", [b.squeeze(p, [0]), b.squeeze(s, [0]), b.const(1)], name="mask.q_slots")  # (T,)
    k_slot = b.op("Range", [b.const(0), b.squeeze(s, [0]), b.const(1)], name="mask.k_slots")  # (S,)
    diff = b.op(
        "Sub", [b.unsqueeze(q_slot, [1]), b.unsqueeze(k_slot, [0])], name="mask.diff"
    )  # (T, S): i - j
    allowed = b.op("GreaterOrEqual", [diff, b.const(0)], name="mask.causal")
    if spec.sliding_window is not None:
        inside = b.op("Less", [diff, b.const(spec.sliding_window)], name="mask.window")
        allowed = b.op("And", [allowed, inside], name="mask.band")
    itself = b.op("Equal", [diff, b.const(0)], name="mask.self")
    real = b.unsqueeze(
        b.cast("attention_mask", "bool", name="mask.pad.Cast"), [1, 2], name="mask.pad"
    )  # (B,1,1,S)
    allowed = b.op("And", [b.unsqueeze(allowed, [0, 1]), real], name="mask.and_pad")
    allowed = b.op("Or", [allowed, b.unsqueeze(itself, [0, 1])], name="mask.or_self")  # (B, 1, T, S)
    zero, neg = b.const(0.0, "float32"), b.const(MASK_VALUE["float32"], "float32")
    return b.op("Where", [allowed, zero, neg], name="mask.bias")


def rotary(g: DecoderGraph) -> tuple[str, str]:
    """cos, sin (B, 1, T, head_dim) gathered at the absolute ``position_ids``."""
    import numpy as np

    from radon.export.decoder_spec import rotary_tables

    b = g.b
    cos, sin = rotary_tables(g.spec)
    g.weights["rotary.cos"] = np.concatenate([cos, cos], axis=-1)  # the rotate-half layout
    g.weights["rotary.sin"] = np.concatenate([sin, sin], axis=-1)
    c = b.op("Gather", [g.param("rotary.cos"), "position_ids"], name="rotary.cos.Gather")
    s = b.op("Gather", [g.param("rotary.sin"), "position_ids"], name="rotary.sin.Gather")
    return b.unsqueeze(c, [1], name="rotary.cos.Unsqueeze"), b.unsqueeze(s, [1], name="rotary.sin.Unsqueeze")


def apply_rotary(g: DecoderGraph, x: str, cos: str, sin: str, name: str) -> str:
    """x * cos + rotate_half(x) * sin on (B, H, T, hd), as ``radon.model.apply_rotary``."""
    b = g.b
    half = g.spec.head_dim // 2
    x1, x2 = b.split(x, [half, half], axis=-1, name=f"{name}.Split")
    rotated = b.op("Concat", [b.op("Neg", [x2], name=f"{name}.Neg"), x1], axis=-1, name=f"{name}.Concat")
    return b.op(
        "Add", [b.op("Mul", [x, cos], name=f"{name}.cos"), b.op("Mul", [rotated, sin], name=f"{name}.sin")],
        name=f"{name}.Add",
    )  # fmt: skip


def norm(g: DecoderGraph, x: str, base: str) -> str:
    """LayerNorm (GPT-2) or RMSNorm (Mistral), with statistics in float32."""
    b, eps = g.b, g.spec.norm_eps
    if g.spec.arch == "gpt2":  # LayerNormalization computes in float32 (stash_type=1) for float16 inputs
        return b.op(
            "LayerNormalization", [x, g.param(f"{base}.weight"), g.param(f"{base}.bias")],
            axis=-1, epsilon=eps, name=f"{base}.LayerNormalization",
        )  # fmt: skip
    xf = g.to_f32(
        x
    )  # transformers' MistralRMSNorm: x32 * rsqrt(mean(x32^2) + eps), then weight * x.to(dtype)
    var = b.reduce_mean(b.op("Mul", [xf, xf], name=f"{base}.square"), [-1], name=f"{base}.ReduceMean")
    std = b.op("Sqrt", [b.op("Add", [var, b.const(eps, "float32")], name=f"{base}.eps")], name=f"{base}.Sqrt")
    y = g.from_f32(b.op("Div", [xf, std], name=f"{base}.Div"))
    return b.op("Mul", [y, g.param(f"{base}.weight")], name=f"{base}.Mul")


def project_qkv(g: DecoderGraph, x: str, i: int, rope: tuple[str, str] | None) -> tuple[str, str, str]:
    """q (B, nh, T, hd) and the step's keys/values (B, nkv, S, hd), past included; writes the presents."""
    b, spec = g.b, g.spec
    p = f"layers.{i}.attn"
    nh, nkv, hd = spec.num_attention_heads, spec.num_kv_heads, spec.head_dim
    qkv = linear(g, x, f"{p}.qkv")
    q, k, v = b.split(qkv, [spec.q_size, spec.kv_size, spec.kv_size], axis=-1, name=f"{p}.Split")
    perm = [0, 2, 1, 3]
    q, k, v = (
        b.op("Transpose", [b.reshape(t, [0, 0, heads, hd], name=f"{p}.{n}.Reshape")], perm=perm,
             name=f"{p}.{n}.Transpose")
        for t, n, heads in ((q, "q", nh), (k, "k", nkv), (v, "v", nkv))
    )  # fmt: skip
    if rope is not None:
        q = apply_rotary(g, q, *rope, name=f"{p}.q.rotary")
        k = apply_rotary(g, k, *rope, name=f"{p}.k.rotary")
    keys = b.op(
        "Concat", [PAST_KEY.format(i=i), k], axis=2, outputs=[PRESENT_KEY.format(i=i)], name=f"{p}.k.Concat"
    )
    values = b.op(
        "Concat",
        [PAST_VALUE.format(i=i), v],
        axis=2,
        outputs=[PRESENT_VALUE.format(i=i)],
        name=f"{p}.v.Concat",
    )
    return q, keys, values


def attend(g: DecoderGraph, q: str, keys: str, values: str, bias: str, i: int) -> str:
    """softmax(q k^T / sqrt(hd) + bias) v: (B, nh, T, hd), grouped-query without repeating K/V."""
    b, spec = g.b, g.spec
    p = f"layers.{i}.attn"
    nh, nkv, hd = spec.num_attention_heads, spec.num_kv_heads, spec.head_dim
    q = b.op("Mul", [q, g.scalar(1.0 / math.sqrt(hd))], name=f"{p}.q.scale")
    rep = nh // nkv
    if rep > 1:  # (B, nkv, rep, T, hd) against (B, nkv, 1, S, hd): no repeated K/V
        q = b.reshape(q, [0, nkv, rep, -1, hd], name=f"{p}.q.group")
        keys = b.unsqueeze(keys, [2], name=f"{p}.k.group")
        values = b.unsqueeze(values, [2], name=f"{p}.v.group")
        bias = b.unsqueeze(bias, [1], name=f"{p}.bias.group")
        kt_perm = [0, 1, 2, 4, 3]
    else:
        kt_perm = [0, 1, 3, 2]
    kt = b.op("Transpose", [keys], perm=kt_perm, name=f"{p}.k.T")
    scores = g.to_f32(b.op("MatMul", [q, kt], name=f"{p}.scores"))
    probs = b.op("Softmax", [b.op("Add", [scores, bias], name=f"{p}.mask")], axis=-1, name=f"{p}.Softmax")
    y = b.op("MatMul", [g.from_f32(probs), values], name=f"{p}.context")
    if rep > 1:
        y = b.reshape(y, [0, nh, -1, hd], name=f"{p}.ungroup")
    return y


def project_out(g: DecoderGraph, y: str, i: int) -> str:
    """(B, nh, T, hd) -> (B, T, hidden) through the output projection."""
    b, p = g.b, f"layers.{i}.attn"
    y = b.op("Transpose", [y], perm=[0, 2, 1, 3], name=f"{p}.out.Transpose")
    y = b.reshape(y, [0, 0, g.spec.q_size], name=f"{p}.out.Reshape")
    return linear(g, y, f"{p}.out")


def attention(g: DecoderGraph, x: str, i: int, bias: str, rope: tuple[str, str] | None) -> str:
    """Self-attention of layer ``i`` on (B, T, hidden); writes ``present.{i}.key/value``."""
    q, keys, values = project_qkv(g, x, i, rope)
    return project_out(g, attend(g, q, keys, values, bias, i), i)


def decoder(g: DecoderGraph, attention_fn, bias: str | None) -> None:  # noqa: ANN001 (a lowering's attention)
    """Embeddings, the pre-norm blocks with ``attention_fn(g, x, i, bias, rope)``, the final norm and head."""
    b = g.b
    rope = rotary(g) if g.spec.arch != "gpt2" else None
    x = embed(g)
    for i in range(g.spec.num_layers):
        a = attention_fn(g, norm(g, x, f"layers.{i}.attn_norm"), i, bias, rope)
        x = b.op("Add", [x, a], name=f"layers.{i}.attn.residual")
        m = mlp(g, norm(g, x, f"layers.{i}.mlp_norm"), i)
        x = b.op("Add", [x, m], name=f"layers.{i}.mlp.residual")
    lm_head(g, norm(g, x, "norm"))


def build(g: DecoderGraph) -> dict[str, list[dict]]:
    """Build the whole decoder into ``g.b``; returns the IO table."""
    table = declare_io(g)
    decoder(g, attention, band_bias(g))
    return table
