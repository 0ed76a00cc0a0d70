"""fp16 exports run on onnxruntime's CPU and stay within a stated tolerance of the fp32 transformers model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radon.runtime.session import DecoderSession, positions_from_mask
from radon_testing import MISTRAL_HF

WINDOW = MISTRAL_HF["sliding_window"]
# fp16 weights, activations and KV cache against the fp32 reference. float16 keeps 11 significant bits
# (~5e-4 relative); two layers of matmuls over hidden 64 with logits of magnitude ~5 give ~5e-3 here.
# 3e-2 leaves room for summation order while a wrong mask or rotary moves logits by > 0.1.
FP16_ATOL = 3e-2


@pytest.fixture(scope="module")
def fp16_artifacts(hf, export_root):
    from radon.export.exporter import export_onnx

    _, ckpt = hf["mistral"]
    return {
        lowering: export_onnx(
            ckpt,
            export_root / f"mistral_{lowering}_fp16",
            attention=lowering,
            dtype="fp16",
            parity=False,
            threads=1,
        ).path  # fmt: skip
        for lowering in ("portable", "ort")
    }


@pytest.mark.parametrize("lowering", ["portable", "ort"])
def test_fp16_logits_within_tolerance(hf, fp16_artifacts, padded, lowering):
    model, _ = hf["mistral"]
    session = DecoderSession(fp16_artifacts[lowering], threads=1)
    assert session.manifest.precision == "fp16"
    assert session.manifest.kv_cache.dtype == "float16"
    assert session.manifest.output_names[0] == "logits"
    ids, mask = padded(2, 2 * WINDOW + 3, pad=2)
    out = session.step(ids, mask)
    assert out.logits.dtype == np.float32  # logits stay float32 at every precision
    assert out.presents[0][0].dtype == np.float16
    with torch.no_grad():
        ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    position_ids=torch.from_numpy(positions_from_mask(mask))).logits.numpy()  # fmt: skip
    real = mask.astype(bool)
    assert np.abs(out.logits[real] - ref[real]).max() <= FP16_ATOL
    # a decode step on the rolled fp16 past
    past = session.trim(out.presents, session.keep)
    token = out.logits[:, -1].argmax(-1)[:, None]
    step = session.step(
        token, np.ones((2, session.keep + 1), np.int64), positions_from_mask(mask)[:, -1:] + 1, past
    )
    assert np.isfinite(step.logits).all()


def test_fp16_refuses_weight_out_of_range(hf, export_root, tmp_path):
    """A weight beyond float16's range cannot be taken by its MatMul in fp16: a clear error, nothing written."""
    from radon.checkpoint import load_model, save_checkpoint
    from radon.errors import RadonError
    from radon.export.exporter import export_onnx

    _, ckpt = hf["mistral"]
    model = load_model(ckpt)
    with torch.no_grad():
        model.mistral.layers[1].mlp.fc_out.weight[0, 0] = 1e5
    bad = save_checkpoint(model, tmp_path / "big_weight")
    out = tmp_path / "fp16"
    with pytest.raises(RadonError, match=r"mistral\.layers\.1\.mlp\.fc_out\.weight.*float16"):
        export_onnx(bad, out, dtype="fp16", parity=False)
    assert not out.exists()
    assert not any(p.name.startswith(".fp16") for p in tmp_path.iterdir())  # no temporary folder left
    export_onnx(bad, out, dtype="fp32", parity=False)  # fp32 takes it
