"""The ``ort`` lowering: onnxruntime's fused contrib ops, the fast path on onnxruntime CPU and CUDA.

Modelled on onnxruntime-genai's builder, with the window kept and the positions right:

- attention is one ``com.microsoft.GroupQueryAttention`` per layer (``num_heads``, ``kv_num_heads``,
  ``local_window_size = W``: it attends to W keys, i - W < j <= i, as transformers' Mistral does);
- norms and residual adds are fused: ``SkipSimplifiedLayerNormalization`` (Mistral) and
  ``SkipLayerNormalization`` (GPT-2) after every attention and MLP, with the output projections' biases
  (GPT-2's, or Llama's with ``attention_bias`` / ``mlp_bias``) in the Skip op's ``bias`` input; GPT-2's
  GELU is ``FastGelu`` with the fc_in bias fused; q/k/v biases (Qwen2, Llama) are an Add after the
  packed QKV MatMul;
- rotary is applied by ``com.microsoft.RotaryEmbedding`` on q and k from the absolute ``position_ids``
  (``rotary="outside"``, the default) or inside GroupQueryAttention (``rotary="inside"``, given the same
  ``position_ids``). docs/export.md records why outside is the default.

The LM head reads only the last ``logits_to_keep`` positions when a session puts N in place of that
initializer, which holds "every position" (``lowering_common.keep_last_positions``; the runtime's
generator holds 1).

GroupQueryAttention's own padding model is right padding (``seqlens_k`` = real tokens - 1). RADON's
runtime left-pads, and the contract-3 rolling buffer holds slots, not token counts, so ``seqlens_k`` is
set to S - 1 for every row (every slot of the buffer is addressed) and padding is masked with
``attention_bias`` built from ``attention_mask``. Positions never come from ``seqlens_k``.
"""

from __future__ import annotations

import numpy as np

from radon.errors import RadonError
from radon.export.decoder_spec import rotary_tables
from radon.export.lowering_common import (
    DecoderGraph,
    declare_io,
    embed,
    linear,
    lm_head,
    mlp,
    padding_bias,
    past_length,
)
from radon.runtime.contract import PAST_KEY, PAST_VALUE, PRESENT_KEY, PRESENT_VALUE

ROTARY_MODES = ("outside", "inside")
GQA_HEAD_MULTIPLE = 16  # onnxruntime's CPU GroupQueryAttention: "head_size shall be a multiple of 16"


def check_supported(g: DecoderGraph) -> None:
    """Refuse shapes GroupQueryAttention rejects at run time, before anything is built."""
    if g.spec.head_dim % GQA_HEAD_MULTIPLE:
        raise RadonError(
            f"--attention ort: GroupQueryAttention needs head_dim to be a multiple of {GQA_HEAD_MULTIPLE}, "
            f"this model has {g.spec.head_dim}; use --attention portable"
        )


def _common_inputs(g: DecoderGraph) -> tuple[str, str, str]:
    """seqlens_k (B,) int32 = S - 1, total_sequence_length () int32 = S, attention_bias (B, 1, T, S)."""
    b = g.b
    t, s, _ = past_length(g)
    batch = b.dim("input_ids", 0, name="batch.Shape")
    s32 = b.cast(s, "int32", name="total_len.Cast")
    seqlens = b.op(
        "Expand", [b.op("Sub", [s32, b.const([1], "int32")], name="seqlens_k.Sub"), batch], name="seqlens_k"
    )
    total = b.squeeze(s32, [0], name="total_sequence_length")
    bias = padding_bias(g, g.fdt, "attention_bias")  # (B, 1, 1, S)
    shape = b.op("Concat", [batch, b.const([1]), t, s], axis=0, name="attention_bias.shape")
    return seqlens, total, b.op("Expand", [bias, shape], name="attention_bias")


def _first_norm(g: DecoderGraph, x: str, base: str) -> str:
    """The first layer's norm, which has no residual to fuse, as the fused op all the same: norm(x + x)
    with epsilon 4·eps.

    onnxruntime's ``SimplifiedLayerNormalization`` lives in the ai.onnx domain without being a standard
    op, which onnx's checker rejects, and the portable spelling costs five ops per step. RMSNorm and
    LayerNorm do not see a scale: norm(2x) with 4·eps is norm(x) with eps, and in IEEE arithmetic
    exactly so (2x, the mean of (2x)² = 4·mean(x²), 4·eps and sqrt(4y) = 2·sqrt(y) are exact).
    """
    b, eps = g.b, float(np.float32(g.spec.norm_eps)) * 4
    outs = [f"{base}/out", "", "", ""]
    if g.spec.arch == "gpt2":
        ins = [x, x, g.param(f"{base}.weight"), g.param(f"{base}.bias")]
        return b.ms("SkipLayerNormalization", ins, outputs=outs, epsilon=eps, name=f"{base}.SkipLayerNorm")[0]
    ins = [x, x, g.param(f"{base}.weight")]
    return b.ms("SkipSimplifiedLayerNormalization", ins, outputs=outs, epsilon=eps,
                name=f"{base}.SkipSimplifiedLayerNorm")[0]  # fmt: skip


def _skip_norm(
    g: DecoderGraph, y: str, residual: str, base: str, bias: str | None, last: bool = False
) -> tuple[str, str]:
    """norm(y + residual (+ bias)) and the new residual y + residual (+ bias), in one fused op."""
    b, eps = g.b, g.spec.norm_eps
    outs = [f"{base}/out", "", "", "" if last else f"{base}/residual"]
    if g.spec.arch == "gpt2":
        ins = [y, residual, g.param(f"{base}.weight"), g.param(f"{base}.bias")] + (
            [g.param(bias)] if bias else []
        )
        out, _, _, res = b.ms(
            "SkipLayerNormalization", ins, outputs=outs, epsilon=eps, name=f"{base}.SkipLayerNorm"
        )
    else:
        ins = [y, residual, g.param(f"{base}.weight")] + ([g.param(bias)] if bias else [])
        out, _, _, res = b.ms(
            "SkipSimplifiedLayerNormalization",
            ins,
            outputs=outs,
            epsilon=eps,
            name=f"{base}.SkipSimplifiedLayerNorm",
        )
    return out, res


