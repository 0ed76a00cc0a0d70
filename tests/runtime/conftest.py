"""Fixtures for the runtime tests: decisive checkpoints, their artifacts, exported once per session.

- ``hf_models``: transformers Mistral (window 8, GQA 4/2) and GPT-2 (full attention), converted by the
  production converter (``radon.convert.from_hf``), so the runtime is held to an implementation
  RADON did not write as well as to the reference;
- ``artifacts[(arch, lowering)]``: their fp32 exports, both lowerings;
- ``text_ckpt`` / ``text_artifact``: a tiny Mistral with a byte-level BPE tokenizer (text prompts,
  stop strings, UTF-8 streaming, the server); its max_position_embeddings (4096) leaves room for
  long generations (the disconnect test).
vocab_size differs from every hidden and projection size (DESIGN.md, tests on random models).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

from radon_testing import MISTRAL_HF, decisive_, hf_gpt2, hf_mistral  # noqa: E402

WINDOW = MISTRAL_HF["sliding_window"]
VOCAB = MISTRAL_HF["vocab_size"]
TEXT_VOCAB = 400  # the text model's BPE: 4 specials + 256 bytes + 140 merges
TEXT_WINDOW = 16


@pytest.fixture(scope="session")
def runtime_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runtime")


@pytest.fixture(scope="session")
def hf_models(runtime_root: Path) -> dict:
    """arch -> (transformers model, RADON checkpoint converted from it)."""
    from radon.convert import from_hf

    out = {}
    for arch, make in (("mistral", hf_mistral), ("gpt2", hf_gpt2)):
        model, folder = make(runtime_root / f"hf_{arch}")
        out[arch] = (model, from_hf(folder, runtime_root / f"ckpt_{arch}"))
    return out


@pytest.fixture(scope="session")
def artifacts(hf_models: dict, runtime_root: Path) -> dict[tuple[str, str], Path]:
    """(arch, lowering) -> fp32 artifact (no parity: the export tests own it)."""
    from radon.export.exporter import export_onnx

    out = {}
    for arch, (_, ckpt) in hf_models.items():
        for lowering in ("ort", "portable"):
            path = runtime_root / f"{arch}_{lowering}"
            export_onnx(ckpt, path, attention=lowering, parity=False, threads=1)
            out[(arch, lowering)] = path
    return out


def train_text_tokenizer():
    from radon.data.builtin import EN_FILE, RU_FILE
    from radon.tokenizer import train_bpe

    texts = [EN_FILE.read_text(encoding="utf-8")[:20000], RU_FILE.read_text(encoding="utf-8")[:20000]]
    return train_bpe(texts, TEXT_VOCAB)


@pytest.fixture(scope="session")
def text_ckpt(runtime_root: Path) -> Path:
    """A decisive tiny Mistral with a BPE tokenizer/ (Russian and English text in, text out)."""
    from radon import HybridTransformerModel, ModelConfig, save_checkpoint

    cfg = ModelConfig(model_type="mistral", vocab_size=TEXT_VOCAB, hidden_size=64, num_layers=2,
                      num_attention_heads=4, num_kv_heads=2, intermediate_size=176,
                      max_position_embeddings=4096, sliding_window=TEXT_WINDOW)  # fmt: skip
    model = decisive_(HybridTransformerModel(cfg), seed=3)
    return save_checkpoint(model, runtime_root / "ckpt_text", tokenizer=train_text_tokenizer())


@pytest.fixture(scope="session")
def text_artifact(text_ckpt: Path, runtime_root: Path) -> Path:
    from radon.export.exporter import export_onnx

    path = runtime_root / "text_ort"
    export_onnx(text_ckpt, path, attention="ort", parity=False, threads=1)
    return path


@pytest.fixture(scope="session")
def text_gen(text_artifact: Path):
    """One loaded generator on the text artifact, shared (tests must not change its settings)."""
    import radon.runtime

    return radon.runtime.load(text_artifact, threads=1)


def left_padded(
    batch: int, length: int, pad: int, vocab: int = VOCAB, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Random ids (batch, length) with the last row left-padded by ``pad`` tokens, and the mask."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, vocab, size=(batch, length), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[-1, :pad] = 0
    ids[-1, :pad] = 3
    return ids, mask


@pytest.fixture(scope="session")
def padded():
    """``padded(batch, length, pad)`` -> (ids, mask) with the last row left-padded (see ``left_padded``)."""
    return left_padded


@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread():
    """The references (PyTorch) run on tiny models: one thread, so OpenMP's spinning threads do not
    fight the runtime's and other work for the 2 cores (a tiny forward took 10x longer under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
