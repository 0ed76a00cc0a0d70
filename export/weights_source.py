"""Where an export reads the checkpoint's tensors from: the safetensors file, one tensor at a time.

``radon export onnx`` never builds the PyTorch model to make the graph: ``CheckpointTensors`` reads the
safetensors header (names, dtypes, shapes, offsets), checks it against the config exactly as
``radon.checkpoint.load_model`` does, and reads each tensor with one ``readinto`` when the graph asks
for it. The tensor becomes float32 numpy (float16 and bfloat16 widen exactly, as ``Tensor.float()``
does), is transposed or cast by the graph builder, written to the artifact and dropped, so at most a
tensor or two is ever resident. ``TorchTensors`` gives the same view of a model in memory
(``build_graph(model)``). Both are read-only mappings: checkpoint tensor name -> float32 array.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from radon.config import ModelConfig
from radon.errors import IntegrityError

WEIGHTS_FILE = "model.safetensors"
# safetensors dtype -> (numpy dtype read from the file, how to widen it to float32)
_DTYPES: dict[str, str] = {"F32": "<f4", "F16": "<f2", "BF16": "<u2"}


class CheckpointTensors(Mapping[str, np.ndarray]):
    """A checkpoint folder's tensors, read on demand from its ``model.safetensors`` (no torch model).

    ``verify`` checks every file's sha256 first (``radon.checkpoint.verify_checkpoint``), as loading does.
    """

    def __init__(self, checkpoint: str | Path, *, verify: bool = True) -> None:
        from radon.checkpoint import check_tensors, load_config, verify_checkpoint

        self.folder = Path(checkpoint)
        if verify:
            verify_checkpoint(self.folder)
        self.config: ModelConfig = load_config(self.folder)
        self.path = self.folder / WEIGHTS_FILE
        self.header, self.data_start = read_header(self.path)
        shapes = {k: tuple(v["shape"]) for k, v in self.header.items()}
        check_tensors(self.config, shapes, str(self.folder))

    @property
    def nbytes(self) -> int:
        """Bytes of every tensor at float32 (what the export holds, a tensor at a time)."""
        return sum(4 * int(np.prod(v["shape"], dtype=np.int64)) for v in self.header.values())

    def __getitem__(self, name: str) -> np.ndarray:
        info = self.header[name]
        dtype = info["dtype"]
        if dtype not in _DTYPES:
            raise IntegrityError(f"{self.path}: {name} is {dtype}; the export reads F32, F16 and BF16")
        begin, end = info["data_offsets"]
        data = bytearray(end - begin)
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            if f.readinto(data) != len(data):
                raise IntegrityError(f"{self.path}: ends inside {name} (truncated?)")
        array = np.frombuffer(data, dtype=_DTYPES[dtype]).reshape(info["shape"])
        if dtype == "BF16":  # bfloat16 is the top half of a float32
            return (array.astype(np.uint32) << 16).view(np.float32)
        return array.astype(np.float32, copy=False)

    def __contains__(self, name: object) -> bool:  # Mapping's default would read the tensor
        return name in self.header

    def __iter__(self) -> Iterator[str]:
        return iter(self.header)

    def __len__(self) -> int:
        return len(self.header)


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The safetensors header (tensor name -> dtype, shape, data_offsets) and where the data begins."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (OSError, struct.error, ValueError) as exc:
        raise IntegrityError(
            f"{path}: not a readable safetensors file (truncated or corrupted?): {exc}"
        ) from None
    header.pop("__metadata__", None)
    return header, 8 + size


class TorchTensors(Mapping[str, np.ndarray]):
    """A ``HybridTransformerModel``'s state dict as float32 numpy arrays, converted when read."""

    def __init__(self, model: Any) -> None:
        self.config: ModelConfig = model.config
        self._sd = model.state_dict()

    def __getitem__(self, name: str) -> np.ndarray:
        return self._sd[name].detach().float().cpu().numpy()

    def __contains__(self, name: object) -> bool:
        return name in self._sd

    def __iter__(self) -> Iterator[str]:
        return iter(self._sd)

    def __len__(self) -> int:
        return len(self._sd)


def tensors_of(source: Any) -> Mapping[str, np.ndarray]:
    """``source`` as a tensor mapping: a ``CheckpointTensors`` as it is, a model through ``TorchTensors``."""
    return source if isinstance(source, CheckpointTensors) else TorchTensors(source)
