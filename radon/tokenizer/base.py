"""The interface every RADON tokenizer type offers, and the pieces they share (no torch).

Three types implement it: ``HybridTokenizer`` (Unigram for Russian + byte-level BPE), ``BPETokenizer``
(one byte-level BPE) and ``HFTokenizer`` (a Hugging Face ``tokenizer.json``). The edge runtime and
the Triton adapters use only this interface, so they never care which type a folder holds.

Stream decoding follows the approach of transformers' ``TextStreamer`` and text-generation-inference:
text is released only when it is complete, so a multi-byte character split across byte-level
tokens is emitted once its last byte arrives, never as U+FFFD.
"""

from __future__ import annotations

import codecs
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from radon.errors import RadonError

# RADON's own special tokens, in id order (DESIGN.md, contract 1: pad 3, bos 1, eos 2).
UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
SPECIAL_TOKENS: tuple[str, ...] = (UNK, BOS, EOS, PAD)
UNK_ID, BOS_ID, EOS_ID, PAD_ID = 0, 1, 2, 3


class StreamDecoder(Protocol):
    """Turns a stream of token ids into text pieces; ``"".join(pieces) + flush() == decode(ids)``."""

    def push(self, token_id: int) -> str: ...

    def flush(self) -> str: ...


def as_id_list(ids: Iterable[int] | np.ndarray) -> list[int]:
    """A plain list of Python ints from a list, tuple or 1-D numpy array of ids."""
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise RadonError(f"decode: expected a 1-D sequence of ids, got an array of shape {ids.shape}")
        return ids.tolist()
    return [int(i) for i in ids]


class ByteStreamDecoder:
    """Stream decoder over a table of token bytes: an incremental UTF-8 decoder does the buffering.

    ``errors="replace"`` matches ``bytes.decode(errors="replace")`` in ``decode``, so an invalid
    sequence gives the same U+FFFD in both; an incomplete one waits for its next byte.
    """

    def __init__(self, token_bytes: Callable[[int], bytes]) -> None:
        self._bytes = token_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        return self._utf8.decode(self._bytes(int(token_id)))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)


