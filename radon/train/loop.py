"""The training loop: nanoGPT's train.py, made resumable bit for bit and safe to interrupt.

One optimizer step = ``grad_accum`` micro-batches of ``batch_size`` x ``context`` tokens, each a pure
function of (seed, step) (radon/train/data.py). The learning rate is a pure function of the step
(radon/train/optim.py). Model, optimizer, RNG and GradScaler states are saved together, atomically, so
``--resume`` continues the same loss curve. Ctrl-C finishes the current step, saves a resumable
checkpoint and exits with status 130; a second Ctrl-C aborts at once and keeps the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from radon import __version__
from radon.checkpoint import load_config, load_model, save_checkpoint, verify_checkpoint, write_files
from radon.config import ModelConfig
from radon.errors import RadonError
from radon.model import HybridTransformerModel
from radon.train import distributed as dd
from radon.train import sharded
from radon.train import state as st
from radon.train.config import TrainConfig
from radon.train.data import Encoder, Mixture, build_mixture
from radon.train.optim import lr_at, make_optimizer, optimizer_state_bytes, set_lr
from radon.train.precision import Precision, resolve_device, resolve_precision

log = logging.getLogger(__name__)

CALIBRATION_STEPS = 3  # steps timed (after the first, which may compile) to turn --minutes into steps


class TrainingInterrupted(RadonError):
    """Training stopped on Ctrl-C or SIGTERM; the message says where the last good checkpoint is."""

    exit_code = 130


@dataclass
class TrainResult:
    checkpoint: Path | None  # the last checkpoint written, None if none was
    step: int  # optimizer steps done in all, including those before a resume
    total_steps: int
    losses: list[float]  # training loss of every step since step 0
    val_losses: dict[str, dict[str, float]]  # step (as a string, for JSON) -> language -> loss
    seconds: float  # wall time of this run's steps (not reading data, not saving)
    tokens: int  # tokens trained on in this run
    precision: str = "fp32"
    compile_seconds: float = 0.0  # the first step's time when --compile is on
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def check_request(
    model_config: Any, cfg: TrainConfig, out: Path, *, force: bool, resume: Path | None
) -> None:
    """The checks that need neither data nor a tokenizer, so that a bad request fails before minutes of
    tokenizer training: the context against the model's positions, and the output folder."""
    if cfg.context > model_config.max_position_embeddings:
        raise RadonError(
            f"--context {cfg.context} is over the model's max_position_embeddings "
            f"({model_config.max_position_embeddings}); use a shorter context or a config with more positions"
        )
    if out.exists() and not force and (resume is None or out.resolve() != resume.resolve()):
        raise RadonError(f"{out}: already exists (use --force to replace it, or --resume {out})")
    check_writable(out)


def check_writable(out: Path) -> None:
    """Fail before training, not after it, when ``out``'s parent cannot hold a new folder."""
    parent = out.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise RadonError(f"{out}: cannot write here ({probe} is a file, not a folder)")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe_file = parent / f".{out.name}.probe-{os.getpid()}"  # ranks of one run probe side by side
        with open(probe_file, "w") as f:
            f.write("")
        probe_file.unlink()
    except OSError as exc:
        raise RadonError(f"{out}: cannot write here ({exc.strerror or exc})") from None


@contextlib.contextmanager
def _graceful_interrupts(flag: dict[str, bool], report: Callable[[str], None]) -> Iterator[None]:
    """First SIGINT/SIGTERM sets ``flag["stop"]``; a second SIGINT raises KeyboardInterrupt at once."""
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True
        report("interrupt: finishing this step and saving a resumable checkpoint (Ctrl-C again to abort)")

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for signum, h in previous.items():
            signal.signal(signum, h)


@torch.no_grad()
def validation_losses(
    model: HybridTransformerModel, mixture: Mixture, cfg: TrainConfig, precision: Precision
) -> dict[str, float]:
    """Mean next-token loss (nats) per language on the held-out tail of each stream."""
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    for lang in mixture.streams:
        batches = mixture.val_batches(lang, cfg.batch_size, cfg.eval_batches)
        if not batches:
            continue
        total = 0.0
        for x in batches:
            x = x.to(precision.device)
            with precision.autocast():
                total += float(model(x, labels=x, use_cache=False).loss)
        out[lang] = total / len(batches)
    model.train(was_training)
    return out


