"""``radon checkpoint consolidate``: a sharded training checkpoint (written under torchrun) made whole."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from radon.cli._app import Opt


def consolidate(
    src: Annotated[Path, Opt(metavar="CKPT")],
    *,
    out: Annotated[Path | None, Opt(metavar="DIR")] = None,
    force: bool = False,
) -> int:
    """Merge the per-rank shards of a checkpoint that `radon train` wrote under torchrun into one model.safetensors.

    The shards (training/shards/, torch.distributed.checkpoint in safetensors) are read in one process,
    whatever the world size that wrote them; the result is RADON's ordinary checkpoint, with fresh
    sha256 hashes, which `radon export onnx`, `radon eval` and `radon generate` load. The source's hashes
    are checked first. A run's final save is already consolidated; this is for the saves before it
    (--save-every, --stop-after, Ctrl-C).

    radon checkpoint consolidate CKPT              in place: CKPT gains model.safetensors and stays
                                                   resumable (its training/ state is kept)
    radon checkpoint consolidate CKPT --out DIR    a new checkpoint folder: model files and tokenizer only

    Args:
        src: a sharded checkpoint folder written by `radon train` under torchrun.
        out: write a new checkpoint folder here instead of consolidating CKPT in place.
        force: replace --out if it exists.
    """
    from radon.checkpoint import consolidate as merge
    from radon.checkpoint import read_hashes

    path = merge(src, out, force=force)
    print(f"consolidated {src} -> {path / 'model.safetensors'} ({len(read_hashes(path))} files hashed)")
    return 0
