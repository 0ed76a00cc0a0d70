"""``HFTokenizer``: Hugging Face folders keep their own special ids and files, and RADON's encoding
matches transformers' own fast tokenizer on them. The folders are built locally (no network): a
GPT-2-style byte-level BPE and a Mistral-style SentencePiece BPE with byte fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radon.errors import IntegrityError, RadonError
from radon.tokenizer import HFTokenizer, load_tokenizer

TEXT = ("Hello world, this is a small test. Привет, мир! " * 30 + "def f(x):\n    return x\n" * 20).split(
    "\n"
)
SAMPLES = ["Hello world", "Привет, мир! 😀", "def f(x):\n    return x  # ok\n", "", "<|endoftext|> after"]


def _gpt2_folder(folder: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)  # fmt: skip
    tok.train_from_iterator(TEXT, trainer)
    tok.add_special_tokens(["<|endoftext|>"])  # GPT-2: the last id, bos = eos, no pad
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    eot = tok.token_to_id("<|endoftext|>")
    special = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    (folder / "tokenizer_config.json").write_text(json.dumps({**special, "model_max_length": 1024}))
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    (folder / "config.json").write_text(
        json.dumps({"model_type": "gpt2", "bos_token_id": eot, "eos_token_id": eot})
    )
    return folder


def _mistral_folder(folder: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])  # fmt: skip
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<unk>", "<s>", "</s>", *bytes_], show_progress=False
    )
    tok.train_from_iterator(TEXT, trainer)
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": {"content": "<s>", "__type": "AddedToken"}, "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": None,
    }))  # fmt: skip
    (folder / "config.json").write_text(
        json.dumps({"model_type": "mistral", "bos_token_id": 1, "eos_token_id": 2})
    )
    return folder


@pytest.fixture(params=["gpt2", "mistral"])
def hf_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    make = _gpt2_folder if request.param == "gpt2" else _mistral_folder
    return make(tmp_path / request.param)


def test_gpt2_special_ids(tmp_path: Path) -> None:
    folder = _gpt2_folder(tmp_path / "gpt2")
    tok = HFTokenizer.from_hf_dir(folder)
    eot = tok.token_to_id("<|endoftext|>")
    assert eot == tok.vocab_size - 1
    assert tok.bos_token_id == tok.eos_token_id == eot
    assert tok.pad_token_id == eot  # no pad in GPT-2: falls back to eos
    ids, mask = tok.encode_batch(["a", "Hello world"])
    assert ids[0, 0] == eot and mask[0, 0] == 0


def test_mistral_special_ids(tmp_path: Path) -> None:
    tok = HFTokenizer.from_hf_dir(_mistral_folder(tmp_path / "mistral"))
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2, 2)


def test_matches_transformers(hf_dir: Path) -> None:
    transformers = pytest.importorskip("transformers")
    ref = transformers.PreTrainedTokenizerFast(tokenizer_file=str(hf_dir / "tokenizer.json"))
    tok = HFTokenizer.from_hf_dir(hf_dir)
    for text in SAMPLES:
        ids = tok.encode(text)
        assert ids == ref.encode(text, add_special_tokens=False), text
        assert tok.decode(ids) == ref.decode(ids, skip_special_tokens=True)


def test_stream_decoder_matches_decode(hf_dir: Path) -> None:
    tok = HFTokenizer.from_hf_dir(hf_dir)
    for text in SAMPLES:
        ids = tok.encode(text, add_bos=True)
        dec = tok.stream_decoder()
        pieces = [dec.push(i) for i in ids] + [dec.flush()]
        assert "".join(pieces) == tok.decode(ids)
        assert not any("\ufffd" in p for p in pieces)


def test_save_and_load_keep_the_original_files(hf_dir: Path, tmp_path: Path) -> None:
    tok = HFTokenizer.from_hf_dir(hf_dir)
    out = tok.save_pretrained(tmp_path / "ckpt" / "tokenizer")  # convert.py writes into a fresh folder
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (hf_dir / name).exists():
            assert (out / name).read_bytes() == (hf_dir / name).read_bytes()
    cfg = json.loads((out / "radon_tokenizer.json").read_text())
    assert cfg["type"] == "hf" and set(cfg["files"]) >= {"tokenizer.json"}
    loaded = load_tokenizer(out)
    assert isinstance(loaded, HFTokenizer)
    assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id) == (
        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id,
    )  # fmt: skip
    assert loaded.encode(SAMPLES[1]) == tok.encode(SAMPLES[1])
    (out / "tokenizer.json").write_text("{}")
    with pytest.raises(IntegrityError, match="tokenizer.json: sha256 mismatch"):
        load_tokenizer(out)


def test_bad_hf_folders(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RadonError, match="no tokenizer.json"):
        HFTokenizer.from_hf_dir(empty)
    broken = _gpt2_folder(tmp_path / "broken")
    (broken / "tokenizer.json").write_text("not json")
    with pytest.raises(IntegrityError, match="not a Hugging Face tokenizers file"):
        HFTokenizer.from_hf_dir(broken)
    wrong = _gpt2_folder(tmp_path / "wrong")
    (wrong / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<nope>"}))
    with pytest.raises(IntegrityError, match="eos_token '<nope>' is not in tokenizer.json"):
        HFTokenizer.from_hf_dir(wrong)
