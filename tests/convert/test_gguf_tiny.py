"""``radon convert --from-gguf`` on tiny GGUF files written here with the ``gguf`` package's writer.

The files are laid out as llama.cpp's ``convert_hf_to_gguf.py`` lays them out: a Llama's q and k rows
permuted for llama.cpp's rope (weights and biases; a Qwen2's are not), tensors named ``blk.N.attn_q``...,
some of them quantized to Q8_0. The reference is the transformers model with those tensors replaced by
their dequantized values, so the comparison checks names, layout, permutation and biases, and
dequantization goes through the same library on both sides. The real model's GGUF is compared with its
Hugging Face folder in test_realmodel.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from radon import load_model
from radon.cli import main as cli
from radon_testing import hf_family

gguf = pytest.importorskip("gguf")

LOGIT_TOL = 1e-4  # same float32 weights on both sides: float reassociation only
HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}  # fmt: skip
LAYER = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}  # fmt: skip
Q8 = gguf.GGMLQuantizationType.Q8_0


def _gguf_name(name: str) -> str:
    if name in HF_TO_GGUF:
        return HF_TO_GGUF[name]
    _, _, i, *rest = name.split(".")
    module, kind = ".".join(rest[:-1]), rest[-1]
    return f"blk.{i}.{LAYER[module]}.{kind}"


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` (convert_hf_to_gguf.py)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model: Any, family: str, path: Path) -> Any:
    """Write ``model`` as llama.cpp would, q/k/v and the embedding in Q8_0; returns the model with those
    tensors replaced by their dequantized values (the reference)."""
    from gguf.quants import dequantize, quantize

    cfg = model.config
    w = gguf.GGUFWriter(str(path), family)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_name("tiny")
    w.add_languages(["en", "ru"])  # a string array, for field_value's test
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    for name, t in sd.items():
        quantized = t.ndim == 2 and (
            "embed_tokens" in name or "_proj" in name and "self_attn" in name and "o_proj" not in name
        )
        if quantized:
            t = dequantize(quantize(t, Q8), Q8).reshape(t.shape)  # the reference sees what the file holds
            model.state_dict()[name].copy_(torch.from_numpy(t))
        stored = t
        if family == "llama" and ("q_proj" in name or "k_proj" in name):
            heads = cfg.num_attention_heads if "q_proj" in name else cfg.num_key_value_heads
            stored = _permute(t, heads)
        if quantized:
            w.add_tensor(_gguf_name(name), quantize(stored, Q8), raw_dtype=Q8)
        else:
            w.add_tensor(_gguf_name(name), np.ascontiguousarray(stored))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_gguf_converts_to_the_model_it_holds(family: str, tmp_path: Path) -> None:
    overrides = {"rope_scaling": None} if family == "llama" else {}
    model = write_gguf(hf_family(family, **overrides), family, tmp_path / "m.gguf")
    assert cli(["convert", "--from-gguf", str(tmp_path / "m.gguf"), "--out", str(tmp_path / "ckpt")]) == 0
    ours = load_model(tmp_path / "ckpt")
    x = torch.randint(4, 320, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(x).logits - model(x).logits).abs().max().item() <= LOGIT_TOL
    source = json.loads((tmp_path / "ckpt" / "source.json").read_text())
    assert source["format"] == "gguf" and source["quantization"] == {
        "F32": source["quantization"]["F32"],
        "Q8_0": 7,
    }
    assert "source.json" in json.loads((tmp_path / "ckpt" / "radon_checkpoint.json").read_text())["files"]


def test_control_the_llama_permutation_matters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An importer that kept llama.cpp's q/k row order would be far off: the test above can see it."""
    import radon.gguf_import

    model = write_gguf(hf_family("llama", rope_scaling=None), "llama", tmp_path / "m.gguf")
    monkeypatch.setattr(radon.gguf_import, "_unpermute", lambda w, n_head: w)
    assert cli(["convert", "--from-gguf", str(tmp_path / "m.gguf"), "--out", str(tmp_path / "ckpt")]) == 0
    x = torch.randint(4, 320, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (load_model(tmp_path / "ckpt")(x).logits - model(x).logits).abs().max().item() > 1e-2


def test_metadata_reads_the_same_without_contents(tmp_path: Path) -> None:
    """``field_value``'s fallback for gguf releases without ``ReaderField.contents`` decodes every field alike."""
    from types import SimpleNamespace

    from radon.gguf_import import field_value

    write_gguf(hf_family("qwen2"), "qwen2", tmp_path / "m.gguf")
    for key, field in gguf.GGUFReader(str(tmp_path / "m.gguf")).fields.items():
        bare = SimpleNamespace(types=field.types, parts=field.parts, data=field.data)  # no contents()
        assert field_value(bare) == field.contents(), key


def test_gguf_refusals_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "m.gguf"
    write_gguf(hf_family("qwen2"), "qwen2", path)
    data = path.read_bytes()
    cases = {
        "falcon.gguf": (
            data.replace(b"qwen2", b"falco"),
            "general.architecture",
        ),  # same length: a valid file
        "not.gguf": (b"JUNK" + data[4:], "not a GGUF file"),
    }
    for name, (content, needle) in cases.items():
        (tmp_path / name).write_bytes(content)
        out = tmp_path / f"out-{name}"
        assert cli(["convert", "--from-gguf", str(tmp_path / name), "--out", str(out)]) != 0
        err = capsys.readouterr().err
        assert needle in err and not out.exists(), err


def test_radon_info_on_a_gguf_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = write_gguf(hf_family("qwen2"), "qwen2", tmp_path / "m.gguf")
    assert cli(["info", str(tmp_path / "m.gguf"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (
        report["hf_architecture"] == "Qwen2ForCausalLM"
        and report["parameters"]["total"] == model.num_parameters()
    )
    assert report["gguf"]["quantization"]["Q8_0"] == 7
    assert report["convert"] == f"radon convert --from-gguf {tmp_path / 'm.gguf'} --out CKPT"
    assert cli(["info", str(tmp_path / "m.gguf")]) == 0
    assert "Q8_0 x7" in capsys.readouterr().out
