"""Sharded training checkpoints through ``torch.distributed.checkpoint`` (DCP), in safetensors, never pickle.

A checkpoint written under torchrun is RADON's checkpoint folder with the model and optimizer held as
per-rank shards instead of one ``model.safetensors``::

    config.json, generation_config.json, tokenizer/, radon_checkpoint.json (sha256 of every file)
    model.safetensors                  the whole model: the final save, or `radon checkpoint consolidate`
    training/shards/*.safetensors      DCP's HuggingFaceStorageWriter, one file per rank: tensors named
                                       "model.{fqn}" and "optim.{fqn}.{exp_avg|exp_avg_sq|step|...}", each
                                       file's header recording where its pieces sit in the whole tensor
    training/state.json                step, recipe, losses, data, "layout": "sharded" (rank 0)
    training/rng.safetensors           rank 0's RNG states
    training/token_counts.safetensors  (vocab,) int64 training-token counts

DCP's default ``FileSystemWriter`` pickles its ``.metadata`` file and any non-tensor value; the
HuggingFace storage writer keeps everything in safetensors headers (JSON), so the state here is tensors
only and the optimizer's param groups go to JSON. DCP reads the pieces back into any sharding, so a
checkpoint saved by N ranks resumes on M (1 included, without a process group).

Atomic across ranks: every rank writes its shard into one temporary sibling folder (named by rank 0's
pid, holding the incomplete marker), and only rank 0 renames it into place after all ranks finished.
A rank killed mid-save leaves that folder behind (removed by the next save) and the previous checkpoint
untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from radon.errors import IntegrityError, RadonError
from radon.integrity import INCOMPLETE_MARKER, publish_directory, remove_stale
from radon.train.distributed import Dist, barrier, broadcast_text

SHARDS_DIR = "training/shards"
RNG_FILE = "training/rng.safetensors"
MODEL_PREFIX, OPTIM_PREFIX = "model.", "optim."
SCALARS = "__python_scalars__"  # keys of flat_state's optimizer entries that were Python numbers
KILL_ENV = "RADON_TEST_KILL_RANK_DURING_SAVE"  # tests: "RANK:STEP" SIGKILLs that rank inside that save


def is_sharded(ckpt: Path) -> bool:
    return (Path(ckpt) / SHARDS_DIR).is_dir()


def _options(full: bool = False) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=full, cpu_offload=full)


def flat_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, optimizer state dict): ``tensors`` names every model and optimizer tensor of this rank
    (DTensors under FSDP2) and is a view of the live state, so DCP's load fills it in place."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    msd = get_model_state_dict(model, options=_options())
    osd = get_optimizer_state_dict(model, optimizer, options=_options())
    flat: dict[str, Any] = {MODEL_PREFIX + k: v for k, v in msd.items()}
    for fqn, per_param in osd["state"].items():
        for key, value in list(per_param.items()):
            if isinstance(value, bool | int | float):  # bitsandbytes keeps its step as a Python int
                per_param[key] = value = torch.tensor([value], dtype=torch.float64)
                per_param.setdefault(SCALARS, []).append(key)
            elif not torch.is_tensor(value):
                raise RadonError(
                    f"optimizer state {fqn}.{key} is a {type(value).__name__}; it cannot be saved without pickle"
                )
            # 0-d tensors (AdamW's step) as (1,): DCP's safetensors reader slices every dimension
            flat[f"{OPTIM_PREFIX}{fqn}.{key}"] = value.view(1) if value.dim() == 0 else value
        if SCALARS in per_param:
            per_param[SCALARS] = tuple(per_param[SCALARS])
    return flat, {"model": msd, "optim": osd}


def _python_scalars(osd: dict[str, Any]) -> None:
    """Undo ``flat_state``'s tensors for Python numbers, after a load."""
    for per_param in osd["state"].values():
        for key in per_param.pop(SCALARS, ()):
            per_param[key] = (
                int(per_param[key].item()) if per_param[key].item().is_integer() else per_param[key].item()
            )


