"""``radon train``: train a model on a weighted mixture of ru/en/code text and write a resumable checkpoint.

The seed's ``train_mistral.py`` flags keep working (``--model_config``, ``--data_path``, ``--output_dir``,
``--use_fp16``, ``--gradient_checkpointing``). Heavy imports live inside the function, so ``--help``
loads no torch.
"""

from __future__ import annotations

import json as jsonlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from radon.cli._app import Opt

if TYPE_CHECKING:
    from radon.train import TrainConfig

# Flags that set the recipe (TrainConfig fields). On --resume the checkpoint's recipe wins, so these
# default to None here and are applied only when given.
RECIPE_FLAGS = (
    "batch_size", "grad_accum", "context", "lr", "min_lr_ratio", "warmup_steps", "weight_decay",
    "grad_clip", "seed", "eval_every", "save_every", "max_bytes_per_language", "val_fraction",
)  # fmt: skip
AT_LEAST_0, AT_LEAST_1 = Opt(ge=0), Opt(ge=1)  # radon.cli._app.check_bounds: exit 2 naming the flag


def train(
    *,
    config: Annotated[str | None, Opt(aliases=("--model_config",), metavar="CONFIG")] = None,
    out: Annotated[Path | None, Opt(aliases=("--output_dir",), metavar="CKPT")] = None,
    data: Annotated[
        str | None, Opt(aliases=("--data_path",), metavar="ru=FILE,en=FILE,code=FILE|DIR|FILE")
    ] = None,
    tokenizer: Annotated[Path | None, Opt(metavar="DIR")] = None,
    steps: Annotated[int | None, AT_LEAST_1] = None,
    minutes: Annotated[float | None, Opt(gt=0)] = None,
    batch_size: Annotated[int | None, AT_LEAST_1] = None,
    grad_accum: Annotated[int | None, AT_LEAST_1] = None,
    context: Annotated[int | None, Opt(ge=2)] = None,
    lr: Annotated[float | None, Opt(gt=0)] = None,
    min_lr_ratio: Annotated[float | None, Opt(ge=0, le=1)] = None,
    warmup_steps: Annotated[int | None, AT_LEAST_0] = None,
    weight_decay: Annotated[float | None, AT_LEAST_0] = None,
    grad_clip: Annotated[float | None, AT_LEAST_0] = None,
    mixture: Annotated[str | None, Opt(metavar="ru=W,en=W,code=W")] = None,
    seed: Annotated[int | None, Opt(ge=0, le=2**63 - 1)] = None,
    eval_every: Annotated[int | None, AT_LEAST_0] = None,
    save_every: Annotated[int | None, AT_LEAST_0] = None,
    max_bytes_per_language: Annotated[int | None, AT_LEAST_0] = None,
    val_fraction: Annotated[float | None, Opt(ge=0, lt=0.5)] = None,
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto",
    use_fp16: Annotated[bool, Opt(aliases=("--use_fp16",))] = False,
    gradient_checkpointing: Annotated[bool, Opt(aliases=("--gradient_checkpointing",))] = False,
    compile: bool = False,
    threads: Annotated[int, AT_LEAST_0] = 0,
    device: str = "auto",
    strategy: Literal["ddp", "fsdp"] = "ddp",
    optim: Literal["adamw", "adamw8bit"] = "adamw",
    resume: Annotated[Path | None, Opt(metavar="CKPT")] = None,
    stop_after: Annotated[int | None, AT_LEAST_1] = None,
    force: bool = False,
    progress: bool = True,
    json: bool = False,
) -> int:
    """Train a RADON model and write a resumable checkpoint (model, tokenizer, optimizer state).

    The schedule is steps-based (AdamW, linear warm-up, cosine decay), so the same seed gives the same
    loss curve on any load; --minutes M measures the first steps and fixes the step count that fits.
    Ctrl-C finishes the step, saves a resumable checkpoint and says how to continue.

    Args:
        config: model config: a JSON file or a preset name (demo, tiny_mistral, small, ...). The seed's
            --model_config works too.
        out: the checkpoint folder to write (the seed's --output_dir works too).
        data: training text: ru=FILE,en=FILE,code=FILE (a language may repeat), a data folder laid out
            like ../shared/data, or one file (the seed's --data_path). Default: ../shared/data when present.
        tokenizer: a tokenizer folder from `radon tokenizer train`. Default: the checkpoint's on --resume;
            otherwise a hybrid tokenizer of the config's vocab_size is trained on a sample of the data.
        steps: optimizer steps (default 1000); the cosine schedule spans them all.
        minutes: train for about M minutes instead of --steps (the step count is fixed after 3 timed steps).
        batch_size: sequences per micro-batch (default 16).
        grad_accum: micro-batches per optimizer step (default 1).
        context: tokens per sequence; at most the config's max_position_embeddings (default 256).
        lr: peak learning rate (default 3e-3).
        min_lr_ratio: the cosine decays to lr * min_lr_ratio (default 0.1).
        warmup_steps: linear warm-up steps (default 30).
        weight_decay: AdamW weight decay on matrices and embeddings (default 0.1).
        grad_clip: max gradient norm; 0 turns clipping off (default 1.0).
        mixture: language weights of the batches, e.g. ru=1,en=1,code=2 (default: equal).
        seed: random seed of the init and the batches (default 1337).
        eval_every: steps between validation-loss evaluations (default 100; 0 = at the end only).
        save_every: steps between resumable checkpoints (default 0 = at the end only).
        max_bytes_per_language: text read per language (default 0 = enough for the run).
        val_fraction: tail of each language's tokens held out for the validation loss, below 0.5 (default 0.02).
        precision: auto = bf16 autocast on CUDA, fp32 on the CPU.
        use_fp16: fp16 autocast with a GradScaler on CUDA (the seed's flag).
        gradient_checkpointing: recompute activations in the backward pass to save memory.
        compile: torch.compile the training step (inductor; pays a one-off compile time).
        threads: torch threads on the CPU (0 = torch's default).
        device: auto, cpu, cuda or cuda:N.
        strategy: under torchrun: ddp (every rank holds the model) or fsdp (FSDP2, parameters, gradients
            and optimizer state sharded per block). --batch-size is global and split over the ranks.
        optim: adamw (fp32 moments) or adamw8bit (bitsandbytes' 8-bit moments; pip install 'radon[bnb]').
        resume: continue a checkpoint written by `radon train` (its recipe, data and RNG state).
        stop_after: stop after this many steps in all, with a resumable checkpoint (the schedule still
            spans --steps).
        force: replace an existing --out folder.
        progress: show the progress bar.
        json: print the result as JSON.
    """
    from radon.errors import RadonError
    from radon.train import TrainConfig, parse_mixture

    given = {k: v for k, v in locals().items() if k in RECIPE_FLAGS and v is not None}
    if mixture is not None:
        given["mixture"] = parse_mixture(mixture)
    if steps is not None and minutes is not None:
        raise RadonError("give --steps or --minutes, not both")
    if out is None:
        if resume is None:
            raise RadonError("--out: give the checkpoint folder to write (or the seed's --output_dir)")
        out = resume
    if resume is not None:
        cfg = _resumed_recipe(resume, given, steps)
    else:
        cfg = TrainConfig(**given, steps=1000 if steps is None else steps, minutes=minutes or 0.0)
    cfg.precision, cfg.use_fp16, cfg.compile, cfg.threads, cfg.device, cfg.strategy = (
        precision, use_fp16, compile, threads, device, strategy,
    )  # fmt: skip
    if resume is None or optim != "adamw":
        cfg.optim = optim  # a resumed run keeps its optimizer unless another is asked for
    cfg.gradient_checkpointing = cfg.gradient_checkpointing or gradient_checkpointing
    cfg.validate()
    return _run(config, out, data, tokenizer, cfg, resume, stop_after, force, progress, json)


