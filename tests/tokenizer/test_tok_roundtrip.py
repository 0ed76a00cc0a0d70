"""Round trip, byte for byte, for the hybrid and the plain BPE: fixed hard cases, the test corpora,
and hypothesis over arbitrary Unicode; plus the stream decoder, batches and the id tables."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radon.data import eval_files, find_data_dir, sample_text
from radon.data.builtin import EN_FILE, RU_FILE
from radon.errors import RadonError
from radon.tokenizer import BPETokenizer, HybridTokenizer, Tokenizer

HARD_CASES = [
    "",
    " ",
    "\n",
    "Привет, мир! Hello, world.",
    "def f(x):\n\tif x:\n\t\treturn  x  # комментарий\r\n    pass\r\n",
    "    четыре пробела, потом\tтаб и   три пробела   ",
    "ёЁ ещё Ёлка; ЁЖ",
    "неразрывный\u00a0пробел\u202fузкий\u2009тонкий",
    "эмодзи 😀👍🏽 и флаг 🇷🇺, семья 👨‍👩‍👧",
    "замо́к и за́мок, й = и\u0306",
    "▁ это не пробел, а U+2581 ▁▁",
    "<s> </s> <pad> <unk> не специальные токены, а текст",
    "Ѣ ѣ Ѳ ѳ Ѵ ї є ґ ў — буквы, которых может не быть в алфавите",
    "中文 العربية עברית हिन्दी Ελληνικά",
    "\x00\x01\x7f управляющие \u200b\u200d\ufeff",
    "   \n\n\n   \t\t",
    "«Цитата» — „ещё одна“ … (скобки) [и] {фигурные}",
    "9.5 км/ч, 2 300 ₽, 100% — 1/2",
    "x" * 3000 + "я" * 3000,
]


@pytest.fixture(params=["hybrid", "bpe"])
def tok(request: pytest.FixtureRequest, hybrid: HybridTokenizer, bpe: BPETokenizer) -> Tokenizer:
    return hybrid if request.param == "hybrid" else bpe


@pytest.mark.parametrize("text", HARD_CASES, ids=range(len(HARD_CASES)))
def test_hard_cases_round_trip(tok: Tokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert tok.unk_token_id not in ids


def test_empty_string_encodes_to_nothing(tok: Tokenizer) -> None:
    assert tok.encode("") == []
    assert tok.encode("", add_bos=True, add_eos=True) == [tok.bos_token_id, tok.eos_token_id]
    assert tok.decode([]) == ""


def test_bos_eos_and_special_skipping(tok: Tokenizer) -> None:
    ids = tok.encode("мир world", add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_token_id == 1 and ids[-1] == tok.eos_token_id == 2
    assert tok.decode(ids) == "мир world"
    assert tok.decode(ids, skip_special_tokens=False) == "<s>мир world</s>"


def test_builtin_corpus_round_trips(tok: Tokenizer) -> None:
    for path in (RU_FILE, EN_FILE):
        text = path.read_text(encoding="utf-8")
        assert tok.decode(tok.encode(text)) == text


def test_shared_eval_corpora_round_trip(tok: Tokenizer) -> None:
    data = find_data_dir()
    if data is None:
        pytest.skip("no ../shared/data (RADON_DATA) on this machine")
    for lang, path in eval_files(data).items():
        text = sample_text(path, 200_000)
        assert tok.decode(tok.encode(text)) == text, lang


def test_router_sends_unknown_cyrillic_to_bpe(hybrid: HybridTokenizer) -> None:
    """A Cyrillic letter missing from the Unigram alphabet is byte-level BPE, never <unk>."""
    assert "Ѣ" not in hybrid.router.pattern
    assert hybrid.route("мир Ѣ мир") == [("unigram", "мир"), ("bpe", " Ѣ"), ("unigram", " мир")]


# Unicode text of every kind except lone surrogates (not encodable as UTF-8, so not valid text).
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
# Mostly the characters where the router's decisions happen.
ROUTER_TEXT = st.text(
    st.sampled_from(list("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАЁЯ  ,.!?—–-«»:;()\n\t\r\u00a0\u0301aZ09_😀▁")),
    max_size=200,
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(text=ANY_TEXT)
def test_round_trip_any_unicode(hybrid: HybridTokenizer, bpe: BPETokenizer, text: str) -> None:
    assert hybrid.decode(hybrid.encode(text)) == text
    assert bpe.decode(bpe.encode(text)) == text


@FAST
@given(text=ROUTER_TEXT)
def test_round_trip_router_alphabet(hybrid: HybridTokenizer, text: str) -> None:
    ids = hybrid.encode(text)
    assert hybrid.decode(ids) == text
    assert "".join(run for _, run in hybrid.route(text)) == text
    assert hybrid.unk_token_id not in ids


def _stream(tok: Tokenizer, ids: list[int]) -> list[str]:
    dec = tok.stream_decoder()
    pieces = [dec.push(i) for i in ids]
    return [*pieces, dec.flush()]


@FAST
@given(text=ANY_TEXT)
def test_stream_decoder_matches_decode(hybrid: HybridTokenizer, text: str) -> None:
    pieces = _stream(hybrid, hybrid.encode(text))
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces) or "\ufffd" in text


@FAST
@given(ids=st.lists(st.integers(0, 999), max_size=60))
def test_stream_decoder_matches_decode_on_any_ids(hybrid: HybridTokenizer, ids: list[int]) -> None:
    """Even ids that do not form valid UTF-8 (a model can emit anything) stream to decode()'s text."""
    assert "".join(_stream(hybrid, ids)) == hybrid.decode(ids)


