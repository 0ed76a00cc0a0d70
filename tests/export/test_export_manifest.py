"""The manifest (contract 5), the graphs' IO (contract 4), the lowerings' ops, peers' configs, ``radon info``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from radon.checkpoint import checkpoint_digest
from radon.runtime.contract import read_manifest
from radon_testing import MISTRAL_HF

WINDOW = MISTRAL_HF["sliding_window"]


def test_manifest_records_the_contract(hf, artifacts):
    _, ckpt = hf["mistral"]
    m = read_manifest(artifacts[("mistral", "ort")])
    assert m.format == "radon-manifest/1"
    assert m.lowering == "ort" and m.precision == "fp32" and m.opset == {"ai.onnx": 17, "com.microsoft": 1}
    assert m.input_names[:3] == ["input_ids", "attention_mask", "position_ids"]
    assert m.input("attention_mask").shape == ("batch_size", "total_sequence_length")
    assert m.input("past_key_values.1.value").shape == ("batch_size", 2, "past_sequence_length", 16)
    assert m.output_names[:3] == ["logits", "present.0.key", "present.0.value"]
    a = m.architecture
    assert (a.num_layers, a.num_attention_heads, a.num_kv_heads, a.head_dim, a.sliding_window, a.vocab_size) == (
        2, 4, 2, 16, WINDOW, 320)  # fmt: skip
    assert m.kv_cache.keep == WINDOW - 1 and m.kv_cache.layout == "BNSH"
    assert m.special_ids == {"bos": 1, "eos": 2, "pad": None}
    assert m.source["checkpoint_sha256"] == checkpoint_digest(ckpt)
    assert {"radon", "onnx", "onnxruntime", "torch"} <= set(m.tools)
    assert m.weights["mistral.layers.0.attn.qkv.weight"] == ["layers.0.attn.qkv.weight"]
    assert m.options == {"rotary": "outside", "logits_to_keep": "initializer"}
    assert m.validation["passed"] and "decode_rolled_past" in m.validation["checks"]


def test_graph_io_matches_the_manifest(artifacts):
    for path in artifacts.values():
        m = read_manifest(path)
        graph = onnx.load(str(path / "model.onnx"), load_external_data=False).graph
        assert [i.name for i in graph.input] == m.input_names  # contract 4's, nothing more
        assert [o.name for o in graph.output] == m.output_names
        dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
        assert dims == ["batch_size", "sequence_length"]


def test_portable_uses_standard_ops_only(artifacts):
    for arch in ("mistral", "gpt2"):
        model = onnx.load(str(artifacts[(arch, "portable")] / "model.onnx"))
        assert {n.domain for n in model.graph.node} <= {""}
        assert [o.domain for o in model.opset_import] == [""] and model.opset_import[0].version <= 21
        onnx.checker.check_model(model, full_check=True)
        assert read_manifest(artifacts[(arch, "portable")]).opset == {"ai.onnx": 17}


def test_ort_uses_group_query_attention_with_the_window(artifacts):
    model = onnx.load(str(artifacts[("mistral", "ort")] / "model.onnx"))
    gqa = [n for n in model.graph.node if n.op_type == "GroupQueryAttention"]
    assert len(gqa) == 2 and all(n.domain == "com.microsoft" for n in gqa)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gqa[0].attribute}
    assert attrs["local_window_size"] == WINDOW and attrs["kv_num_heads"] == 2 and attrs["num_heads"] == 4
    ops = {n.op_type for n in model.graph.node}
    assert {"SkipSimplifiedLayerNormalization", "RotaryEmbedding"} <= ops
    assert "Softmax" not in ops  # attention is fused
    # every norm is fused, the first (no residual yet) included: no standalone RMSNorm arithmetic
    norms = [n for n in model.graph.node if n.op_type == "SkipSimplifiedLayerNormalization"]
    assert len(norms) == 2 * 2 + 1 and not {"ReduceMean", "Sqrt", "Pow"} & ops
    first = next(n for n in norms if n.name == "layers.0.attn_norm.SkipSimplifiedLayerNorm")
    assert first.input[0] == first.input[1]  # norm(x + x) with epsilon 4·eps is norm(x)
    matmuls = {n.input[1] for n in model.graph.node if n.op_type == "MatMul"}
    assert {"layers.0.attn.qkv.weight", "layers.1.mlp.fc_out.weight", "lm_head.weight"} <= matmuls


def test_peer_configs(artifacts):
    art = artifacts[("mistral", "ort")]
    hf_config = json.loads((art / "config.json").read_text())
    assert hf_config["model_type"] == "mistral" and hf_config["sliding_window"] == WINDOW
    assert hf_config["num_key_value_heads"] == 2 and hf_config["use_cache"] is True
    genai = json.loads((art / "genai_config.json").read_text())
    dec = genai["model"]["decoder"]
    assert dec["inputs"]["past_key_names"] == "past_key_values.%d.key"
    assert dec["outputs"]["present_value_names"] == "present.%d.value"
    assert dec["num_key_value_heads"] == 2 and dec["head_size"] == 16 and genai["model"]["type"] == "mistral"
    gpt2 = json.loads((artifacts[("gpt2", "portable")] / "config.json").read_text())
    assert gpt2["model_type"] == "gpt2" and gpt2["n_embd"] == 64


def test_runtime_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import radon.runtime.contract, radon.runtime.session\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_radon_info_on_an_artifact(artifacts, capsys):
    from radon.cli import main

    art = artifacts[("mistral", "ort")]
    assert main(["info", str(art), "--context", "100"]) == 0
    text = capsys.readouterr().out
    assert "ort attention, fp32" in text and "window 8" in text
    assert "rolling buffer keeps 7 past positions" in text and "parity: skipped" in text
    assert main(["info", str(art), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kv_cache"]["cached_tokens"] == WINDOW and info["lowering"] == "ort"


@pytest.mark.parametrize("opset", [18, 21])
def test_other_opsets_build_and_run(hf, tmp_path, opset):
    from radon.export.exporter import export_onnx

    _, ckpt = hf["mistral"]
    art = export_onnx(ckpt, tmp_path / "art", attention="portable", opset=opset, parity=False, threads=1).path
    assert read_manifest(art).opset == {"ai.onnx": opset}


@pytest.mark.parametrize("arch", ["mistral", "gpt2"])
def test_portable_runs_on_a_second_runtime(artifacts, padded, arch):
    """onnx's reference evaluator (pure numpy, no onnxruntime) runs the portable graph to the same logits."""
    import numpy as np
    from onnx.reference import ReferenceEvaluator

    from radon.runtime.session import DecoderSession, positions_from_mask

    art = artifacts[(arch, "portable")]
    session = DecoderSession(art, threads=1)
    evaluator = ReferenceEvaluator(onnx.load(str(art / "model.onnx")))
    ids, mask = padded(2, WINDOW + 4, pad=2)
    first = session.step(ids, mask)
    past = session.trim(first.presents, session.keep)
    token = first.logits[:, -1].argmax(-1)[:, None]
    step_mask = np.ones((2, past[0][0].shape[2] + 1), np.int64)
    feeds = {
        "input_ids": token,
        "attention_mask": step_mask,
        "position_ids": positions_from_mask(mask)[:, -1:] + 1,
    }
    for i, (k, v) in enumerate(past):
        feeds[f"past_key_values.{i}.key"], feeds[f"past_key_values.{i}.value"] = k, v
    got = evaluator.run(["logits"], feeds)[0]
    want = session.step(token, step_mask, feeds["position_ids"], past).logits
    assert np.abs(got - want).max() <= 1e-5