def _resumed_recipe(resume: Path, given: dict[str, Any], steps: int | None) -> TrainConfig:
    import logging

    from radon.train import TrainConfig
    from radon.train.state import read_state

    saved = TrainConfig.from_dict(read_state(resume)["train_config"])
    ignored = [k for k, v in given.items() if getattr(saved, k) != v]
    if ignored:
        logging.getLogger("radon.train").warning(
            "--resume keeps the checkpoint's recipe; ignoring --%s",
            ", --".join(k.replace("_", "-") for k in ignored),
        )
    saved.minutes = 0.0
    if steps is not None and steps != saved.steps:
        logging.getLogger("radon.train").warning(
            "--steps %d changes the schedule of a run planned for %d steps", steps, saved.steps
        )
        saved.steps = steps
    return saved


def _run(
    config: str | None,
    out: Path,
    data: str | None,
    tokenizer_dir: Path | None,
    cfg: TrainConfig,
    resume: Path | None,
    stop_after: int | None,
    force: bool,
    progress: bool,
    as_json: bool,
) -> int:
    from tqdm.auto import tqdm

    from radon.config import ModelConfig
    from radon.errors import RadonError
    from radon.train import train as run_training
    from radon.train.sources import auto_tokenizer, parse_data

    model_config = ModelConfig.from_json(config) if config is not None else None
    files = parse_data(data) if data is not None or resume is None else None
    tok = None
    if tokenizer_dir is not None:
        from radon.tokenizer import load_tokenizer

        tok = load_tokenizer(tokenizer_dir)
    elif resume is None and model_config is not None and files is not None:
        from radon.train.distributed import launched_by_torchrun
        from radon.train.loop import check_request

        if launched_by_torchrun():
            raise RadonError(
                "under torchrun, give --tokenizer DIR (train it once with `radon tokenizer train`), so that "
                "every rank uses the same tokenizer"
            )
        check_request(
            model_config, cfg, out, force=force, resume=None
        )  # before minutes of tokenizer training
        tok = auto_tokenizer(files, model_config.vocab_size, report=lambda m: print(m, file=sys.stderr))
    result = run_training(
        model_config, cfg, files, tok, out, resume=resume, stop_after=stop_after, force=force,
        progress=progress, report=lambda m: tqdm.write(m, file=sys.stderr),
    )  # fmt: skip
    summary: dict[str, Any] = {
        "checkpoint": str(result.checkpoint),
        "step": result.step,
        "total_steps": result.total_steps,
        "finished": result.finished,
        "final_loss": result.losses[-1] if result.losses else None,
        "val_losses": result.val_losses.get(str(result.step), {}),
        "seconds": round(result.seconds, 2),
        "compile_seconds": round(result.compile_seconds, 2),
        "tokens": result.tokens,
        "tokens_per_second": round(result.tokens_per_second, 1),
        "precision": result.precision,
    }
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return 0
    if as_json:
        print(jsonlib.dumps(summary, ensure_ascii=False))
    else:
        val = ", ".join(f"{k} {v:.3f}" for k, v in summary["val_losses"].items())
        print(
            f"checkpoint: {result.checkpoint}\n"
            f"steps {result.step}/{result.total_steps}, loss {summary['final_loss']:.3f}"
            + (f", val {val}" if val else "")
            + f"\n{result.tokens:,} tokens in {result.seconds:.0f} s ({result.tokens_per_second:,.0f} tok/s, "
            f"{result.precision})"
            + (f", compile {result.compile_seconds:.0f} s" if result.compile_seconds else "")
        )
        if not result.finished:
            print(f"resume with: radon train --resume {result.checkpoint}")
    return 0
