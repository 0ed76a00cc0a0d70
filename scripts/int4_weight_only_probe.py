#!/usr/bin/env python
"""Rank 4-bit recipes on SmolLM2-135M by weight-only fake quantization (docs/quantization.md, "INT4:
searched scales and the attention-first prior").

Each variant rounds every Linear of the Hugging Face model (transformers, float32) with the GPTQ code of
``export/quantize/gptq.py`` on Hessians from the fp32 model over training text, keeps the units a rule
names at 8 bits (blocks of 32, symmetric), and reports KL and top-1 against the fp32 model per
language, with the bytes the weights would take (fp32 scales, 8-bit embedding). ``--ref renoised``
first gives every Linear back the rounding noise of the shipped Q4_1 GGUF (uniform, ±half a step per
block of 32, seed 0), so no quantizer is flattered by that grid. ``--text tune`` scores on training
text (where recipes are chosen); ``--text eval`` on the held-out texts (where they are reported).
``--cand HF_DIR`` scores other models of the same shape, for example llama.cpp's GGUFs after
``radon convert --from-gguf`` and ``--to-hf``. A benchmark, not a test: minutes on 2 cores; Hessians
and rounded weights are cached in ``--cache`` (safetensors, never pickle).

Variant: ``ALGO-BLOCK[+RULE...]``. ALGO: ``rtn``/``gptq``/``gptqm`` (searched scales)/``gptqo``/``gptqmo``
(act-order with static block scales) + ``s``/``a``
(symmetric/asymmetric). RULE: kinds ``q k v o g u d`` (q_proj ... down_proj) ``@`` ``all``, ``half``
(llama.cpp's use_more_bits layers) or layer numbers joined by dots.

    python scripts/int4_weight_only_probe.py --ref renoised --text tune \\
        --variants gptqs-64,gptqms-64,gptqms-64+qkv@all+d@0.1.2.11.28.29
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file as load_torch
from safetensors.torch import save_file as save_torch

from radon.export.parity_data import repo_root
from radon.export.quantize import gptq

HF = Path.home() / ".cache/radon/realmodel/smollm2-135m-instruct/hf"
EMBED_PARAMS_BYTES = 49152 * 576 * 9 / 8  # the tied table at 8 bits, blocks of 32, fp32 scales
KINDS = {
    "q": "q_proj",
    "k": "k_proj",
    "v": "v_proj",
    "o": "o_proj",
    "g": "gate_proj",
    "u": "up_proj",
    "d": "down_proj",
}


def data_root() -> Path:
    return Path(os.environ.get("RADON_DATA", repo_root().parent / "shared" / "data"))


def windows(path: Path, n: int, length: int, tok: Any, offset: float) -> list[torch.Tensor]:
    text = path.read_text(encoding="utf-8")
    out = []
    for i in range(n):
        start = int(len(text) * (offset + i / (n * 3)))
        ids = tok(text[start : start + length * 8], add_special_tokens=False)["input_ids"][:length]
        out.append(torch.tensor([ids]))
    return out


def linears(model: Any) -> list[tuple[str, torch.nn.Linear]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "lm_head" not in n]


def renoise(model: Any, seed: int = 0) -> None:
    """Uniform noise of ±half a step in every block of 32 inputs: the rounding Q4_1 removed."""
    rng = np.random.default_rng(seed)
    for _, m in linears(model):
        w = m.weight.data.numpy()
        n, k = w.shape
        b = w.reshape(n, k // 32, 32)
        step = (b.max(-1, keepdims=True) - b.min(-1, keepdims=True)) / 15
        b += (rng.random(b.shape, dtype=np.float32) - 0.5) * step
        m.weight.data = torch.from_numpy(b.reshape(n, k).copy())


def hessians(model: Any, samples: list[torch.Tensor]) -> dict[str, np.ndarray]:
    sums: dict[str, torch.Tensor] = {}
    hooks = []
    for name, m in linears(model):

        def hook(_mod: Any, inp: Any, _out: Any, name: str = name) -> None:
            x = inp[0].reshape(-1, inp[0].shape[-1]).double()
            sums[name] = sums[name] + x.T @ x if name in sums else x.T @ x

        hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        for s in samples:
            model(s)
    for h in hooks:
        h.remove()
    return {k: v.float().numpy() for k, v in sums.items()}


def four_bit(w_nk: torch.Tensor, h: np.ndarray, algo: str, block: int) -> torch.Tensor:
    w = w_nk.numpy().T.astype(np.float32)  # (K, N), as gptq.py stores it
    symmetric = algo.endswith("s")
    if algo[:-1] == "rtn":
        approx = gptq.rtn(w, block, symmetric)
    else:
        core = algo[:-1]  # gptq, gptqm (searched scales), gptqo / gptqmo (act-order, static blocks)
        q, scales, zeros = gptq.gptq_blocks(w, h, block, symmetric=symmetric, search=core in ("gptqm", "gptqmo"),
                                            act_order=core.endswith("o"))  # fmt: skip
        zp = gptq.ZERO_POINT if zeros is None else np.repeat(zeros, block, 0)
        approx = (q.astype(np.float32) - zp) * np.repeat(scales, block, 0)
    return torch.from_numpy(approx.T.copy())


def eight_bit(w: torch.Tensor) -> torch.Tensor:
    n, k = w.shape
    b = w.reshape(n, k // 32, 32)
    s = b.abs().amax(-1, keepdim=True) / 127
    s = torch.where(s > 0, s, torch.ones_like(s))
    return (torch.round(b / s).clamp(-127, 127) * s).reshape(n, k)


def more_bits(i: int, n: int) -> bool:
    """llama.cpp's use_more_bits: the first and last eighth of the layers and every third between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def kept(name: str, rules: list[str], layers: int) -> bool:
    i = int(name.split(".")[2])
    for rule in rules:
        what, _, where = rule.partition("@")
        if not any(name.endswith(KINDS[c]) for c in what):
            continue
        if where == "all" or (where == "half" and more_bits(i, layers)):
            return True
        if where[:1].isdigit() and i in {int(x) for x in where.split(".")}:
            return True
    return False


