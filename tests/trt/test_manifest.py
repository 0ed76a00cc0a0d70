"""Reading the artifact manifest, the engine manifest, the source checks and the mismatch refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radon.errors import IntegrityError, RadonError
from radon.export.trt.builder import check_source, default_timing_cache
from radon.export.trt.compat import EngineMismatchError, check_engine_compatible, current_device, release
from radon.export.trt.manifest import engine_manifest, engine_section, read_model_spec
from radon.runtime.contract import seal


def test_reads_architecture_io_and_hashes(make_artifact) -> None:  # noqa: ANN001
    spec = read_model_spec(make_artifact())
    a = spec.architecture
    assert (a.num_layers, a.num_attention_heads, a.num_kv_heads, a.head_dim) == (2, 4, 2, 16)
    assert (a.sliding_window, a.vocab_size, a.max_position_embeddings) == (8, 320, 512)
    assert spec.model_file == "model.onnx" and spec.lowering == "portable" and spec.precision == "fp16"
    assert [t.name for t in spec.inputs][:3] == ["input_ids", "attention_mask", "position_ids"]
    assert spec.input("past_key_values.1.value").shape == ("batch_size", 2, "past_sequence_length", 16)
    assert spec.source["checkpoint_sha256"] == "ab" * 32


def test_one_reader_refuses_what_the_lenient_one_guessed(make_artifact) -> None:  # noqa: ANN001
    """TensorRT reads through the contract reader: no IO derived from num_layers, no alternative keys."""
    art = make_artifact()
    data = json.loads((art / "radon_manifest.json").read_text())
    del data["inputs"]
    (art / "radon_manifest.json").write_text(json.dumps(seal(data)))
    with pytest.raises(IntegrityError, match="inputs: missing from the manifest"):
        read_model_spec(art)
    data = json.loads((art / "radon_manifest.json").read_text()) | {"attention": "trt-plugin"}
    (art / "radon_manifest.json").write_text(json.dumps(seal(data)))
    with pytest.raises(IntegrityError, match="attention: unknown key"):
        read_model_spec(art)


def test_missing_fields_are_named(tmp_path: Path) -> None:
    with pytest.raises(RadonError, match="not a RADON artifact"):
        read_model_spec(tmp_path)
    (tmp_path / "radon_manifest.json").write_text(json.dumps({"format": "radon-manifest/1", "architecture": {"num_layers": 2}}))  # fmt: skip
    with pytest.raises(IntegrityError, match="model_file: missing from the manifest"):
        read_model_spec(tmp_path)


def test_an_edited_manifest_is_refused(make_artifact) -> None:  # noqa: ANN001
    art = make_artifact()
    data = json.loads((art / "radon_manifest.json").read_text())
    data["architecture"]["sliding_window"] = 64
    (art / "radon_manifest.json").write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="radon_manifest.json: edited after it was written"):
        read_model_spec(art)


def test_source_checks(make_artifact) -> None:  # noqa: ANN001
    art = make_artifact("plain")
    check = check_source(art, read_model_spec(art))
    assert not check.uses_plugin and check.onnx_path == art / "model.onnx"
    art = make_artifact("plugin", attention="trt-plugin", with_plugin=True)
    check = check_source(art, read_model_spec(art))
    assert check.uses_plugin and check.plugin_attrs["window"] == 8
    art = make_artifact("ort", attention="ort")
    with pytest.raises(RadonError, match="'ort' attention lowering"):
        check_source(art, read_model_spec(art))
    art = make_artifact("foreign", foreign_op=True)
    with pytest.raises(RadonError, match="com.microsoft.FastGelu"):
        check_source(art, read_model_spec(art))


def test_source_with_a_changed_file_is_refused(make_artifact) -> None:  # noqa: ANN001
    art = make_artifact()
    (art / "tokenizer" / "tokenizer.json").write_text('{"changed": true}')
    with pytest.raises(IntegrityError, match="tokenizer.json: sha256 mismatch"):
        check_source(art, read_model_spec(art))


def engine_record() -> dict:
    source = {
        "format": "radon-manifest/1",
        "model_file": "model.onnx",
        "external_data": ["model.onnx.data"],
        "source": {"checkpoint_sha256": "cd" * 32},
        "parity": {"x": 1},
        "files": {"model.onnx": "00"},
    }
    return engine_manifest(
        source, engine_files={"model.plan": "11" * 32}, tensorrt_version="10.9.0.34", compute_capability="9.0",
        device_name="NVIDIA H100", source_model_sha256="ee" * 32, source_manifest_sha256="ff" * 32,
        profiles={"prefill": {}, "decode": {}}, plugin=None, build={"seconds": 1.0},
    )  # fmt: skip


def test_engine_manifest_fields() -> None:
    m = engine_record()
    assert m["files"] == {"model.plan": "11" * 32} and m["model_file"] == "model.plan"
    assert m["format"] == "radon-manifest/1" and m["external_data"] == []
    assert m["parity"] is None  # measured on the ONNX, not on the engine
    t = engine_section(m, Path("x"))
    assert (t["tensorrt_version"], t["compute_capability"], t["strongly_typed"]) == ("10.9.0.34", "9.0", True)
    assert t["source"] == {
        "model_sha256": "ee" * 32,
        "manifest_sha256": "ff" * 32,
        "checkpoint_sha256": "cd" * 32,
    }
    with pytest.raises(IntegrityError, match="not a TensorRT engine artifact"):
        engine_section({"files": {}}, Path("x"))


def test_mismatches_are_refused_with_the_fix() -> None:
    t = engine_record()["tensorrt"]
    check_engine_compatible(
        t, tensorrt_version="10.9.0.99", compute_capability="9.0", source_model_sha256="ee" * 32
    )
    with pytest.raises(
        EngineMismatchError,
        match=r"built with TensorRT 10\.9\.0\.34, but this is TensorRT 10\.13\.0.*rebuild",
    ):
        check_engine_compatible(t, tensorrt_version="10.13.0.35", compute_capability="9.0")
    with pytest.raises(
        EngineMismatchError, match=r"compute capability 9\.0 \(NVIDIA H100\), but this GPU has 8\.0"
    ):
        check_engine_compatible(t, tensorrt_version="10.9.0.34", compute_capability="8.0")
    with pytest.raises(EngineMismatchError, match="stale"):
        check_engine_compatible(
            t, tensorrt_version="10.9.0.34", compute_capability="9.0", source_model_sha256="aa" * 32
        )
    assert release("11.0.0.9") == (11, 0, 0) and release("10.9") == (10, 9)


def test_no_gpu_is_a_clear_error() -> None:
    try:
        device = current_device()
    except RadonError as exc:
        assert "CUDA" in str(exc) or "GPU" in str(exc)
    else:  # a machine with a GPU
        assert device.compute_capability.count(".") == 1


def test_timing_cache_is_per_gpu_and_release(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = default_timing_cache("9.0", "10.9.0.34")
    assert path == tmp_path / "radon" / "tensorrt" / "timing-sm90-trt10.9.0.34.cache"
