"""``radon info ARTIFACT``: what an exported artifact is, from its manifest alone (no torch, no session).

The parameter and memory figures reuse ``radon.info`` on a config rebuilt from the manifest's
architecture numbers, so a checkpoint and its artifact report the same counts. File sizes are the
artifact's real files; the KV-cache figure uses the artifact's cache dtype and its rolling buffer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radon.runtime.contract import Manifest, read_manifest

KV_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}


def _config_from(manifest: Manifest) -> Any:
    from radon.config import ModelConfig

    a = manifest.architecture
    return ModelConfig(
        model_type=a.model_type, vocab_size=a.vocab_size, hidden_size=a.hidden_size, num_layers=a.num_layers,
        num_attention_heads=a.num_attention_heads, num_kv_heads=a.num_kv_heads, head_dim=a.head_dim,
        intermediate_size=a.intermediate_size, max_position_embeddings=a.max_position_embeddings,
        sliding_window=a.sliding_window, rope_theta=a.rope_theta or 10000.0, tie_word_embeddings=a.tie_word_embeddings,
        pad_token_id=None, bos_token_id=None, eos_token_id=None, rope_scaling=a.rope_scaling,
        **({} if a.model_type == "gpt2" else {"attention_bias": a.attention_bias,
                                             "attention_out_bias": a.attention_out_bias, "mlp_bias": a.mlp_bias}),
    )  # fmt: skip


def describe_artifact(path: str | Path, context: int) -> dict[str, Any]:
    """A JSON-ready description of an artifact folder; ``"text"`` holds the printable report.

    The artifact is checked as a loader checks it (seal, paths, file hashes, graph), so ``radon info``
    never describes an artifact that would not load.
    """
    from radon.info import count_parameters, human_bytes, human_count

    path = Path(path)
    m = read_manifest(path)
    a = m.architecture
    params = count_parameters(_config_from(m)).total
    sizes = {name: (path / name).stat().st_size for name in m.files if (path / name).is_file()}
    cached = context if a.sliding_window is None else min(context, a.sliding_window)
    per_token = 2 * a.num_layers * a.num_kv_heads * a.head_dim * KV_BYTES.get(m.kv_cache.dtype, 4)
    parity = m.parity or {}
    if "skipped" in parity:
        parity_line = f"parity: skipped ({parity['skipped']})"
    elif parity:
        pm = parity.get("metrics", {})
        parity_line = (
            f"parity at export: {'passed' if parity.get('passed') else 'FAILED'} ({parity.get('precision')} thresholds): "
            f"max|Δlogit| {pm.get('max_abs_logit', float('nan')):.3g}, top-1 {pm.get('top1_agreement', float('nan')):.4f}, "
            f"KL {pm.get('kl_mean', float('nan')):.3g}, ppl change {pm.get('ppl_change', float('nan')):+.3%}"
        )
    else:
        parity_line = "parity: not recorded"
    window = a.sliding_window if a.sliding_window is not None else "none (full attention)"
    lines = [
        f"{path}: RADON artifact ({m.format}), {a.model_type}, {m.lowering} attention, {m.precision}, "
        f"opset {', '.join(f'{d} {v}' for d, v in m.opset.items())}",
        f"  {a.num_layers} layers, hidden {a.hidden_size}, {a.num_attention_heads} heads / {a.num_kv_heads} kv heads "
        f"x {a.head_dim}, vocab {a.vocab_size}, window {window}, max positions {a.max_position_embeddings}",
        f"  parameters {params:,} ({human_count(params)})",
        "  files: " + ", ".join(f"{n} {human_bytes(s)}" for n, s in sizes.items()),
        f"  kv cache @ {context:,} tokens: {cached:,} positions held ({m.kv_cache.dtype}), "
        f"{human_bytes(per_token * cached)} per sequence"
        + (f"; rolling buffer keeps {m.kv_cache.keep} past positions" if m.kv_cache.keep is not None else ""),
        f"  source checkpoint: {m.source.get('checkpoint_name')} (sha256 {str(m.source.get('checkpoint_sha256'))[:16]}...)",
        f"  {parity_line}",
    ]
    return {
        "artifact": str(path),
        "format": m.format,
        "lowering": m.lowering,
        "precision": m.precision,
        "opset": m.opset,
        "architecture": vars(a).copy(),
        "parameters": params,
        "file_bytes": sizes,
        "kv_cache": {
            "context": context,
            "cached_tokens": cached,
            "dtype": m.kv_cache.dtype,
            "bytes_per_sequence": per_token * cached,
            "keep": m.kv_cache.keep,
        },  # fmt: skip
        "parity": parity,
        "text": "\n".join(lines),
    }
