"""GGUF files in: llama.cpp's metadata and tensors as a Hugging Face config and state dict (no torch).

``radon convert --from-gguf`` reads a GGUF with the ``gguf`` package (llama.cpp's own reader): the
metadata becomes the transformers config dict that ``radon.hf_config.config_from_hf`` reads, and each
tensor is dequantized to float32 by ``gguf.quants.dequantize`` and renamed to its transformers name,
so the rest of the conversion is the Hugging Face path. Two things differ from a transformers folder:

- llama.cpp's ``convert_hf_to_gguf.py`` permutes the rows of a Llama's q and k projections (weights
  and biases) for its interleaved rope layout; ``_unpermute`` undoes it, as transformers' GGUF loader
  does (``LlamaTensorProcessor``). Qwen2 files are not permuted.
- the tokenizer is metadata (``tokenizer.ggml.*``); transformers' GGUF tokenizer converter rebuilds
  ``tokenizer.json`` from it and saves it as it saves any tokenizer folder, the chat template
  (``tokenizer.chat_template``) in ``chat_template.jinja``, which ``radon.tokenizer.hf`` carries into
  the checkpoint's ``tokenizer/``. A checkpoint converted from the GGUF and one converted from the
  Hugging Face folder that transformers writes from it are the same, file for file.

``provenance`` records what the weights were dequantized from (file name, sha256, quantization types);
the converter saves it as the checkpoint's ``source.json``, which the checkpoint's hashes cover.
Supported architectures are llama and qwen2; anything the importer cannot reproduce (other
architectures, rope scaling, partial rotary, an unknown tensor) is refused naming the key or tensor.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radon._extras import require
from radon.errors import ConfigError, IntegrityError, RadonError
from radon.hf_config import HF_ARCHITECTURES

ARCHITECTURES = ("llama", "qwen2")
CHAT_TEMPLATE_FILE = "chat_template.jinja"  # where transformers 5.x saves a tokenizer's chat template
MAGIC = b"GGUF"
# llama.cpp tensor name -> transformers name
GLOBAL_TENSORS = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
LAYER_TENSORS = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
LAYER_RE = re.compile(r"^blk\.(\d+)\.(\w+)\.(weight|bias)$")
ARRAY_KEYS_SKIPPED = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                      "tokenizer.ggml.scores")  # fmt: skip


def is_gguf(path: str | Path) -> bool:
    """A file that starts with GGUF's magic bytes."""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as f:
        return f.read(4) == MAGIC


@dataclass
class GGUFFile:
    """An open GGUF: its reader (memory-mapped tensors) and its metadata as plain Python values."""

    path: Path
    reader: Any  # gguf.GGUFReader
    metadata: dict[str, Any]  # every key but the tokenizer's big arrays (their lengths instead)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture"))

    @property
    def tensor_types(self) -> dict[str, str]:
        """Tensor name -> its ggml type ("Q4_1", "Q8_0", "F32", ...)."""
        return {t.name: t.tensor_type.name for t in self.reader.tensors}


def open_gguf(path: str | Path) -> GGUFFile:
    """Read a GGUF's header and metadata; tensors stay memory-mapped until dequantized."""
    path = Path(path)
    if not path.is_file():
        raise RadonError(f"{path}: no such file")
    if not is_gguf(path):
        raise IntegrityError(f"{path}: not a GGUF file (it does not start with the bytes {MAGIC!r})")
    gguf = require("gguf", extra="gguf", purpose="reading GGUF files")
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, IndexError) as exc:  # a truncated file fails inside gguf's numpy views
        raise IntegrityError(f"{path}: not a readable GGUF file (truncated or corrupt): {exc}") from None
    meta: dict[str, Any] = {}
    for key, field in reader.fields.items():
        meta[key] = len(field.data) if key in ARRAY_KEYS_SKIPPED else field_value(field)
    return GGUFFile(path, reader, meta)


def field_value(field: Any) -> Any:
    """A metadata field as a Python value: ``ReaderField.contents()``, or the same decoding by hand on
    gguf releases that predate it (strings are UTF-8 byte arrays, scalars one-element arrays)."""
    if hasattr(field, "contents"):
        return field.contents()
    from gguf import GGUFValueType

    string = field.types[-1] == GGUFValueType.STRING
    values = [
        bytes(field.parts[i]).decode("utf-8") if string else field.parts[i].tolist()[0] for i in field.data
    ]
    return values if field.types[0] == GGUFValueType.ARRAY else values[0]


