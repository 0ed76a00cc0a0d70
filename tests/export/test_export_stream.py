"""Streamed export: the weights go to the artifact a tensor at a time, and the files are what
``onnx.save_model`` writes for the same graph held in memory, byte for byte (export/onnx_stream.py).

The reference is the path export took before streaming: ``build_graph(model)`` in memory, then
``onnx.save_model`` (inline below the threshold, external data above it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from radon.checkpoint import load_model
from radon.export.build import DATA_FILE, MODEL_FILE, _save_in_memory, build_graph, save_model
from radon.export.onnx_stream import WeightIndex, WeightSink, load_skeleton
from radon.export.weights_source import CheckpointTensors


def _streamed(ckpt: Path, out: Path, threshold: int, **kwargs) -> list[str]:
    out.mkdir()
    built = build_graph(CheckpointTensors(ckpt), sink=WeightSink(out / DATA_FILE), **kwargs)
    return save_model(built, out, threshold)


def _in_memory(ckpt: Path, out: Path, threshold: int, **kwargs) -> list[str]:
    out.mkdir()
    return _save_in_memory(build_graph(load_model(ckpt), **kwargs), out / MODEL_FILE, threshold)


@pytest.mark.parametrize("arch", ["mistral", "gpt2"])
@pytest.mark.parametrize("lowering", ["ort", "portable"])
@pytest.mark.parametrize("threshold", [2**31, 0], ids=["inline", "external"])
def test_streamed_files_equal_onnx_save(hf, tmp_path, arch, lowering, threshold):
    ckpt = hf[arch][1]
    streamed = _streamed(ckpt, tmp_path / "streamed", threshold, lowering=lowering)
    saved = _in_memory(ckpt, tmp_path / "saved", threshold, lowering=lowering)
    assert streamed == saved == ([MODEL_FILE] if threshold else [MODEL_FILE, DATA_FILE])
    for name in streamed:
        assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "saved" / name).read_bytes(), name
    assert not (threshold and (tmp_path / "streamed" / DATA_FILE).exists())  # removed once inlined


def test_fp16_streamed_equals_onnx_save(hf, tmp_path):
    ckpt = hf["mistral"][1]
    _streamed(ckpt, tmp_path / "streamed", 2**31, precision="fp16")
    _in_memory(ckpt, tmp_path / "saved", 2**31, precision="fp16")
    assert (tmp_path / "streamed" / MODEL_FILE).read_bytes() == (tmp_path / "saved" / MODEL_FILE).read_bytes()


@pytest.mark.parametrize("threshold", [2**31, 0], ids=["inline", "external"])
def test_weight_index_reads_what_onnx_load_reads(hf, tmp_path, threshold):
    _streamed(hf["mistral"][1], tmp_path / "a", threshold)
    path = tmp_path / "a" / MODEL_FILE
    full = onnx.load(str(path))
    skeleton, index = load_skeleton(path)
    assert [n.name for n in skeleton.graph.node] == [n.name for n in full.graph.node]
    assert [t.name for t in skeleton.graph.initializer] == [t.name for t in full.graph.initializer]
    assert not any(t.raw_data for t in skeleton.graph.initializer)  # the weights stayed in the file
    for t in full.graph.initializer:
        np.testing.assert_array_equal(index.array(t.name), onnx.numpy_helper.to_array(t))


def test_index_then_sink_rewrites_the_same_file(hf, tmp_path):
    """Read every tensor through the index, write it through a sink, inline it again: the same bytes."""
    from radon.export.onnx_stream import save_streamed

    _streamed(hf["gpt2"][1], tmp_path / "a", 2**31)
    src = tmp_path / "a" / MODEL_FILE
    index = WeightIndex(src)
    model = index.model
    sink = WeightSink(tmp_path / "w.data")
    for t in model.graph.initializer:
        t.CopyFrom(sink.tensor(t.name, index.array(t.name, t)))
    sink.close()
    save_streamed(model, tmp_path / "b.onnx", tmp_path / "w.data", inline=True)
    assert (tmp_path / "b.onnx").read_bytes() == src.read_bytes()


def test_checkpoint_tensors_widen_half_precision_exactly(tmp_path):
    """bfloat16 and float16 checkpoints read as float32 exactly as ``Tensor.float()`` widens them."""
    import torch

    from radon import ModelConfig
    from radon_testing import radon_checkpoint

    cfg = ModelConfig.from_json("tiny_mistral")
    for dtype in (torch.bfloat16, torch.float16):
        ckpt = radon_checkpoint(tmp_path / str(dtype), cfg)
        model = load_model(ckpt, dtype=dtype)
        from radon.checkpoint import save_checkpoint

        half = save_checkpoint(model, tmp_path / f"{dtype}-half")
        tensors = CheckpointTensors(half)
        for name, value in model.state_dict().items():
            if name in tensors:
                np.testing.assert_array_equal(tensors[name], value.float().numpy())


def test_checkpoint_tensors_refuse_a_tensor_the_config_lacks(hf, tmp_path):
    import shutil

    from safetensors.numpy import load_file, save_file

    from radon.checkpoint import write_hashes
    from radon.errors import IntegrityError

    bad = tmp_path / "bad"
    shutil.copytree(hf["mistral"][1], bad)
    sd = load_file(str(bad / "model.safetensors"))
    sd["extra.weight"] = np.zeros(3, np.float32)
    save_file(sd, str(bad / "model.safetensors"))
    write_hashes(bad)
    with pytest.raises(IntegrityError, match="unexpected"):
        CheckpointTensors(bad)
