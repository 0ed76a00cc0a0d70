"""Training memory per GPU from a config alone (no torch), for ``radon info CONFIG --train``.

Five parts, in bytes per GPU (docs/model.md, "Training memory", writes the formulas down):

- **parameters**: the fp32 master weights. Mixed precision keeps them in fp32 as torch's recipes do
  (AMP's autocast under DDP; FSDP2's ``MixedPrecisionPolicy(param_dtype=bf16|fp16, reduce_dtype=fp32)``
  keeps the sharded parameters in fp32). FSDP shards them over the GPUs; DDP replicates them.
- **gradients**: fp32, the parameters' dtype, sharded or replicated likewise. DDP adds its all-reduce
  buckets, a second fp32 copy of the gradients (torch's default ``gradient_as_bucket_view=False``).
- **optimizer state**: AdamW's two fp32 moments (8 bytes per parameter); bitsandbytes' AdamW8bit keeps
  them in 8 bits (2 bytes per parameter) plus one fp32 absmax per block of 256 values for each, and fp32
  moments for tensors under 4,096 values (``min_8bit_size``: norms and biases of small models).
- **activations**: what autograd saves for the backward pass, counted tensor by tensor from
  ``radon/model.py`` (``activation_bytes_per_token`` below), times micro-batch x context.
- **working memory**: buffers that live only for part of a step: FSDP2's unsharded parameters (the
  root module's, held from the forward to the backward, and two blocks', the current and the
  prefetched one) and one block's unsharded gradients; under DDP with autocast, the bf16/fp16 copies of
  the Linear weights that autocast makes and the backward keeps; torch's foreach AdamW allocates one
  fp32 temporary per parameter (``sqrt(exp_avg_sq)``) inside ``optimizer.step()``.

The total is the peak of live tensors, the larger of two moments. In the backward pass a layer's
activations are freed as its gradients are made, so with both spread over the layers their sum is
largest at one end: parameters + optimizer state + max(activations, gradients) + the working buffers.
In ``optimizer.step()``: parameters + optimizer state + gradients + the step's temporary. DDP's buckets
live throughout. What the allocator keeps on top (CUDA's caching allocator, glibc's heap) is not
counted: docs/model.md ("Training memory") measures both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from radon.config import ModelConfig
from radon.errors import RadonError
from radon.info import count_parameters, human_bytes, human_count, vector_tensors

STRATEGIES = ("ddp", "fsdp")
DTYPES = {"fp32": 4, "bf16": 2, "fp16": 2}  # bytes of the compute dtype
# state bytes per parameter: AdamW's two fp32 moments; bitsandbytes' AdamW8bit two uint8 moments with an
# fp32 absmax per 256 values each, for tensors of at least BNB_MIN_8BIT values (smaller ones: fp32)
OPTIMIZERS = {"adamw": 8.0, "adamw8bit": 2.0 + 8.0 / 256}
BNB_MIN_8BIT = 4096  # bitsandbytes' min_8bit_size
FOREACH_TEMP = 4  # torch's _multi_tensor_adamw: one fp32 sqrt(exp_avg_sq) per parameter during step()
PREFETCH_BLOCKS = 2  # FSDP2: the block running and the one prefetched


@dataclass(frozen=True)
class TrainSetup:
    """How a run trains, as ``radon train`` / ``torchrun`` take it."""

    gpus: int = 1
    strategy: str = "ddp"
    dtype: str = "bf16"
    optim: str = "adamw"
    micro_batch: int = 1  # sequences per GPU per forward pass
    context: int = 2048  # tokens per sequence
    checkpointing: bool = False
    device: str = "cuda"  # dropout masks: 1-byte on CUDA (native_dropout), the input's dtype on the CPU

    def check(self) -> None:
        """Refuse a setup by the flag that is wrong."""
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or self.gpus < 1:
            raise RadonError(f"--gpus: must be an integer >= 1, got {self.gpus!r}")
        if self.strategy not in STRATEGIES:
            raise RadonError(f"--strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.dtype not in DTYPES:
            raise RadonError(f"--dtype: {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.optim not in OPTIMIZERS:
            raise RadonError(f"--optim: {self.optim!r} is not one of {', '.join(OPTIMIZERS)}")
        if (
            isinstance(self.micro_batch, bool)
            or not isinstance(self.micro_batch, int)
            or self.micro_batch < 1
        ):
            raise RadonError(f"--micro-batch: must be an integer >= 1, got {self.micro_batch!r}")
        if isinstance(self.context, bool) or not isinstance(self.context, int) or self.context < 1:
            raise RadonError(f"--context: must be an integer >= 1, got {self.context!r}")

    @property
    def mixed(self) -> bool:
        return self.dtype != "fp32"


def activation_bytes_per_token(cfg: ModelConfig, setup: TrainSetup, arch: str | None = None) -> float:
    """Bytes that one block saves for the backward pass, per token, read off ``radon/model.py``.

    h hidden, q = heads x head_dim, k = kv heads x head_dim, i intermediate, n heads, c the compute
    dtype's bytes (4 in fp32, 2 in bf16/fp16). The Mistral stack (RMSNorm, RoPE, SwiGLU) keeps:

    - each RMSNorm: fp32 ``x`` (kept by ``pow`` and ``x * rsqrt``), the normalised ``y`` (kept by
      ``weight * y``) and the output the next Linear keeps: 3 x 4h in fp32; under autocast (DDP) the
      output is not kept but its half-precision copy is, 4h + 4h + 2h; with half-precision weights
      (FSDP2's policy) ``x.float()`` is kept, then y and the output in half: 4h + 2h + 2h. Plus
      its fp32 ``rsqrt`` (4 bytes);
    - qkv's output c(q + 2k) (SDPA's v is a view of it), RoPE's outputs c(q + k) (``x * cos`` keeps only
      cos, shared by every block), SDPA's output c*q (the input ``out`` keeps) and its fp32 log-sum-exp 4n;
    - fc_in's output [gate|up] 2c*i, silu(gate) c*i and silu(gate) * up c*i (fc_out's input).

    GPT-2's stack (LayerNorm keeps its input, mean and rstd; no RoPE; GELU keeps fc_in's output) keeps
    2 x (LayerNorm) + c(q + 2k) + c*q + 4n + 2c*i. Dropout adds a mask per element (2h per block when ``dropout``
    > 0): 1 byte on CUDA, the input's dtype on the CPU. Attention dropout is assumed to run in a fused kernel (flash or memory-
    efficient SDPA on CUDA), which keeps only its RNG state. tests/cli/test_info_train.py checks these
    formulas against the tensors autograd actually saves (``saved_tensors_hooks``).
    """
    arch = arch or cfg.architectures[-1]
    h, i, n = cfg.hidden_size, int(cfg.intermediate_size or 0), cfg.num_attention_heads  # set once validated
    q, k = cfg.q_size, cfg.kv_heads_for(arch) * (cfg.q_size // n)
    c = DTYPES[setup.dtype]
    half_weights = setup.mixed and setup.strategy == "fsdp"  # FSDP2: the block's weights are half
    autocast = setup.mixed and not half_weights  # DDP / one process: fp32 weights under autocast
    if arch == "gpt2":  # LayerNorm: input + output (or the output's half copy), and fp32 mean, rstd
        norm = (4 + 4) * h if not setup.mixed else (4 + c) * h if autocast else 2 * c * h
        stats = (
            2 * c if half_weights and setup.device == "cpu" else 8
        )  # mean, rstd: fp32 but on a CPU in half
        block = 2 * (norm + stats) + c * (q + 2 * k) + c * q + 4 * n + 2 * c * i
    else:
        norm = 3 * 4 * h if not setup.mixed else (4 + 4 + c) * h if autocast else (4 + 2 * c) * h
        block = 2 * (norm + 4) + c * (q + 2 * k) + c * (q + k) + c * q + 4 * n + 4 * c * i
    dropout = 2 * h * (1 if setup.device == "cuda" else c) if cfg.dropout > 0 else 0
    return float(block + dropout)


def head_bytes_per_token(cfg: ModelConfig, setup: TrainSetup) -> float:
    """The final norm, the logits and the loss, per token. The training step keeps only the loss, so the
    logits are freed after the forward pass; cross-entropy keeps its fp32 log-softmax (4V), and the
    backward pass makes the log-softmax's gradient (4V) and the sliced logits' (4V, fp32: the loss
    upcasts; plus a compute-dtype copy under mixed precision) before the first block's."""
    c, v, h = DTYPES[setup.dtype], cfg.vocab_size, cfg.hidden_size
    half = c if setup.mixed else 0
    rope = (
        0
        if cfg.architectures[-1] == "gpt2"
        else 2
        * (cfg.q_size // cfg.num_attention_heads)
        * (c if setup.mixed and setup.strategy == "fsdp" else 4)
    )
    return float(3 * h * 4 + h * half + (12 + half) * v + rope)


def small_tensor_parameters(cfg: ModelConfig) -> int:
    """Parameters held in tensors of fewer than ``BNB_MIN_8BIT`` values: the norms' weights (and GPT-2's
    LayerNorm biases) and the Linear biases, tensor by tensor as ``radon/model.py`` makes them."""
    small = 0
    for arch in cfg.architectures:
        norm, biases = vector_tensors(cfg, arch)
        small += cfg.num_layers * sum(n for n in 2 * norm + biases if n < BNB_MIN_8BIT)
        small += sum(n for n in norm if n < BNB_MIN_8BIT)  # the stack's final norm
    return small


def estimate(cfg: ModelConfig, setup: TrainSetup) -> dict[str, Any]:
    """Bytes per GPU of training ``cfg`` as ``setup`` says; see the module docstring for each part."""
    setup.check()
    n = count_parameters(cfg)
    total = n.total
    N, c = setup.gpus, DTYPES[setup.dtype]
    shard = N if setup.strategy == "fsdp" else 1
    params = 4 * total / shard
    grads = 4 * total / shard
    optim = OPTIMIZERS[setup.optim] * total / shard
    if setup.optim == "adamw8bit":  # the small tensors (norms, biases) keep fp32 moments
        small = small_tensor_parameters(cfg)
        optim = (OPTIMIZERS["adamw8bit"] * (total - small) + OPTIMIZERS["adamw"] * small) / shard
    buckets = 4 * total if setup.strategy == "ddp" and N > 1 else 0.0

    tokens = setup.micro_batch * setup.context
    per_layer = activation_bytes_per_token(cfg, setup)
    layers = cfg.num_layers
    if setup.checkpointing:  # each block keeps its input; the backward recomputes one block at a time
        residual = c if (setup.mixed and setup.strategy == "fsdp") else 4
        saved = tokens * (layers * cfg.hidden_size * residual + per_layer)
    else:
        saved = tokens * layers * per_layer
    activations = saved + tokens * (head_bytes_per_token(cfg, setup) + cfg.hidden_size * 4)

    block = n.layers / max(layers * len(cfg.architectures), 1)
    root = total - n.layers  # embedding, lm head, positions, final norms: FSDP2's root group
    working = 0.0
    if setup.strategy == "fsdp":
        gathered = c if setup.mixed else 4
        working = gathered * (root + PREFETCH_BLOCKS * block) + gathered * block  # + one block's grads
    elif setup.mixed:
        working = c * n.matmul_weights  # autocast's half-precision weights, saved for the backward
    step_temp = FOREACH_TEMP * total / shard if setup.optim == "adamw" else 0.0
    backward = max(activations, grads) + working
    step = grads + step_temp
    peak = params + optim + buckets + max(backward, step)
    return {
        "setup": asdict(setup),
        "parameters_count": total,
        "bytes": {
            "parameters": int(params),
            "gradients": int(grads + buckets),
            "optimizer": int(optim),
            "activations": int(activations),
            "working": int(working),
            "optimizer_step_temp": int(step_temp),
            "total": int(peak),
        },
        "activations_per_token_per_layer": per_layer,
        "ddp_buckets": int(buckets),
    }


def format_train_report(report: dict[str, Any], source: str) -> str:
    s, b = report["setup"], report["bytes"]
    ck = ", activation checkpointing" if s["checkpointing"] else ""
    lines = [
        f"{source}: training memory per GPU, {s['gpus']} GPU(s), {s['strategy']}, {s['dtype']}, {s['optim']}, "
        f"micro-batch {s['micro_batch']} x {s['context']:,} tokens{ck}",
        f"parameters        {human_count(report['parameters_count'])} params, {human_bytes(b['parameters'])}"
        + (" (fp32 master weights)" if s["dtype"] != "fp32" else ""),
        f"gradients         {human_bytes(b['gradients'])}"
        + (f" (incl. DDP buckets {human_bytes(report['ddp_buckets'])})" if report["ddp_buckets"] else ""),
        f"optimizer state   {human_bytes(b['optimizer'])}",
        f"activations       {human_bytes(b['activations'])}",
        f"working buffers   {human_bytes(b['working'])}"
        + (
            f"; optimizer step temporary {human_bytes(b['optimizer_step_temp'])}"
            if b["optimizer_step_temp"]
            else ""
        ),
        f"total per GPU     {human_bytes(b['total'])}  (peak of live tensors; the allocator's cache comes on top, docs/model.md)",
    ]
    return "\n".join(lines)
