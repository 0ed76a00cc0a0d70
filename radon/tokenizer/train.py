"""Training: the hybrid (SentencePiece for Russian runs + byte-level BPE for the rest) and the plain BPE.

The Russian part is a SentencePiece model (``model_type``): BPE by default, Unigram on request
(``sp_options={"model_type": "unigram"}``, what RADON trained before). Both load the same way; the
folder still calls the part ``unigram`` (``unigram.model``, ``split["unigram"]``) so that older
folders load unchanged. On modern Russian the SentencePiece BPE takes 0.889-0.896x a single
byte-level BPE's tokens at 8k-32k ids where Unigram took 0.94x at 32k (docs/tokenizer.md,
"Modern text and corpus mixtures"), and it trains six to ten times faster.

Training is deterministic. Nothing is sampled or shuffled: SentencePiece reads every sentence in
order (``input_sentence_size=0``, ``shuffle_input_sentence=false``), its BPE merges and its Unigram
EM have no random state; tokenizers' BPE counts pairs and breaks ties by pair order. Same text in,
same files out, on any machine: SentencePiece runs on one thread (``num_threads=1``), whatever the
machine has (tests/tokenizer/test_tok_golden.py trains twice and pins the ids).

The SentencePiece options follow its docs (``doc/options.md``): normalization off so text
round-trips, ``split_by_whitespace=false`` and ``split_by_unicode_script=false`` so a piece may span
a space or join a word and its punctuation (``▁и▁не``, ``ла,``), which is where it saves tokens
over a GPT-2 pre-tokenized BPE, and ``character_coverage=1`` so every character of a training run
is in the alphabet the router later checks against.
"""

from __future__ import annotations

import io
import logging
import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from radon.errors import RadonError
from radon.tokenizer.base import SPECIAL_TOKENS
from radon.tokenizer.bpe import BYTE_ALPHABET, BPETokenizer, ByteLevelPart, train_bytelevel_bpe
from radon.tokenizer.hybrid import SPACE_PIECE, HybridTokenizer, UnigramPart
from radon.tokenizer.router import Router

log = logging.getLogger(__name__)

# Share of the non-special ids given to the SentencePiece (Russian) part, when not given. Tuned with
# scripts/tokenizer_modern_bench.py on the default corpus mixture (classics + modern text, 4 MB per
# language) so that Russian, classic and modern, takes <= 0.90x a single BPE's tokens while English
# and code take <= 1.08x (docs/tokenizer.md): 0.55 at 8k ids, 0.60 at 16k, 0.65 at 32k. 0.50 at 8k
# misses modern Russian (0.902x); 0.65 at 16k misses English (1.093x). English and code saturate as
# their part grows, so a large vocabulary can give Russian a larger share for the same cost.
DEFAULT_RU_SHARE = 0.55  # at REFERENCE_VOCAB ids
REFERENCE_VOCAB = 8000
RU_SHARE_PER_DOUBLING = 0.05
RU_SHARE_RANGE = (0.4, 0.65)
MIN_UNIGRAM_EXTRA = 8  # pieces beyond the alphabet, so SentencePiece has something to learn
SP_SENTENCE_CHARS = 2000  # longer runs are cut at a space for training (SentencePiece skips long lines)
BPE_CHUNK_CHARS = 1 << 14  # BPE training reads text in chunks cut at newlines

SENTENCEPIECE_OPTIONS: dict[str, Any] = {
    "model_type": "bpe",  # or "unigram" (SENTENCEPIECE_MODEL_TYPES)
    "character_coverage": 1.0,
    "normalization_rule_name": "identity",
    "add_dummy_prefix": False,
    "remove_extra_whitespaces": False,
    "split_by_whitespace": False,
    "split_by_unicode_script": False,
    "split_by_number": True,
    "byte_fallback": False,
    "max_sentencepiece_length": 16,
    "max_sentence_length": 4 * SP_SENTENCE_CHARS + 16,
    "unk_id": 0,
    "bos_id": -1,
    "eos_id": -1,
    "pad_id": -1,
    "input_sentence_size": 0,
    "shuffle_input_sentence": False,
    "hard_vocab_limit": False,
    "num_threads": 1,
}
# Options that keep text as it is and ids where RADON puts them: changing one breaks the round trip.
FIXED_SENTENCEPIECE_OPTIONS = (
    "normalization_rule_name", "add_dummy_prefix", "remove_extra_whitespaces", "byte_fallback",
    "unk_id", "bos_id", "eos_id", "pad_id", "input_sentence_size", "shuffle_input_sentence", "num_threads",
)  # fmt: skip
# Options measured in docs/tokenizer.md ("Modern text and corpus mixtures") beside those of
# SENTENCEPIECE_OPTIONS; the last two act on Unigram training only.
TUNABLE_SENTENCEPIECE_OPTIONS = ("split_digits", "seed_sentencepiece_size", "shrinking_factor")
# Model types whose pieces are plain substrings, so the part's byte table and round trip hold.
SENTENCEPIECE_MODEL_TYPES = ("bpe", "unigram")


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="tokenizer", unit="step", disable=not enabled, file=sys.stderr, leave=True)


