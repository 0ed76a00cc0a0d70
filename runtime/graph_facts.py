"""What an ONNX file declares, read without loading its weights: IO, nodes and their integer attributes.

The artifact loader checks the manifest against the graph (DESIGN.md contract 5) on every load, so this
must be cheap and torch-free. ``onnx.load`` parses every initializer's bytes (528 MiB for SmolLM2-135M
fp32, inline), and the edge install has no ``onnx`` package; onnxruntime reports IO but no node
attributes (the window is ``GroupQueryAttention``'s ``local_window_size``). So this walks the protobuf
wire format (https://protobuf.dev/programming-guides/encoding/) over a memory map and jumps over each
weight's bytes: only the pages holding the graph's structure are read. Field numbers are those of
onnx.proto3 (ModelProto.graph = 7, GraphProto.node = 1, initializer = 5, input = 11, output = 12, ...).
``tests/runtime/test_contract.py`` checks every fact against ``onnx.load`` on exported graphs.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from radon.errors import IntegrityError

if TYPE_CHECKING:
    from radon.runtime.contract import Manifest

# onnx.TensorProto.DataType values RADON's graphs use
ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16", 16: "bfloat16"}
SMALL_VALUE_BYTES = 64  # initializers up to this size keep their bytes (the portable lowering's window)


@dataclass(frozen=True)
class ValueFacts:
    """A graph input or output: name, element type, and dims (int, symbol, or None when unnamed)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...] | None  # None: no shape declared


@dataclass(frozen=True)
class NodeFacts:
    """A node: op type, domain, name, inputs, and its integer attributes."""

    op_type: str
    domain: str
    name: str
    inputs: tuple[str, ...]
    ints: dict[str, int]


@dataclass
class InitializerFacts:
    """An initializer's dims, element type, external data location, and bytes when it is tiny."""

    dims: tuple[int, ...]
    data_type: int
    location: str | None = None
    raw: bytes | None = None


@dataclass
class GraphFacts:
    inputs: list[ValueFacts] = field(default_factory=list)
    outputs: list[ValueFacts] = field(default_factory=list)
    nodes: list[NodeFacts] = field(default_factory=list)
    initializers: dict[str, InitializerFacts] = field(default_factory=dict)


class _Truncated(Exception):
    pass


