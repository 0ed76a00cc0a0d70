"""Measured peak memory of CPU training steps against ``radon info CONFIG --train``'s estimate.

    nice -n 10 python scripts/measure_train_memory.py [--checkpointing] [--micro-batch 2 --context 512 --steps 3]
        [--optim adamw|adamw8bit]

One child process per run (so each starts from a clean heap): it imports torch, runs a tiny warm-up
step so that torch's thread pools and kernels are loaded, records its RSS (the baseline), builds the
model of ``CONFIG`` (a ~290M-parameter Mistral below, fp32, no dropout), and runs the training loop's
step (``radon.train.loop``'s: loss, backward, ``clip_grad_norm_``, foreach AdamW from
``radon.train.optim.make_optimizer``, ``zero_grad(set_to_none=True)``) ``--steps`` times. Peak RSS
(``ru_maxrss``) minus the baseline is the measured figure; the estimate is
``radon.train_memory.estimate`` for 1 GPU, DDP (no buckets at one process), fp32, AdamW or, with
``--optim adamw8bit``, bitsandbytes' AdamW8bit (its CPU backend; the warm-up step loads it too). docs/model.md
("Training memory") holds the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from types import SimpleNamespace

CONFIG = {
    "model_type": "mistral",
    "vocab_size": 32000,
    "hidden_size": 1024,
    "num_layers": 20,
    "num_attention_heads": 16,
    "num_kv_heads": 4,
    "intermediate_size": 2816,
    "max_position_embeddings": 2048,
    "sliding_window": 4096,
    "dropout": 0.0,
    "attention_dropout": 0.0,
}


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child(micro_batch: int, context: int, steps: int, checkpointing: bool, optim: str) -> dict:
    import torch

    from radon.config import ModelConfig
    from radon.model import HybridTransformerModel
    from radon.train.optim import make_optimizer

    torch.manual_seed(0)
    recipe = SimpleNamespace(lr=1e-4, beta1=0.9, beta2=0.95, weight_decay=0.1, optim=optim)

    def train_step(model: HybridTransformerModel, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> float:
        loss = model(x, labels=x, use_cache=False).loss  # as radon.train.loop's loss_of
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    tiny = ModelConfig.from_dict({**CONFIG, "hidden_size": 64, "num_layers": 1, "num_attention_heads": 4,
                                  "num_kv_heads": 2, "intermediate_size": 96, "vocab_size": 500})  # fmt: skip
    warm = HybridTransformerModel(tiny).train()
    train_step(warm, make_optimizer(warm, recipe), torch.randint(0, 500, (micro_batch, 64)))
    del warm
    baseline = rss()
    cfg = ModelConfig.from_dict(CONFIG)
    model = HybridTransformerModel(cfg).train()
    model.gradient_checkpointing = checkpointing
    after_build = rss()
    optimizer = make_optimizer(model, recipe)
    x = torch.randint(0, cfg.vocab_size, (micro_batch, context))
    out: dict = {"baseline_rss": baseline, "weights_rss": after_build - baseline, "steps": []}
    for _ in range(steps):
        t = time.perf_counter()
        loss = train_step(model, optimizer, x)
        out["steps"].append({"loss": loss, "seconds": round(time.perf_counter() - t, 1),
                             "peak_minus_baseline": peak() - baseline, "rss_after": rss() - baseline})  # fmt: skip
    out["peak_minus_baseline"] = peak() - baseline
    out["parameters"] = model.num_parameters()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--micro-batch", type=int, default=2)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--checkpointing", action="store_true")
    ap.add_argument("--optim", choices=("adamw", "adamw8bit"), default="adamw")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.micro_batch, a.context, a.steps, a.checkpointing, a.optim)))
        return
    from radon.config import ModelConfig
    from radon.host import host_summary
    from radon.info import human_bytes
    from radon.train_memory import TrainSetup, estimate

    argv = [sys.executable, __file__, "--child", "--micro-batch", str(a.micro_batch), "--context", str(a.context),
            "--steps", str(a.steps), "--optim", a.optim] + (["--checkpointing"] if a.checkpointing else [])  # fmt: skip
    measured = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    setup = TrainSetup(gpus=1, strategy="ddp", dtype="fp32", optim=a.optim, micro_batch=a.micro_batch,
                       context=a.context, checkpointing=a.checkpointing)  # fmt: skip
    est = estimate(ModelConfig.from_dict(CONFIG), setup)
    b = est["bytes"]
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": host_summary(),
        # glibc: when set, freed tensors go back to the system and RSS follows the live tensors
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        "setup": est["setup"],
        "parameters": measured["parameters"],
        "estimate": b,
        "measured": measured,
        "ratio_measured_over_estimate": round(measured["peak_minus_baseline"] / b["total"], 3),
    }
    print(json.dumps(result, indent=2))
    print(f"measured peak - baseline {human_bytes(measured['peak_minus_baseline'])}, "
          f"estimate {human_bytes(b['total'])}; weights {human_bytes(measured['weights_rss'])} "
          f"(estimate {human_bytes(b['parameters'])})", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
