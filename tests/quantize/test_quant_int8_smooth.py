"""SmoothQuant for static INT8 (export/quantize/smooth.py): exact in float32, and what makes an outlier
model pass its gate.

A decisive tiny Mistral is given activation outliers without changing the function it computes: hidden
channel ``OUTLIER`` of both norm weights is multiplied by ``K`` and the matching input row of the
Linear after each norm divided by ``K``; MLP channel ``OUTLIER`` of the ``up`` projection is multiplied
by ``K`` and fc_out's input row divided by it. That is what real models look like to a per-tensor
activation scale (SmolLM2-135M's down_proj inputs reach a hundred times the median).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

K = 60.0
OUTLIER = 5


@pytest.fixture(scope="module")
def outlier_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """lowering -> fp32 artifact of the outlier model (``ort`` at opset 17, ``portable`` at 21)."""
    import torch

    from radon import HybridTransformerModel, ModelConfig, save_checkpoint
    from radon.export.exporter import export_onnx
    from radon_testing import decisive_

    root = tmp_path_factory.mktemp("smooth")
    cfg = ModelConfig.from_json("tiny_mistral")
    model = decisive_(HybridTransformerModel(cfg))
    inter = cfg.intermediate_size
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("attn_norm.weight", "mlp_norm.weight")):
                p[OUTLIER] *= K
            elif name.endswith(("attn.qkv.weight", "mlp.fc_in.weight")):  # (out, in): the input column
                p[:, OUTLIER] /= K
        for name, p in model.named_parameters():
            if name.endswith("mlp.fc_in.weight"):  # [gate | up] rows: up's channel OUTLIER
                p[inter + OUTLIER] *= K
            elif name.endswith("mlp.fc_out.weight"):
                p[:, OUTLIER] /= K
    ckpt = save_checkpoint(model, root / "ckpt")
    return {
        lowering: export_onnx(ckpt, root / f"fp32_{lowering}", attention=lowering, opset=opset, parity=False,
                              threads=1).path
        for lowering, opset in (("ort", 17), ("portable", 21))
    }  # fmt: skip


def _feeds(artifact: Path) -> list[dict[str, np.ndarray]]:
    from radon.export.quantize.reader import build_feeds
    from radon.runtime.session import DecoderSession

    rng = np.random.default_rng(7)
    samples = [rng.integers(4, 320, size=24, dtype=np.int64) for _ in range(4)]
    return list(build_feeds(DecoderSession(artifact, threads=1), samples))


def _logits(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in s.get_inputs()}
    return s.run(["logits"], {k: v for k, v in feed.items() if k in inputs})[0]


@pytest.mark.parametrize("lowering", ["ort", "portable"])
def test_smoothing_keeps_the_logits_and_flattens_the_activations(outlier_artifacts, lowering, tmp_path):
    import onnx

    from radon.export.quantize.graph import units_of
    from radon.export.quantize.smooth import input_absmax, plan_smoothing, smoothed_source
    from radon.export.quantize.stream import Source

    art = outlier_artifacts[lowering]
    src = Source(art / "model.onnx")
    units = [u for u in units_of(src.model) if u.op_type == "MatMul"]
    feeds = _feeds(art)
    smoothing = plan_smoothing(src, units, [], feeds, 0.5, tmp_path)
    # where each unit's 1/s went: the norms before QKV, fc_in and the head, fc_in's up columns before
    # fc_out, a Mul before the attention's output projection
    kinds = {u.name: smoothing.folds[u.name].kind for u in units}
    for i in range(2):
        assert kinds[f"layers.{i}.attn.qkv"] == kinds[f"layers.{i}.mlp.fc_in"] == "norm"
        assert kinds[f"layers.{i}.mlp.fc_out"] == "columns" and kinds[f"layers.{i}.attn.out"] == "mul"
    assert kinds["lm_head"] == "norm"
    smoothed = smoothed_source(src, smoothing)
    path = smoothed.write(tmp_path, "smoothed.onnx")
    onnx.checker.check_model(str(path))
    ref_path = src.write(tmp_path, "fp32.onnx")
    for feed in feeds[:2]:  # a prefill and a decode step
        ref, got = _logits(ref_path, feed), _logits(path, feed)
        assert np.abs(ref - got).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))

    # the activations, independently: per-channel max |X| before (numpy on onnxruntime's outputs) and
    # after smoothing, against SmoothQuant's formula at alpha 0.5, max|X_j| / s_j = sqrt(max|X_j| max|W_j|)
    before = input_absmax(src, units, feeds, tmp_path)
    after = input_absmax(smoothed, units, feeds, tmp_path)
    from onnx import numpy_helper

    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(ref_path)).graph.initializer}
    for u in units:
        w_max = np.abs(weights[u.weight]).max(axis=1)
        np.testing.assert_allclose(after[u.name], np.sqrt(before[u.name] * w_max), rtol=2e-3, atol=1e-6)
    # the injected channel dominated fc_out's and fc_in's inputs: flattening shrinks the range the
    # per-tensor scale must hold, relative to the median channel, by about sqrt(K)
    for name in ("layers.0.mlp.fc_out", "layers.1.mlp.fc_in"):
        spread = lambda m: float(m.max() / np.median(m))  # noqa: E731
        assert spread(before[name]) > K / 4 and spread(after[name]) < spread(before[name]) / np.sqrt(K) * 2


def test_outlier_model_passes_the_int8_gate_only_with_smoothing(outlier_artifacts, tmp_path):
    from radon.errors import QualityGateError
    from radon.export.quantize import quantize_artifact

    opts = dict(precision="int8", samples=16, seq_len=64, threads=1,
                parity_options={"max_tokens": 256, "greedy_tokens": 8})  # fmt: skip
    with pytest.raises(QualityGateError):
        quantize_artifact(outlier_artifacts["ort"], tmp_path / "plain", smooth_alpha=0.0, **opts)
    assert not (tmp_path / "plain").exists()
    r = quantize_artifact(outlier_artifacts["ort"], tmp_path / "smooth", **opts)
    assert r.parity.passed
    q = r.manifest.quantization
    assert q["int8"]["smoothing"]["alpha"] > 0 and q["calibration"]["smoothing"]["alpha"] > 0
    assert (r.path / "smoothing.npz").is_file()


@pytest.mark.parametrize("verb", ["quantize", "calibrate"])
def test_a_bad_alpha_is_refused_by_name(outlier_artifacts, verb, tmp_path, capsys):
    from radon.cli import main

    extra = ["--precision", "int8"] if verb == "quantize" else []
    out = tmp_path / "never"
    assert (
        main([verb, str(outlier_artifacts["ort"]), "--out", str(out), "--smooth-alpha", "1.5", *extra]) == 2
    )
    assert "--smooth-alpha: must be in (0, 1)" in capsys.readouterr().err and not out.exists()
