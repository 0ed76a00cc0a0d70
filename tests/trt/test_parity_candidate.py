"""The engine's parity loop, driven by onnxruntime on the same graph (TensorRT itself is not here).

``GreedyLoop`` is what ``EngineCandidate`` runs over ``EngineRunner.infer``: prefill with an empty
past, then one token per step with the past cut to the manifest's ``keep`` (W - 1). Run over an
onnxruntime session of an exported artifact it must give DecoderSession's greedy tokens and logits,
and the PyTorch reference's greedy tokens past the window.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from radon import load_model
from radon.export.exporter import export_onnx
from radon.export.trt.parity_candidate import GreedyLoop, is_engine_folder
from radon.runtime.session import DecoderSession
from radon_testing import radon_checkpoint


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("engine_loop")
    ckpt = radon_checkpoint(root / "ckpt")
    return ckpt, export_onnx(ckpt, root / "onnx", attention="portable", parity=False).path


def _loop(art: Path) -> GreedyLoop:
    session = ort.InferenceSession(str(art / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    manifest = json.loads((art / "radon_manifest.json").read_text())
    return GreedyLoop(lambda feed: dict(zip(names, session.run(None, dict(feed)))), manifest)


def test_loop_matches_the_session_and_the_reference_past_the_window(artifact: tuple[Path, Path]) -> None:
    ckpt, art = artifact
    loop = _loop(art)
    prompt = np.array([5, 9, 17, 33, 65, 100, 7], dtype=np.int64)
    window = json.loads((art / "radon_manifest.json").read_text())["architecture"]["sliding_window"]
    new = 3 * window
    tokens = loop.greedy(prompt, new)
    session = DecoderSession(art)
    assert np.array_equal(tokens, session.greedy(prompt[None], new)[0, prompt.size :])
    ref = load_model(ckpt).generate(torch.from_numpy(prompt[None]), max_new_tokens=new, ignore_eos=True)
    assert np.array_equal(tokens, ref[0, prompt.size :].numpy())
    np.testing.assert_allclose(loop.logits(prompt), session.step(prompt[None]).logits[0], atol=1e-5)


def test_engine_folders_are_told_apart(artifact: tuple[Path, Path], tmp_path: Path) -> None:
    _, art = artifact
    assert not is_engine_folder(art)
    fake = tmp_path / "engine"
    fake.mkdir()
    manifest = json.loads((art / "radon_manifest.json").read_text())
    (fake / "radon_manifest.json").write_text(
        json.dumps({**manifest, "tensorrt": {"engine_file": "model.plan"}})
    )
    assert is_engine_folder(fake)


def test_engine_parity_without_tensorrt_is_one_line(artifact: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed: this test covers its absence")
    except ImportError:
        pass
    from radon.cli import main

    ckpt, art = artifact
    fake = tmp_path / "engine"
    fake.mkdir()
    manifest = json.loads((art / "radon_manifest.json").read_text())
    (fake / "radon_manifest.json").write_text(
        json.dumps({**manifest, "tensorrt": {"engine_file": "model.plan"}})
    )
    assert main(["parity", str(fake), "--reference", str(ckpt)]) == 2
    assert "pip install 'radon[trt]'" in capsys.readouterr().err
