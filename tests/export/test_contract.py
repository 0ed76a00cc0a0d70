"""The contract module: the graph facts against onnx's own parser, the IO against exported graphs, the seal,
path confinement, stale temporaries, and a torch-free import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from radon.errors import IntegrityError
from radon.integrity import INCOMPLETE_MARKER, atomic_directory, remove_stale
from radon.runtime.contract import MANIFEST_FILE, check_relative, decoder_io, read_manifest, seal
from radon.runtime.graph_facts import ELEM_TYPES, read_graph_facts


def _dims(value_info: onnx.ValueInfoProto) -> tuple:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_param if d.HasField("dim_param") else d.dim_value for d in dims)


@pytest.mark.parametrize("key", [("mistral", "ort"), ("mistral", "portable"), ("gpt2", "ort"), ("gpt2", "portable")],
                         ids=lambda k: "-".join(k))  # fmt: skip
def test_graph_facts_equal_onnx_parse(artifacts, key) -> None:  # noqa: ANN001
    path = artifacts[key] / "model.onnx"
    model = onnx.load(str(path))
    facts = read_graph_facts(path)
    for got, want in ((facts.inputs, model.graph.input), (facts.outputs, model.graph.output)):
        assert [v.name for v in got] == [v.name for v in want]
        assert [v.dtype for v in got] == [ELEM_TYPES[v.type.tensor_type.elem_type] for v in want]
        assert [v.shape for v in got] == [_dims(v) for v in want]
    assert [(n.op_type, n.domain, n.name, n.inputs) for n in facts.nodes] == [
        (n.op_type, n.domain, n.name, tuple(n.input)) for n in model.graph.node
    ]
    for fact, node in zip(facts.nodes, model.graph.node, strict=True):
        assert fact.ints == {a.name: a.i for a in node.attribute if a.type == onnx.AttributeProto.INT}
    assert {k: v.dims for k, v in facts.initializers.items()} == {
        t.name: tuple(t.dims) for t in model.graph.initializer
    }


def test_graph_facts_read_external_locations(hf, export_root) -> None:  # noqa: ANN001
    from radon.export.exporter import export_onnx

    _, ckpt = hf["mistral"]
    art = export_onnx(ckpt, export_root / "contract_external", attention="ort", parity=False, threads=1,
                      external_data_threshold=0).path  # fmt: skip
    model = onnx.load(str(art / "model.onnx"), load_external_data=False)
    want = {
        t.name: {e.key: e.value for e in t.external_data}.get("location") for t in model.graph.initializer
    }
    assert {k: v.location for k, v in read_graph_facts(art / "model.onnx").initializers.items()} == want
    assert "model.onnx.data" in want.values()


def test_manifest_io_is_the_graphs(artifacts) -> None:  # noqa: ANN001
    """decoder_io gives the names, dtypes and shapes the exported graph declares (read by onnx)."""
    art = artifacts[("mistral", "ort")]
    a = read_manifest(art).architecture
    inputs, outputs = decoder_io(a.num_layers, a.num_kv_heads, a.head_dim, a.vocab_size, "float32")
    graph = onnx.load(str(art / "model.onnx")).graph
    inits = {t.name for t in graph.initializer}
    assert [(t.name, t.shape) for t in inputs] == [
        (v.name, _dims(v)) for v in graph.input if v.name not in inits
    ]
    assert [(t.name, t.shape) for t in outputs] == [(v.name, _dims(v)) for v in graph.output]


def test_seal_catches_an_edit_and_accepts_a_resealed_one(artifacts, tmp_path) -> None:  # noqa: ANN001
    art = Path(shutil.copytree(artifacts[("mistral", "portable")], tmp_path / "art"))
    data = json.loads((art / MANIFEST_FILE).read_text())
    assert len(data["manifest_sha256"]) == 64
    data["limits"]["padding"] = "any"  # a field no other check reads
    (art / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="edited after it was written"):
        read_manifest(art)
    (art / MANIFEST_FILE).write_text(json.dumps(seal(data), indent=4))  # layout does not matter, content does
    assert read_manifest(art).limits["padding"] == "any"


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../b", "C:\\x", "..\\x", "~/x", ""])
def test_paths_outside_are_refused(name: str) -> None:
    with pytest.raises(IntegrityError):
        check_relative(name, "files")


def test_relative_paths_are_kept() -> None:
    assert check_relative("tokenizer/tokenizer.json", "files") == "tokenizer/tokenizer.json"


def test_stale_temporaries_of_dead_processes_only(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = tmp_path / f".out.tmp-{proc.pid}-a"
    live = tmp_path / f".out.tmp-{os.getppid()}-b"
    other = tmp_path / f".other.tmp-{proc.pid}-c"
    for d in (dead, live, other):
        d.mkdir()
    assert remove_stale(tmp_path / "out") == [dead]
    assert live.is_dir() and other.is_dir()


def test_atomic_directory_marks_until_the_rename(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_directory(out) as tmp:
        assert (tmp / INCOMPLETE_MARKER).is_file() and tmp.name.startswith(f".out.tmp-{os.getpid()}-")
        (tmp / "x").write_text("1")
    assert (out / "x").is_file() and not (out / INCOMPLETE_MARKER).exists()


def test_contract_imports_without_torch() -> None:
    code = (
        "import sys, radon.runtime.contract, radon.runtime.graph_facts, radon.export.trt.manifest\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