def save(
    out: Path,
    d: Dist,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    write_main: Callable[[Path, dict[str, torch.Tensor] | None], None],
    *,
    consolidate: bool,
) -> Path:
    """Write ``out`` atomically from every rank (a collective call).

    ``write_main(tmp, full)`` runs on rank 0 only, after every shard is written: it adds the model files,
    the training state and the hashes; ``full`` is the whole model's state dict when ``consolidate``.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    out = Path(out)
    tmp_name = ""
    if d.is_main:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(out)
        tmp_name = tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent)
        (Path(tmp_name) / INCOMPLETE_MARKER).write_text(f"pid {os.getpid()}: being written; not loadable\n")
    tmp = Path(broadcast_text(tmp_name, d))
    flat, _ = flat_state(model, optimizer)
    _maybe_die(d, step)
    dcp.save(flat, storage_writer=HuggingFaceStorageWriter(str(tmp / SHARDS_DIR), save_distributed=True))
    full = get_model_state_dict(model, options=_options(full=True)) if consolidate else None
    barrier(d)
    if d.is_main:
        try:
            write_main(tmp, full)
            publish_directory(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    barrier(d)
    return out


def _maybe_die(d: Dist, step: int) -> None:
    """The kill-during-save test's hook: this rank dies by SIGKILL after rank 0 made the temporary folder."""
    spec = os.environ.get(KILL_ENV, "")
    if spec and spec == f"{d.rank}:{step}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def load(ckpt: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    """Fill ``model`` (and ``optimizer``) from a sharded checkpoint, resharding to this run's ranks."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    folder = Path(ckpt) / SHARDS_DIR
    if optimizer is None:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        msd = get_model_state_dict(model, options=_options())
        flat: dict[str, Any] = {MODEL_PREFIX + k: v for k, v in msd.items()}
        states: dict[str, Any] = {"model": msd}
    else:
        flat, states = flat_state(model, optimizer)
    try:
        with _quiet_without_process_group():
            dcp.load(flat, storage_reader=HuggingFaceStorageReader(str(folder)))
    except Exception as exc:  # DCP wraps every rank's failure in a CheckpointException
        first = str(exc).strip().splitlines()
        raise IntegrityError(
            f"{folder}: the shards do not load into this model and optimizer ({first[-1][:300] if first else exc})"
        ) from None
    set_model_state_dict(model, states["model"], options=_options())
    if optimizer is not None:
        _python_scalars(states["optim"])
        set_optimizer_state_dict(model, optimizer, states["optim"], options=_options())


def full_model_state(ckpt: Path, cfg: Any) -> dict[str, torch.Tensor]:
    """The whole model's tensors from a sharded checkpoint, in one process (``radon checkpoint consolidate``)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    from radon.checkpoint import meta_model, state_dict_for_save

    names = state_dict_for_save(meta_model(cfg))
    flat = {MODEL_PREFIX + k: torch.empty(v.shape, dtype=torch.float32) for k, v in names.items()}
    try:
        with _quiet_without_process_group():
            dcp.load(flat, storage_reader=HuggingFaceStorageReader(str(Path(ckpt) / SHARDS_DIR)))
    except Exception as exc:
        first = str(exc).strip().splitlines()
        raise IntegrityError(
            f"{ckpt}: the shards do not hold this config's tensors ({first[-1][:300] if first else exc})"
        ) from None
    return {k[len(MODEL_PREFIX) :]: v for k, v in flat.items()}


@contextlib.contextmanager
def _quiet_without_process_group() -> Iterator[None]:
    """DCP warns on every load outside a process group, which is how one process reads N ranks' shards
    (``--resume`` without torchrun, consolidation) by design; that warning is noise, others still show."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def write_rng(root: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(root / RNG_FILE))


def read_rng(ckpt: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(ckpt) / RNG_FILE
    return load_file(str(path)) if path.is_file() else {}
