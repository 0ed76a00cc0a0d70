"""``HybridTokenizer``: SentencePiece for Cyrillic runs, byte-level BPE for everything else.

The SentencePiece model is a BPE (the default since the modern-text tuning) or a Unigram model
(before it); both load through ``UnigramPart``, and the folder keeps the part's old names
(``unigram.model``, ``split["unigram"]``, ``part_of(id) == "unigram"``) so every folder loads.

One id space: RADON's specials first (``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, ``<pad>`` 3), then
the SentencePiece pieces, then the BPE pieces, then reserved ids if training produced fewer pieces than
asked for. The router (``router.py``) splits text into runs; each run goes to its part and the ids
are concatenated in order. Decoding joins each id's bytes, so ``decode(encode(x)) == x`` holds for
any string: the runs partition the text, the BPE part is byte-level, and the SentencePiece model is
trained with normalization off (identity rule, no dummy prefix, spaces kept) and only ever sees
characters of its own alphabet.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from radon.errors import IntegrityError, RadonError
from radon.tokenizer.base import SPECIAL_TOKENS, UNK_ID
from radon.tokenizer.bpe import BPE_FILE, ByteLevelPart
from radon.tokenizer.folder import read_config, require_int, write_config
from radon.tokenizer.pieces import RESERVED, PieceTableTokenizer
from radon.tokenizer.router import ROUTER_VERSION, Router

log = logging.getLogger(__name__)

UNIGRAM_FILE = "unigram.model"
SPACE_PIECE = "\u2581"  # SentencePiece's visible space, "▁"
# Strings the loader pushes through the Unigram model to prove it does not normalize: no dummy
# prefix, a leading space kept, a double space not squeezed.
_PROBES = ("{a}{a}", " {a}", "{a}  {a}")


class UnigramPart:
    """A SentencePiece model (BPE or Unigram) placed at ``offset``; SentencePiece's own ``<unk>`` (its id 0)
    maps to RADON's ``<unk>``, so the part holds ``piece_size - 1`` ids."""

    def __init__(self, model_proto: bytes, offset: int, source: str = "unigram model") -> None:
        import sentencepiece as spm

        self.proto = bytes(model_proto)
        try:
            self.sp = spm.SentencePieceProcessor(model_proto=self.proto)
        except Exception as exc:  # sentencepiece raises RuntimeError/OSError for a bad proto
            raise IntegrityError(f"{source}: not a SentencePiece model ({exc})") from None
        sp = self.sp
        if sp.unk_id() != 0 or sp.bos_id() != -1 or sp.eos_id() != -1 or sp.pad_id() != -1:
            raise IntegrityError(
                f"{source}: expected unk at id 0 and no bos/eos/pad pieces (RADON adds its own specials)"
            )
        self.offset = offset
        self.size = sp.get_piece_size() - 1
        self.pieces = [sp.id_to_piece(i) for i in range(1, self.size + 1)]
        self.piece_bytes = [p.replace(SPACE_PIECE, " ").encode() for p in self.pieces]
        self.alphabet = {p for p in self.pieces if len(p) == 1}
        self._check_identity(source)

    def _check_identity(self, source: str) -> None:
        """Refuse a model that would change text (NFKC, dummy prefix, squeezed spaces)."""
        letters = sorted(c for c in self.alphabet if c.isalpha())
        if not letters:
            raise IntegrityError(f"{source}: its alphabet holds no letter")
        for probe in _PROBES if SPACE_PIECE in self.alphabet else _PROBES[:1]:
            text = probe.format(a=letters[0])
            back = "".join(self.sp.encode(text, out_type=str)).replace(SPACE_PIECE, " ")
            if back != text:
                raise IntegrityError(
                    f"{source}: the model normalizes text ({text!r} -> {back!r}); it must be trained with "
                    "normalization_rule_name=identity, add_dummy_prefix=false, remove_extra_whitespaces=false"
                )

    def encode_runs(self, runs: list[str]) -> list[list[int]]:
        """Ids (offset applied) of each run. The router only sends characters of the alphabet, so
        SentencePiece's unknown id cannot occur; if it ever did, it maps to RADON's ``<unk>``.

        One call per run: SentencePiece's list API starts a thread pool per call, which costs far
        more than it saves on the short runs a router produces.
        """
        off = self.offset - 1
        encode = self.sp.encode
        out = []
        for run in runs:
            ids = encode(run, out_type=int)
            out.append([i + off if i else UNK_ID for i in ids] if 0 in ids else [i + off for i in ids])
        return out


