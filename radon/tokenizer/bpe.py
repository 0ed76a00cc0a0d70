"""Byte-level BPE: the hybrid's English/code part, and RADON's plain ``bpe`` tokenizer type.

Built on Hugging Face ``tokenizers`` with GPT-2's recipe (openai/gpt-2 ``encoder.py``; the
``ByteLevel`` pre-tokenizer with GPT-2's split regex and no prefix space): every string maps to
bytes, so the round trip is exact for any Unicode text and there is never an unknown token.
The plain type puts RADON's specials at ids 0-3 and the BPE pieces after them; the specials are
not part of the BPE model, so a literal ``"<s>"`` in text is encoded as text, not as bos.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from radon.errors import IntegrityError, RadonError
from radon.tokenizer.base import SPECIAL_TOKENS
from radon.tokenizer.folder import read_config, require_int, write_config
from radon.tokenizer.pieces import RESERVED, PieceTableTokenizer, byte_decoder, bytelevel_token_bytes

log = logging.getLogger(__name__)

BPE_FILE = "bpe.json"
BYTE_ALPHABET = 256
MIN_FREQUENCY = 2  # a pair seen once is noise, as in GPT-2's and tokenizers' defaults


def new_bytelevel_bpe() -> Any:
    """An untrained ``tokenizers.Tokenizer``: BPE model, GPT-2 byte-level pre-tokenizer and decoder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_bytelevel_bpe(texts: Iterable[str], vocab_size: int, *, show_progress: bool = False) -> Any:
    """Train a byte-level BPE with exactly ``vocab_size`` pieces when the text allows (fewer if not).

    Deterministic: tokenizers counts pairs and breaks ties by pair order, so the same texts give the
    same merges on any machine and thread count.
    """
    from tokenizers import pre_tokenizers, trainers

    if vocab_size < BYTE_ALPHABET:
        raise RadonError(
            f"a byte-level BPE needs at least {BYTE_ALPHABET} pieces (its byte alphabet), got {vocab_size}"
        )
    tok = new_bytelevel_bpe()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=MIN_FREQUENCY,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=show_progress,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


class ByteLevelPart:
    """A trained byte-level BPE placed at ``offset`` in a larger id space."""

    def __init__(self, tok: Any, offset: int) -> None:
        self.tok = tok
        self.offset = offset
        vocab: dict[str, int] = tok.get_vocab(with_added_tokens=False)
        self.size = len(vocab)
        self.pieces = [""] * self.size
        for piece, i in vocab.items():
            self.pieces[i] = piece
        self.piece_bytes = [bytelevel_token_bytes(p) for p in self.pieces]
        self._encode = tok.encode_batch_fast  # no offsets computed: ids are all RADON needs

    @classmethod
    def load(cls, path: Path, offset: int) -> ByteLevelPart:
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_str(path.read_text(encoding="utf-8"))
            part = cls(tok, offset)
        except Exception as exc:  # tokenizers raises plain Exception subclasses for bad JSON
            raise IntegrityError(f"{path}: not a byte-level BPE tokenizers file ({exc})") from None
        missing = set(byte_decoder()) - set(part.pieces)
        if missing:
            raise IntegrityError(
                f"{path}: lacks {len(missing)} of the {BYTE_ALPHABET} byte pieces, so some text could not be encoded"
            )
        return part

    def encode_runs(self, runs: list[str]) -> list[list[int]]:
        """Ids (offset applied) of each run, encoded independently.

        One call per run: a batch call of several short runs goes through tokenizers' thread pool,
        which costs more than it saves here (measured: 19 us for three runs one by one, 38 us batched).
        """
        return [self.encode(run) for run in runs]

    def encode(self, text: str) -> list[int]:
        off = self.offset
        return [i + off for i in self._encode([text], add_special_tokens=False)[0].ids]


class BPETokenizer(PieceTableTokenizer):
    """One byte-level BPE over all text: specials 0-3, then the BPE pieces, then reserved ids."""

    type_name = "bpe"

    def __init__(
        self, bpe: Any, vocab_size: int | None = None, training: dict[str, Any] | None = None
    ) -> None:
        n_special = len(SPECIAL_TOKENS)
        self._part = bpe if isinstance(bpe, ByteLevelPart) else ByteLevelPart(bpe, n_special)
        used = n_special + self._part.size
        total = used if vocab_size is None else vocab_size
        if total < used:
            raise RadonError(f"vocab_size {total} is smaller than the specials + BPE pieces ({used})")
        reserved = [RESERVED.format(k) for k in range(total - used)]
        self._set_table(
            [*SPECIAL_TOKENS, *self._part.pieces, *reserved],
            [b""] * n_special + self._part.piece_bytes + [b""] * len(reserved),
            reserved_from=used,
        )
        self.training = dict(training or {})

    @property
    def split(self) -> dict[str, int]:
        """Sizes of the id space's parts; they sum to ``vocab_size``."""
        n_special = len(SPECIAL_TOKENS)
        return {
            "special": n_special,
            "bpe": self._part.size,
            "reserved": self.vocab_size - n_special - self._part.size,
        }

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = self._part.encode(text) if text else []
        return self._with_specials(ids, add_bos, add_eos)

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / BPE_FILE).write_text(self._part.tok.to_str(), encoding="utf-8")
        config = self._config({"bpe": len(SPECIAL_TOKENS)}, training=self.training)
        write_config(directory, config, [BPE_FILE])
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> BPETokenizer:
        directory = Path(directory)
        return cls._load(directory, read_config(directory, cls.type_name))

    @classmethod
    def _load(cls, directory: Path, config: dict[str, Any]) -> BPETokenizer:
        vocab_size = require_int(config, "vocab_size", directory)
        part = ByteLevelPart.load(directory / BPE_FILE, len(SPECIAL_TOKENS))
        split = config.get("split") or {}
        if split.get("bpe") != part.size:
            raise IntegrityError(
                f"{directory / BPE_FILE}: holds {part.size} pieces but the config's split records {split.get('bpe')}"
            )
        return cls(part, vocab_size=vocab_size, training=config.get("training"))
