"""The manifest's hashes match the files; a flipped byte in the model or its external data is refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from radon.errors import IntegrityError
from radon.integrity import sha256_file
from radon.runtime.contract import MANIFEST_FILE, read_manifest, seal
from radon.runtime.session import DecoderSession


def _flip_byte(path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_manifest_hashes_match_files(artifacts):
    art = artifacts[("mistral", "ort")]
    manifest = read_manifest(art)
    listed = set(manifest.files)
    on_disk = {p.relative_to(art).as_posix() for p in art.rglob("*") if p.is_file()} - {MANIFEST_FILE}
    assert listed == on_disk  # every file but the manifest itself, and nothing else
    for name, sha in manifest.files.items():
        assert sha256_file(art / name) == sha


def test_flipped_byte_in_model_is_refused(artifacts, tmp_path):
    art = shutil.copytree(artifacts[("mistral", "portable")], tmp_path / "art")
    _flip_byte(art / "model.onnx")
    with pytest.raises(IntegrityError, match=r"model\.onnx: sha256 mismatch"):
        read_manifest(art)
    with pytest.raises(IntegrityError, match=r"model\.onnx"):
        DecoderSession(art)


@pytest.fixture(scope="module")
def external_artifact(hf, export_root):
    """An export forced to external data by a zero size threshold."""
    from radon.export.exporter import export_onnx

    _, ckpt = hf["mistral"]
    return export_onnx(ckpt, export_root / "mistral_external", attention="ort", parity=False, threads=1,
                       external_data_threshold=0).path  # fmt: skip


def test_external_data_is_hashed_and_runs(external_artifact, artifacts):
    manifest = read_manifest(external_artifact)
    assert manifest.external_data == ["model.onnx.data"]
    assert "model.onnx.data" in manifest.files
    assert (external_artifact / "model.onnx").stat().st_size < (
        external_artifact / "model.onnx.data"
    ).stat().st_size
    ids = np.arange(4, 14)[None]
    got = DecoderSession(external_artifact, threads=1).step(ids).logits
    want = DecoderSession(artifacts[("mistral", "ort")], threads=1).step(ids).logits
    np.testing.assert_array_equal(got, want)


def test_flipped_byte_in_external_data_is_refused(external_artifact, tmp_path):
    art = shutil.copytree(external_artifact, tmp_path / "art")
    _flip_byte(art / "model.onnx.data")
    with pytest.raises(IntegrityError, match=r"model\.onnx\.data: sha256 mismatch"):
        DecoderSession(art)


def test_missing_file_and_bad_manifest_are_refused(artifacts, tmp_path):
    art = shutil.copytree(artifacts[("gpt2", "ort")], tmp_path / "art")
    (art / "genai_config.json").unlink()
    with pytest.raises(IntegrityError, match=r"genai_config\.json: missing"):
        read_manifest(art)
    data = json.loads((art / MANIFEST_FILE).read_text())
    (art / MANIFEST_FILE).write_text(json.dumps(data | {"surprise": 1}))
    with pytest.raises(IntegrityError, match="surprise: unknown key"):
        read_manifest(art, verify=False)
    (art / MANIFEST_FILE).write_text(json.dumps(data | {"format": "radon-manifest/2"}))
    with pytest.raises(IntegrityError, match="newer than this RADON reads"):
        read_manifest(art, verify=False)


def test_newer_minor_manifest_adds_optional_keys(artifacts, tmp_path):
    art = shutil.copytree(artifacts[("gpt2", "portable")], tmp_path / "art")
    data = json.loads((art / MANIFEST_FILE).read_text())
    newer = seal(data | {"format": "radon-manifest/1.1", "later": {"x": 1}})  # as a newer RADON writes it
    (art / MANIFEST_FILE).write_text(json.dumps(newer))
    assert read_manifest(art).lowering == "portable"
