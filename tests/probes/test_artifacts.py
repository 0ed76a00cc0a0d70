"""Probes of artifacts and files (docs/reliability.md, "Artifacts and files").

Every probe hands RADON something wrong: a manifest edited after export (with and without a recomputed
seal, so both the seal and the check against the graph are exercised), paths that leave the folder,
files changed, missing, added or truncated, a folder left half-written by a killed run, configs that
contradict themselves or are absurdly large, and text files that are not UTF-8 or are empty. Each one
asserts the exit code (or the exception) and that the message names the file or the key.

Surfaces: ``radon generate``, ``radon info``, ``radon parity``, ``radon eval``, ``radon export onnx``,
``radon convert`` and ``radon quantize`` in-process through ``radon.cli.main`` (a traceback fails the
probe), ``radon.runtime.load``, and ``radon serve``'s start-up in a subprocess (a server that starts
on bad input would hang until the guard, and fail). One tiny chat model for the module
(tests/chat_testing.py), copied per probe.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from radon.errors import RadonError  # noqa: E402
from radon.integrity import INCOMPLETE_MARKER, hash_files, list_files  # noqa: E402
from radon.runtime.contract import MANIFEST_FILE, seal  # noqa: E402

HANG_GUARD = 120  # seconds: a subprocess that runs this long has failed; no probe asserts a duration
EDITED = "edited after it was written"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    from chat_testing import chat_artifact

    from radon.export.exporter import export_onnx

    root = tmp_path_factory.mktemp("artifact_probes")
    ckpt, artifact = chat_artifact(root)
    external = export_onnx(ckpt, root / "external", attention="ort", parity=False, threads=1,
                           external_data_threshold=0).path  # fmt: skip
    portable = export_onnx(ckpt, root / "portable", attention="portable", parity=False, threads=1).path
    return SimpleNamespace(root=root, ckpt=ckpt, artifact=artifact, external=external, portable=portable)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture) -> Callable[..., tuple[int, str]]:
    """``radon <argv>`` in-process; returns (exit code, stderr). An exception escaping main fails the probe."""
    from radon.cli import main

    def run(*argv: Any) -> tuple[int, str]:
        capsys.readouterr()
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:
            rc = int(exc.code or 0)
        return rc, capsys.readouterr().err

    return run


# ---- making bad artifacts -------------------------------------------------------------------------
def manifest_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))


def write_manifest_json(folder: Path, data: dict[str, Any], reseal: bool) -> None:
    (folder / MANIFEST_FILE).write_text(json.dumps(seal(data) if reseal else data), encoding="utf-8")


def rehash(folder: Path) -> None:
    """Record the folder's files as they are now and reseal: what a careful forger would do."""
    data = manifest_of(folder)
    data["files"] = hash_files(folder, list_files(folder, exclude=[MANIFEST_FILE]))
    write_manifest_json(folder, data, reseal=True)


def set_key(path: str, value: Any, reseal: bool = False, **also: Any) -> Callable[[Path], None]:
    """An edit that sets ``path`` ("architecture.sliding_window") to ``value`` (and the ``also`` keys)."""

    def edit(folder: Path) -> None:
        data = manifest_of(folder)
        for key, v in {path: value, **{k.replace("__", "."): x for k, x in also.items()}}.items():
            *parents, last = key.split(".")
            node = data
            for p in parents:
                node = node[p]
            node[last] = v
        write_manifest_json(folder, data, reseal)

    return edit