def _attention(
    g: DecoderGraph, x: str, i: int, common: tuple[str, str, str], rotary: str, tables: tuple[str, str] | None
) -> str:
    """GroupQueryAttention of layer ``i`` on (B, T, hidden) -> (B, T, q_size), before the out projection."""
    b, spec = g.b, g.spec
    p = f"layers.{i}.attn"
    seqlens, total, bias = common
    qkv = linear(g, x, f"{p}.qkv")
    cos, sin = tables if tables is not None else ("", "")
    attrs = {
        "num_heads": spec.num_attention_heads,
        "kv_num_heads": spec.num_kv_heads,
        "local_window_size": spec.sliding_window if spec.sliding_window is not None else -1,
    }
    past = [PAST_KEY.format(i=i), PAST_VALUE.format(i=i)]
    outs = [f"{p}/context", PRESENT_KEY.format(i=i), PRESENT_VALUE.format(i=i)]
    if tables is not None and rotary == "inside":  # packed QKV; rotary from position_ids inside the op
        ins = [qkv, "", "", *past, seqlens, total, cos, sin, "position_ids", bias]
        out = b.ms(
            "GroupQueryAttention",
            ins,
            outputs=outs,
            do_rotary=1,
            rotary_interleaved=0,
            name=f"{p}.GQA",
            **attrs,
        )
        return out[0]
    if tables is None:  # GPT-2: no rotary; packed QKV
        ins = [qkv, "", "", *past, seqlens, total, "", "", "", bias]
        return b.ms("GroupQueryAttention", ins, outputs=outs, name=f"{p}.GQA", **attrs)[0]
    q, k, v = b.split(qkv, [spec.q_size, spec.kv_size, spec.kv_size], axis=-1, name=f"{p}.Split")
    q = b.ms("RotaryEmbedding", [q, "position_ids", cos, sin], num_heads=spec.num_attention_heads,
             rotary_embedding_dim=spec.head_dim, interleaved=0, name=f"{p}.q.RotaryEmbedding")  # fmt: skip
    k = b.ms("RotaryEmbedding", [k, "position_ids", cos, sin], num_heads=spec.num_kv_heads,
             rotary_embedding_dim=spec.head_dim, interleaved=0, name=f"{p}.k.RotaryEmbedding")  # fmt: skip
    ins = [q, k, v, *past, seqlens, total, "", "", "", bias]
    return b.ms("GroupQueryAttention", ins, outputs=outs, name=f"{p}.GQA", **attrs)[0]


def _bias(g: DecoderGraph, base: str) -> str | None:
    """A projection's bias, which the next Skip norm adds (GPT-2's; Llama's with attention/mlp bias)."""
    return f"{base}.bias" if g.has(f"{base}.bias") else None


def _mlp_ort(g: DecoderGraph, x: str, i: int) -> str:
    """The MLP up to fc_out's MatMul; fc_out's bias, if any, is left to the next Skip norm."""
    b = g.b
    if g.spec.arch == "gpt2" and g.spec.activation_function in ("gelu_new", "gelu_pytorch_tanh"):
        h = b.op("MatMul", [x, g.param(f"layers.{i}.mlp.fc_in.weight")], name=f"layers.{i}.mlp.fc_in.MatMul")
        h = b.ms("FastGelu", [h, g.param(f"layers.{i}.mlp.fc_in.bias")], name=f"layers.{i}.mlp.FastGelu")
        return b.op(
            "MatMul", [h, g.param(f"layers.{i}.mlp.fc_out.weight")], name=f"layers.{i}.mlp.fc_out.MatMul"
        )
    return mlp(g, x, i, out_bias=False)


def build(g: DecoderGraph, rotary: str = "outside") -> dict[str, list[dict]]:
    """Build the whole decoder into ``g.b``; returns the IO table."""
    if rotary not in ROTARY_MODES:
        raise RadonError(f"rotary: must be one of {', '.join(ROTARY_MODES)}, got {rotary!r}")
    check_supported(g)
    b, spec = g.b, g.spec
    gpt2 = spec.arch == "gpt2"
    table = declare_io(g)
    common = _common_inputs(g)
    tables = None
    if not gpt2:
        cos, sin = rotary_tables(spec)
        g.weights["rotary.cos_cache"], g.weights["rotary.sin_cache"] = cos, sin
        tables = (g.param("rotary.cos_cache"), g.param("rotary.sin_cache"))
    residual = embed(g)
    h = _first_norm(g, residual, "layers.0.attn_norm")
    for i in range(spec.num_layers):
        a = _attention(g, h, i, common, rotary, tables)
        a = b.op("MatMul", [a, g.param(f"layers.{i}.attn.out.weight")], name=f"layers.{i}.attn.out.MatMul")
        h, residual = _skip_norm(g, a, residual, f"layers.{i}.mlp_norm", _bias(g, f"layers.{i}.attn.out"))
        m = _mlp_ort(g, h, i)
        last = i + 1 == spec.num_layers
        nxt = "norm" if last else f"layers.{i + 1}.attn_norm"
        h, residual = _skip_norm(g, m, residual, nxt, _bias(g, f"layers.{i}.mlp.fc_out"), last)
    lm_head(g, h, logits_to_keep=True)
    return table
