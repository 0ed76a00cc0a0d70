#!/usr/bin/env python3
"""SmolLM2-135M-Instruct against transformers, on held-out text: the real-model figures of docs/benchmarks.md.

For each held-out file (``--text``, default ``../shared/data/eval/{en,code,ru}_eval.txt``), a spread
window of ``--tokens`` tokens (tokenized by transformers' tokenizer from the HF folder) is scored by:

- transformers' ``LlamaForCausalLM`` on the HF folder (the reference);
- RADON's PyTorch model from ``radon convert --from-hf`` and from ``--from-gguf``;
- both ONNX lowerings (``ort`` and ``portable``, fp32, exported with ``--no-parity``: validation only);

and prints max |Δlogit| against transformers, plus 32 greedy tokens on three prompts compared by token
ids (transformers' ``generate`` against the artifact's ``DecoderSession.greedy``), and the fp32
artifact's size against the parameter bytes. Takes about 5 minutes on 2 cores.

    python scripts/realmodel_figures.py [--work DIR] [--tokens 512]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PROMPTS = ("The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,")
GREEDY = 32


def hf_greedy(model: torch.nn.Module, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """transformers' model, greedy by full recompute, never stopping at eos (as DecoderSession.greedy)."""
    out = ids
    with torch.no_grad():
        for _ in range(new_tokens):
            out = torch.cat([out, model(out).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out[0, ids.shape[1] :]


def main() -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from radon import load_model
    from radon.cli import main as cli
    from radon.export.parity_data import default_text_files
    from radon.host import host_summary
    from radon.realmodel import fetch, write_hf_folder
    from radon.runtime.session import DecoderSession

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--text", type=Path, nargs="*", default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="radon-realmodel-"))
    torch.manual_seed(0)
    model = fetch()
    hf_dir = write_hf_folder(model)
    tok = AutoTokenizer.from_pretrained(hf_dir)
    ref = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    files = args.text or [p for p in default_text_files() if p.stem in ("en_eval", "code_eval", "ru_eval")]
    windows = {}
    for f in files:
        ids = tok(f.read_text(encoding="utf-8")[:400_000]).input_ids
        start = len(ids) // 3
        windows[f.stem] = torch.tensor([ids[start : start + args.tokens]])
    print(f"host: {host_summary()}\nwork: {work}\n")

    def ref_logits(ids: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return ref(ids).logits[0].numpy()

    expected = {k: ref_logits(v) for k, v in windows.items()}
    rows = []
    for how in ("hf", "gguf"):
        ckpt = work / f"from_{how}"
        if not ckpt.is_dir():
            src = ["--from-hf", str(hf_dir)] if how == "hf" else ["--from-gguf", str(model.gguf)]
            assert cli(["convert", *src, "--out", str(ckpt)]) == 0
        ours = load_model(ckpt)
        with torch.no_grad():
            diffs = {
                k: float(np.abs(ours(v).logits[0].numpy() - expected[k]).max()) for k, v in windows.items()
            }
        rows.append((f"PyTorch reference, `convert --from-{how}`", diffs, None))
    params = sum(p.numel() for p in ref.parameters()) * 4
    for lowering in ("ort", "portable"):
        art = work / f"onnx_{lowering}"
        t = time.perf_counter()
        if not art.is_dir():
            assert cli(["export", "onnx", str(work / "from_hf"), "--out", str(art), "--attention", lowering,
                        "--no-parity", "--quiet"]) == 0  # fmt: skip
        seconds = time.perf_counter() - t
        session = DecoderSession(art)
        diffs = {
            k: float(np.abs(session.step(v.numpy()).logits[0] - expected[k]).max())
            for k, v in windows.items()
        }
        same = []
        for prompt in PROMPTS:
            ids = tok(prompt, return_tensors="pt").input_ids
            want = hf_greedy(ref, ids, GREEDY)
            got = session.greedy(ids.numpy(), GREEDY)[0, ids.shape[1] :]
            same.append(int((want.numpy() == got).sum()))
        size = sum(p.stat().st_size for p in art.glob("model.onnx*"))
        rows.append((f"ONNX `{lowering}` fp32 (export {seconds:.0f} s)", diffs,
                     f"greedy {'/'.join(map(str, same))} of {GREEDY}; {size / params:.3f}x the parameter bytes"))  # fmt: skip
    names = list(windows)
    print(f"| candidate | {' | '.join(f'max abs dlogit, {n} ({args.tokens} tok)' for n in names)} | notes |")
    print(f"|---|{'---|' * len(names)}---|")
    for label, diffs, note in rows:
        print(f"| {label} | {' | '.join(f'{diffs[n]:.2e}' for n in names)} | {note or ''} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
