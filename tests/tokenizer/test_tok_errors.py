"""Bad input gives a clear error naming the problem: missing or corrupted files, hash mismatches, a
broken hybrid (never a silent fallback to another type), and vocabularies too small to train."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from radon.errors import IntegrityError, RadonError
from radon.integrity import sha256_file
from radon.tokenizer import BPETokenizer, HybridTokenizer, load_tokenizer, train_bpe, train_hybrid

RU = "Мама мыла раму, а папа читал газету. " * 40
EN = "The quick brown fox jumps over the lazy dog. " * 40
CODE = "def f(x):\n    return x * 2\n" * 40


@pytest.fixture
def tok_copy(hybrid_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(hybrid_dir, tmp_path / "tok"))


def _config(folder: Path) -> dict:
    return json.loads((folder / "radon_tokenizer.json").read_text())


def _write_config(folder: Path, cfg: dict) -> None:
    (folder / "radon_tokenizer.json").write_text(json.dumps(cfg))


def _rehash(folder: Path) -> None:
    """Record the current sha256 of every file, as a careless hand edit would."""
    cfg = _config(folder)
    cfg["files"] = {name: sha256_file(folder / name) for name in cfg["files"]}
    _write_config(folder, cfg)


def test_loads_when_intact(tok_copy: Path, hybrid: HybridTokenizer) -> None:
    loaded = load_tokenizer(tok_copy)
    assert isinstance(loaded, HybridTokenizer)
    assert loaded.encode("Привет, world") == hybrid.encode("Привет, world")
    assert HybridTokenizer.from_pretrained(tok_copy).split == hybrid.split


@pytest.mark.parametrize("name", ["unigram.model", "bpe.json"])
def test_missing_model_file(tok_copy: Path, name: str) -> None:
    (tok_copy / name).unlink()
    with pytest.raises(IntegrityError, match=f"{name}: missing"):
        load_tokenizer(tok_copy)


def test_missing_config(tok_copy: Path) -> None:
    (tok_copy / "radon_tokenizer.json").unlink()
    with pytest.raises(IntegrityError, match="radon_tokenizer.json: missing"):
        load_tokenizer(tok_copy)


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(RadonError, match="no such directory"):
        load_tokenizer(tmp_path / "nope")


@pytest.mark.parametrize("name", ["unigram.model", "bpe.json"])
def test_corrupted_file_is_a_hash_mismatch(tok_copy: Path, name: str) -> None:
    path = tok_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=rf"{name}: sha256 mismatch"):
        load_tokenizer(tok_copy)


def test_recorded_hash_mismatch(tok_copy: Path) -> None:
    cfg = _config(tok_copy)
    cfg["files"]["bpe.json"] = "0" * 64
    _write_config(tok_copy, cfg)
    with pytest.raises(IntegrityError, match="bpe.json: sha256 mismatch"):
        load_tokenizer(tok_copy)


def test_malformed_config(tok_copy: Path) -> None:
    (tok_copy / "radon_tokenizer.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="malformed JSON"):
        load_tokenizer(tok_copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"type": "wordpiece"}, "unknown tokenizer type 'wordpiece'"),
        ({"format_version": 99}, "format_version 99"),
        ({"router": {"version": 0}}, "router version"),
        ({"bos_token_id": 7}, "special ids"),
        (
            {"split": {"special": 4, "unigram": 1, "bpe": 995, "reserved": 0}},
            "split records 1 unigram pieces",
        ),
        ({"vocab_size": 10}, "vocab_size 10 is smaller"),
    ],
)
def test_inconsistent_config(tok_copy: Path, edit: dict, message: str) -> None:
    cfg = _config(tok_copy)
    cfg.update(edit)
    _write_config(tok_copy, cfg)
    with pytest.raises(IntegrityError, match=message):
        load_tokenizer(tok_copy)


def test_garbage_model_with_matching_hash_is_an_error_not_a_fallback(tok_copy: Path) -> None:
    """A broken hybrid says why; it never comes back as a BPE or any other type."""
    (tok_copy / "unigram.model").write_bytes(b"this is not a sentencepiece model")
    _rehash(tok_copy)
    with pytest.raises(IntegrityError, match="unigram.model: not a SentencePiece model"):
        load_tokenizer(tok_copy)
    (tok_copy / "bpe.json").write_text('{"model": "nonsense"}')
    _rehash(tok_copy)
    with pytest.raises(IntegrityError):
        load_tokenizer(tok_copy)


def test_type_mismatch_is_refused(tok_copy: Path, bpe_dir: Path) -> None:
    with pytest.raises(RadonError, match="holds a 'hybrid' tokenizer, not 'bpe'"):
        BPETokenizer.from_pretrained(tok_copy)
    with pytest.raises(RadonError, match="holds a 'bpe' tokenizer, not 'hybrid'"):
        HybridTokenizer.from_pretrained(bpe_dir)
    assert isinstance(load_tokenizer(bpe_dir), BPETokenizer)


def test_vocab_smaller_than_specials_plus_alphabets() -> None:
    with pytest.raises(
        RadonError, match=r"--vocab-size 200 is too small: the specials \(4\) \+ the SentencePiece alphabet"
    ):
        train_hybrid(RU, EN, CODE, 200)
    with pytest.raises(RadonError, match="--vocab-size 100 is too small"):
        train_bpe([EN], 100)


@pytest.mark.parametrize(
    ("share", "message"),
    [
        (0.0, "between 0 and 1"),
        (1.0, "between 0 and 1"),
        (0.01, "fewer than its alphabet"),
        (0.95, "fewer than its 256-byte"),
    ],
)
def test_ru_share_out_of_range(share: float, message: str) -> None:
    with pytest.raises(RadonError, match=message):
        train_hybrid(RU, EN, CODE, 600, share)


def test_no_cyrillic_in_the_russian_text() -> None:
    with pytest.raises(RadonError, match="holds no Cyrillic words"):
        train_hybrid("only latin here", EN, CODE, 600)


def test_too_little_text_leaves_reserved_ids(tmp_path: Path) -> None:
    """A corpus too small for the vocabulary still gives exactly vocab_size ids: the rest is reserved."""
    tok = train_hybrid(RU, EN, CODE, 1200, 0.3)
    assert tok.vocab_size == 1200 and tok.split["reserved"] > 0
    loaded = load_tokenizer(tok.save_pretrained(tmp_path / "t"))
    assert loaded.split == tok.split
    last = tok.vocab_size - 1
    assert tok.id_to_token(last).startswith("<reserved_") and tok.decode([last]) == ""
    assert tok.decode(tok.encode(RU + EN)) == RU + EN
