"""``radon info``: parameters, weight memory per dtype and KV-cache memory, from a config alone."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated

from radon.cli._app import Opt

CHECKPOINT_HASHES = "radon_checkpoint.json"  # radon.checkpoint.HASHES_FILE (that module imports torch)


def info(
    target: Annotated[str, Opt(metavar="CONFIG|CHECKPOINT|ARTIFACT|HF_DIR|GGUF")],
    *,
    context: int = 4096,
    json: bool = False,
    train: bool = False,
    gpus: int = 1,
    strategy: str = "ddp",
    dtype: str = "bf16",
    optim: str = "adamw",
    micro_batch: int = 1,
    checkpointing: bool = False,
) -> int:
    """Print parameters, weight memory per dtype, and KV-cache memory at a context length.

    Counts are exact (the model is never instantiated). The KV cache of a sliding-window model stops
    growing at the window. A checkpoint's or an artifact's files are checked against their recorded
    sha256 first, so a truncated or edited one is named rather than described.

    Args:
        target: a config JSON, a preset name (radon info mistral_7b), a checkpoint folder, an artifact folder,
            a Hugging Face model folder or a .gguf file (both with the command that converts them).
        context: tokens of context for the KV-cache figure.
        json: print JSON instead of a table.
        train: training memory per GPU instead (parameters, gradients, optimizer state, activations, total) for a config or checkpoint; --context is then the training sequence length.
        gpus: GPUs (processes) the run uses (--train).
        strategy: ddp (replicated) or fsdp (FSDP2, sharded over --gpus) (--train).
        dtype: fp32, or bf16 / fp16 mixed precision with fp32 master weights (--train).
        optim: adamw (two fp32 moments) or adamw8bit (bitsandbytes, 8-bit moments) (--train).
        micro_batch: sequences per GPU per forward pass (--train).
        checkpointing: activation checkpointing per block (--train).
    """
    from radon.config import ModelConfig
    from radon.errors import RadonError
    from radon.info import describe, format_report

    if context < 1:
        raise RadonError(f"--context: must be >= 1, got {context}")
    if not train and (gpus, strategy, dtype, optim, micro_batch, checkpointing) != (
        1,
        "ddp",
        "bf16",
        "adamw",
        1,
        False,
    ):
        raise RadonError(
            "--gpus, --strategy, --dtype, --optim, --micro-batch, --checkpointing: only with --train"
        )
    if train:
        from radon.train_memory import TrainSetup

        setup = TrainSetup(gpus=gpus, strategy=strategy, dtype=dtype, optim=optim, micro_batch=micro_batch,
                           context=context, checkpointing=checkpointing)  # fmt: skip
        setup.check()  # bad flags are named before any file is read
    path = Path(target)
    if path.is_dir():
        from radon.integrity import check_complete

        check_complete(path)  # what a killed run left is named as such, whatever it holds yet
    if (path / CHECKPOINT_HASHES).is_file():  # a checkpoint: its files must be what it recorded
        from radon.integrity import read_json, verify_files

        hashes = read_json(path / CHECKPOINT_HASHES, "the checkpoint's file hashes")
        if not isinstance(hashes, dict) or not isinstance(hashes.get("files"), dict):
            raise RadonError(f"{path / CHECKPOINT_HASHES}: not a RADON checkpoint's hashes file")
        verify_files(path, hashes["files"], what="checkpoint")
    if (path / "radon_manifest.json").is_file():
        if train:
            raise RadonError(
                f"{path}: --train estimates from a config or a checkpoint, not an exported artifact"
            )
        from radon.export.info import describe_artifact  # from the manifest alone, no torch

        report = describe_artifact(path, context)
        print(jsonlib.dumps(report, indent=2) if json else report["text"])
        return 0
    from radon.info import describe_foreign, foreign_source

    kind = foreign_source(target)
    if kind is not None:  # a Hugging Face folder or a GGUF file: describe it and say how to convert it
        if train:
            raise RadonError(
                f"{target}: --train reads a RADON config or checkpoint; convert it first (radon convert)"
            )
        report = describe_foreign(target, kind, context)
        print(jsonlib.dumps(report, indent=2) if json else report["text"])
        return 0
    cfg = ModelConfig.from_json(target)
    if train:
        from radon.train_memory import estimate, format_train_report

        report = estimate(cfg, setup) | {"source": str(target)}
        print(jsonlib.dumps(report, indent=2) if json else format_train_report(report, str(target)))
        return 0
    report = describe(cfg, context)
    report["source"] = str(target)
    print(jsonlib.dumps(report, indent=2) if json else format_report(report, str(target)))
    return 0