def rename_io(old: str, new: str, where: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = manifest_of(folder)
        for t in data[where]:
            if t["name"] == old:
                t["name"] = new
        write_manifest_json(folder, data, reseal=True)

    return edit


def set_io_dtype(name: str, dtype: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = manifest_of(folder)
        for t in data["inputs"] + data["outputs"]:
            if t["name"] == name:
                t["dtype"] = dtype
        write_manifest_json(folder, data, reseal=True)

    return edit


def copy_of(models: SimpleNamespace, tmp_path: Path, which: str = "artifact") -> Path:
    return Path(shutil.copytree(getattr(models, which), tmp_path / "art", symlinks=True))


# ---- 1. the manifest edited, the seal not recomputed: refused naming the manifest ------------------
ARCH_EDITS = {
    "num_layers": 3, "hidden_size": 32, "num_attention_heads": 2, "num_kv_heads": 1, "head_dim": 32,
    "intermediate_size": 64, "vocab_size": 100, "max_position_embeddings": 64, "sliding_window": 64,
    "rope_theta": 500000.0, "norm_eps": 1e-3, "tie_word_embeddings": True,
}  # fmt: skip


@pytest.mark.parametrize("key", list(ARCH_EDITS), ids=[f"unsealed-{k}" for k in ARCH_EDITS])
def test_edited_architecture_number_is_refused(models, tmp_path, cli, key) -> None:  # noqa: ANN001
    art = copy_of(models, tmp_path)
    set_key(f"architecture.{key}", ARCH_EDITS[key])(art)
    rc, err = cli("generate", art, "--prompt", "hi", "--max-new-tokens", "2")
    assert rc == 2 and MANIFEST_FILE in err and EDITED in err


UNSEALED_OTHER = {
    "precision": ("precision", "fp16"),
    "lowering": ("lowering", "portable"),
    "model-file": ("model_file", "genai_config.json"),
    "kv-keep": ("kv_cache.keep", 3),
    "special-eos": ("special_ids.eos", 5),
    "parity-record": ("parity", {"max_abs_logit": 0.0}),
}


@pytest.mark.parametrize("case", list(UNSEALED_OTHER), ids=[f"unsealed-{k}" for k in UNSEALED_OTHER])
def test_edited_field_is_refused_by_info(models, tmp_path, cli, case) -> None:  # noqa: ANN001
    art = copy_of(models, tmp_path)
    set_key(*UNSEALED_OTHER[case])(art)
    rc, err = cli("info", art)
    assert rc == 2 and MANIFEST_FILE in err and EDITED in err


def test_manifest_without_a_seal_says_reexport(models, tmp_path, cli) -> None:  # noqa: ANN001
    art = copy_of(models, tmp_path)
    data = manifest_of(art)
    del data["manifest_sha256"]
    write_manifest_json(art, data, reseal=False)
    rc, err = cli("generate", art, "--prompt", "hi", "--max-new-tokens", "2")
    assert rc == 2 and "manifest_sha256: missing" in err and "Re-export" in err


# ---- 2. the seal recomputed: the manifest is checked against itself and the graph ------------------
RESEALED = {  # id -> (edit, what the message must name)
    "num_layers": (set_key("architecture.num_layers", 3, reseal=True), "past_key_values.2.key"),
    "hidden_size": (set_key("architecture.hidden_size", 32, reseal=True), "architecture.hidden_size"),
    "num_attention_heads": (set_key("architecture.num_attention_heads", 8, reseal=True), "architecture.num_attention_heads"),
    "num_kv_heads": (set_key("architecture.num_kv_heads", 1, reseal=True), "past_key_values.0.key"),
    "head_dim": (set_key("architecture.head_dim", 32, reseal=True), "past_key_values.0.key"),
    "intermediate_size": (set_key("architecture.intermediate_size", 64, reseal=True), "architecture.intermediate_size"),
    "vocab_size": (set_key("architecture.vocab_size", 100, reseal=True), "logits"),
    "max_position_embeddings": (set_key("architecture.max_position_embeddings", 64, reseal=True), "architecture.max_position_embeddings"),
    "window-and-keep": (set_key("architecture.sliding_window", 64, reseal=True, kv_cache__keep=63), "architecture.sliding_window"),
    "window-alone": (set_key("architecture.sliding_window", 64, reseal=True), "kv_cache.keep"),
    "no-window": (set_key("architecture.sliding_window", None, reseal=True, kv_cache__keep=None), "architecture.sliding_window"),
    "kv-layout": (set_key("kv_cache.layout", "BSNH", reseal=True), "kv_cache.layout"),
    "kv-dtype": (set_key("kv_cache.dtype", "float16", reseal=True), "past_key_values.0.key"),
    "input-renamed": (rename_io("input_ids", "ids", "inputs"), "inputs"),
    "output-renamed": (rename_io("logits", "scores", "outputs"), "outputs"),
    "input-dtype": (set_io_dtype("attention_mask", "int32"), "attention_mask"),
    "precision-unknown": (set_key("precision", "fp64", reseal=True), "precision"),
    "precision-int4-no-recipe": (set_key("precision", "int4", reseal=True), "quantization"),
    "lowering-unknown": (set_key("lowering", "flash", reseal=True), "lowering"),
    "special-id-outside-vocab": (set_key("special_ids.eos", 10**6, reseal=True), "special_ids.eos"),
    "negative-layers": (set_key("architecture.num_layers", -1, reseal=True), "architecture.num_layers"),
    "heads-not-multiple": (set_key("architecture.num_kv_heads", 3, reseal=True), "architecture.num_kv_heads"),
    "files-not-a-map": (set_key("files", ["model.onnx"], reseal=True), "files"),
    "sha-not-hex": (lambda art: add_file_entry("genai_config.json", "x")(art), "genai_config.json"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RESEALED), ids=[f"resealed-{k}" for k in RESEALED])
def test_resealed_lie_is_caught_by_load(models, tmp_path, case) -> None:  # noqa: ANN001
    import radon.runtime

    art = copy_of(models, tmp_path)
    edit, named = RESEALED[case]
    edit(art)
    with pytest.raises(RadonError) as info:
        radon.runtime.load(art, threads=1)
    assert named in str(info.value) and MANIFEST_FILE in str(info.value)


def test_portable_window_band_is_checked(models, tmp_path) -> None:  # noqa: ANN001
    import radon.runtime

    art = copy_of(models, tmp_path, "portable")
    set_key("architecture.sliding_window", 64, reseal=True, kv_cache__keep=63)(art)
    with pytest.raises(RadonError, match=r"architecture\.sliding_window: 64, but the graph's band is"):
        radon.runtime.load(art, threads=1)


# ---- 3. paths that leave the folder -----------------------------------------------------------------
def move_model_to(name: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = manifest_of(folder)
        sha = data["files"].pop("model.onnx")
        data["files"][name] = sha
        data["model_file"] = name
        write_manifest_json(folder, data, reseal=True)

    return edit


def add_file_entry(name: str, sha: str = "0" * 64) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = manifest_of(folder)
        data["files"][name] = sha
        write_manifest_json(folder, data, reseal=True)

    return edit


def symlinked_model(folder: Path) -> None:
    """model_file points, through a symlink, at another folder's model (hash and all kept)."""
    other = folder.parent / "other"
    shutil.copytree(folder, other)
    (folder / "model.onnx").unlink()
    (folder / "model.onnx").symlink_to(other / "model.onnx")


def symlinked_tokenizer(folder: Path) -> None:
    other = folder.parent / "other_tok"
    shutil.move(folder / "tokenizer", other)
    (folder / "tokenizer").symlink_to(other)


PATHS = {  # id -> (edit, what the message must say)
    "model-file-dotdot": (move_model_to("../other/model.onnx"), "leaves the artifact folder"),
    "model-file-absolute": (move_model_to("/etc/hostname"), "absolute path"),
    "files-dotdot": (add_file_entry("../../etc/hostname"), "leaves the artifact folder"),
    "files-absolute": (add_file_entry("/etc/passwd"), "absolute path"),
    "files-backslash": (add_file_entry("..\\..\\x"), "absolute path"),
    "tokenizer-dotdot": (set_key("tokenizer", "../tok", reseal=True), "tokenizer"),
    "external-data-absolute": (
        set_key("external_data", ["/tmp/model.onnx.data"], reseal=True),
        "external_data",
    ),
    "model-file-symlink-out": (symlinked_model, "symlink that leads out"),
    "tokenizer-symlink-out": (symlinked_tokenizer, "symlink that leads out"),
}


@pytest.mark.parametrize("case", list(PATHS), ids=[f"path-{k}" for k in PATHS])
def test_paths_stay_inside_the_folder(models, tmp_path, cli, case) -> None:  # noqa: ANN001
    art = copy_of(models, tmp_path)
    edit, said = PATHS[case]
    edit(art)
    rc, err = cli("generate", art, "--prompt", "hi", "--max-new-tokens", "2")
    assert rc == 2 and MANIFEST_FILE in err and said in err


def test_model_file_pointing_at_another_file_inside(models, tmp_path, cli) -> None:  # noqa: ANN001
    """model_file names a file of the artifact that is not its graph: the graph check refuses it."""
    art = copy_of(models, tmp_path)
    set_key("model_file", "genai_config.json", reseal=True)(art)
    rc, err = cli("generate", art, "--prompt", "hi", "--max-new-tokens", "2")
    assert rc == 2 and "model_file" in err and "genai_config.json" in err


# ---- 4. files changed, missing, added, truncated ------------------------------------------------------
def flip_byte(name: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = bytearray((folder / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / name).write_bytes(bytes(data))

    return edit


def truncate(name: str, keep: float = 0.5, forge: bool = False) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: int(len(data) * keep)])
        if forge:
            rehash(folder)

    return edit


def remove(name: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return edit


def add(name: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("{}")

    return edit


FILES = {  # id -> (edit, the name the message must hold)
    "model-flipped-byte": (flip_byte("model.onnx"), "model.onnx: sha256 mismatch"),
    "model-truncated": (truncate("model.onnx"), "model.onnx: sha256 mismatch"),
    "model-truncated-rehashed": (truncate("model.onnx", forge=True), "model.onnx: truncated or not an ONNX model"),
    "model-empty-rehashed": (truncate("model.onnx", keep=0, forge=True), "model.onnx: empty file"),
    "model-missing": (remove("model.onnx"), "model.onnx: missing"),
    "tokenizer-file-missing": (remove("tokenizer/tokenizer.json"), "tokenizer.json: missing"),
    "tokenizer-file-changed": (add("tokenizer/tokenizer.json"), "tokenizer.json: sha256 mismatch"),
    "peer-config-missing": (remove("genai_config.json"), "genai_config.json: missing"),
    "extra-file": (add("notes.onnx"), "notes.onnx: not listed"),
    "extra-file-in-tokenizer": (add("tokenizer/added_tokens.json"), "added_tokens.json: not listed"),
    "manifest-missing": (remove(MANIFEST_FILE), MANIFEST_FILE),
}  # fmt: skip


@pytest.mark.parametrize("case", list(FILES), ids=[f"file-{k}" for k in FILES])
def test_changed_files_are_named_by_info(models, tmp_path, cli, case) -> None:  # noqa: ANN001
    art = copy_of(models, tmp_path)
    edit, named = FILES[case]
    edit(art)
    rc, err = (
        cli("info", art) if case != "manifest-missing" else cli("parity", art, "--reference", models.ckpt)
    )
    assert rc == 2 and named in err


def test_missing_external_data(models, tmp_path, cli) -> None:  # noqa: ANN001
    art = copy_of(models, tmp_path, "external")
    (art / "model.onnx.data").unlink()
    rc, err = cli("generate", art, "--prompt", "hi", "--max-new-tokens", "2")
    assert rc == 2 and "model.onnx.data: missing" in err


def test_external_data_renamed_in_the_graph(models, tmp_path, cli) -> None:  # noqa: ANN001
    """The manifest lists model.onnx.data, the graph reads elsewhere.data (both rehashed and resealed)."""
    art = copy_of(models, tmp_path, "external")
    graph = (art / "model.onnx").read_bytes().replace(b"model.onnx.data", b"other.onnx.data")  # same length
    (art / "model.onnx").write_bytes(graph)
    shutil.copy(art / "model.onnx.data", art / "other.onnx.data")
    rehash(art)
    rc, err = cli("generate", art, "--prompt", "hi", "--max-new-tokens", "2")
    assert rc == 2 and "other.onnx.data" in err and "external_data" in err


MANIFEST_BYTES = {  # id -> (bytes of radon_manifest.json, what the message must say)
    "empty": (b"", "malformed JSON"),
    "not-json": (b"{format: radon", "malformed JSON"),
    "not-utf8": ('{"format": "radon-manifest/1", "x": "caf\u00e9"}'.encode("latin-1"), "malformed JSON"),
    "array": (b"[1, 2]", "expected a JSON object"),
    "not-radon": (b'{"format": "onnx"}', "not a RADON manifest"),
    "newer-major": (b'{"format": "radon-manifest/2"}', "newer than this RADON reads"),
}


@pytest.mark.parametrize("case", list(MANIFEST_BYTES), ids=[f"manifest-{k}" for k in MANIFEST_BYTES])
def test_broken_manifest_file(models, tmp_path, cli, case) -> None:  # noqa: ANN001
    art = copy_of(models, tmp_path)
    content, said = MANIFEST_BYTES[case]
    (art / MANIFEST_FILE).write_bytes(content)
    rc, err = cli("info", art)
    assert rc == 2 and MANIFEST_FILE in err and said in err


def test_unknown_key_is_named(models, tmp_path, cli) -> None:  # noqa: ANN001
    art = copy_of(models, tmp_path)
    set_key("surprise", 1, reseal=True)(art)
    rc, err = cli("info", art)
    assert rc == 2 and "surprise: unknown key" in err


def test_symlinked_manifest(models, tmp_path, cli) -> None:  # noqa: ANN001
    art = copy_of(models, tmp_path)
    shutil.move(art / MANIFEST_FILE, tmp_path / "elsewhere.json")
    (art / MANIFEST_FILE).symlink_to(tmp_path / "elsewhere.json")
    rc, err = cli("info", art)
    assert rc == 2 and MANIFEST_FILE in err and "symlink" in err


# ---- 5. wrong kinds of input for each verb -------------------------------------------------------------
def wrong_inputs(models: SimpleNamespace, tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "file.txt").write_text("hello")
    return {
        "missing": tmp_path / "nope",
        "empty-dir": tmp_path / "empty_dir",
        "a-file": tmp_path / "file.txt",
    }


VERB_CASES = {  # id -> (argv template with {x} for the bad path, {ck}/{art} for good ones, what must be named)
    "parity-candidate-is-checkpoint": (["parity", "{ck}", "--reference", "{ck}"], "not a RADON artifact"),
    "parity-reference-is-artifact": (["parity", "{art}", "--reference", "{art}"], "config.json"),
    "quantize-source-is-checkpoint": (["quantize", "{ck}", "--out", "{tmp}/q", "--precision", "int8-dynamic"], "not a RADON artifact"),
    "export-source-is-artifact": (["export", "onnx", "{art}", "--out", "{tmp}/e", "--no-parity"], "radon_checkpoint.json"),
    "convert-from-hf-is-radon-checkpoint": (["convert", "--from-hf", "{ck}", "--out", "{tmp}/c"], "is a RADON checkpoint"),
    "convert-to-hf-is-artifact": (["convert", "--to-hf", "{art}", "--out", "{tmp}/c"], "radon_checkpoint.json"),
    "convert-from-gguf-is-folder": (["convert", "--from-gguf", "{ck}", "--out", "{tmp}/c"], "no such file"),
    "convert-from-gguf-not-gguf": (["convert", "--from-gguf", "{tmp}/file.txt", "--out", "{tmp}/c"], "not a GGUF file"),
    "info-empty-dir": (["info", "{tmp}/empty_dir"], "without config.json"),
    "info-missing": (["info", "{tmp}/nope"], "no such config file"),
    "generate-artifact-is-file": (["generate", "{tmp}/file.txt", "--prompt", "hi"], "file.txt"),
    "parity-candidate-missing": (["parity", "{tmp}/nope", "--reference", "{ck}"], "no such artifact folder"),
    "parity-candidate-is-file": (["parity", "{tmp}/file.txt", "--reference", "{ck}"], "not a folder"),
    "quantize-source-empty-dir": (["quantize", "{tmp}/empty_dir", "--out", "{tmp}/q", "--precision", "int8-dynamic"], "no radon_manifest.json"),
    "export-source-missing": (["export", "onnx", "{tmp}/nope", "--out", "{tmp}/e", "--no-parity"], "no such checkpoint folder"),
    "export-source-empty-dir": (["export", "onnx", "{tmp}/empty_dir", "--out", "{tmp}/e", "--no-parity"], "radon_checkpoint.json: missing"),
    "convert-from-hf-empty-dir": (["convert", "--from-hf", "{tmp}/empty_dir", "--out", "{tmp}/c"], "config.json: missing"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(VERB_CASES), ids=list(VERB_CASES))
def test_wrong_kind_of_input(models, tmp_path, cli, case) -> None:  # noqa: ANN001
    wrong_inputs(models, tmp_path)
    template, named = VERB_CASES[case]
    argv = [a.format(ck=models.ckpt, art=models.artifact, tmp=tmp_path) for a in template]
    rc, err = cli(*argv)
    assert rc == 2 and named in err


def test_truncated_checkpoint_is_named_by_info_and_export(models, tmp_path, cli) -> None:  # noqa: ANN001
    ck = Path(shutil.copytree(models.ckpt, tmp_path / "ck"))
    data = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(data[:100])
    for argv in (["info", ck], ["export", "onnx", ck, "--out", tmp_path / "e", "--no-parity"]):
        rc, err = cli(*argv)
        assert rc == 2 and "model.safetensors: sha256 mismatch" in err


@pytest.mark.parametrize(
    "name",
    ["../../etc/hostname", "/etc/hostname"],
    ids=["checkpoint-hashes-dotdot", "checkpoint-hashes-absolute"],
)
def test_checkpoint_hashes_stay_inside(models, tmp_path, cli, name) -> None:  # noqa: ANN001
    ck = Path(shutil.copytree(models.ckpt, tmp_path / "ck"))
    data = json.loads((ck / "radon_checkpoint.json").read_text())
    data["files"][name] = "0" * 64
    (ck / "radon_checkpoint.json").write_text(json.dumps(data))
    rc, err = cli("export", "onnx", ck, "--out", tmp_path / "e", "--no-parity")
    assert rc == 2 and name in err and "a path outside its folder" in err


GGUF_CUTS = {"magic-only": 4, "header": 24, "metadata": 96, "tensor-data": -16}  # bytes kept (negative: cut)


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A complete GGUF file with one tensor, written by the gguf package's own writer."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.ones((8, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.mark.parametrize("verb", ["convert", "info"])
@pytest.mark.parametrize("cut", list(GGUF_CUTS), ids=[f"gguf-truncated-{c}" for c in GGUF_CUTS])
def test_truncated_gguf(tiny_gguf, tmp_path, cli, cut, verb) -> None:  # noqa: ANN001
    keep = GGUF_CUTS[cut]
    path = tmp_path / "model.gguf"
    path.write_bytes(tiny_gguf[:keep])
    argv = ["convert", "--from-gguf", path, "--out", tmp_path / "ck"] if verb == "convert" else ["info", path]
    rc, err = cli(*argv)
    assert rc == 2 and "model.gguf: not a readable GGUF file (truncated or corrupt)" in err
    assert not (tmp_path / "ck").exists()


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny transformers Mistral folder (config.json, model.safetensors), saved by transformers."""
    pytest.importorskip("transformers")
    from radon_testing import hf_mistral

    return hf_mistral(tmp_path_factory.mktemp("hf") / "mistral")[1]


def hf_config_without(key: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = json.loads((folder / "config.json").read_text())
        del data[key]
        (folder / "config.json").write_text(json.dumps(data))

    return edit


def write_bytes(name: str, content: bytes | Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / name
        path.write_bytes(content(path.read_bytes()) if callable(content) else content)

    return edit


HF_CASES = {  # id -> (edit of a copy, verb, what the message must say)
    "safetensors-truncated": (write_bytes("model.safetensors", lambda b: b[:1000]), "convert", "model.safetensors: not a readable safetensors file"),
    "safetensors-header-only": (write_bytes("model.safetensors", lambda b: b[:4]), "convert", "model.safetensors: not a readable safetensors file"),
    "safetensors-empty": (write_bytes("model.safetensors", b""), "convert", "model.safetensors: not a readable safetensors file"),
    "config-not-utf8": (write_bytes("config.json", '{"x": "caf\u00e9"}'.encode("latin-1")), "convert", "config.json: malformed JSON"),
    "config-empty": (write_bytes("config.json", b""), "convert", "config.json: malformed JSON"),
    "config-array": (write_bytes("config.json", b"[]"), "convert", "config.json: expected a JSON object"),
    "config-no-layers": (hf_config_without("num_hidden_layers"), "convert", "num_hidden_layers: missing from"),
    "config-no-layers-info": (hf_config_without("num_hidden_layers"), "info", "num_hidden_layers: missing from"),
    "config-array-info": (write_bytes("config.json", b"[]"), "info", "config.json: expected a JSON object"),
    "tokenizer-not-utf8": (write_bytes("tokenizer.json", b"\xff\xfe{}"), "convert", "tokenizer.json: not UTF-8 text"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HF_CASES), ids=[f"hf-{k}" for k in HF_CASES])
def test_bad_hugging_face_folder(hf_folder, tmp_path, cli, case) -> None:  # noqa: ANN001
    folder = Path(shutil.copytree(hf_folder, tmp_path / "hf"))
    edit, verb, said = HF_CASES[case]
    edit(folder)
    argv = (
        ["convert", "--from-hf", folder, "--out", tmp_path / "ck"] if verb == "convert" else ["info", folder]
    )
    rc, err = cli(*argv)
    assert rc == 2 and said in err
    assert not (tmp_path / "ck").exists()


# ---- 6. half-written folders: a kill -9 mid-export, and stale temporaries -------------------------------
def half_written(models: SimpleNamespace, tmp_path: Path) -> Path:
    """A copy of the artifact as a killed export leaves it: its temporary name, the marker inside."""
    tmp = Path(shutil.copytree(models.artifact, tmp_path / ".art.tmp-999999999-abcd"))
    (tmp / INCOMPLETE_MARKER).write_text("pid 999999999")
    return tmp


@pytest.mark.parametrize(
    "verb", ["generate", "info", "parity", "quantize"], ids=lambda v: f"half-written-{v}"
)
def test_half_written_folder_is_refused(models, tmp_path, cli, verb) -> None:  # noqa: ANN001
    tmp = half_written(models, tmp_path)
    argv = {"generate": ["generate", tmp, "--prompt", "hi"], "info": ["info", tmp],
            "parity": ["parity", tmp, "--reference", models.ckpt],
            "quantize": ["quantize", tmp, "--out", tmp_path / "q", "--precision", "int8-dynamic"]}[verb]  # fmt: skip
    rc, err = cli(*argv)
    assert rc == 2 and "half-written" in err and INCOMPLETE_MARKER in err


def test_half_written_folder_is_refused_by_load(models, tmp_path) -> None:  # noqa: ANN001
    import radon.runtime

    with pytest.raises(RadonError, match="half-written"):
        radon.runtime.load(half_written(models, tmp_path), threads=1)


def test_half_written_checkpoint_is_refused(models, tmp_path, cli) -> None:  # noqa: ANN001
    ck = Path(shutil.copytree(models.ckpt, tmp_path / ".ck.tmp-999999999-abcd"))
    (ck / INCOMPLETE_MARKER).write_text("pid 999999999")
    rc, err = cli("generate", ck, "--prompt", "hi", "--max-new-tokens", "2")
    assert rc == 2 and "half-written" in err


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_next_export_removes_stale_temporaries(models, tmp_path, cli) -> None:  # noqa: ANN001
    out = tmp_path / "art"
    stale = Path(shutil.copytree(models.artifact, tmp_path / f".art.tmp-{dead_pid()}-xyz"))
    (stale / INCOMPLETE_MARKER).write_text("dead")
    live = tmp_path / f".art.tmp-{os.getppid()}-live"  # a live process's folder is left alone
    live.mkdir()
    rc, err = cli("export", "onnx", models.ckpt, "--out", out, "--no-parity", "--threads", "1")
    assert rc == 0, err
    assert not stale.exists() and live.is_dir() and (out / MANIFEST_FILE).is_file()
    assert not (out / INCOMPLETE_MARKER).exists()


KILLED = {  # id -> the command, with {src} for its input and {out} for its output
    "export": ["export", "onnx", "{ckpt}", "--out", "{out}", "--no-parity", "--threads", "1"],
    "quantize": ["quantize", "{art}", "--out", "{out}", "--precision", "int8-dynamic", "--no-parity", "--threads", "1"],
}  # fmt: skip


@pytest.mark.parametrize("verb", list(KILLED), ids=lambda v: f"kill-9-mid-{v}")
def test_kill_9_leaves_nothing_loadable(models, tmp_path, cli, verb) -> None:  # noqa: ANN001
    out = tmp_path / "killed"
    argv = [a.format(ckpt=models.ckpt, art=models.artifact, out=out) for a in KILLED[verb]]
    proc = subprocess.Popen(
        [sys.executable, "-m", "radon", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + HANG_GUARD
    temporaries: list[Path] = []
    while time.time() < deadline and proc.poll() is None:
        temporaries = [p for p in tmp_path.glob(".killed.tmp-*") if len(list(p.iterdir())) > 1]
        if temporaries:
            break
        time.sleep(0.002)
    assert temporaries, f"radon {verb} never started writing its temporary folder"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # the final name never appears half-written
    for tmp in temporaries:
        rc, err = cli("generate", tmp, "--prompt", "hi", "--max-new-tokens", "2")
        assert rc == 2 and "half-written" in err
        rc, err = cli("info", tmp)
        assert rc == 2 and "half-written" in err
    rc, err = cli(*argv)
    assert rc == 0, err
    assert not list(tmp_path.glob(".killed.tmp-*"))  # the next run removed what the killed one left


def test_next_quantize_removes_stale_temporaries(models, tmp_path, cli) -> None:  # noqa: ANN001
    stale = Path(shutil.copytree(models.artifact, tmp_path / f".q.tmp-{dead_pid()}-xyz"))
    (stale / INCOMPLETE_MARKER).write_text("dead")
    rc, err = cli("quantize", models.artifact, "--out", tmp_path / "q", "--precision", "int8-dynamic",
                  "--no-parity", "--threads", "1")  # fmt: skip
    assert rc == 0, err
    assert not stale.exists() and (tmp_path / "q" / MANIFEST_FILE).is_file()


# ---- 7. configs: contradictions and absurd sizes ---------------------------------------------------------
GOOD_CONFIG = {"model_type": "mistral", "vocab_size": 320, "hidden_size": 64, "num_layers": 2,
               "num_attention_heads": 4, "num_kv_heads": 2, "max_position_embeddings": 256}  # fmt: skip
CONFIGS = {  # id -> (changes to GOOD_CONFIG, the key the message must name)
    "hidden-1e7": ({"hidden_size": 10_000_000, "vocab_size": 4096}, "hidden_size"),
    "hidden-1e7-float": ({"hidden_size": 1e7}, "hidden_size"),
    "layers-1e6": ({"num_layers": 1_000_000, "hidden_size": 8192, "num_attention_heads": 64, "num_kv_heads": 8}, "num_layers"),
    "vocab-1e12": ({"vocab_size": 10**12}, "vocab_size"),
    "heads-do-not-divide-hidden": ({"num_attention_heads": 5}, "hidden_size"),
    "kv-heads-do-not-divide-heads": ({"num_kv_heads": 3}, "num_kv_heads"),
    "zero-layers": ({"num_layers": 0}, "num_layers"),
    "negative-hidden": ({"hidden_size": -64}, "hidden_size"),
    "zero-vocab": ({"vocab_size": 0}, "vocab_size"),
    "zero-window": ({"sliding_window": 0}, "sliding_window"),
    "pad-outside-vocab": ({"pad_token_id": 320}, "pad_token_id"),
    "unknown-key": ({"hiden_size": 64}, "hiden_size"),
    "string-for-int": ({"num_layers": "2"}, "num_layers"),
    "odd-rotary-head-dim": ({"head_dim": 15}, "head_dim"),
    "dropout-above-1": ({"dropout": 1.5}, "dropout"),
    "unknown-dtype": ({"torch_dtype": "float8"}, "torch_dtype"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CONFIGS), ids=[f"config-{k}" for k in CONFIGS])
def test_bad_config_is_refused_by_info(tmp_path, cli, case) -> None:  # noqa: ANN001
    changes, key = CONFIGS[case]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(GOOD_CONFIG | changes))
    rc, err = cli("info", path)
    assert rc == 2 and f"{key}:" in err


def test_model_larger_than_memory_is_refused_before_allocating() -> None:
    from radon import HybridTransformerModel, ModelConfig
    from radon.errors import ConfigError

    cfg = ModelConfig.from_dict(
        GOOD_CONFIG | {"hidden_size": 200_000, "num_attention_heads": 8, "num_kv_heads": 8}
    )
    with pytest.raises(
        ConfigError, match=r"hidden_size: 200000 gives an estimated .* GB of float32 weights, more than"
    ):
        cfg.check_memory(available=10**9)
    with pytest.raises(ConfigError, match="hidden_size"):  # on a machine with less than the ~3.8 TB it needs
        HybridTransformerModel(cfg)


CONFIG_FILES = {
    "not-utf8": ('{"model_type": "caf\u00e9"}'.encode("latin-1"), "not UTF-8"),
    "empty": (b"", "malformed JSON"),
    "array": (b"[]", "expected a JSON object"),
}


@pytest.mark.parametrize("case", list(CONFIG_FILES), ids=[f"config-file-{k}" for k in CONFIG_FILES])
def test_unreadable_config_file(tmp_path, cli, case) -> None:  # noqa: ANN001
    content, said = CONFIG_FILES[case]
    path = tmp_path / "config.json"
    path.write_bytes(content)
    rc, err = cli("info", path)
    assert rc == 2 and "config.json" in err and said in err


# ---- 8. text files ------------------------------------------------------------------------------------------
TEXTS = {  # id -> (bytes, what the message must say)
    "latin1": ("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1"), "not UTF-8"),
    "utf16": ("hello world\n".encode("utf-16"), "not UTF-8"),
    "empty": (b"", "empty"),
    "whitespace": (b"\n\n   \n", "empty"),
}


@pytest.mark.parametrize("case", list(TEXTS), ids=[f"eval-text-{k}" for k in TEXTS])
def test_eval_bad_text(models, tmp_path, cli, case) -> None:  # noqa: ANN001
    content, said = TEXTS[case]
    (tmp_path / "t.txt").write_bytes(content)
    rc, err = cli("eval", models.ckpt, "--text", tmp_path / "t.txt", "--context", "64")
    assert rc == 2 and "t.txt" in err and said in err


def test_eval_text_is_a_folder(models, tmp_path, cli) -> None:  # noqa: ANN001
    rc, err = cli("eval", models.ckpt, "--text", tmp_path, "--context", "64")
    assert rc == 2 and "a folder, not a text file" in err


@pytest.mark.parametrize("case", ["latin1", "empty"], ids=lambda c: f"parity-text-{c}")
def test_parity_bad_text(models, tmp_path, cli, case) -> None:  # noqa: ANN001
    content, said = TEXTS[case]
    (tmp_path / "t.txt").write_bytes(content)
    rc, err = cli("parity", models.artifact, "--reference", models.ckpt, "--text", tmp_path / "t.txt")
    assert rc == 2 and "--text" in err and "t.txt" in err and said in err


def test_export_bad_parity_text(models, tmp_path, cli) -> None:  # noqa: ANN001
    (tmp_path / "t.txt").write_bytes(TEXTS["latin1"][0])
    rc, err = cli(
        "export", "onnx", models.ckpt, "--out", tmp_path / "e", "--text", tmp_path / "t.txt", "--threads", "1"
    )
    assert rc == 2 and "t.txt" in err and "not UTF-8" in err
    assert not (tmp_path / "e").exists() and not list(tmp_path.glob(".e.tmp-*"))


# ---- 9. radon serve refuses to start on a bad artifact ----------------------------------------------------------
SERVE = {  # id -> (edit of a copy, what stderr must say)
    "window-edited": (set_key("architecture.sliding_window", 64), EDITED),
    "half-written": (lambda art: (art / INCOMPLETE_MARKER).write_text("x"), "half-written"),
    "path-escape": (add_file_entry("../../etc/hostname"), "leaves the artifact folder"),
    "model-flipped-byte": (flip_byte("model.onnx"), "sha256 mismatch"),
}


@pytest.mark.parametrize("case", list(SERVE), ids=[f"serve-{k}" for k in SERVE])
def test_serve_refuses_to_start(models, tmp_path, case) -> None:  # noqa: ANN001
    pytest.importorskip("fastapi")
    art = copy_of(models, tmp_path)
    edit, said = SERVE[case]
    edit(art)
    with socket.socket() as sock:  # a free loopback port: a server that wrongly starts is caught by the guard
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [sys.executable, "-m", "radon", "serve", str(art), "--host", "127.0.0.1", "--port", str(port)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=HANG_GUARD)
    assert result.returncode == 2 and said in result.stderr and "Traceback" not in result.stderr
