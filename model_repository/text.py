"""Text to ids and back for the Triton tokenizer and detokenizer models, on numpy arrays.

Triton hands a python model BYTES tensors as numpy object arrays of ``bytes``; with batching on, a
request of B prompts is a ``(B, 1)`` array. The tokenizer model returns ``input_ids`` right-padded with
the pad id and ``input_lengths``, the ragged-batch convention of TensorRT-LLM's preprocessing model
(``input_id`` + ``request_input_len``); the detokenizer takes ``token_ids`` with an optional
``sequence_length`` per row. Both use RADON's tokenizer interface only (``radon.tokenizer.base``), so
any tokenizer type an artifact carries works. Torch-free, Triton-free.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radon.errors import RadonError


def as_texts(values: Any, name: str = "text_input") -> list[str]:
    """A BYTES tensor (any shape) as a flat list of str; bytes must be UTF-8. None (the input is absent:
    Triton counts inputs, so an unknown one can stand in for a required one) is refused by name."""
    if values is None:
        raise RadonError(f"{name}: required")
    out = []
    for v in np.asarray(values, dtype=object).reshape(-1):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RadonError(f"{name}: not valid UTF-8 ({exc})") from None
        out.append(str(v))
    return out


def as_bytes_column(texts: list[str]) -> np.ndarray:
    """Strings as a ``(B, 1)`` object array of UTF-8 bytes (a batched BYTES tensor of dims [1])."""
    return np.array([[t.encode("utf-8")] for t in texts], dtype=object).reshape(len(texts), 1)


def encode_texts(
    tokenizer: Any, texts: list[str], add_special_tokens: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids (B, T) int64 right-padded with the pad id, input_lengths (B, 1) int32)``.

    ``add_special_tokens``: the tokenizer's own convention for a prompt (``Tokenizer.encode_prompt``, as
    the runtime and transformers' ``tokenizer(text)``); False encodes the bare text."""
    encode = tokenizer.encode_prompt if add_special_tokens else tokenizer.encode
    ids = [encode(t) for t in texts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max((len(i) for i in ids), default=0)
    out = np.full((len(ids), max(width, 1)), pad, np.int64)
    for b, row in enumerate(ids):
        out[b, : len(row)] = row
    return out, np.array([[len(i)] for i in ids], np.int32).reshape(len(ids), 1)


def unpad(input_ids: np.ndarray, input_lengths: np.ndarray) -> list[list[int]]:
    """The rows of a right-padded ``(B, T)`` batch cut to their lengths ``(B,)`` or ``(B, 1)``."""
    lengths = np.asarray(input_lengths).reshape(-1)
    return [input_ids[b, : int(n)].tolist() for b, n in enumerate(lengths)]


def decode_ids(tokenizer: Any, token_ids: np.ndarray | None, lengths: np.ndarray | None = None,
               skip_special_tokens: bool = True) -> list[str]:  # fmt: skip
    """Text of each row of ``token_ids`` (B, T) (a 1-D array is one row), cut to ``lengths`` when given
    (each in [0, T]: a row cannot be longer than the ids sent)."""
    if token_ids is None:
        raise RadonError("token_ids: required")
    ids = np.asarray(token_ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise RadonError(f"token_ids: expected integer ids, got {ids.dtype}")
    ids = ids.reshape(1, -1) if ids.ndim == 1 else ids.reshape(ids.shape[0], -1)
    if lengths is not None:
        flat = np.asarray(lengths).reshape(-1)
        if flat.size != ids.shape[0]:
            raise RadonError(
                f"sequence_length: expected one length per row ({ids.shape[0]}), got {flat.size}"
            )
        bad = [int(n) for n in flat if not 0 <= int(n) <= ids.shape[1]]
        if bad:
            raise RadonError(f"sequence_length: must be in [0, {ids.shape[1]}] (the ids sent), got {bad[0]}")
    rows = unpad(ids, lengths) if lengths is not None else [r.tolist() for r in ids]
    vocab = tokenizer.vocab_size
    for row in rows:
        if any(not 0 <= i < vocab for i in row):
            raise RadonError(f"token_ids: ids must be in [0, {vocab})")
    return [tokenizer.decode(row, skip_special_tokens=skip_special_tokens) for row in rows]
