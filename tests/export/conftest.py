"""Shared fixtures: tiny transformers models with a decisive init, converted by the production converter.

Each model is built by transformers (GPT2LMHeadModel, MistralForCausalLM; ``radon_testing``), saved
with safetensors and converted with ``radon.convert.from_hf``, so the exported graphs are checked
against an implementation RADON did not write. Mistral has GQA (4 heads / 2 kv heads), head_dim 16 and
a window of 8, smaller than every test sequence. vocab_size (320) differs from every projection size.
Artifacts are exported once per session and shared; tests that modify one copy it first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

from radon_testing import MISTRAL_HF, hf_gpt2, hf_mistral  # noqa: E402

WINDOW = MISTRAL_HF["sliding_window"]
VOCAB = MISTRAL_HF["vocab_size"]


@pytest.fixture(scope="session")
def export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="session")
def hf(export_root: Path) -> dict:
    """arch -> (transformers model, RADON checkpoint converted from it by ``from_hf``)."""
    from radon.convert import from_hf

    out = {}
    for arch, make in (("mistral", hf_mistral), ("gpt2", hf_gpt2)):
        model, folder = make(export_root / f"hf_{arch}")
        out[arch] = (model, from_hf(folder, export_root / f"ckpt_{arch}"))
    return out


@pytest.fixture(scope="session")
def artifacts(hf: dict, export_root: Path) -> dict[tuple[str, str], Path]:
    """(arch, lowering) -> fp32 artifact, exported without parity (parity has its own tests)."""
    from radon.export.exporter import export_onnx

    out = {}
    for arch, (_, ckpt) in hf.items():
        for lowering in ("portable", "ort"):
            path = export_root / f"{arch}_{lowering}"
            export_onnx(ckpt, path, attention=lowering, parity=False, threads=1)
            out[(arch, lowering)] = path
    return out


def left_padded(batch: int, length: int, pad: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Random ids (batch, length) with the last row left-padded by ``pad`` tokens, and the mask."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, VOCAB, size=(batch, length), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[-1, :pad] = 0
    ids[-1, :pad] = 0
    return ids, mask


@pytest.fixture(scope="session")
def padded():
    """``padded(batch, length, pad)`` -> (ids, mask), the last row left-padded (see ``left_padded``)."""
    return left_padded
