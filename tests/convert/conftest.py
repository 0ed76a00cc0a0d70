"""Tiny transformers Qwen2 and Llama models (``radon_testing.hf_family``), saved and converted once per
session through the production converter (``radon convert --from-hf``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

FAMILIES = ("qwen2", "llama")


@pytest.fixture(scope="session")
def families(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Path, Path]]:
    """family -> (transformers model, its saved folder, the RADON checkpoint converted from it)."""
    from radon.cli import main as cli
    from radon_testing import hf_family

    root = tmp_path_factory.mktemp("families")
    out = {}
    for family in FAMILIES:
        model = hf_family(family)
        folder, ckpt = root / f"hf_{family}", root / f"ckpt_{family}"
        model.save_pretrained(folder)
        assert cli(["convert", "--from-hf", str(folder), "--out", str(ckpt)]) == 0
        out[family] = (model, folder, ckpt)
    return out