def scores(model: Any, ref: dict[str, list[torch.Tensor]], texts: dict[str, list[torch.Tensor]]) -> dict:
    out: dict[str, Any] = {}
    with torch.no_grad():
        for lang, samples in texts.items():
            kls, tops = [], []
            for r, s in zip(ref[lang], samples):
                logits = model(s).logits[0]
                p, q = torch.log_softmax(r, -1), torch.log_softmax(logits, -1)
                kls.append((p.exp() * (p - q)).sum(-1).mean().item())
                tops.append((r.argmax(-1) == logits.argmax(-1)).float().mean().item())
            out[lang] = [round(float(np.mean(kls)), 4), round(float(np.mean(tops)), 3)]
    out["mean_kl"] = round(float(np.mean([out[lang][0] for lang in texts])), 4)
    return out


def main() -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="")
    ap.add_argument("--cand", default="", help="comma-separated HF folders scored as they are")
    ap.add_argument("--ref", choices=("orig", "renoised"), default="renoised")
    ap.add_argument("--text", choices=("tune", "eval"), default="tune")
    ap.add_argument("--hf", type=Path, default=HF)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache/radon/int4_probe")
    ap.add_argument("--out", type=Path, help="append JSON lines here too")
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    a.cache.mkdir(parents=True, exist_ok=True)
    data = data_root()
    tok = AutoTokenizer.from_pretrained(a.hf)
    model = AutoModelForCausalLM.from_pretrained(a.hf, dtype=torch.float32).eval()
    if a.ref == "renoised":
        renoise(model)
    langs = ("en", "code", "ru")
    if a.text == "tune":
        texts = {lang: windows(data / f"{lang}.txt", 4, 256, tok, 0.6) for lang in langs}
    else:
        texts = {lang: windows(data / "eval" / f"{lang}_eval.txt", 4, 256, tok, 0.33) for lang in langs}
    with torch.no_grad():
        ref = {lang: [model(s).logits[0] for s in ss] for lang, ss in texts.items()}

    def emit(row: dict) -> None:
        print(json.dumps(row), flush=True)
        if a.out:
            with a.out.open("a") as f:
                f.write(json.dumps(row) + "\n")

    for cand in filter(None, a.cand.split(",")):
        other = AutoModelForCausalLM.from_pretrained(cand, dtype=torch.float32).eval()
        emit({"variant": cand, "ref": a.ref, "text": a.text, **scores(other, ref, texts)})
    variants = list(filter(None, a.variants.split(",")))
    if not variants:
        return 0
    cache = a.cache / f"hessians_{a.ref}.safetensors"
    if cache.exists():
        hs = load_numpy(cache)
    else:
        calib = [
            s for lang in ("ru", "en", "code") for s in windows(data / f"{lang}.txt", 21, 128, tok, 0.05)
        ]
        hs = hessians(model, calib)
        save_numpy(hs, str(cache))
    layers = model.config.num_hidden_layers
    orig = {n: m.weight.data.clone() for n, m in linears(model)}
    for variant in variants:
        base, *rules = variant.split("+")
        algo, block = base.split("-")[0], int(base.split("-")[1])
        bpw = 4 + 32 / block + (0 if algo.endswith("s") else 4 / block)
        nbytes = EMBED_PARAMS_BYTES
        wcache = a.cache / f"weights_{a.ref}_{base}.safetensors"
        rounded = load_torch(wcache) if wcache.exists() else {}
        for n, m in linears(model):
            if kept(n, rules, layers):
                m.weight.data = eight_bit(orig[n])
                nbytes += orig[n].numel() * 9 / 8
            else:
                if n not in rounded:
                    rounded[n] = four_bit(orig[n], hs[n], algo, block)
                m.weight.data = rounded[n]
                nbytes += orig[n].numel() * bpw / 8
        if not wcache.exists():
            save_torch(rounded, str(wcache))
        emit(
            {
                "variant": variant,
                "ref": a.ref,
                "text": a.text,
                "MB": round(nbytes / 1e6, 1),
                **scores(model, ref, texts),
            }
        )
        for n, m in linears(model):
            m.weight.data = orig[n].clone()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
