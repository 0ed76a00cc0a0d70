"""Former home of the manifest reader: the names now live in ``radon.runtime.contract``, re-exported here
for the modules that have not moved their imports yet. New code imports ``radon.runtime.contract``."""

from radon.runtime.contract import (
    FORMAT,
    LOWERINGS,
    MANIFEST_FILE,
    PRECISIONS,
    QUANTIZED_PRECISIONS,
    Architecture,
    KVLayout,
    Manifest,
    TensorSpec,
    read_manifest,
    write_manifest,
)

__all__ = [
    "FORMAT", "LOWERINGS", "MANIFEST_FILE", "PRECISIONS", "QUANTIZED_PRECISIONS", "Architecture", "KVLayout",
    "Manifest", "TensorSpec", "read_manifest", "write_manifest",
]  # fmt: skip