def test_session_refuses_what_the_graph_cannot_do(artifacts, padded):
    from radon.errors import RadonError
    from radon.runtime.session import DecoderSession

    ids, mask = padded(2, 6, pad=0)
    for lowering in ("ort", "portable"):
        session = DecoderSession(artifacts[("mistral", lowering)], threads=1)
        past = session.step(ids, mask).presents
        chunk = np.ones((2, 3), np.int64)
        args = (chunk, np.ones((2, 9), np.int64), np.arange(6, 9)[None].repeat(2, 0), past)
        if lowering == "ort":  # GroupQueryAttention: multi-token steps with a past need batch 1
            with pytest.raises(RadonError, match="needs batch_size 1"):
                session.step(*args)
        else:
            assert session.step(*args).logits.shape == (2, 3, 320)
    with pytest.raises(RadonError, match="onnxruntime failed"):  # a position past the rotary table
        session.step(ids[:, :1], position_ids=np.full((2, 1), 10_000))


@pytest.mark.parametrize("arch", ["mistral", "gpt2"])
def test_a_plain_onnxruntime_session_loads_the_ort_graph_silently(artifacts, arch):
    """onnxruntime's C++ logger writes to file descriptor 2, so the load runs in a child whose stderr is
    captured: default options, as optimum, onnxruntime-genai and a user's own session open it. An
    initializer that is also a graph input (the optional ``logits_to_keep`` of earlier artifacts) made it
    warn on every load."""
    code = (
        "import sys, onnxruntime as ort\n"
        "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
        "assert 'logits_to_keep' not in [i.name for i in s.get_inputs() + s.get_overridable_initializers()]\n"
    )
    path = artifacts[(arch, "ort")] / "model.onnx"
    child = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert child.returncode == 0 and child.stderr == ""


@pytest.mark.parametrize("level", ["ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_ALL"])
def test_logits_to_keep_is_an_initializer_a_session_replaces(artifacts, level):
    """The ort graph's ``logits_to_keep``: full logits as the graph is; the last N positions' logits, and
    the LM head on those alone, in a session built with N in its place, at every optimization level
    (onnxruntime's optimizers read the model's value: lowering_common.keep_last_positions)."""
    import numpy as np
    import onnxruntime as ort

    path = artifacts[("mistral", "ort")]
    m = read_manifest(path)
    ids = np.array([[5, 9, 11, 40, 41, 42, 7]], np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "position_ids": np.arange(7)[None]}
    a = m.architecture
    for i in range(a.num_layers):
        for kind in ("key", "value"):
            feeds[f"past_key_values.{i}.{kind}"] = np.zeros((1, a.num_kv_heads, 0, a.head_dim), np.float32)

    def session(keep: int | None) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        if keep is not None:  # onnxruntime holds a pointer to the OrtValue: it must outlive the session
            opts.add_initializer("logits_to_keep", kept[keep][1])
        return ort.InferenceSession(str(path / "model.onnx"), opts, providers=["CPUExecutionProvider"])

    arrays = {n: np.array([n], np.int64) for n in (1, 3, 7, 50)}
    kept = {n: (a, ort.OrtValue.ortvalue_from_numpy(a)) for n, a in arrays.items()}
    full = session(None).run(["logits"], feeds)[0]
    assert full.shape == (1, 7, a.vocab_size)
    for keep, rows in ((1, 1), (3, 3), (7, 7), (50, 7)):
        cut = session(keep).run(["logits"], feeds)[0]
        assert cut.shape == (1, rows, a.vocab_size)
        np.testing.assert_allclose(cut, full[:, 7 - rows :], rtol=0, atol=1e-5)
