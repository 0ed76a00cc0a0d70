"""``radon triton build``: Triton's layout, every config.pbtxt parsed back with tritonclient's
``model_config_pb2`` and checked against the manifest, the three decoders (onnxruntime_onnx, python,
tensorrt_plan from an engine folder's profiles), and the refusals. No server needed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from radon.cli._app import call
from radon.errors import ConfigError, RadonError
from radon.integrity import hash_files, list_files, read_json, sha256_file, write_json
from radon.model_repository import build_repository
from radon.model_repository.request import GENERATE_INPUTS, response_outputs
from radon.runtime.contract import MANIFEST_FILE, read_manifest, seal

model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="needs tritonclient[grpc]"
)
text_format = pytest.importorskip("google.protobuf.text_format")

TYPES = {"int64": "TYPE_INT64", "float32": "TYPE_FP32", "float16": "TYPE_FP16"}


def parse(folder: Path):
    """config.pbtxt as Triton's ModelConfig message (an unknown field or enum fails here)."""
    return text_format.Parse(
        (folder / "config.pbtxt").read_text(encoding="utf-8"), model_config_pb2.ModelConfig()
    )


def dtype(config, value) -> str:
    return model_config_pb2.DataType.Name(value)


def test_layout_and_every_config_parses(text_artifact, tmp_path):
    result = build_repository(text_artifact, tmp_path / "repo", decoder="python", max_batch=4, instances=2)
    repo = result.repository
    assert sorted(p.name for p in repo.iterdir()) == sorted([*result.models, "radon_repository.json"])
    for model in result.models:
        assert (repo / model / "config.pbtxt").is_file() and (repo / model / "1").is_dir()
        assert parse(repo / model).name == model
    for model in ("radon", "radon_tokenizer", "radon_detokenizer", "radon_decoder"):
        assert (repo / model / "1" / "model.py").is_file()
        assert len((repo / model / "1" / "model.py").read_text().splitlines()) < 100  # thin adapters
    for model in ("radon_tokenizer", "radon_detokenizer"):
        assert (repo / model / "1" / "tokenizer" / "radon_tokenizer.json").is_file()
    decoder_dir = repo / "radon_decoder" / "1" / "artifact"  # apart from the python adapter's model.py
    read_manifest(decoder_dir, verify=True)  # the whole artifact, hashes intact
    marker = read_json(repo / "radon_repository.json", "marker")
    assert marker["decoder"] == "python" and marker["generate_models"] == {"radon": "in_process"}


def test_decoder_configs_follow_the_manifest(text_artifact, tmp_path):
    manifest = read_manifest(text_artifact)
    for kind, field, value in (
        ("onnxruntime", "platform", "onnxruntime_onnx"),
        ("python", "backend", "python"),
    ):
        repo = build_repository(
            text_artifact, tmp_path / kind, decoder=kind, max_batch=4, threads=2
        ).repository
        cfg = parse(repo / "radon_decoder")
        assert getattr(cfg, field) == value and cfg.max_batch_size == 4
        assert [i.name for i in cfg.input] == manifest.input_names
        assert [o.name for o in cfg.output] == manifest.output_names
        for tensor, spec in zip([*cfg.input, *cfg.output], [*manifest.inputs, *manifest.outputs]):
            assert dtype(cfg, tensor.data_type) == TYPES[spec.dtype]
            assert list(tensor.dims) == [d if isinstance(d, int) else -1 for d in spec.shape[1:]]
        a = manifest.architecture
        past = next(i for i in cfg.input if i.name == "past_key_values.0.key")
        assert list(past.dims) == [a.num_kv_heads, -1, a.head_dim]
        assert list(next(o for o in cfg.output if o.name == "logits").dims) == [-1, a.vocab_size]
        assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        if kind == "onnxruntime":
            assert cfg.default_model_filename == "model.onnx" and params["intra_op_thread_count"] == "2"
            assert not (repo / "radon_decoder" / "1" / "model.py").exists()
        else:
            assert params == {"threads": "2"}


