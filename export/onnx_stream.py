"""ONNX files whose weights are never all in memory at once: written tensor by tensor, read tensor by tensor.

Writing (export, quantize): ``WeightSink`` appends each large initializer's bytes to a data file as the
graph is built and returns a ``TensorProto`` that only refers to them (ONNX external data: location,
offset, length), so the ModelProto holds the graph and no weights. ``save_streamed`` then writes
``model.onnx`` either beside that data file (external data) or with every tensor inline, streamed from
the data file into the protobuf. Either way the bytes are exactly what ``onnx.save_model`` writes for the
same model held in memory (``tests/export/test_export_stream.py`` compares them): a protobuf message is
its fields in field-number order, each a tag, a length and the payload, so the graph's and every
tensor's length can be computed before its payload is copied.

Reading (quantize): ``WeightIndex`` finds every initializer's bytes in a model file, inline (``raw_data``)
or external, by walking the protobuf's field headers without parsing the payloads, and ``skeleton`` is
the ModelProto with those tensors turned into references to the index: what ``onnx.load`` gives, minus
the weights. gpt-fast and llama.cpp's converter work the same way: one tensor resident at a time.
"""

from __future__ import annotations

import mmap
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# onnx.save_model(size_threshold=1024) moves a tensor out when sys.getsizeof(raw_data) >= 1024: the bytes
# object's size *with* its header (33 bytes on CPython 3). The sink uses the same rule, so a streamed
# external-data artifact is byte-identical to what onnx.save_model wrote before streaming.
EXTERNAL_MIN_BYTES = 1024 - sys.getsizeof(b"")
COPY_BLOCK = 64 << 20  # bytes copied at a time from the data file into an inline model.onnx

# protobuf field numbers (onnx.proto): ModelProto.graph, GraphProto.initializer, TensorProto.raw_data
MODEL_GRAPH, GRAPH_INITIALIZER, TENSOR_RAW_DATA = 7, 5, 9
LENGTH_DELIMITED = 2


# ---- protobuf wire format ----------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _tag(field: int) -> bytes:
    return _varint(field << 3 | LENGTH_DELIMITED)


def _split(message: onnx.ModelProto | onnx.GraphProto | TensorProto, field: int) -> tuple[bytes, bytes]:
    """The serialized fields of ``message`` numbered below ``field``, and those above it."""
    parts = []
    for keep in (lambda n: n < field, lambda n: n > field):
        m = type(message)()
        m.CopyFrom(message)
        for desc, _ in m.ListFields():
            if not keep(desc.number):
                m.ClearField(desc.name)
        parts.append(m.SerializeToString())
    return parts[0], parts[1]


# ---- writing -----------------------------------------------------------------------------------------
class WeightSink:
    """Appends initializers of at least ``EXTERNAL_MIN_BYTES`` to ``path`` as they are made.

    ``location`` is the name the ModelProto records (relative to model.onnx). Tensors are written in the
    order they are given, back to back, as ``onnx.save_model(all_tensors_to_one_file=True)`` does.
    """

    def __init__(self, path: Path, location: str | None = None) -> None:
        self.path = Path(path)
        self.location = location or self.path.name
        self._file: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 (closed by close())
        self.size = 0

    def tensor(self, name: str, array: np.ndarray) -> TensorProto:
        """A TensorProto for ``array``: inline when small, else a reference to bytes appended to the file."""
        array = np.ascontiguousarray(array)
        if array.nbytes < EXTERNAL_MIN_BYTES or self._file is None:
            return numpy_helper.from_array(array, name)
        if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder == "big"):
            raise ValueError(f"{name}: external data is little-endian; got a big-endian array")
        t = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype), dims=array.shape)
        self._file.write(memoryview(array.reshape(-1)).cast("B"))
        self.ref(t, self.size, array.nbytes)
        self.size += array.nbytes
        return t

    def raw(self, t: TensorProto, data: bytes | memoryview) -> TensorProto:
        """Write ``data`` as the payload of ``t`` (dims and type already set); returns ``t``."""
        assert self._file is not None
        self._file.write(data)
        self.ref(t, self.size, len(data))
        self.size += len(data)
        return t

    def ref(self, t: TensorProto, offset: int, length: int) -> None:
        del t.external_data[:]
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.location), ("offset", offset), ("length", length)):
            entry = t.external_data.add()
            entry.key, entry.value = key, str(value)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _external(t: TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in t.external_data} if t.data_location == TensorProto.EXTERNAL else {}