def _chunks(text: str, size: int = BPE_CHUNK_CHARS) -> Iterator[str]:
    """``text`` in pieces of about ``size`` characters, cut after a newline where there is one."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            nl = text.rfind("\n", start, end)
            end = nl + 1 if nl > start else end
        yield text[start:end]
        start = end


def _sentences(runs: Sequence[str]) -> Iterator[str]:
    """SentencePiece training sentences: the runs, long ones cut at a space (the cut keeps every character)."""
    for run in runs:
        while len(run) > SP_SENTENCE_CHARS:
            cut = run.rfind(" ", 0, SP_SENTENCE_CHARS)
            cut = cut if cut > 0 else SP_SENTENCE_CHARS
            yield run[:cut]
            run = run[cut:]
        if run:
            yield run


def default_ru_share(vocab_size: int) -> float:
    """The tuned Russian share for ``vocab_size`` ids: 0.55 at 8k, +0.05 per doubling, in [0.40, 0.65]."""
    share = DEFAULT_RU_SHARE + RU_SHARE_PER_DOUBLING * math.log2(max(vocab_size, 1) / REFERENCE_VOCAB)
    return round(min(max(share, RU_SHARE_RANGE[0]), RU_SHARE_RANGE[1]), 3)


def split_sizes(vocab_size: int, ru_share: float, unigram_alphabet: int) -> tuple[int, int]:
    """``(unigram_pieces, bpe_pieces)`` for a total ``vocab_size``; raises RadonError when too small.

    The SentencePiece (Russian) part gets ``round(ru_share * (vocab_size - 4))`` ids, the BPE part the rest.
    """
    n_special = len(SPECIAL_TOKENS)
    if not 0.0 < ru_share < 1.0:
        raise RadonError(f"--ru-share: must be between 0 and 1 (exclusive), got {ru_share}")
    floor = n_special + unigram_alphabet + MIN_UNIGRAM_EXTRA + BYTE_ALPHABET
    if vocab_size < floor:
        raise RadonError(
            f"--vocab-size {vocab_size} is too small: the specials ({n_special}) + the SentencePiece alphabet "
            f"({unigram_alphabet} characters of the Russian text, plus {MIN_UNIGRAM_EXTRA} pieces) + the byte "
            f"alphabet ({BYTE_ALPHABET}) need at least {floor}"
        )
    n_uni = round(ru_share * (vocab_size - n_special))
    n_bpe = vocab_size - n_special - n_uni
    if n_uni < unigram_alphabet + MIN_UNIGRAM_EXTRA:
        raise RadonError(
            f"--ru-share {ru_share} gives the SentencePiece part {n_uni} pieces, fewer than its alphabet "
            f"({unigram_alphabet}) + {MIN_UNIGRAM_EXTRA}; raise --ru-share or --vocab-size"
        )
    if n_bpe < BYTE_ALPHABET:
        raise RadonError(
            f"--ru-share {ru_share} leaves the BPE part {n_bpe} pieces, fewer than its {BYTE_ALPHABET}-byte "
            "alphabet; lower --ru-share or raise --vocab-size"
        )
    return n_uni, n_bpe


def sentencepiece_options(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """SENTENCEPIECE_OPTIONS with ``overrides``; refuses a change that would break the round trip."""
    options = dict(SENTENCEPIECE_OPTIONS)
    for key, value in (overrides or {}).items():
        if key not in options and key not in TUNABLE_SENTENCEPIECE_OPTIONS:
            raise RadonError(f"SentencePiece option {key!r} is not one RADON lets you change")
        if key in FIXED_SENTENCEPIECE_OPTIONS and value != options[key]:
            raise RadonError(f"SentencePiece option {key}={value!r} would break the exact round trip")
        options[key] = value
    if options["model_type"] not in SENTENCEPIECE_MODEL_TYPES:
        raise RadonError(
            f"SentencePiece option model_type={options['model_type']!r}: RADON trains "
            f"{' or '.join(SENTENCEPIECE_MODEL_TYPES)}"
        )
    return options


def train_unigram(
    sentences: Sequence[str], n_pieces: int, offset: int, options: Mapping[str, Any] | None = None
) -> UnigramPart:
    """The SentencePiece part (``options["model_type"]``: BPE or Unigram) with up to ``n_pieces`` pieces,
    plus SentencePiece's ``<unk>``."""
    import sentencepiece as spm

    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=buf, vocab_size=n_pieces + 1, minloglevel=2,
            **sentencepiece_options(options),
        )  # fmt: skip
    except RuntimeError as exc:
        raise RadonError(f"SentencePiece could not train the Russian part: {exc}") from None
    return UnigramPart(buf.getvalue(), offset, "the trained SentencePiece model")


