"""scripts/peer_quant_quality.py's GgufServer without llama.cpp: a stand-in ``llama_cpp`` module that
prints on stdout as llama.cpp does and computes logits by a formula, so the logits that cross the pipe
are checked against that formula, and a segfault in it becomes a ``WorkerCrashed`` naming the frame."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "peer_quant_quality.py"
VOCAB = 300  # not a multiple of anything the framing might assume
CRASH_ID = 666
FAKE_LLAMA_CPP = f"""
import os, signal
import numpy as np

def formula(ids):
    return np.cos(np.outer(np.asarray(ids) + 1.0, np.arange({VOCAB}) * 0.37)).astype(np.float32)

class Llama:
    def __init__(self, model_path, **kwargs):
        print("llama_model_loader: loaded meta data from", model_path)  # llama.cpp writes on stdout
        self.scores = np.zeros((0, {VOCAB}), np.float32)

    def reset(self):
        self.scores = np.zeros((0, {VOCAB}), np.float32)

    def eval(self, tokens):
        print("llama_perf_context_print: eval time")
        if {CRASH_ID} in tokens:
            os.kill(os.getpid(), signal.SIGSEGV)
        self.scores = formula(tokens)
"""


def formula(ids: np.ndarray) -> np.ndarray:
    return np.cos(np.outer(ids + 1.0, np.arange(VOCAB) * 0.37)).astype(np.float32)


@pytest.fixture
def server_module(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    (tmp_path / "llama_cpp.py").write_text(FAKE_LLAMA_CPP)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    spec = importlib.util.spec_from_file_location("peer_quant_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_logits_cross_the_pipe_exactly_and_greedy_follows_them(server_module, tmp_path) -> None:
    server = server_module.GgufServer(tmp_path / "model.gguf", "int4", sys.executable)
    try:
        ids = np.array([5, 17, 250, 3], np.int64)
        assert np.array_equal(server.logits(ids), formula(ids))  # llama.cpp's prints did not get in the way
        long = np.arange(1, 200, dtype=np.int64)  # 199 x 300 floats: many pipe buffers
        assert np.array_equal(server.logits(long), formula(long))
        expected = ids.copy()
        for _ in range(3):
            expected = np.append(expected, int(formula(expected)[-1].argmax()))
        assert np.array_equal(server.greedy(ids, 3), expected[ids.size :])
    finally:
        server.close()


def test_a_segfault_is_reported_with_its_frame(server_module, tmp_path) -> None:
    from radon.bench.crash import WorkerCrashed

    server = server_module.GgufServer(tmp_path / "model.gguf", "int4", sys.executable)
    assert server.logits(np.array([1, 2], np.int64)).shape == (2, VOCAB)
    with pytest.raises(WorkerCrashed) as info:
        server.logits(np.array([1, CRASH_ID], np.int64))
    assert info.value.crash.summary == "killed by SIGSEGV in eval; during logits of 2 tokens"
