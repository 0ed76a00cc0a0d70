"""Id tables for RADON's own tokenizer types (hybrid and bpe): id -> piece string and id -> bytes.

Decoding is a table lookup and a join: each id maps to the exact bytes it stands for (a Unigram
piece's text with ``▁`` as a space, a byte-level BPE token's bytes, nothing for a special). The
bytes of a whole sequence are then decoded as UTF-8 once, so a character split across tokens comes
out whole, and the stream decoder is the same table behind an incremental UTF-8 decoder.
GPT-2's byte <-> unicode map follows openai/gpt-2 ``encoder.py`` (``bytes_to_unicode``), which is
also what the ``tokenizers`` ByteLevel pre-tokenizer uses.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from radon.errors import RadonError
from radon.tokenizer.base import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    ByteStreamDecoder,
    StreamDecoder,
    Tokenizer,
    as_id_list,
)

RESERVED = "<reserved_{}>"  # ids left over when training produced fewer pieces than asked for


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in character -> byte value (the inverse of ``bytes_to_unicode``)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def bytelevel_token_bytes(token: str) -> bytes:
    """The bytes a byte-level BPE token stands for (``"Ġthe"`` -> ``b" the"``)."""
    table = byte_decoder()
    try:
        return bytes(table[c] for c in token)
    except KeyError as exc:
        raise ValueError(f"{token!r} is not a byte-level token (character {exc.args[0]!r})") from None


class PieceTableTokenizer(Tokenizer):
    """Shared decode / lookup machinery; subclasses call :meth:`_set_table` once their parts load.

    Ids ``0..3`` are RADON's specials (``<unk>``, ``<s>``, ``</s>``, ``<pad>``); reserved ids decode to
    nothing. ``token_to_id`` returns the lowest id holding a piece string.
    """

    def _set_table(self, pieces: Sequence[str], piece_bytes: Sequence[bytes], reserved_from: int) -> None:
        if len(pieces) != len(piece_bytes):
            raise ValueError("pieces and piece_bytes differ in length")
        n = len(pieces)
        special = list(range(len(SPECIAL_TOKENS))) + list(range(reserved_from, n))
        self._pieces = list(pieces)
        self._text_bytes = list(piece_bytes)  # specials and reserved -> b""
        self._all_bytes = list(piece_bytes)  # specials and reserved -> their names
        for i in special:
            self._text_bytes[i] = b""
            self._all_bytes[i] = self._pieces[i].encode()
        self._ids: dict[str, int] = {}
        for i, p in enumerate(self._pieces):
            self._ids.setdefault(p, i)

    # --- ids ----------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    @property
    def unk_token_id(self) -> int:
        return UNK_ID

    @property
    def bos_token_id(self) -> int:
        return BOS_ID

    @property
    def eos_token_id(self) -> int:
        return EOS_ID

    @property
    def pad_token_id(self) -> int:
        return PAD_ID

    def token_to_id(self, token: str) -> int | None:
        return self._ids.get(token)

    def id_to_token(self, token_id: int) -> str:
        self._check_ids([int(token_id)])
        return self._pieces[int(token_id)]

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes an id contributes to decoded text (b"" for specials and reserved ids)."""
        self._check_ids([int(token_id)])
        return self._text_bytes[int(token_id)]

    # --- decoding -----------------------------------------------------------------------------
    def _check_ids(self, ids: list[int]) -> None:
        if ids and (min(ids) < 0 or max(ids) >= len(self._pieces)):
            bad = next(i for i in ids if i < 0 or i >= len(self._pieces))
            raise RadonError(
                f"token id {bad} is outside this tokenizer's vocabulary [0, {len(self._pieces)})"
            )

    def decode(self, ids: Iterable[int] | np.ndarray, skip_special_tokens: bool = True) -> str:
        ids = as_id_list(ids)
        self._check_ids(ids)
        table = self._text_bytes if skip_special_tokens else self._all_bytes
        return b"".join([table[i] for i in ids]).decode("utf-8", errors="replace")

    def stream_decoder(self, skip_special_tokens: bool = True) -> StreamDecoder:
        table = self._text_bytes if skip_special_tokens else self._all_bytes

        def token_bytes(i: int) -> bytes:
            self._check_ids([i])
            return table[i]

        return ByteStreamDecoder(token_bytes)

    @property
    @abstractmethod
    def split(self) -> dict[str, int]:
        """Sizes of the id space's parts, in id order; they sum to ``vocab_size``."""

    def _config(self, offsets: dict[str, int], **extra: Any) -> dict[str, Any]:
        """radon_tokenizer.json's fields, common ones first; ``extra`` holds a type's own keys."""
        return {
            "type": self.type_name,
            "vocab_size": self.vocab_size,
            "unk_token_id": self.unk_token_id,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "special_tokens": list(SPECIAL_TOKENS),
            "split": self.split,
            "offsets": offsets,
            **extra,
        }

    def _with_specials(self, ids: list[int], add_bos: bool, add_eos: bool) -> list[int]:
        if add_bos:
            ids.insert(0, BOS_ID)
        if add_eos:
            ids.append(EOS_ID)
        return ids