def test_generate_model_config(text_artifact, tmp_path):
    repo = build_repository(text_artifact, tmp_path / "repo", decoder="python", name="chat", max_batch=6,
                            instances=2, max_tokens_limit=100).repository  # fmt: skip
    cfg = parse(repo / "chat")
    assert cfg.backend == "python" and cfg.model_transaction_policy.decoupled and cfg.max_batch_size == 6
    assert cfg.HasField("dynamic_batching") and cfg.instance_group[0].count == 2
    assert [(i.name, dtype(cfg, i.data_type), list(i.dims), i.optional) for i in cfg.input] == [
        (f.name, f.data_type, list(f.dims), f.optional) for f in GENERATE_INPUTS
    ]
    assert [(o.name, dtype(cfg, o.data_type), list(o.dims)) for o in cfg.output] == [
        ("text_output", "TYPE_STRING", [1]),
        ("generated_tokens", "TYPE_INT32", [1]),
        ("num_input_tokens", "TYPE_INT32", [1]),
        ("num_output_tokens", "TYPE_INT32", [1]),
    ]
    # the adapter's arrays (radon.model_repository.request.response_outputs) match what the config declares
    arrays = response_outputs("привет", 7, {"num_input_tokens": 3, "num_output_tokens": 1})
    assert list(arrays) == [o.name for o in cfg.output] and arrays["generated_tokens"].tolist() == [[7]]
    assert arrays["text_output"].dtype == object and arrays["generated_tokens"].dtype == np.int32
    assert arrays["num_input_tokens"].tolist() == [[3]] and arrays["num_output_tokens"].dtype == np.int32
    assert list(response_outputs("x", 1)) == ["text_output", "generated_tokens"]  # counts only when asked
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params["decode_loop"] == "in_process" and params["artifact"] == "radon_decoder/1/artifact"
    assert params["max_batch"] == "6" and params["max_tokens_limit"] == "100"
    tok = parse(repo / "radon_tokenizer")
    assert [o.name for o in tok.output] == ["input_ids", "input_lengths"] and tok.max_batch_size == 6
    detok = parse(repo / "radon_detokenizer")
    assert [(i.name, i.optional) for i in detok.input] == [("token_ids", False), ("sequence_length", True)]


def engine_folder(artifact: Path, out: Path, max_batch: int = 4) -> Path:
    """An engine folder as radon export trt writes it (export.trt.manifest.engine_manifest, the real
    profiles from export.trt.profiles), with a placeholder model.plan: TensorRT cannot run here."""
    from radon.export.trt.manifest import ENGINE_FILE, engine_manifest, read_model_spec
    from radon.export.trt.profiles import ProfileLimits, as_json, profile_shapes

    out.mkdir()
    (out / ENGINE_FILE).write_bytes(b"not an engine: TensorRT is not installed here")
    shutil.copytree(artifact / "tokenizer", out / "tokenizer")
    profiles = as_json(
        profile_shapes(read_model_spec(artifact), ProfileLimits(max_batch=max_batch, max_prefill=64))
    )
    manifest = engine_manifest(
        read_json(artifact / MANIFEST_FILE, "manifest"), engine_files=hash_files(out, list_files(out)),
        tensorrt_version="10.9.0", compute_capability="9.0", device_name="(none: a test fixture)",
        source_model_sha256=sha256_file(artifact / "model.onnx"),
        source_manifest_sha256=sha256_file(artifact / MANIFEST_FILE), profiles=profiles, plugin=None, build={},
    )  # fmt: skip
    write_json(out / MANIFEST_FILE, manifest)
    return out