class HybridTokenizer(PieceTableTokenizer):
    """Russian through SentencePiece (BPE or Unigram), English and code through byte-level BPE, one id space."""

    type_name = "hybrid"

    def __init__(
        self,
        unigram: UnigramPart | bytes,
        bpe: ByteLevelPart | Any,
        vocab_size: int | None = None,
        training: dict[str, Any] | None = None,
    ) -> None:
        n_special = len(SPECIAL_TOKENS)
        self._uni = unigram if isinstance(unigram, UnigramPart) else UnigramPart(unigram, n_special)
        bpe_offset = n_special + self._uni.size
        self._bpe = bpe if isinstance(bpe, ByteLevelPart) else ByteLevelPart(bpe, bpe_offset)
        if self._uni.offset != n_special or self._bpe.offset != bpe_offset:
            raise ValueError("part offsets do not follow specials -> unigram -> bpe")
        used = bpe_offset + self._bpe.size
        total = used if vocab_size is None else vocab_size
        if total < used:
            raise RadonError(
                f"vocab_size {total} is smaller than the specials + Unigram + BPE pieces ({used})"
            )
        reserved = [RESERVED.format(k) for k in range(total - used)]
        self._set_table(
            [*SPECIAL_TOKENS, *self._uni.pieces, *self._bpe.pieces, *reserved],
            [b""] * n_special + self._uni.piece_bytes + self._bpe.piece_bytes + [b""] * len(reserved),
            reserved_from=used,
        )
        try:
            self.router = Router.from_alphabet(self._uni.alphabet)
        except ValueError as exc:
            raise IntegrityError(f"the Unigram model cannot route text: {exc}") from None
        self.training = dict(training or {})

    @property
    def split(self) -> dict[str, int]:
        """Sizes of the id space's parts, in id order; they sum to ``vocab_size``."""
        n_special = len(SPECIAL_TOKENS)
        used = n_special + self._uni.size + self._bpe.size
        return {
            "special": n_special,
            "unigram": self._uni.size,
            "bpe": self._bpe.size,
            "reserved": self.vocab_size - used,
        }

    def part_of(self, token_id: int) -> str:
        """Which part an id belongs to: ``special``, ``unigram``, ``bpe`` or ``reserved``."""
        self._check_ids([int(token_id)])
        for name, (start, size) in self._ranges().items():
            if start <= token_id < start + size:
                return name
        raise AssertionError("unreachable: ranges cover the vocabulary")

    def _ranges(self) -> dict[str, tuple[int, int]]:
        out, start = {}, 0
        for name, size in self.split.items():
            out[name] = (start, size)
            start += size
        return out

    def route(self, text: str) -> list[tuple[str, str]]:
        """``[(part, run), ...]`` as the router splits ``text`` (``part`` is ``unigram`` or ``bpe``)."""
        return [("unigram" if u else "bpe", run) for u, run in self.router.split(text)]

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        if not text:
            return self._with_specials([], add_bos, add_eos)
        runs = self.router.split(text)
        if len(runs) == 1:
            one = self._uni.encode_runs([text])[0] if runs[0][0] else self._bpe.encode(text)
            return self._with_specials(one, add_bos, add_eos)
        uni = iter(self._uni.encode_runs([r for u, r in runs if u]))
        rest = iter(self._bpe.encode_runs([r for u, r in runs if not u]))
        ids: list[int] = []
        for is_unigram, _ in runs:
            ids.extend(next(uni) if is_unigram else next(rest))
        return self._with_specials(ids, add_bos, add_eos)

    # --- files ----------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / UNIGRAM_FILE).write_bytes(self._uni.proto)
        (directory / BPE_FILE).write_text(self._bpe.tok.to_str(), encoding="utf-8")
        router = {
            "version": ROUTER_VERSION,
            "rule": "Cyrillic words joined by spaces and punctuation -> unigram; everything else -> bpe "
            "(docs/tokenizer.md)",
        }
        offsets = {name: start for name, (start, _) in self._ranges().items()}
        config = self._config(offsets, router=router, training=self.training)
        write_config(directory, config, [UNIGRAM_FILE, BPE_FILE])
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> HybridTokenizer:
        directory = Path(directory)
        return cls._load(directory, read_config(directory, cls.type_name))

    @classmethod
    def _load(cls, directory: Path, config: dict[str, Any]) -> HybridTokenizer:
        cfg_path = directory / "radon_tokenizer.json"
        vocab_size = require_int(config, "vocab_size", directory)
        for name in (UNIGRAM_FILE, BPE_FILE):
            if name not in config["files"]:
                raise IntegrityError(f"{cfg_path}: a hybrid tokenizer must list {name} in 'files'")
        router = config.get("router") or {}
        if router.get("version") != ROUTER_VERSION:
            raise IntegrityError(
                f"{cfg_path}: router version {router.get('version')!r} is not {ROUTER_VERSION}; "
                "this RADON would split text differently from the one that trained it"
            )
        ids = {k: config.get(k) for k in ("unk_token_id", "bos_token_id", "eos_token_id", "pad_token_id")}
        if list(ids.values()) != [0, 1, 2, 3]:
            raise IntegrityError(
                f"{cfg_path}: special ids {ids} differ from RADON's (unk 0, bos 1, eos 2, pad 3)"
            )
        n_special = len(SPECIAL_TOKENS)
        uni = UnigramPart((directory / UNIGRAM_FILE).read_bytes(), n_special, str(directory / UNIGRAM_FILE))
        bpe = ByteLevelPart.load(directory / BPE_FILE, n_special + uni.size)
        split = config.get("split") or {}
        for name, size in (("unigram", uni.size), ("bpe", bpe.size)):
            if split.get(name) != size:
                raise IntegrityError(
                    f"{cfg_path}: split records {split.get(name)!r} {name} pieces but the model file holds {size}"
                )
        if n_special + uni.size + bpe.size > vocab_size:
            raise IntegrityError(f"{cfg_path}: vocab_size {vocab_size} is smaller than its parts ({split})")
        return cls(uni, bpe, vocab_size=vocab_size, training=config.get("training"))