def train_hybrid(
    ru: str,
    en: str,
    code: str,
    vocab_size: int,
    ru_share: float | None = None,
    *,
    progress: bool = False,
    sources: Mapping[str, Any] | None = None,
    sp_options: Mapping[str, Any] | None = None,
) -> HybridTokenizer:
    """Train a hybrid tokenizer with exactly ``vocab_size`` ids on Russian, English and code text.

    Every text is routed: Cyrillic runs train the SentencePiece part, everything else (including the
    punctuation, digits and newlines between Russian runs) trains the BPE part. ``sources`` is
    recorded in the config (names, sizes, sha256), never a path. ``ru_share`` defaults to
    :func:`default_ru_share`. ``sp_options`` overrides SentencePiece options (:func:`sentencepiece_options`).
    """
    n_special = len(SPECIAL_TOKENS)
    ru_share = default_ru_share(vocab_size) if ru_share is None else ru_share
    bar = _progress(4, progress)
    t0 = time.perf_counter()
    bar.set_description("tokenizer: routing")
    router = Router.default()
    uni_runs: list[str] = []
    bpe_texts: list[str] = []
    for text in (ru, en, code):
        for is_unigram, run in router.split(text):
            if is_unigram:
                uni_runs.append(run)
            else:
                bpe_texts.extend(_chunks(run))
    if not uni_runs:
        raise RadonError(
            "the Russian text holds no Cyrillic words: the SentencePiece part has nothing to learn"
        )
    alphabet = set().union(*map(set, uni_runs))
    n_uni, n_bpe = split_sizes(vocab_size, ru_share, len(alphabet))
    bar.update(1)

    uni_bytes = sum(len(r.encode()) for r in uni_runs)
    bar.set_description(f"tokenizer: sentencepiece, {n_uni} pieces on {uni_bytes / 1e6:.1f} MB")
    uni = train_unigram(list(_sentences(uni_runs)), n_uni, n_special, sp_options)
    if uni.size < n_uni:
        log.warning("the SentencePiece part has %d pieces, not %d (too little Russian text); the BPE part gets the rest",
                    uni.size, n_uni)  # fmt: skip
        n_bpe += n_uni - uni.size
    bar.update(1)

    bpe_bytes = sum(len(t.encode()) for t in bpe_texts)
    bar.set_description(f"tokenizer: bpe, {n_bpe} pieces on {bpe_bytes / 1e6:.1f} MB")
    bpe = ByteLevelPart(train_bytelevel_bpe(bpe_texts, n_bpe), n_special + uni.size)
    if bpe.size < n_bpe:
        log.warning("the BPE part has %d pieces, not %d (too little text); %d ids stay reserved",
                    bpe.size, n_bpe, n_bpe - bpe.size)  # fmt: skip
    bar.update(1)

    bar.set_description("tokenizer: checking")
    training = {
        "ru_share": ru_share,
        "requested": {"unigram": n_uni, "bpe": n_bpe},
        "unigram_bytes": uni_bytes,
        "bpe_bytes": bpe_bytes,
        "sentencepiece": sentencepiece_options(sp_options),
        "sources": dict(sources or {}),
        "versions": _versions(),
    }
    log.info("trained the hybrid tokenizer in %.1f s", time.perf_counter() - t0)
    tok = HybridTokenizer(uni, bpe, vocab_size=vocab_size, training=training)
    missing = alphabet - {" " if c == SPACE_PIECE else c for c in uni.alphabet}
    if missing:  # character_coverage=1 should make this impossible; the router would route them to BPE
        log.warning(
            "%d characters of the Russian runs are missing from the SentencePiece alphabet", len(missing)
        )
    bar.update(1)
    bar.set_description("tokenizer: done")
    bar.close()
    return tok


def train_bpe(
    texts: Sequence[str],
    vocab_size: int,
    *,
    progress: bool = False,
    sources: Mapping[str, Any] | None = None,
) -> BPETokenizer:
    """Train RADON's plain type: one byte-level BPE on all ``texts`` with exactly ``vocab_size`` ids."""
    n_special = len(SPECIAL_TOKENS)
    if vocab_size < n_special + BYTE_ALPHABET:
        raise RadonError(
            f"--vocab-size {vocab_size} is too small: the specials ({n_special}) + the byte alphabet "
            f"({BYTE_ALPHABET}) need at least {n_special + BYTE_ALPHABET}"
        )
    bar = _progress(1, progress)
    t0 = time.perf_counter()
    chunks = [c for t in texts for c in _chunks(t)]
    bar.set_description(f"tokenizer: bpe, {vocab_size - n_special} pieces")
    part = ByteLevelPart(train_bytelevel_bpe(chunks, vocab_size - n_special), n_special)
    if part.size < vocab_size - n_special:
        log.warning("the BPE has %d pieces, not %d (too little text)", part.size, vocab_size - n_special)
    bar.update(1)
    bar.close()
    log.info("trained the BPE tokenizer in %.1f s", time.perf_counter() - t0)
    training = {"sources": dict(sources or {}), "versions": _versions()}
    return BPETokenizer(part, vocab_size=vocab_size, training=training)


def _versions() -> dict[str, str]:
    import sentencepiece
    import tokenizers

    return {"sentencepiece": sentencepiece.__version__, "tokenizers": tokenizers.__version__}
