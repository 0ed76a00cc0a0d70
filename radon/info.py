"""Parameter counts and memory figures from a config alone (no torch), for ``radon info``.

A Hugging Face folder or a GGUF file is described from its config (or metadata) through the converter's
own reading (``radon.hf_config``, ``radon.gguf_import``), with the command that converts it.

The count is exact: tests check it against the model instantiated on the meta device. Weight bytes
at int8 and int4 include their scales (per output channel for int8, one fp16 scale per block of 32 for
int4), so the figures are what a quantized artifact actually stores, not a nominal bits x params.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radon.config import ModelConfig
from radon.integrity import read_json

BYTES = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0}
INT4_BLOCK = 32


@dataclass
class ParameterCount:
    embedding: int
    positions: int  # GPT-2's learned position table
    layers: int
    norms: int  # the final norm(s)
    lm_head: int  # 0 when tied to the embedding
    matmul_weights: int  # weights of Linear layers (what int8/int4 quantize)
    matmul_rows: int  # output channels of those Linear layers (one int8 scale each)

    @property
    def total(self) -> int:
        return self.embedding + self.positions + self.layers + self.norms + self.lm_head


def vector_tensors(cfg: ModelConfig, arch: str) -> tuple[list[int], list[int]]:
    """The sizes of one norm's tensors and of one layer's bias tensors in a stack, tensor by tensor as
    ``radon/model.py`` makes them (a LayerNorm has a bias; the MLP's input Linear is fused gate+up)."""
    h, i, q, kv = cfg.hidden_size, cfg.intermediate_size, cfg.q_size, cfg.kv_heads_for(arch) * cfg.head_dim
    gpt2 = arch == "gpt2"
    qkv_bias, out_bias, mlp_bias = cfg.biases_for(arch)
    biases = [q + 2 * kv] * qkv_bias + [h] * out_bias + ([i if gpt2 else 2 * i, h] if mlp_bias else [])
    return ([h, h] if gpt2 else [h]), biases


def _stack(cfg: ModelConfig, arch: str) -> tuple[int, int, int, int, int]:
    """(positions, layers, final norm, matmul weights, matmul rows) for one stack."""
    h, i, q, kv = cfg.hidden_size, cfg.intermediate_size, cfg.q_size, cfg.kv_heads_for(arch) * cfg.head_dim
    gpt2 = arch == "gpt2"
    norm_tensors, bias_tensors = vector_tensors(cfg, arch)
    norm = sum(norm_tensors)
    fc_in = i if gpt2 else 2 * i
    weights = h * (q + 2 * kv) + q * h + h * fc_in + i * h
    rows = (q + 2 * kv) + h + fc_in + h
    per_layer = 2 * norm + weights + sum(bias_tensors)
    positions = cfg.max_position_embeddings * h if gpt2 else 0
    return positions, cfg.num_layers * per_layer, norm, cfg.num_layers * weights, cfg.num_layers * rows


def count_parameters(cfg: ModelConfig) -> ParameterCount:
    """Exact parameter count of ``HybridTransformerModel(cfg)`` (a tied head counted once)."""
    positions = layers = norms = weights = rows = 0
    for arch in cfg.architectures:
        p, l_, n, w, r = _stack(cfg, arch)
        positions, layers, norms, weights, rows = positions + p, layers + l_, norms + n, weights + w, rows + r
    embedding = cfg.vocab_size * cfg.hidden_size
    lm_head = 0 if cfg.tie_word_embeddings else embedding
    return ParameterCount(
        embedding, positions, layers, norms, lm_head, weights + lm_head, rows + (lm_head and cfg.vocab_size)
    )


def weight_bytes(cfg: ModelConfig) -> dict[str, int]:
    """Bytes of the weights at each precision; int8/int4 quantize the Linear weights only."""
    n = count_parameters(cfg)
    out = {dtype: int(n.total * b) for dtype, b in BYTES.items()}
    rest_fp16 = 2 * (n.total - n.matmul_weights)  # embeddings, norms, biases stay at fp16
    out["int8"] = int(n.matmul_weights + 4 * n.matmul_rows + rest_fp16)
    out["int4"] = int(n.matmul_weights / 2 + 2 * n.matmul_weights / INT4_BLOCK + rest_fp16)
    return out


def kv_cache_tokens(cfg: ModelConfig, context: int, arch: str | None = None) -> int:
    """Positions whose keys and values are held at ``context`` tokens: capped at the window."""
    window = cfg.window_for(arch or cfg.architectures[-1])
    return context if window is None else min(context, window)


def kv_cache_bytes(cfg: ModelConfig, context: int, dtype: str = "float16", batch: int = 1) -> int:
    arch = cfg.architectures[-1]
    per_token = 2 * cfg.num_layers * cfg.kv_heads_for(arch) * cfg.head_dim * BYTES[dtype]
    return int(batch * per_token * kv_cache_tokens(cfg, context))


# What ``radon export onnx`` (fp32, its default validation and parity) needs, fitted to measurements on
# SmolLM2-135M and a 1.1B Llama (docs/export.md, "Memory"). The build holds a tensor at a time; then an
# onnxruntime session runs alone (the weights once; an inline model.onnx, under the 2 GiB external-data
# threshold, peaks at 1.24x while onnxruntime parses it), then the PyTorch reference alone (the weights
# once, mapped from the safetensors file). Each runs beside the interpreter and its libraries (about 265
# MiB with onnxruntime, 320 MiB once torch has run) and two 256-token chunks of float32 logits.
EXPORT_SESSION_RUNTIME = 265 * 2**20
EXPORT_REFERENCE_RUNTIME = 320 * 2**20
EXPORT_INLINE_LOAD = 1.24
EXPORT_EXTERNAL_THRESHOLD = 2**31 - 64 * 2**20  # radon.export.build.EXTERNAL_DATA_THRESHOLD
# parity's defaults: 256-token chunks, 1024 tokens per held-out text, 4 texts in ../shared/data/eval
PARITY_CONTEXT, PARITY_TOKENS, PARITY_TEXTS = 256, 1024, 4


def export_needs(cfg: ModelConfig) -> dict[str, Any]:
    """Peak memory and disk of ``radon export onnx`` on this config (fp32, validation and parity)."""
    fp32 = int(count_parameters(cfg).total * 4)
    inline = fp32 <= EXPORT_EXTERNAL_THRESHOLD
    chunks = 2 * PARITY_CONTEXT * cfg.vocab_size * 4  # float32 logits of two chunks
    session = EXPORT_SESSION_RUNTIME + fp32 * (EXPORT_INLINE_LOAD if inline else 1.0) + chunks
    reference = EXPORT_REFERENCE_RUNTIME + fp32 + chunks
    spill = PARITY_TEXTS * PARITY_TOKENS * cfg.vocab_size * 4  # onnxruntime's logits, kept for parity
    return {
        "fp32_bytes": fp32,
        "peak_rss_bytes": int(max(session, reference)),
        "external_data": not inline,
        "artifact_bytes": fp32,
        # an inline model.onnx is streamed from its data file, removed after: both exist for a moment
        "disk_peak_bytes": fp32 * (2 if inline else 1) + spill,
    }


def describe(cfg: ModelConfig, context: int) -> dict[str, Any]:
    """Everything ``radon info`` prints, as a JSON-ready dict."""
    n = count_parameters(cfg)
    arch = cfg.architectures[-1]
    return {
        "model_type": cfg.model_type,
        "architecture": {
            "layers": cfg.num_layers,
            "hidden_size": cfg.hidden_size,
            "heads": cfg.num_attention_heads,
            "kv_heads": cfg.num_kv_heads,
            "head_dim": cfg.head_dim,
            "intermediate_size": cfg.intermediate_size,
            "vocab_size": cfg.vocab_size,
            "max_position_embeddings": cfg.max_position_embeddings,
            "sliding_window": cfg.sliding_window,
            "tied_embeddings": cfg.tie_word_embeddings,
        },
        "parameters": {
            "total": n.total,
            "embedding": n.embedding,
            "lm_head": n.lm_head,
            "positions": n.positions,
            "layers": n.layers,
            "non_embedding": n.total - n.embedding - n.lm_head - n.positions,
        },
        "weight_bytes": weight_bytes(cfg),
        "kv_cache": {
            "context": context,
            "cached_tokens": kv_cache_tokens(cfg, context, arch),
            "bytes_per_token": {
                d: int(2 * cfg.num_layers * cfg.kv_size * BYTES[d]) for d in ("float32", "float16")
            },
            "bytes": {d: kv_cache_bytes(cfg, context, d) for d in ("float32", "float16")},
        },
        "export": export_needs(cfg),
    }


def human_bytes(n: float) -> str:
    """Binary units (1 KiB = 1024 B), named as such."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_count(n: int) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.2f}{suffix}"
    return str(n)


def format_report(info: dict[str, Any], source: str) -> str:
    a, p, kv = info["architecture"], info["parameters"], info["kv_cache"]
    window = a["sliding_window"] if a["sliding_window"] is not None else "none (full attention)"
    lines = [
        f"{source}: {info['model_type']}, {a['layers']} layers, hidden {a['hidden_size']}, "
        f"{a['heads']} heads / {a['kv_heads']} kv heads x {a['head_dim']}, vocab {a['vocab_size']}, window {window}",
        "",
        f"parameters        {p['total']:>15,}  ({human_count(p['total'])})",
        f"  embedding       {p['embedding']:>15,}",
        f"  lm head         {p['lm_head']:>15,}"
        + ("  (tied to the embedding)" if a["tied_embeddings"] else ""),
        f"  positions       {p['positions']:>15,}",
        f"  layers + norms  {p['layers'] + p['total'] - p['embedding'] - p['lm_head'] - p['positions'] - p['layers']:>15,}",
        "",
        "weights           " + "  ".join(f"{d} {human_bytes(b)}" for d, b in info["weight_bytes"].items()),
        f"kv cache @ {kv['context']:,} tokens: {kv['cached_tokens']:,} positions held, "
        + ", ".join(f"{d} {human_bytes(b)}" for d, b in kv["bytes"].items())
        + (" (capped at the sliding window)" if kv["cached_tokens"] < kv["context"] else ""),
    ]
    e = info.get("export")
    if e:
        lines.append(
            f"export (fp32, validation and parity): peak memory about {human_bytes(e['peak_rss_bytes'])} "
            f"({e['peak_rss_bytes'] / e['fp32_bytes']:.2f}x the weights), disk {human_bytes(e['artifact_bytes'])} "
            f"{'in model.onnx.data' if e['external_data'] else 'inline in model.onnx'}, "
            f"{human_bytes(e['disk_peak_bytes'])} at its peak"
        )
    if kv["context"] > a["max_position_embeddings"]:
        lines.append(f"note: {kv['context']:,} tokens is past max_position_embeddings "
                     f"({a['max_position_embeddings']:,}); the model cannot run that context")  # fmt: skip
    return "\n".join(lines)


# ---- models RADON does not hold yet: a Hugging Face folder, a GGUF file --------------------------
def foreign_source(target: str | Path) -> str | None:
    """``"hf"`` for a transformers folder (or its config.json), ``"gguf"`` for a GGUF file, else None."""
    from radon.gguf_import import is_gguf
    from radon.hf_config import is_hf_config

    path = Path(target)
    if is_gguf(path):
        return "gguf"
    config = path / "config.json" if path.is_dir() else path
    if (
        config.name != "config.json"
        or not config.is_file()
        or (config.parent / "radon_checkpoint.json").is_file()
    ):
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return "hf" if is_hf_config(data) else None


def describe_foreign(target: str | Path, kind: str, context: int) -> dict[str, Any]:
    """``describe`` for a Hugging Face folder or a GGUF file, with how to convert it and, for GGUF,
    the file's quantization types. ``"text"`` holds the printable report."""
    from radon.hf_config import HF_ARCHITECTURES, config_from_hf

    path = Path(target)
    if kind == "gguf":
        from radon import gguf_import

        src = gguf_import.open_gguf(path)
        hf = gguf_import.hf_config(src)
        extra: dict[str, Any] = {"gguf": gguf_import.summary(src)}
        command = f"radon convert --from-gguf {path} --out CKPT"
    else:
        folder = path if path.is_dir() else path.parent
        hf = read_json(folder / "config.json", "the Hugging Face config")
        extra = {}
        command = f"radon convert --from-hf {folder} --out CKPT"
    cfg = config_from_hf(hf, str(path))
    report = describe(cfg, context)
    architecture = HF_ARCHITECTURES[cfg.model_type]
    report |= {
        "source": str(path),
        "format": kind,
        "hf_architecture": architecture,
        "convert": command,
        **extra,
    }
    head = f"{path}: a {'GGUF file' if kind == 'gguf' else 'Hugging Face folder'} ({architecture})"
    lines = [head]
    if kind == "gguf":
        g = extra["gguf"]
        types = ", ".join(f"{t} x{n}" for t, n in g["quantization"].items())
        lines.append(
            f"{human_bytes(g['bytes'])} on disk, tensors {types}; dequantized to float32 on conversion"
        )
    lines += [f"convert it: {command}", "", format_report(report, str(path))]
    report["text"] = "\n".join(lines)
    return report