def _varint(buf: mmap.mmap | bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Truncated
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _signed(value: int) -> int:
    """int64 fields are two's complement in 10 bytes (local_window_size = -1)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(buf: mmap.mmap | bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or start, end) of each field of one message in buf[pos:end]."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value, pos
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Truncated
            yield number, wire, pos, pos + length
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise _Truncated
            yield number, wire, pos, pos + size
            pos += size
        else:  # groups (3, 4) are not in onnx.proto3
            raise _Truncated


def _text(buf: mmap.mmap | bytes, start: int, end: int) -> str:
    return bytes(buf[start:end]).decode("utf-8", errors="replace")


def _value_info(buf: mmap.mmap | bytes, start: int, end: int) -> ValueFacts:
    name, dtype, shape = "", "?", None
    for number, _, a, b in _fields(buf, start, end):
        if number == 1:
            name = _text(buf, a, b)
        elif number == 2:  # TypeProto
            for n2, _, a2, b2 in _fields(buf, a, b):
                if n2 != 1:  # tensor_type
                    continue
                for n3, _, a3, b3 in _fields(buf, a2, b2):
                    if n3 == 1:
                        dtype = ELEM_TYPES.get(a3, f"type{a3}")
                    elif n3 == 2:  # TensorShapeProto
                        dims: list[int | str | None] = []
                        for n4, _, a4, b4 in _fields(buf, a3, b3):
                            if n4 == 1:
                                dims.append(_dimension(buf, a4, b4))
                        shape = tuple(dims)
    return ValueFacts(name, dtype, shape)


def _dimension(buf: mmap.mmap | bytes, start: int, end: int) -> int | str | None:
    for number, _, a, b in _fields(buf, start, end):
        if number == 1:
            return _signed(a)
        if number == 2:
            return _text(buf, a, b)
    return None


def _node(buf: mmap.mmap | bytes, start: int, end: int) -> NodeFacts:
    inputs: list[str] = []
    op_type = domain = name = ""
    ints: dict[str, int] = {}
    for number, _, a, b in _fields(buf, start, end):
        if number == 1:
            inputs.append(_text(buf, a, b))
        elif number == 3:
            name = _text(buf, a, b)
        elif number == 4:
            op_type = _text(buf, a, b)
        elif number == 7:
            domain = _text(buf, a, b)
        elif number == 5:  # AttributeProto: name = 1, i = 3
            attr_name, value = "", None
            for n2, wire, a2, b2 in _fields(buf, a, b):
                if n2 == 1:
                    attr_name = _text(buf, a2, b2)
                elif n2 == 3 and wire == 0:
                    value = _signed(a2)
            if value is not None:
                ints[attr_name] = value
    return NodeFacts(op_type, domain, name, tuple(inputs), ints)


def _initializer(buf: mmap.mmap | bytes, start: int, end: int) -> tuple[str, InitializerFacts]:
    name, dims, data_type, location, raw = "", [], 0, None, None
    for number, wire, a, b in _fields(buf, start, end):
        if number == 1:
            if wire == 0:
                dims.append(_signed(a))
            else:  # packed
                pos = a
                while pos < b:
                    d, pos = _varint(buf, pos, b)
                    dims.append(_signed(d))
        elif number == 2:
            data_type = a
        elif number == 8:
            name = _text(buf, a, b)
        elif number == 9 and b - a <= SMALL_VALUE_BYTES:
            raw = bytes(buf[a:b])
        elif number == 13:  # StringStringEntryProto: key = 1, value = 2
            entry = {n2: _text(buf, a2, b2) for n2, _, a2, b2 in _fields(buf, a, b)}
            if entry.get(1) == "location":
                location = entry.get(2)
    return name, InitializerFacts(tuple(dims), data_type, location, raw)


def read_graph_facts(path: str | Path) -> GraphFacts:
    """The IO, nodes and initializers' metadata of the ONNX file ``path``; IntegrityError when it is not one."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = path.stat().st_size
            if size == 0:
                raise IntegrityError(f"{path}: empty file, not an ONNX model")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _read(buf, size)
    except _Truncated:
        raise IntegrityError(
            f"{path}: truncated or not an ONNX model (its protobuf ends mid-field)"
        ) from None
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _read(buf: mmap.mmap, size: int) -> GraphFacts:
    facts = GraphFacts()
    graph = None
    for number, wire, a, b in _fields(buf, 0, size):
        if number == 7 and wire == 2:
            graph = (a, b)
    if graph is None:
        raise _Truncated
    for number, wire, a, b in _fields(buf, *graph):
        if wire != 2:
            continue
        if number == 1:
            facts.nodes.append(_node(buf, a, b))
        elif number == 5:
            name, init = _initializer(buf, a, b)
            facts.initializers[name] = init
        elif number == 11:
            facts.inputs.append(_value_info(buf, a, b))
        elif number == 12:
            facts.outputs.append(_value_info(buf, a, b))
    return facts


# ---- the manifest against the graph ----------------------------------------------------------------
def check_graph(artifact: Path, manifest: Manifest) -> None:
    """Refuse a manifest that disagrees with its graph, naming the key: IO names, dtypes and shapes; the
    attention nodes' heads, kv heads and window; the embedding's and rotary tables' sizes; external data."""
    from radon.runtime.contract import MANIFEST_FILE

    path = artifact / manifest.model_file
    facts = read_graph_facts(path)
    where = f"{artifact / MANIFEST_FILE} disagrees with {path}"
    _check_values(where, "inputs", manifest.inputs, facts.inputs, facts.initializers)
    _check_values(where, "outputs", manifest.outputs, facts.outputs, {})
    a = manifest.architecture
    window = a.sliding_window
    for node in facts.nodes:
        if node.op_type == "GroupQueryAttention":
            want = {"num_heads": a.num_attention_heads, "kv_num_heads": a.num_kv_heads, "local_window_size": window or -1}  # fmt: skip
        elif node.op_type == "SlidingWindowAttention":
            want = {"num_heads": a.num_attention_heads, "num_kv_heads": a.num_kv_heads, "head_dim": a.head_dim, "window": window or 0}  # fmt: skip
        elif (
            node.name == "mask.window" and len(node.inputs) == 2
        ):  # the portable lowering's band: Less(diff, W)
            init = facts.initializers.get(node.inputs[1])
            if init is None or init.raw is None or len(init.raw) != 8:
                continue
            got = struct.unpack("<q", init.raw)[0]
            if got != window:
                raise IntegrityError(f"{where}: architecture.sliding_window: {window}, but the graph's band is {got} keys")  # fmt: skip
            continue
        else:
            continue
        for attr, value in want.items():
            if attr in node.ints and node.ints[attr] != value:
                key = {"kv_num_heads": "num_kv_heads", "num_heads": "num_attention_heads", "local_window_size": "sliding_window", "window": "sliding_window"}.get(attr, attr)  # fmt: skip
                raise IntegrityError(
                    f"{where}: architecture.{key}: {getattr(a, key)}, but {node.op_type} {node.name} has {attr} = {node.ints[attr]}"
                )
    if (
        window is not None
        and manifest.lowering == "portable"
        and not any(n.name == "mask.window" for n in facts.nodes)
    ):
        raise IntegrityError(f"{where}: architecture.sliding_window: {window}, but the graph has no window band")  # fmt: skip
    _check_tables(where, manifest, facts)


def _check_values(where: str, key: str, specs: list, values: list[ValueFacts], optional: dict) -> None:
    graph = {v.name: v for v in values}
    for spec in specs:
        got = graph.get(spec.name)
        if got is None:
            raise IntegrityError(f"{where}: {key}: {spec.name} is not a graph {key[:-1]}")
        if got.dtype != spec.dtype:
            raise IntegrityError(f"{where}: {key}: {spec.name} is {spec.dtype} in the manifest, {got.dtype} in the graph")  # fmt: skip
        if got.shape is not None and len(got.shape) != len(spec.shape):
            raise IntegrityError(f"{where}: {key}: {spec.name} has shape {list(spec.shape)} in the manifest, {list(got.shape)} in the graph")  # fmt: skip
        for want, dim in zip(spec.shape, got.shape or (), strict=False):
            if dim is not None and isinstance(dim, int) == isinstance(want, int) and dim != want:
                raise IntegrityError(f"{where}: {key}: {spec.name} has shape {list(spec.shape)} in the manifest, {list(got.shape or ())} in the graph")  # fmt: skip
    names = {s.name for s in specs}
    for name in graph:
        if name not in names and name not in optional:  # an input with an initializer is optional
            raise IntegrityError(f"{where}: {key}: the graph's {name} is not in the manifest")


def _check_tables(where: str, manifest: Manifest, facts: GraphFacts) -> None:
    from radon.runtime.contract import check_relative

    a = manifest.architecture
    embed = facts.initializers.get("embed_tokens.weight")
    if embed is not None and len(embed.dims) == 2 and embed.dims[0] != a.vocab_size:
        raise IntegrityError(f"{where}: architecture.vocab_size: {a.vocab_size}, but embed_tokens.weight has {embed.dims[0]} rows")  # fmt: skip
    if embed is not None and len(embed.dims) == 2 and embed.dims[1] != a.hidden_size:
        raise IntegrityError(f"{where}: architecture.hidden_size: {a.hidden_size}, but embed_tokens.weight is {embed.dims[1]} wide")  # fmt: skip
    fc_out = facts.initializers.get("layers.0.mlp.fc_out.weight")  # stored (in, out): (intermediate, hidden)
    if fc_out is not None and len(fc_out.dims) == 2 and fc_out.dims[0] != a.intermediate_size:
        raise IntegrityError(f"{where}: architecture.intermediate_size: {a.intermediate_size}, but layers.0.mlp.fc_out.weight takes {fc_out.dims[0]}")  # fmt: skip
    for name in ("rotary.cos_cache", "rotary.cos", "wpe.weight"):
        table = facts.initializers.get(name)
        if table is not None and table.dims and table.dims[0] != a.max_position_embeddings:
            raise IntegrityError(f"{where}: architecture.max_position_embeddings: {a.max_position_embeddings}, but {name} has {table.dims[0]} rows")  # fmt: skip
    for name, init in facts.initializers.items():
        if init.location is None:
            continue
        check_relative(init.location, f"the graph's external data of {name}", where)
        if init.location not in manifest.external_data:
            raise IntegrityError(f"{where}: external_data: the graph reads {name} from {init.location}, which the manifest does not list")  # fmt: skip