def train(
    model_config: ModelConfig | None,
    cfg: TrainConfig,
    data: Mapping[str, Sequence[Path]] | None,
    tokenizer: Encoder | None,
    out: Path,
    *,
    resume: Path | None = None,
    stop_after: int | None = None,
    force: bool = False,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a model and write a resumable checkpoint to ``out``.

    ``resume`` continues a checkpoint written by ``train`` (its model, optimizer, RNG, recipe and data,
    unless ``data`` is given). ``stop_after`` ends this run after that many steps in all, with a
    resumable checkpoint, while the schedule still spans ``cfg.steps``.

    The stages: read what a resume brings -> check the request -> build the model, data and optimizer
    -> restore a resumed run's state -> the loop, which saves checkpoints.
    """
    say = report or log.info
    out = Path(out)
    d = dd.setup(cfg.strategy, resolve_device(cfg.device))
    if not d.is_main:  # only rank 0 logs and shows progress
        say, progress = (lambda message: None), False
    saved_state: dict[str, Any] = {}
    model: HybridTransformerModel | None = None
    if resume is not None:
        resume = Path(resume)
        saved_state, model, model_config, tokenizer, data = _resumed(resume, tokenizer, data)
    if model_config is None:
        raise RadonError("--config: give a model config (a file or a preset name such as demo)")
    if tokenizer is None:
        raise RadonError("--tokenizer: give a tokenizer folder (train one with `radon tokenizer train`)")
    check_request(model_config, cfg, out, force=force, resume=resume)
    check_vocab(tokenizer, model_config, resumed=resume is not None)
    check_combination(cfg, d)
    try:
        run = _setup(model, model_config, cfg, data, tokenizer, out, saved_state, say, d)
        if resume is not None:
            _restore(run, resume, saved_state)
        return _loop(run, resume, stop_after, progress, say)
    finally:
        dd.teardown(d)


def check_combination(cfg: TrainConfig, d: dd.Dist) -> None:
    """What the process layout rules out, before any data is read."""
    dd.check_batch(cfg.batch_size, d)
    if d.launched and d.strategy == "fsdp" and cfg.optim == "adamw8bit":
        raise RadonError(
            "--optim adamw8bit with --strategy fsdp: bitsandbytes' 8-bit AdamW does not step FSDP2's "
            "sharded (DTensor) parameters; use --strategy ddp, or --optim adamw"
        )


def check_vocab(tokenizer: Encoder, model_config: ModelConfig, *, resumed: bool = False) -> None:
    """The tokenizer's ids must be the model's rows: more would index past the embedding, fewer leave
    rows that generation can sample and no tokenizer can decode. A resumed checkpoint trained before
    this check keeps the looser rule (no id past the embedding)."""
    vocab = _tokenizer_vocab(tokenizer)
    if vocab is None or vocab == model_config.vocab_size or (resumed and vocab < model_config.vocab_size):
        return
    raise RadonError(
        f"--tokenizer has {vocab} ids but the model config's vocab_size is {model_config.vocab_size}; "
        f"set vocab_size to {vocab} in the config, or train a tokenizer with --vocab-size "
        f"{model_config.vocab_size}"
    )


def _resumed(
    resume: Path, tokenizer: Encoder | None, data: Mapping[str, Sequence[Path]] | None
) -> tuple[
    dict[str, Any], HybridTransformerModel | None, ModelConfig, Encoder | None, Mapping[str, Sequence[Path]]
]:
    """What ``--resume`` brings: the saved state, the model, and the tokenizer and data unless given."""
    saved_state = st.read_state(resume)
    model: HybridTransformerModel | None
    if sharded.is_sharded(resume):  # built fresh in _setup, then filled from the shards in _restore
        verify_checkpoint(resume)
        model, config = None, load_config(resume)
    else:
        model = load_model(resume).train()
        config = model.config
    if tokenizer is None and (resume / "tokenizer").is_dir():
        from radon.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(resume / "tokenizer")
    if data is None:
        data = {lang: [Path(p) for p in s["files"]] for lang, s in saved_state["data"].items()}
    return saved_state, model, config, tokenizer, data


@dataclass
class _Run:
    """What the stages share: the model and its optimizer, the data, and the history so far."""

    cfg: TrainConfig
    model: HybridTransformerModel
    optimizer: torch.optim.Optimizer
    precision: Precision
    mixture: Mixture
    tokenizer: Encoder
    out: Path
    data_summary: dict[str, Any]
    counts: Any  # token counts per id, saved beside the optimizer state
    dist: dd.Dist = field(default_factory=dd.Dist)
    engine: torch.nn.Module | None = None  # what the forward runs through: DDP's wrapper, else the model
    start: int = 0
    losses: list[float] = field(default_factory=list)
    val_losses: dict[str, dict[str, float]] = field(default_factory=dict)

    def save(self, step: int) -> Path:
        """An atomic, resumable checkpoint at ``step``: model, tokenizer, optimizer, RNG and recipe."""
        cfg, precision = self.cfg, self.precision
        state = {
            "radon_version": __version__,
            "step": step,
            "train_config": cfg.to_dict(),
            "precision": precision.name,
            "device": str(precision.device),
            "threads": torch.get_num_threads(),
            "losses": self.losses,
            "val_losses": self.val_losses,
            "tokens_seen": step * cfg.tokens_per_step,
            "data": self.data_summary,
            "mixture": self.mixture.weights,
            "scaler": precision.scaler.state_dict() if precision.scaler is not None else None,
            "finished": step >= cfg.steps,
            "optimizer": cfg.optim,
            "optimizer_state_bytes": optimizer_state_bytes(self.optimizer),  # this rank's, under FSDP
        }
        if self.dist.sharded_saves:
            return self._save_sharded(step, state)
        return save_checkpoint(
            self.model, self.out, tokenizer=self.tokenizer, overwrite=True,
            write_extra=lambda tmp: st.write_state(tmp, self.optimizer, state, self.counts),
        )  # fmt: skip

    def _save_sharded(self, step: int, state: dict[str, Any]) -> Path:
        """Every rank's shard through DCP; the last save also holds the whole model (consolidated)."""
        d, config = self.dist, self.model.config
        state = {**state, "layout": "sharded", "world_size": d.world, "strategy": d.strategy}

        def write_main(tmp: Path, full: dict[str, torch.Tensor] | None) -> None:
            if full is not None and config.tie_word_embeddings:
                full.pop("lm_head.weight", None)
            weights = None if full is None else {k: v.contiguous() for k, v in full.items()}

            def extra(root: Path) -> None:
                st.write_state_json(root, state, self.counts)
                sharded.write_rng(root, st.rng_tensors())

            write_files(tmp, config, weights, self.tokenizer, None, extra)

        return sharded.save(
            self.out, d, step, self.model, self.optimizer, write_main, consolidate=step >= self.cfg.steps
        )


def _setup(
    model: HybridTransformerModel | None,
    model_config: ModelConfig,
    cfg: TrainConfig,
    data: Mapping[str, Sequence[Path]] | None,
    tokenizer: Encoder,
    out: Path,
    saved_state: dict[str, Any],
    say: Callable[[str], None],
    d: dd.Dist,
) -> _Run:
    """The model on its device (wrapped for DDP or FSDP2 under torchrun), the data mixture, the optimizer."""
    device = d.device
    precision = resolve_precision(device, cfg.precision, cfg.use_fp16)
    if model is None:
        torch.manual_seed(cfg.seed)
        model = HybridTransformerModel(model_config)
    model = model.to(device).train()
    model.gradient_checkpointing = cfg.gradient_checkpointing or model_config.gradient_checkpointing
    mixed = precision.dtype if precision.dtype == torch.bfloat16 else None  # FSDP2 all-gathers in bf16
    engine = dd.wrap(model, d, mixed)

    t0 = time.perf_counter()
    planned = int(saved_state.get("train_config", {}).get("steps", cfg.steps))  # a resume reads the same text
    mixture = build_mixture(
        data or {}, tokenizer, context=cfg.context, seed=cfg.seed, weights=cfg.mixture,
        total_tokens=0 if cfg.minutes else planned * cfg.tokens_per_step,
        max_bytes_per_language=cfg.max_bytes_per_language, val_fraction=cfg.val_fraction,
        bos_id=model_config.bos_token_id or 0,
    )  # fmt: skip
    data_summary = {lang: s.summary() for lang, s in mixture.streams.items()}
    saved_tokens = {k: v["train_tokens"] for k, v in saved_state.get("data", {}).items()}
    if saved_state and saved_tokens != {k: v["train_tokens"] for k, v in data_summary.items()}:
        log.warning(
            "the training data differ from the checkpoint's; the resumed run is not a bit-exact continuation"
        )
    summary = ", ".join(
        f"{k} {v['train_tokens']:,} tokens (w={mixture.weights[k]:.2f})" for k, v in data_summary.items()
    )
    say(f"data: {summary} [{time.perf_counter() - t0:.1f}s]")
    if d.launched:
        say(f"{d.world} process(es), {d.strategy}, {device}: {cfg.batch_size // d.world} rows of each "
            f"{cfg.batch_size}-row micro-batch per rank")  # fmt: skip
    return _Run(
        cfg=cfg, model=model, optimizer=make_optimizer(model, cfg), precision=precision, mixture=mixture,
        tokenizer=tokenizer, out=out, data_summary=data_summary,
        counts=mixture.token_counts(model_config.vocab_size), dist=d, engine=engine,
    )  # fmt: skip


def _restore(run: _Run, resume: Path, saved_state: dict[str, Any]) -> None:
    """A resumed run's optimizer, RNG and GradScaler states, its step and its loss history."""
    if sharded.is_sharded(resume):  # any world size, 1 included
        sharded.load(resume, run.model, run.optimizer)
        st.restore_rng(sharded.read_rng(resume))
    else:
        if run.dist.launched and run.dist.strategy == "fsdp":
            raise RadonError(
                f"{resume}: a one-process checkpoint; --strategy fsdp resumes sharded checkpoints only "
                "(resume it with --strategy ddp, or start from its weights)"
            )
        tensors = st.read_optimizer_tensors(resume)
        st.restore_optimizer(run.optimizer, tensors, saved_state["param_groups"])
        st.restore_rng(tensors)
    if run.precision.scaler is not None and saved_state.get("scaler"):
        run.precision.scaler.load_state_dict(saved_state["scaler"])
    run.start = int(saved_state["step"])
    run.losses = [float(x) for x in saved_state.get("losses", [])][: run.start]
    run.val_losses = dict(saved_state.get("val_losses", {}))


def _loop(
    run: _Run, resume: Path | None, stop_after: int | None, progress: bool, say: Callable[[str], None]
) -> TrainResult:
    """Optimizer steps from ``run.start`` to the end, with validation, checkpoints and Ctrl-C handling."""
    cfg, model, precision, start = run.cfg, run.model, run.precision, run.start
    d = run.dist
    step_fn = _make_step(run.engine or model, run.optimizer, run.mixture, cfg, precision, d)
    if cfg.minutes and resume is None:
        cfg.steps = 10**9  # fixed after CALIBRATION_STEPS timed steps
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    last_ckpt: Path | None = resume if resume is not None and run.out.resolve() == resume.resolve() else None
    last_ckpt_step = start if last_ckpt is not None else -1
    if end <= start:
        raise RadonError(
            f"{resume}: already at step {start} of {cfg.steps}; nothing to train (raise --steps to continue)"
        )
    flag = {"stop": False}
    seconds, compile_seconds, step = 0.0, 0.0, start
    bar = _progress_bar(start, end, progress)
    threads_before = torch.get_num_threads()
    if cfg.threads and precision.device.type == "cpu":
        torch.set_num_threads(cfg.threads)  # restored when training ends
    try:
        with _graceful_interrupts(flag, say):
            while step < end:  # `end` is fixed after calibration with --minutes
                t = time.perf_counter()
                loss = _step_or_explain(step_fn, step, cfg)
                dt = time.perf_counter() - t
                if step == start and cfg.compile:
                    compile_seconds = dt
                else:
                    seconds += dt
                run.losses.append(loss)
                if cfg.minutes and resume is None and step == start + CALIBRATION_STEPS:
                    per_step = seconds / (CALIBRATION_STEPS + (0 if cfg.compile else 1))
                    _steps_for_budget(cfg, step, per_step, compile_seconds)
                    cfg.steps = dd.broadcast_int(cfg.steps, d)  # rank 0's timing fixes it for all
                    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
                    bar.total = end
                    say(f"--minutes {cfg.minutes:g}: {cfg.steps} steps at {per_step:.2f} s/step")
                done = step + 1
                bar.update(1)
                bar.set_postfix(
                    loss=f"{loss:.3f}", lr=f"{lr_at(step, cfg):.2e}",
                    tok_s=f"{(done - start) * cfg.tokens_per_step / max(seconds + compile_seconds, 1e-9):.0f}",
                    refresh=False,
                )  # fmt: skip
                if not math.isfinite(loss):
                    raise RadonError(
                        f"step {done}: the loss is {loss}; lower --lr or use --precision fp32. "
                        f"Last good checkpoint: {last_ckpt or 'none written'}"
                    )
                if (cfg.eval_every and done % cfg.eval_every == 0) or done == end:
                    val = validation_losses(model, run.mixture, cfg, precision)
                    run.val_losses[str(done)] = val
                    line = ", ".join(f"{k} {v:.3f}" for k, v in val.items())
                    (bar.write if progress else say)(f"step {done}/{end}: train {loss:.3f}, val {line}")
                flag["stop"] = dd.any_rank(flag["stop"], d)
                if flag["stop"] and done < end:
                    last_ckpt, last_ckpt_step = run.save(done), done
                    raise TrainingInterrupted(
                        f"interrupted at step {done} of {cfg.steps}; saved a resumable checkpoint: {last_ckpt}. "
                        f"Continue with: radon train --resume {last_ckpt} --out {last_ckpt}"
                    )
                if cfg.save_every and done % cfg.save_every == 0 and done < end:
                    last_ckpt, last_ckpt_step = run.save(done), done
                step = done
            last_ckpt, last_ckpt_step = run.save(end), end
    except KeyboardInterrupt:
        where = f"{last_ckpt} (step {last_ckpt_step})" if last_ckpt is not None else "none was written"
        raise TrainingInterrupted(
            f"aborted at step {step}; nothing half-written was left. Last good checkpoint: {where}"
        ) from None
    finally:
        bar.close()
        torch.set_num_threads(threads_before)
    return TrainResult(
        checkpoint=last_ckpt, step=end, total_steps=cfg.steps, losses=run.losses, val_losses=run.val_losses,
        seconds=seconds, tokens=(end - start) * cfg.tokens_per_step, precision=precision.name,
        compile_seconds=compile_seconds, data=run.data_summary,
    )  # fmt: skip


def _step_or_explain(step_fn: Callable[[int], float], step: int, cfg: TrainConfig) -> float:
    """One step; running out of memory is the flags' doing, so say which flags, not a traceback."""
    try:
        return step_fn(step)
    except (MemoryError, torch.OutOfMemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError | torch.OutOfMemoryError) and "allocate" not in str(exc):
            raise
        raise RadonError(
            f"step {step + 1}: out of memory with --batch-size {cfg.batch_size} x --context {cfg.context} "
            f"tokens per micro-batch; lower --batch-size or --context (--grad-accum keeps the tokens per step)"
        ) from None


def _make_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    mixture: Mixture,
    cfg: TrainConfig,
    precision: Precision,
    d: dd.Dist | None = None,
) -> Callable[[int], float]:
    """One optimizer step: accumulate, unscale, clip, step. Returns the step's mean training loss.

    Under torchrun ``model`` is the DDP or FSDP2 engine, each rank takes its rows of every global
    micro-batch, and the loss returned is the mean over ranks (the 1-process loss).
    """
    d = d or dd.Dist()

    def loss_of(x: torch.Tensor) -> torch.Tensor:
        with precision.autocast():
            return model(x, labels=x, use_cache=False).loss

    chosen: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "fn": torch.compile(loss_of) if cfg.compile else loss_of
    }

    def forward(x: torch.Tensor) -> torch.Tensor:
        try:
            return chosen["fn"](x)
        except Exception as exc:  # inductor needs a C++ compiler; without one, train eagerly
            if chosen["fn"] is loss_of:
                raise
            log.warning(
                "torch.compile failed (%s); training without it", str(exc).strip().splitlines()[0][:200]
            )
            chosen["fn"] = loss_of
            return loss_of(x)

    params = [p for group in optimizer.param_groups for p in group["params"]]
    scaler = precision.scaler

    def step(s: int) -> float:
        set_lr(optimizer, lr_at(s, cfg))
        total = torch.zeros((), device=precision.device)
        for micro in range(cfg.grad_accum):
            x = dd.rows_of(mixture.batch(s, micro, cfg.batch_size), d).to(precision.device, non_blocking=True)
            with dd.no_sync(model, d, last=micro == cfg.grad_accum - 1):
                loss = forward(x) / cfg.grad_accum
                (scaler.scale(loss) if scaler is not None else loss).backward()
            total += loss.detach()
        if scaler is not None:
            scaler.unscale_(optimizer)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(dd.mean(total, d))

    return step


def _steps_for_budget(cfg: TrainConfig, step: int, step_seconds: float, compile_seconds: float) -> int:
    """Total steps that fit ``cfg.minutes`` at the measured speed; fixed once, then recorded."""
    left = cfg.minutes * 60 - compile_seconds - step_seconds * (step + 1)
    cfg.steps = max(step + 1, step + 1 + int(left / max(step_seconds, 1e-9)))
    return cfg.steps


def _tokenizer_vocab(tokenizer: Any) -> int | None:
    for attr in ("vocab_size", "get_vocab_size"):
        value = getattr(tokenizer, attr, None)
        if callable(value):
            value = value()
        if isinstance(value, int):
            return value
    return None


def _progress_bar(start: int, end: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=end, initial=start, unit="step", disable=not enabled, dynamic_ncols=True, smoothing=0.1,
        mininterval=1.0, desc="train",
    )  # fmt: skip