def hf_config(src: GGUFFile) -> dict[str, Any]:
    """The transformers config dict (LlamaConfig / Qwen2Config keys) that the metadata describes."""
    meta, arch, where = src.metadata, src.architecture, str(src.path)
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"general.architecture: {where} is {arch!r}; RADON imports {', '.join(ARCHITECTURES)} GGUF files"
        )

    def get(key: str, default: Any = ConfigError) -> Any:
        value = meta.get(f"{arch}.{key}", default)
        if value is ConfigError:
            raise ConfigError(f"{arch}.{key}: missing from {where}")
        return value

    tensors = src.tensor_types
    if "rope_freqs.weight" in tensors:
        raise ConfigError(f"rope_freqs.weight: {where} scales RoPE by a tensor of factors (llama.cpp's form of "
                          "Llama 3 scaling), which RADON does not import; convert the Hugging Face folder instead")  # fmt: skip
    scaling = get("rope.scaling.type", None)
    if scaling not in (None, "none"):
        raise ConfigError(f"{arch}.rope.scaling.type: {scaling!r} RoPE scaling is not supported (in {where})")
    heads, hidden = int(get("attention.head_count")), int(get("embedding_length"))
    head_dim = int(get("attention.key_length", hidden // heads))
    for key in ("attention.value_length", "rope.dimension_count"):
        if int(get(key, head_dim)) != head_dim:
            raise ConfigError(f"{arch}.{key}: {get(key)} differs from the head size {head_dim}; not supported (in {where})")  # fmt: skip
    vocab = get("vocab_size", meta.get("tokenizer.ggml.tokens"))
    if vocab is None:
        raise ConfigError(f"{arch}.vocab_size: missing from {where} (and it has no tokenizer.ggml.tokens)")
    cfg: dict[str, Any] = {
        "architectures": [HF_ARCHITECTURES[arch]],
        "model_type": arch,
        "vocab_size": int(vocab),
        "hidden_size": hidden,
        "intermediate_size": int(get("feed_forward_length")),
        "num_hidden_layers": int(get("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "max_position_embeddings": int(get("context_length")),
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon")),
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "hidden_act": "silu",
        "tie_word_embeddings": "output.weight" not in tensors,
        "torch_dtype": "float32",
    }
    for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "padding_token_id")):
        value = meta.get(f"tokenizer.ggml.{key}")
        cfg[f"{role}_token_id"] = int(value) if value is not None else None
    if arch == "llama":
        cfg["attention_bias"] = "blk.0.attn_q.bias" in tensors
        cfg["mlp_bias"] = "blk.0.ffn_up.bias" in tensors
    else:
        cfg["use_sliding_window"] = False
    return cfg


def hf_name(name: str, where: str) -> str:
    """The transformers name of a llama.cpp tensor, or IntegrityError naming it."""
    if name in GLOBAL_TENSORS:
        return GLOBAL_TENSORS[name]
    m = LAYER_RE.match(name)
    if m is None or m.group(2) not in LAYER_TENSORS:
        raise IntegrityError(f"{where}: tensor {name} is not part of a llama/qwen2 model that RADON imports")
    return f"model.layers.{m.group(1)}.{LAYER_TENSORS[m.group(2)]}.{m.group(3)}"


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's ``permute`` of q/k rows: (n_head, 2, d/2) -> (n_head, d/2, 2) and back to rows."""
    half = w.shape[0] // n_head // 2
    return w.reshape(n_head, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_state_dict(src: GGUFFile, cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every tensor dequantized to float32 (in transformers' (out, in) layout) under its transformers name."""
    from gguf.quants import dequantize

    where, out = str(src.path), {}
    for t in src.reader.tensors:
        name = hf_name(t.name, where)
        shape = tuple(int(d) for d in reversed(t.shape))  # GGUF lists dims innermost first
        try:
            w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
        except NotImplementedError as exc:
            raise RadonError(f"{where}: tensor {t.name} is {t.tensor_type.name}, which gguf cannot dequantize: {exc}") from None  # fmt: skip
        if src.architecture == "llama" and (".attn_q." in t.name or ".attn_k." in t.name):
            w = _unpermute(
                w, cfg["num_attention_heads"] if ".attn_q." in t.name else cfg["num_key_value_heads"]
            )
        out[name] = np.array(w, dtype=np.float32, order="C")  # a copy: F32 tensors are views of the file
    return out


def provenance(src: GGUFFile) -> dict[str, Any]:
    """What a converted checkpoint was dequantized from: file, sha256, quantization types."""
    from radon.integrity import sha256_file

    types = src.tensor_types
    file_type = src.metadata.get("general.file_type")
    try:
        from gguf import LlamaFileType

        file_type_name = LlamaFileType(int(file_type)).name if file_type is not None else None
    except (ImportError, ValueError):
        file_type_name = None
    return {
        "format": "gguf",
        "file": src.path.name,
        "sha256": sha256_file(src.path),
        "bytes": src.path.stat().st_size,
        "name": src.metadata.get("general.name"),
        "architecture": src.architecture,
        "file_type": file_type_name,
        "quantization": dict(sorted(Counter(types.values()).items())),
        "tensors": types,
        "dequantized_to": "float32",
    }


def has_tokenizer(src: GGUFFile) -> bool:
    """Whether the file describes its tokenizer (``tokenizer.ggml.model`` and its tokens)."""
    return "tokenizer.ggml.model" in src.metadata and "tokenizer.ggml.tokens" in src.metadata


def write_tokenizer_folder(src: GGUFFile, out: Path, cfg: dict[str, Any]) -> Path:
    """A Hugging Face tokenizer folder from the metadata, as transformers saves it (tokenizer.json,
    tokenizer_config.json, chat_template.jinja), plus the config.json whose special ids fill what the
    tokenizer files leave open (``HFTokenizer.from_hf_dir`` reads it)."""
    transformers = require("transformers", extra="gguf", purpose="building tokenizer.json from a GGUF")
    out.mkdir(parents=True, exist_ok=True)
    tok = transformers.AutoTokenizer.from_pretrained(str(src.path.parent), gguf_file=src.path.name)
    tok.save_pretrained(str(out))
    template = src.metadata.get("tokenizer.chat_template")
    if template and not (out / CHAT_TEMPLATE_FILE).is_file():  # an older transformers kept it elsewhere
        (out / CHAT_TEMPLATE_FILE).write_text(template, encoding="utf-8")
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return out


def summary(src: GGUFFile) -> dict[str, Any]:
    """What ``radon info FILE.gguf`` adds to the config's figures: file, size, quantization types."""
    return {
        "file": str(src.path),
        "bytes": src.path.stat().st_size,
        "name": src.metadata.get("general.name"),
        "architecture": src.architecture,
        "quantization": dict(sorted(Counter(src.tensor_types.values()).items())),
        "chat_template": bool(src.metadata.get("tokenizer.chat_template")),
    }
