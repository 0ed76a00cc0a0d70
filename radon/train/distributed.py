"""``radon train`` under ``torchrun``: the process group, DDP or FSDP2, and the global batch split by rank.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; with them present, training joins a process
group (NCCL on CUDA, gloo on the CPU) and wraps the model:

- ``ddp``: ``DistributedDataParallel``; every rank holds the whole model and averages gradients;
- ``fsdp``: FSDP2, ``torch.distributed.fsdp.fully_shard`` on each transformer block, then on the root
  (the embedding, a tied LM head, the final norm), so parameters, gradients and optimizer state are
  sharded across ranks as DTensors.

The batch size is global. Step ``s``'s micro-batch ``m`` is the same ``batch_size`` rows for every world
size (radon/train/data.py draws it from ``(seed, s, m)``); rank ``r`` of ``W`` trains on rows
``r*B/W .. (r+1)*B/W``. Each rank's loss is the mean over its rows, and DDP and FSDP average gradients
over ranks, so with equal row counts the gradient is the 1-process gradient up to the order of the
float sums. Hence ``batch_size`` must divide by the world size.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from radon.errors import RadonError

log = logging.getLogger(__name__)

STRATEGIES = ("ddp", "fsdp")
TIMEOUT = datetime.timedelta(minutes=10)  # a collective that waits longer than this fails the run


@dataclass
class Dist:
    """This process's place in the run. ``world == 1`` without torchrun: no process group at all."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    strategy: str = "ddp"
    launched: bool = False  # under torchrun (a process group exists, even for one process)
    device: torch.device = torch.device("cpu")  # this rank's device; NCCL collectives need CUDA tensors

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharded_saves(self) -> bool:
        """Checkpoints go through torch.distributed.checkpoint (per-rank shards) rather than one file."""
        return self.launched


def launched_by_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def setup(strategy: str, device: torch.device) -> Dist:
    """Join torchrun's process group (idempotent); outside torchrun, a one-process ``Dist``."""
    if strategy not in STRATEGIES:
        raise RadonError(f"--strategy: must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if not launched_by_torchrun():
        return Dist(strategy=strategy, device=device)
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda" and device.index is None:  # one GPU per rank
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return Dist(rank=rank, world=world, local_rank=local, strategy=strategy, launched=True, device=device)


def check_batch(batch_size: int, d: Dist) -> int:
    """Rows per rank of each micro-batch; refuses a batch that does not split evenly."""
    if batch_size % d.world:
        raise RadonError(
            f"--batch-size {batch_size} does not split over {d.world} processes; the batch size is global, "
            f"so give a multiple of {d.world} (raise --grad-accum to keep the tokens per step)"
        )
    return batch_size // d.world


def rows_of(batch: torch.Tensor, d: Dist) -> torch.Tensor:
    """This rank's slice of a global micro-batch (rows r*B/W .. (r+1)*B/W)."""
    per = batch.shape[0] // d.world
    return batch[d.rank * per : (d.rank + 1) * per]


def wrap(model: nn.Module, d: Dist, mixed: torch.dtype | None = None) -> nn.Module:
    """DDP or FSDP2 around ``model`` (already on its device); the model itself outside torchrun.

    ``mixed``: the FSDP2 compute dtype on CUDA (bf16/fp16): parameters are all-gathered in it and
    gradients reduced in fp32, while the sharded master weights and optimizer state stay fp32.
    """
    if not d.launched:
        return model
    if d.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [d.device.index] if d.device.type == "cuda" else None
        # a hybrid config holds two stacks and runs one: the other's parameters get no gradient
        unused = len(getattr(getattr(model, "config", None), "architectures", ())) > 1
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=mixed, reduce_dtype=torch.float32) if mixed else None
    kwargs: dict[str, Any] = {"mp_policy": policy} if policy is not None else {}
    for stack in getattr(model, "stacks", {}).values():
        for block in stack.layers:
            fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    return model


def unwrap(engine: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (FSDP2 shards in place: the same object)."""
    return getattr(engine, "module", engine)


@contextlib.contextmanager
def no_sync(engine: nn.Module, d: Dist, last: bool) -> Iterator[None]:
    """Skip the gradient all-reduce / reduce-scatter on every micro-batch but the last of a step."""
    if not d.launched or last:
        yield
        return
    if d.strategy == "ddp":
        with engine.no_sync():  # type: ignore[operator]
            yield
        return
    engine.set_requires_gradient_sync(False)  # type: ignore[operator]
    try:
        yield
    finally:
        engine.set_requires_gradient_sync(True)  # type: ignore[operator]


def mean(value: torch.Tensor, d: Dist) -> torch.Tensor:
    """The mean of a scalar over ranks (each rank's loss over its rows -> the global batch's loss)."""
    if not d.launched or d.world == 1:
        return value
    import torch.distributed as dist

    out = value.detach().clone().to(d.device)
    dist.all_reduce(out)
    return out / d.world


def any_rank(flag: bool, d: Dist) -> bool:
    """True on every rank when it is true on one (an interrupt seen by one rank stops them all)."""
    if not d.launched:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_int(value: int, d: Dist) -> int:
    """Rank 0's ``value`` on every rank (the step count that --minutes fixes from rank 0's timing)."""
    if not d.launched:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.int64, device=d.device)
    dist.broadcast(t, src=0)
    return int(t.item())


def broadcast_text(text: str, d: Dist) -> str:
    """Rank 0's string on every rank, as bytes in a tensor (no pickle on the wire either)."""
    if not d.launched:
        return text
    import torch.distributed as dist

    data = torch.tensor(list(text.encode("utf-8")), dtype=torch.uint8, device=d.device)
    size = torch.tensor([data.numel()], dtype=torch.int64, device=d.device)
    dist.broadcast(size, src=0)
    buf = data if d.is_main else torch.empty(int(size.item()), dtype=torch.uint8, device=d.device)
    dist.broadcast(buf, src=0)
    return bytes(buf.cpu().tolist()).decode("utf-8")


def barrier(d: Dist) -> None:
    if d.launched:
        import torch.distributed as dist

        dist.barrier()


def teardown(d: Dist) -> None:
    if d.launched:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
