"""The runtime benchmark of docs/benchmarks.md, end to end: the ~100M Mistral, its artifact, the peers.

    scripts/make_bench_venv.sh                    # once: .bench-venv and .venv-genai-build (+ llama.cpp opt-in)
    python scripts/bench_runtime.py --runs 5 --threads 2 [--spinning on,off] [--huge-pages on,off] [--json out.json] [--work DIR]

It builds configs/model_config_bench_100m.json with random weights (seed 0; random weights serve
speed only, DESIGN.md), saves it as a checkpoint, exports it (``ort`` lowering, fp32, no parity),
then runs ``radon bench ARTIFACT --compare`` on it: prompt 128, 128 new tokens, batch 1, every peer
that is installed, in interleaved rounds. The checkpoint and artifact are kept in ``--work``
(default ``~/.cache/radon/bench-runtime``) and reused; peer models are cached by ``radon bench`` itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "radon" / "bench-runtime")
    parser.add_argument("--config", default="bench_100m")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--cache", default=None, help="ring, copy, or ring,copy for an A/B")
    parser.add_argument(
        "--spinning", default="on", help="on, off, or on,off for an A/B (RADON's and optimum's threads)"
    )
    parser.add_argument("--huge-pages", default="on", help="on, off, or on,off for an A/B")
    parser.add_argument("--no-compare", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the full report here")
    args = parser.parse_args()

    import torch

    from radon import HybridTransformerModel, ModelConfig, save_checkpoint
    from radon.bench.runtime import run
    from radon.export.exporter import export_onnx

    ckpt = args.work / f"ckpt_{args.config}"
    art = args.work / f"{args.config}_ort"
    if not ckpt.is_dir():
        torch.manual_seed(0)
        save_checkpoint(HybridTransformerModel(ModelConfig.from_json(args.config)), ckpt)
    if not art.is_dir():
        export_onnx(ckpt, art, attention="ort", parity=False, threads=args.threads)
    kwargs = dict(compare=not args.no_compare, runs=args.runs, threads=args.threads, prompt_tokens=args.prompt_tokens,
                  new_tokens=args.new_tokens, cache=args.cache, spinning=args.spinning,
                  huge_pages=args.huge_pages, reference=ckpt)  # fmt: skip
    if args.json is None:
        return run(art, **kwargs)
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        run(art, json=True, **kwargs)
    report = json.loads(buffer.getvalue())
    args.json.write_text(json.dumps(report, indent=2))
    from radon.bench.report import markdown

    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
