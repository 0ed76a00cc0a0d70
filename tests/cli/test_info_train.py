"""``radon info CONFIG --train``: the activation formula against the tensors autograd saves, the
sharding and optimizer arithmetic, and bad flags refused by name."""

from __future__ import annotations

import json

import pytest
import torch

from radon.cli import main
from radon.config import ModelConfig
from radon.info import count_parameters
from radon.model import AttentionMask, Block, rotary_cos_sin
from radon.train_memory import TrainSetup, activation_bytes_per_token, estimate

B, T = 2, 20  # B*T = 40: no tensor dimension below collides with 96 (h), 160 (i) or 300 (vocab)
MISTRAL = {"model_type": "mistral", "vocab_size": 300, "hidden_size": 96, "num_layers": 2,
           "num_attention_heads": 6, "num_kv_heads": 2, "intermediate_size": 160,
           "max_position_embeddings": 128, "sliding_window": 128, "dropout": 0.0, "attention_dropout": 0.0}  # fmt: skip
GPT2 = {**MISTRAL, "model_type": "gpt2", "num_kv_heads": 6, "sliding_window": None, "dropout": 0.1}


def saved_bytes(cfg: ModelConfig, arch: str, mode: str) -> int:
    """Bytes of the distinct storages that autograd saves in one block's forward (weights excluded:
    parameters, and the half-precision copies autocast makes of them, are counted elsewhere)."""
    torch.manual_seed(0)
    block = Block(cfg, arch).train()
    dtype = torch.float32
    if mode == "fsdp":  # FSDP2's mixed-precision policy: the block runs in bf16
        block, dtype = block.to(torch.bfloat16), torch.bfloat16
    x = torch.randn(B, T, cfg.hidden_size, dtype=dtype, requires_grad=True)
    rope = None
    if arch != "gpt2":
        rope = rotary_cos_sin(torch.arange(T).expand(B, T), cfg.head_dim, cfg.rope_theta, dtype)
    skip = {p.untyped_storage().data_ptr() for p in block.parameters()}
    skip |= {t.untyped_storage().data_ptr() for t in rope or ()}  # shared by every block: the head's
    weight_shapes = {tuple(p.shape) for p in block.parameters()} | {
        tuple(p.shape)[::-1] for p in block.parameters()
    }
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        autocast_weight = mode == "ddp" and t.dtype == torch.bfloat16 and tuple(t.shape) in weight_shapes
        if s.data_ptr() not in skip and not autocast_weight:
            seen[s.data_ptr()] = s.nbytes()
        return t

    ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "ddp")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), ctx:
        block(x, rope, AttentionMask(dense=None, is_causal=True), None, 0, False)
    return sum(seen.values())


@pytest.mark.parametrize("mode", ["fp32", "ddp", "fsdp"])
@pytest.mark.parametrize("arch", ["mistral", "gpt2"])
def test_activation_formula_is_what_autograd_saves(arch: str, mode: str) -> None:
    cfg = ModelConfig.from_dict(MISTRAL if arch == "mistral" else GPT2)
    setup = TrainSetup(dtype="fp32" if mode == "fp32" else "bf16", strategy="fsdp" if mode == "fsdp" else "ddp",
                       device="cpu")  # fmt: skip
    assert saved_bytes(cfg, arch, mode) == activation_bytes_per_token(cfg, setup, arch) * B * T


def test_sharding_and_optimizer_arithmetic() -> None:
    cfg = ModelConfig.from_json("mistral_7b")
    p = count_parameters(cfg).total
    one = estimate(cfg, TrainSetup(gpus=1, strategy="ddp", dtype="fp32", optim="adamw"))["bytes"]
    assert (one["parameters"], one["gradients"], one["optimizer"]) == (4 * p, 4 * p, 8 * p)
    ddp = estimate(cfg, TrainSetup(gpus=8, strategy="ddp", dtype="bf16"))["bytes"]
    assert ddp["parameters"] == 4 * p and ddp["gradients"] == 8 * p  # replicated, plus DDP's buckets
    fsdp = estimate(cfg, TrainSetup(gpus=8, strategy="fsdp", dtype="bf16"))["bytes"]
    assert (fsdp["parameters"], fsdp["optimizer"]) == (int(4 * p / 8), int(8 * p / 8))
    bnb = estimate(cfg, TrainSetup(gpus=8, strategy="fsdp", dtype="bf16", optim="adamw8bit"))["bytes"]
    # 7B's norms hold 4,096 values each: no tensor is under bitsandbytes' min_8bit_size
    assert bnb["optimizer"] == int((2 + 8 / 256) * p / 8) and bnb["optimizer_step_temp"] == 0
    plain = estimate(cfg, TrainSetup(context=4096))["bytes"]["activations"]
    ckpt = estimate(cfg, TrainSetup(context=4096, checkpointing=True))["bytes"]["activations"]
    assert ckpt < plain / 4


def test_cli_train_json(capsys: pytest.CaptureFixture) -> None:
    argv = ["info", "mistral_2b", "--train", "--gpus", "8", "--strategy", "fsdp", "--dtype", "bf16",
            "--context", "4096", "--checkpointing", "--json"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["setup"]["gpus"] == 8 and report["bytes"]["total"] > report["bytes"]["optimizer"]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--gpus", "0"], "--gpus"),
        (["--strategy", "zero3"], "--strategy"),
        (["--dtype", "int8"], "--dtype"),
        (["--optim", "sgd"], "--optim"),
        (["--micro-batch", "0"], "--micro-batch"),
    ],
)
def test_bad_flags_refused_by_name(flags: list[str], named: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", "mistral_2b", "--train", *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
