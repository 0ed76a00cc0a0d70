"""Fixtures for the tokenizer tests: one small hybrid and one small BPE, trained once per session."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from radon.tokenizer import BPETokenizer, HybridTokenizer, train_bpe

HERE = Path(__file__).resolve().parent


def _load_helpers() -> ModuleType:
    """Import tests/tokenizer/tok_helpers.py by path (the tests folder is not a package)."""
    spec = importlib.util.spec_from_file_location("radon_tests_tokenizer_helpers", HERE / "tok_helpers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


HELPERS = _load_helpers()


@pytest.fixture(scope="session")
def helpers() -> ModuleType:
    return HELPERS


@pytest.fixture(scope="session")
def hybrid() -> HybridTokenizer:
    return HELPERS.train_golden()


@pytest.fixture(scope="session")
def hybrid_dir(hybrid: HybridTokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hybrid.save_pretrained(tmp_path_factory.mktemp("tok") / "hybrid")


@pytest.fixture(scope="session")
def bpe() -> BPETokenizer:
    return train_bpe(list(HELPERS.golden_texts().values()), HELPERS.GOLDEN_VOCAB)


@pytest.fixture(scope="session")
def bpe_dir(bpe: BPETokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bpe.save_pretrained(tmp_path_factory.mktemp("tok") / "bpe")
