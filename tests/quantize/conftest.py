"""Shared fixtures: a tiny Mistral *trained* for a few seconds on the built-in corpus, exported twice.

Quantization gates are about language-model quality (KL, top-1, perplexity on text), which a random
model cannot show: its next-token distributions are nearly flat, so top-1 flips on noise. So these tests
train a tiny model (hidden 64, 2 layers, vocab 512, intermediate 128 so that 32-wide blocks divide every
input) on the built-in corpus (radon.data.builtin_corpus: text the project ships or makes, so a fresh
clone works) with its hybrid tokenizer, then export it with the ``ort`` lowering (opset 17) and the
``portable`` lowering at opset 21 (block-quantized DequantizeLinear needs it). ``RADON_DATA`` points at
the corpus, so calibration reads its training files and parity its held-out ``eval/`` files.
Quantized artifacts are made once per session and shared; a test that changes one copies it first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx_ir")

TOKENIZER_VOCAB = 512
TRAIN_STEPS = 120
FAST_PARITY = {"max_tokens": 256, "greedy_tokens": 8}  # parity on 3 x 256 held-out tokens
FAST = {"samples": 16, "seq_len": 64, "threads": 1, "parity_options": FAST_PARITY, "sensitivity_samples": 8}


@pytest.fixture(scope="session")
def qroot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quant")


@pytest.fixture(scope="session")
def corpus(qroot: Path) -> Path:
    """A data folder laid out like ../shared/data, set as ``RADON_DATA`` for the whole session."""
    from radon.data import builtin_corpus

    builtin_corpus(qroot / "corpus", code_bytes=200_000, doc_bytes=60_000)
    old = os.environ.get("RADON_DATA")
    os.environ["RADON_DATA"] = str(qroot / "corpus")
    yield qroot / "corpus"
    if old is None:
        os.environ.pop("RADON_DATA", None)
    else:
        os.environ["RADON_DATA"] = old


@pytest.fixture(scope="session")
def trained(corpus: Path, qroot: Path) -> Path:
    """A checkpoint of the tiny model after ``TRAIN_STEPS`` steps on the corpus, with its tokenizer."""
    import torch

    from radon.config import ModelConfig
    from radon.tokenizer import train_hybrid
    from radon.train import TrainConfig
    from radon.train import train as run_training

    torch.set_num_threads(1)
    texts = {
        lang: (corpus / f"{lang}.txt").read_text(encoding="utf-8")[:80_000] for lang in ("ru", "en", "code")
    }
    tok = train_hybrid(texts["ru"], texts["en"], texts["code"], TOKENIZER_VOCAB)
    cfg = ModelConfig.from_json("tiny_mistral").to_dict()
    cfg.update(vocab_size=TOKENIZER_VOCAB, intermediate_size=128, name="tiny-quant-test")
    path = qroot / "tiny.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    recipe = TrainConfig(steps=TRAIN_STEPS, batch_size=16, context=64, lr=1e-2, warmup_steps=10, eval_every=0,
                         threads=1)  # fmt: skip
    files = {lang: [corpus / f"{lang}.txt"] for lang in ("ru", "en", "code")}
    result = run_training(ModelConfig.from_json(path), recipe, files, tok, qroot / "ckpt", progress=False)
    return Path(result.checkpoint)


@pytest.fixture(scope="session")
def fp32(trained: Path, qroot: Path) -> dict[str, Path]:
    """lowering -> fp32 artifact: ``ort`` at opset 17, ``portable`` at opset 21."""
    from radon.export.exporter import export_onnx

    out = {}
    for lowering, opset in (("ort", 17), ("portable", 21)):
        out[lowering] = export_onnx(trained, qroot / f"fp32_{lowering}", attention=lowering, opset=opset,
                                    parity=False, threads=1).path  # fmt: skip
    return out


@pytest.fixture(scope="session")
def quantized(fp32: dict[str, Path], trained: Path, qroot: Path) -> Any:
    """``quantized(name, **kwargs)``: a quantized ``ort`` artifact made once per (name) and shared."""
    from radon.export.quantize import quantize_artifact

    made: dict[str, Any] = {}

    def get(name: str, lowering: str = "ort", **kwargs: Any) -> Any:
        if name not in made:
            made[name] = quantize_artifact(
                fp32[lowering], qroot / name, reference=trained, **{**FAST, **kwargs}
            )
        return made[name]

    return get