class DiffStreamDecoder:
    """Stream decoder for any ``decode`` function (Hugging Face tokenizers): decode a short window and
    emit what it adds, holding text back while it ends in U+FFFD (an incomplete character)."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0  # window start: decoding from here gives stable context (leading spaces)
        self._read = 0  # ids before this are already emitted

    def push(self, token_id: int) -> str:
        self._ids.append(int(token_id))
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        text = self._decode(self._ids[self._prefix :])
        if len(text) > len(prefix_text) and not text.endswith("\ufffd"):
            new = text[len(prefix_text) :]
            self._prefix, self._read = self._read, len(self._ids)
            return new
        return ""

    def flush(self) -> str:
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        text = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return text[len(prefix_text) :]


class Tokenizer(ABC):
    """The common interface of RADON's tokenizer types (ids are Python ints; batches are numpy int64)."""

    type_name: str = ""

    # --- ids and tokens -------------------------------------------------------------------------
    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids: every id a model with this tokenizer can emit is in ``[0, vocab_size)``."""

    @property
    @abstractmethod
    def bos_token_id(self) -> int | None: ...

    @property
    @abstractmethod
    def eos_token_id(self) -> int | None: ...

    @property
    @abstractmethod
    def pad_token_id(self) -> int | None: ...

    @property
    @abstractmethod
    def unk_token_id(self) -> int | None: ...

    @abstractmethod
    def token_to_id(self, token: str) -> int | None:
        """The id of a token string (a piece as ``id_to_token`` writes it), or None."""

    @abstractmethod
    def id_to_token(self, token_id: int) -> str:
        """The piece string of an id; raises RadonError for an id outside ``[0, vocab_size)``."""

    # --- text -----------------------------------------------------------------------------------
    @abstractmethod
    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token ids of ``text``; ``""`` gives ``[]`` (plus bos/eos when asked)."""

    def encode_prompt(self, text: str) -> list[int]:
        """Ids of a text prompt with the tokenizer's own special tokens: what transformers'
        ``tokenizer(text)`` gives. RADON's own types prepend bos (they were trained with it); an ``hf``
        tokenizer adds what its ``tokenizer.json`` post-processor adds, and nothing else."""
        return self.encode(text, add_bos=True)

    # --- chat -----------------------------------------------------------------------------------
    @property
    def chat_template(self) -> str | None:
        """The model's chat template (Jinja source), or None: RADON's own types carry none."""
        return None

    def chat_special_tokens(self) -> dict[str, str]:
        """The special tokens a chat template sees (``bos_token``, ``eos_token``, ...), as strings."""
        names = {"bos_token": self.bos_token_id, "eos_token": self.eos_token_id,
                 "unk_token": self.unk_token_id, "pad_token": self.pad_token_id}  # fmt: skip
        return {name: self.id_to_token(i) for name, i in names.items() if i is not None}

    def apply_chat_template(self, messages: Any, add_generation_prompt: bool = True) -> list[int]:
        """Ids of a conversation: transformers' ``apply_chat_template(messages, add_generation_prompt=...)``.

        The template renders the text with its own special tokens, so it is tokenized without adding
        any. Raises ``ChatError`` (a RadonError) for a malformed conversation or a tokenizer without a
        template, naming what is missing.
        """
        return self.encode(self.render_chat(messages, add_generation_prompt))

    def render_chat(self, messages: Any, add_generation_prompt: bool = True) -> str:
        """The conversation as text (``apply_chat_template(..., tokenize=False)``)."""
        from radon.tokenizer.chat import NO_TEMPLATE, ChatError, ChatTemplate

        if self.chat_template is None:
            raise ChatError(f"this {self.type_name} tokenizer {NO_TEMPLATE}", None)
        return ChatTemplate(self.chat_template, self.chat_special_tokens()).render(
            messages, add_generation_prompt
        )

    @abstractmethod
    def decode(self, ids: Iterable[int] | np.ndarray, skip_special_tokens: bool = True) -> str:
        """Text of ``ids``; bytes that do not form valid UTF-8 become U+FFFD."""

    @abstractmethod
    def stream_decoder(self) -> StreamDecoder:
        """A fresh decoder for one generated sequence (see :class:`StreamDecoder`)."""

    def encode_batch(
        self,
        texts: Sequence[str],
        add_bos: bool = False,
        padding_side: Literal["left", "right"] = "left",
        *,
        add_special_tokens: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask)``, both int64 ``[B, T]``, padded with ``pad_token_id``.

        ``add_special_tokens``: each row is ``encode_prompt(text)`` (the tokenizer's own convention;
        not with ``add_bos``). Left padding is the default because the runtime decodes from the right
        edge of the batch.
        """
        if padding_side not in ("left", "right"):
            raise RadonError(f"padding_side: expected 'left' or 'right', got {padding_side!r}")
        if add_special_tokens and add_bos:
            raise RadonError("encode_batch: add_bos and add_special_tokens are exclusive")
        if add_special_tokens:
            rows = [self.encode_prompt(t) for t in texts]
        else:
            rows = [self.encode(t, add_bos=add_bos) for t in texts]
        width = max((len(r) for r in rows), default=0)
        pad = self.pad_token_id
        if pad is None:
            raise RadonError(f"{type(self).__name__}: no pad token and no eos token to pad a batch with")
        ids = np.full((len(rows), width), pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for b, row in enumerate(rows):
            if not row:
                continue
            cols = slice(width - len(row), width) if padding_side == "left" else slice(0, len(row))
            ids[b, cols] = row
            mask[b, cols] = 1
        return ids, mask

    # --- files ----------------------------------------------------------------------------------
    @abstractmethod
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the tokenizer folder (``radon_tokenizer.json`` + model files with their sha256)."""

    @classmethod
    @abstractmethod
    def from_pretrained(cls, directory: str | Path) -> Tokenizer:
        """Load a folder written by ``save_pretrained``; hashes are checked, types are never guessed."""

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, bos={self.bos_token_id}, "
            f"eos={self.eos_token_id}, pad={self.pad_token_id}, unk={self.unk_token_id})"
        )
