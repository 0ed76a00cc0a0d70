"""Shared fixtures for the training tests: a small built-in corpus, a small hybrid tokenizer, a tiny config.

Everything is built from text the project ships or makes (radon.data.builtin_corpus), so the tests run
on a fresh clone without ../shared/data. Torch runs on one thread: tiny models are faster that way and
the loss curves are bit-reproducible.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

TOKENIZER_VOCAB = 512  # the smallest round size above the hybrid's floor (specials + alphabets)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder laid out like ../shared/data (ru.txt, en.txt, code.txt, eval/)."""
    from radon.data import builtin_corpus

    folder = tmp_path_factory.mktemp("corpus")
    builtin_corpus(folder, code_bytes=200_000, doc_bytes=60_000)
    return folder


@pytest.fixture(scope="session")
def tokenizer_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from radon.tokenizer import train_hybrid

    texts = {
        lang: (corpus / f"{lang}.txt").read_text(encoding="utf-8")[:80_000] for lang in ("ru", "en", "code")
    }
    tok = train_hybrid(texts["ru"], texts["en"], texts["code"], TOKENIZER_VOCAB)
    return Path(tok.save_pretrained(tmp_path_factory.mktemp("tok") / "tokenizer"))


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_mistral with the tokenizer's vocabulary and a little dropout (so the RNG state matters)."""
    from radon.config import ModelConfig

    cfg = ModelConfig.from_json("tiny_mistral").to_dict()
    cfg.update(vocab_size=TOKENIZER_VOCAB, dropout=0.1, name="tiny-train-test")
    path = tmp_path_factory.mktemp("cfg") / "tiny.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture) -> Callable[..., tuple[int, str, str]]:
    """Run ``radon <verb> ...`` in-process through radon.cli.main; returns (exit code, stdout, stderr)."""
    import radon.cli as cli_mod

    assert {"train", "eval", "bench"} <= set(cli_mod.VERBS)  # the verbs these tests drive

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            rc = cli_mod.main([str(a) for a in argv])
        except SystemExit as exc:  # argparse: unknown flag, --help
            rc = int(exc.code or 0)
        out, err = capsys.readouterr()
        return rc, out, err

    return run