def test_stream_decoder_holds_a_split_character(bpe: BPETokenizer) -> None:
    """An emoji split over byte tokens comes out whole, once, when its last byte arrives."""
    ids = bpe.encode("a😀b")
    assert len(ids) >= 4, "the tiny BPE should split the emoji into bytes"
    pieces = _stream(bpe, ids)
    assert "".join(pieces) == "a😀b"
    assert "😀" in pieces and not any("\ufffd" in p for p in pieces)


def test_encode_batch_pads_left_by_default(tok: Tokenizer) -> None:
    texts = ["мир", "Hello, мир! How are you?", ""]
    ids, mask = tok.encode_batch(texts)
    assert ids.dtype == np.int64 and mask.dtype == np.int64 and ids.shape == mask.shape
    rows = [tok.encode(t) for t in texts]
    assert ids.shape == (3, max(map(len, rows)))
    for b, row in enumerate(rows):
        n = len(row)
        assert ids[b, ids.shape[1] - n :].tolist() == row
        assert mask[b].tolist() == [0] * (ids.shape[1] - n) + [1] * n
        assert (ids[b, : ids.shape[1] - n] == tok.pad_token_id).all()
    right, rmask = tok.encode_batch(texts, add_bos=True, padding_side="right")
    assert right[1, : len(rows[1]) + 1].tolist() == [tok.bos_token_id, *rows[1]]
    assert rmask[2].tolist()[:1] == [1] and rmask[2].sum() == 1  # bos only
    with pytest.raises(RadonError, match="padding_side"):
        tok.encode_batch(texts, padding_side="middle")  # type: ignore[arg-type]
    empty, emask = tok.encode_batch([])
    assert empty.shape == emask.shape == (0, 0)


def test_token_tables(hybrid: HybridTokenizer) -> None:
    assert [hybrid.id_to_token(i) for i in range(4)] == ["<unk>", "<s>", "</s>", "<pad>"]
    specials = (hybrid.unk_token_id, hybrid.bos_token_id, hybrid.eos_token_id, hybrid.pad_token_id)
    assert specials == (0, 1, 2, 3)
    split = hybrid.split
    assert sum(split.values()) == hybrid.vocab_size == len(hybrid)
    first_bpe = split["special"] + split["unigram"]
    assert hybrid.part_of(4) == "unigram" and hybrid.part_of(first_bpe) == "bpe"
    for i in (0, 5, first_bpe, hybrid.vocab_size - 1):
        assert hybrid.token_to_id(hybrid.id_to_token(i)) <= i  # the lowest id holding that piece
    assert hybrid.token_to_id("▁мир") in (None, *range(4, first_bpe))
    assert hybrid.token_to_id("Ġthe") >= first_bpe
    assert hybrid.token_to_id("no such piece at all") is None
    with pytest.raises(RadonError, match="outside"):
        hybrid.id_to_token(hybrid.vocab_size)
    with pytest.raises(RadonError, match="outside"):
        hybrid.decode([5, -1])
    assert hybrid.decode(np.array(hybrid.encode("мир"))) == "мир"