def save_streamed(model: onnx.ModelProto, path: Path, data: Path, *, inline: bool) -> None:
    """Write ``model`` (whose large tensors refer to ``data``) to ``path``.

    ``inline=False``: the ModelProto as it is, ``data`` stays beside it (it must sit in ``path``'s folder
    under the name the tensors record). ``inline=True``: every tensor's bytes are copied from ``data`` into
    the protobuf, block by block; the caller removes ``data`` afterwards.
    """
    if not inline:
        onnx.save_model(model, str(path))
        return
    graph = model.graph
    head, tail = _split(model, MODEL_GRAPH)
    g_head, g_tail = _split(graph, GRAPH_INITIALIZER)
    pieces: list[tuple[bytes, int, int, bytes]] = []  # per tensor: header, data offset, length, trailer
    for t in graph.initializer:
        ext = _external(t)
        if not ext:
            pieces.append((t.SerializeToString(), 0, -1, b""))
            continue
        inline_t = TensorProto()
        inline_t.CopyFrom(t)
        inline_t.ClearField("external_data")
        inline_t.ClearField("data_location")
        before, after = _split(inline_t, TENSOR_RAW_DATA)
        length = int(ext["length"])
        pieces.append((before + _tag(TENSOR_RAW_DATA) + _varint(length), int(ext["offset"]), length, after))
    sizes = [len(h) + max(n, 0) + len(a) for h, _, n, a in pieces]
    graph_size = (
        len(g_head) + sum(len(_tag(GRAPH_INITIALIZER)) + len(_varint(s)) + s for s in sizes) + len(g_tail)
    )
    with open(path, "wb") as out, open(data, "rb") as src:
        out.write(head + _tag(MODEL_GRAPH) + _varint(graph_size) + g_head)
        for (header, offset, length, trailer), size in zip(pieces, sizes):
            out.write(_tag(GRAPH_INITIALIZER) + _varint(size) + header)
            if length >= 0:
                src.seek(offset)
                left = length
                while left:
                    block = src.read(min(left, COPY_BLOCK))
                    if not block:
                        raise OSError(f"{data}: ends before the tensor at offset {offset} ({length} bytes)")
                    out.write(block)
                    left -= len(block)
            out.write(trailer)
        out.write(g_tail + tail)


# ---- reading -----------------------------------------------------------------------------------------
def _read_varint(buf: mmap.mmap | bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: mmap.mmap | bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, payload start, payload end) of each field in ``buf[start:end]``."""
    pos = start
    while pos < end:
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, nxt = _read_varint(buf, pos)
        elif wire == 1:
            nxt = pos + 8
        elif wire == 5:
            nxt = pos + 4
        elif wire == LENGTH_DELIMITED:
            length, pos = _read_varint(buf, pos)
            nxt = pos + length
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {pos} is not supported")
        yield field, wire, pos, nxt
        pos = nxt


@dataclass(frozen=True)
class Located:
    """Where one initializer's bytes are: a file, an offset and a length."""

    file: Path
    offset: int
    length: int


class WeightIndex:
    """The initializers of an ONNX model file, each read on demand (``array``), never all at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.where: dict[str, Located] = {}
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            self.model = self._walk(buf)
        for t in self.model.graph.initializer:  # external data: where the tensor says
            ext = _external(t)
            if ext and t.name not in self.where:
                self.where[t.name] = Located(self.path.parent / ext["location"], int(ext.get("offset", 0)),
                                             int(ext["length"]))  # fmt: skip

    def _walk(self, buf: mmap.mmap) -> onnx.ModelProto:
        """Parse ``buf`` with every inline ``raw_data`` left out; record where each one lies."""
        model = onnx.ModelProto()
        rest = bytearray()
        for field, wire, start, end in _fields(buf, 0, len(buf)):
            if field == MODEL_GRAPH:
                model.graph.CopyFrom(self._graph(buf, start, end))
            else:
                rest += _reencode(buf, field, wire, start, end)
        model.MergeFromString(bytes(rest))
        return model

    def _graph(self, buf: mmap.mmap, start: int, end: int) -> onnx.GraphProto:
        graph = onnx.GraphProto()
        rest = bytearray()
        for field, wire, s, e in _fields(buf, start, end):
            if field != GRAPH_INITIALIZER:
                rest += _reencode(buf, field, wire, s, e)
                continue
            tensor_bytes = bytearray()
            raw: tuple[int, int] | None = None
            for f2, w2, s2, e2 in _fields(buf, s, e):
                if f2 == TENSOR_RAW_DATA:
                    raw = (s2, e2 - s2)
                else:
                    tensor_bytes += _reencode(buf, f2, w2, s2, e2)
            t = graph.initializer.add()
            t.ParseFromString(bytes(tensor_bytes))
            if raw is not None:
                self.where[t.name] = Located(self.path, raw[0], raw[1])
                t.data_location = TensorProto.EXTERNAL  # a reference to the index, as external data is
                for key, value in (("location", self.path.name), ("offset", raw[0]), ("length", raw[1])):
                    entry = t.external_data.add()
                    entry.key, entry.value = key, str(value)
        graph.MergeFromString(bytes(rest))
        return graph

    def array(self, name: str, t: TensorProto | None = None) -> np.ndarray:
        """The initializer ``name`` as a numpy array, read from its file (a fresh, writable array)."""
        if t is None:
            t = next(x for x in self.model.graph.initializer if x.name == name)
        loc = self.where[name]
        dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
        with open(loc.file, "rb") as f:
            f.seek(loc.offset)
            data = bytearray(loc.length)
            f.readinto(data)
        return np.frombuffer(data, dtype=dtype).reshape(tuple(t.dims))


def _reencode(buf: mmap.mmap, field: int, wire: int, start: int, end: int) -> bytes:
    """One field as it was on the wire (key, length when length-delimited, payload)."""
    key = _varint(field << 3 | wire)
    if wire == LENGTH_DELIMITED:
        return key + _varint(end - start) + bytes(buf[start:end])
    return key + bytes(buf[start:end])


def load_skeleton(path: str | Path) -> tuple[onnx.ModelProto, WeightIndex]:
    """``onnx.load(path)`` without the weights: every initializer refers to its bytes (``WeightIndex``)."""
    index = WeightIndex(path)
    return index.model, index
