"""Fixtures for the Triton tests (``tests/model_repository/``) and the Triton probes
(``tests/probes/test_triton.py``): a tiny text artifact, its repository, and a real tritonserver.
Each test folder imports the fixtures it uses (``tests/model_repository/conftest.py``, the probe module).

- ``text_artifact``: a decisive tiny Mistral (window 16) with a hybrid tokenizer trained on the built-in
  Russian and English text and some standard-library code, exported to ONNX (``ort`` lowering), so text
  round-trips through tokenizer, decoder and detokenizer;
- ``repository``: ``radon triton build`` of it with the python-backend decoder (the pytriton server has
  no onnxruntime backend), holding two generate models over the same decoder: ``radon`` (in-process
  decode loop, the default) and ``radon_bls`` (one BLS call to radon_decoder per step);
- ``server``: that repository on a real tritonserver on free loopback ports, started once per session.
  It needs the server environment (scripts/make_triton_env.sh); without it the tests that use it skip,
  saying so. The marker ``triton`` selects them: ``python -m pytest -m triton tests/model_repository``.

vocab_size (520) differs from every hidden and projection size (DESIGN.md, tests on random models).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from radon.errors import RadonError

TOKENIZER_VOCAB = 520
WINDOW = 16
GENERATE, GENERATE_BLS = "radon", "radon_bls"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """``free_port()`` -> a loopback port nothing listens on now."""
    return _free_port


@pytest.fixture(scope="session")
def triton_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("triton")


def train_tokenizer():
    import inspect
    import json

    from radon.data.builtin import EN_FILE, RU_FILE
    from radon.tokenizer import train_hybrid

    code = inspect.getsource(json.decoder) + inspect.getsource(json.encoder)
    return train_hybrid(RU_FILE.read_text(encoding="utf-8")[:30000], EN_FILE.read_text(encoding="utf-8")[:30000],
                        code, TOKENIZER_VOCAB)  # fmt: skip


@pytest.fixture(scope="session")
def text_artifact(triton_root: Path) -> Path:
    """A decisive tiny Mistral with a hybrid tokenizer/, exported with the ``ort`` lowering."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import torch

    from radon import HybridTransformerModel, ModelConfig, save_checkpoint
    from radon.export.exporter import export_onnx
    from radon_testing import decisive_

    torch.set_num_threads(1)
    cfg = ModelConfig(model_type="mistral", vocab_size=TOKENIZER_VOCAB, hidden_size=64, num_layers=2,
                      num_attention_heads=4, num_kv_heads=2, intermediate_size=176,
                      max_position_embeddings=512, sliding_window=WINDOW)  # fmt: skip
    model = decisive_(HybridTransformerModel(cfg), seed=5)
    ckpt = save_checkpoint(model, triton_root / "ckpt", tokenizer=train_tokenizer())
    return export_onnx(ckpt, triton_root / "artifact", attention="ort", parity=False, threads=1).path


@pytest.fixture(scope="session")
def text_gen(text_artifact: Path):
    """The runtime on the same artifact: the expected outputs."""
    import radon.runtime

    return radon.runtime.load(text_artifact, threads=1)


@pytest.fixture(scope="session")
def repository(text_artifact: Path, triton_root: Path) -> Path:
    from radon.model_repository import build_repository

    out = triton_root / "repo"
    build_repository(text_artifact, out, decoder="python", max_batch=4, threads=1)
    build_repository(text_artifact, out, name=GENERATE_BLS, decoder="python", max_batch=4, threads=1,
                     decode_loop="bls")  # fmt: skip
    return out


@pytest.fixture(scope="session")
def server_install():
    from radon.model_repository.server import find_server

    try:
        return find_server(prefer_path=False)
    except RadonError as exc:
        pytest.skip(f"no Triton server environment: {exc}")


@pytest.fixture(scope="session")
def server(repository: Path, server_install, triton_root: Path):
    """A real tritonserver on free loopback ports, serving ``repository``."""
    from radon.model_repository.server import TritonServer

    srv = TritonServer(repository, http_port=_free_port(), grpc_port=_free_port(), metrics_port=_free_port(),
                       install=server_install, log_file=triton_root / "tritonserver.log")  # fmt: skip
    srv.start(timeout_s=180)
    yield srv
    srv.stop()