def test_tensorrt_plan_decoder_from_engine_profiles(text_artifact, tmp_path):
    engine = engine_folder(text_artifact, tmp_path / "engine", max_batch=4)
    result = build_repository(engine, tmp_path / "repo")  # auto: an engine folder -> tensorrt
    assert (result.decoder, result.decode_loop) == ("tensorrt", "bls")
    repo = result.repository
    cfg = parse(repo / "radon_decoder")
    assert (
        cfg.platform == "tensorrt_plan"
        and cfg.default_model_filename == "model.plan"
        and cfg.max_batch_size == 4
    )
    assert (repo / "radon_decoder" / "1" / "model.plan").is_file()
    group = cfg.instance_group[0]
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU and list(group.profile) == ["0", "1"]
    a = read_manifest(engine).architecture
    dims = {i.name: list(i.dims) for i in cfg.input}
    assert dims["input_ids"] == [-1] and dims["attention_mask"] == [-1]
    assert dims["past_key_values.1.value"] == [a.num_kv_heads, -1, a.head_dim]
    params = {k: v.string_value for k, v in parse(repo / "radon").parameters.items()}
    assert (
        params["decode_loop"] == "bls"
        and params["prefill_chunk"] == "0"
        and params["max_prompt_tokens"] == "64"
    )
    assert params["max_batch"] == "4"
    with pytest.raises(ConfigError, match="^--max-batch: 8 is over the engine's largest batch"):
        build_repository(engine, tmp_path / "repo8", max_batch=8)
    with pytest.raises(ConfigError, match="in_process"):
        build_repository(engine, tmp_path / "repo_ip", decode_loop="in_process")
    with pytest.raises(ConfigError, match="is a TensorRT engine folder"):
        build_repository(engine, tmp_path / "repo_ort", decoder="onnxruntime")


def test_refusals(text_artifact, tmp_path):
    with pytest.raises(ConfigError, match="is an ONNX artifact"):
        build_repository(text_artifact, tmp_path / "a", decoder="tensorrt")
    with pytest.raises(ConfigError, match="^--name"):
        build_repository(text_artifact, tmp_path / "b", name="radon_decoder")
    with pytest.raises(ConfigError, match="^--instances"):
        build_repository(text_artifact, tmp_path / "c", decoder="python", instances=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(RadonError, match="not a RADON model repository"):
        build_repository(text_artifact, tmp_path / "full", decoder="python")
    bare = tmp_path / "bare"
    shutil.copytree(text_artifact, bare)
    shutil.rmtree(bare / "tokenizer")
    data = read_json(bare / MANIFEST_FILE, "m")
    data["tokenizer"] = None
    data["files"] = {k: v for k, v in data["files"].items() if not k.startswith("tokenizer/")}
    write_json(bare / MANIFEST_FILE, seal(data))  # an artifact written without a tokenizer
    with pytest.raises(ConfigError, match="has no tokenizer"):
        build_repository(bare, tmp_path / "d", decoder="python")


def test_rebuild_keeps_other_generate_models_and_refuses_another_artifact(text_artifact, tmp_path):
    repo = tmp_path / "repo"
    build_repository(text_artifact, repo, decoder="python")
    build_repository(text_artifact, repo, decoder="python", name="radon_bls", decode_loop="bls")
    marker = read_json(repo / "radon_repository.json", "marker")
    assert marker["generate_models"] == {"radon": "in_process", "radon_bls": "bls"}
    assert (repo / "radon" / "config.pbtxt").is_file() and (repo / "radon_bls" / "config.pbtxt").is_file()
    other = tmp_path / "other"
    shutil.copytree(text_artifact, other)
    data = read_json(other / MANIFEST_FILE, "m")
    data["radon_version"] = "another build"
    write_json(other / MANIFEST_FILE, seal(data))  # another artifact's manifest
    with pytest.raises(RadonError, match="--overwrite"):
        build_repository(other, repo, decoder="python")
    build_repository(other, repo, decoder="python", overwrite=True)
    assert not (repo / "radon_bls").exists()


def test_cli_build(text_artifact, tmp_path, capsys):
    from radon.cli.triton import build

    assert call(build, "radon triton build", [str(text_artifact), "--out", str(tmp_path / "r"), "--decoder",
                                              "python", "--max-batch", "2", "--instances", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "radon_decoder" in out and "python decoder" in out and "radon triton serve" in out
    assert parse(tmp_path / "r" / "radon").max_batch_size == 2
