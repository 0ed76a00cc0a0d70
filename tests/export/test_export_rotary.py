"""Rotary inside GroupQueryAttention vs outside it: why ``outside`` is the ``ort`` lowering's default.

With ``position_ids`` given, rotary inside GQA is right after the buffer rolls (decode steps use them).
But on a first prompt the kernel uses only the first position of each row and counts on from there,
so a left-padded row's cached keys are rotated at slot indices, not at its real positions, and the
next decode step (at its real position) disagrees. Rotary outside (RotaryEmbedding on q and k,
gathered per token from position_ids) is right in every case. docs/export.md records the timings.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radon.export.build import build_graph
from radon.runtime.session import positions_from_mask


@pytest.fixture(scope="module")
def sessions(hf):
    import onnxruntime as ort

    from radon.checkpoint import load_model

    model = load_model(hf["mistral"][1])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    out = {}
    for rotary in ("inside", "outside"):
        proto = build_graph(model, lowering="ort", rotary=rotary).model
        out[rotary] = ort.InferenceSession(
            proto.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
    return model, out


def _decode_error(model, session, ids, mask) -> float:
    """|logits - reference| of one decode step after a prefill, with the past rolled to W - 1."""
    keep = model.config.sliding_window - 1
    pos = positions_from_mask(mask)
    feeds = {"input_ids": ids[:, :-1], "attention_mask": mask[:, :-1], "position_ids": pos[:, :-1]}
    for i in range(model.config.num_layers):
        for kind in ("key", "value"):
            feeds[f"past_key_values.{i}.{kind}"] = np.zeros((ids.shape[0], 2, 0, 16), np.float32)
    outs = session.run(None, feeds)
    feeds = {"input_ids": ids[:, -1:], "attention_mask": mask[:, -(keep + 1) :], "position_ids": pos[:, -1:]}
    for i in range(model.config.num_layers):
        feeds[f"past_key_values.{i}.key"] = outs[1 + 2 * i][:, :, -keep:]
        feeds[f"past_key_values.{i}.value"] = outs[2 + 2 * i][:, :, -keep:]
    got = session.run(["logits"], feeds)[0][:, -1]
    with torch.no_grad():
        ref = model(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    position_ids=torch.from_numpy(pos), use_cache=False).logits[:, -1].numpy()  # fmt: skip
    return float(np.abs(got - ref).max())


def test_rotary_inside_is_right_without_padding_and_after_the_roll(sessions, padded):
    model, s = sessions
    ids, mask = padded(2, 14, pad=0)
    assert _decode_error(model, s["inside"], ids, mask) < 1e-4
    assert _decode_error(model, s["outside"], ids, mask) < 1e-4


def test_rotary_inside_is_wrong_after_a_left_padded_prompt(sessions, padded):
    model, s = sessions
    ids, mask = padded(2, 14, pad=3)
    assert _decode_error(model, s["outside"], ids, mask) < 1e-4
    assert _decode_error(model, s["inside"], ids, mask) > 1e-2  # the reason outside is the default
