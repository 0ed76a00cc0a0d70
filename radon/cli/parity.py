"""``radon parity``: compare an artifact with the PyTorch reference; non-zero exit past the thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from radon.cli._app import Opt


def parity(
    candidate: Annotated[Path, Opt(metavar="CANDIDATE")],
    *,
    reference: Annotated[Path, Opt(metavar="CKPT")],
    text: Annotated[list[Path] | None, Opt(metavar="FILE")] = None,
    json: bool = False,
    report: Annotated[Path | None, Opt(metavar="parity.md")] = None,
    max_tokens: int = 1024,
    context: int = 256,
    greedy_tokens: int = 16,
    threads: int | None = None,
) -> int:
    """Compare a candidate artifact with its reference checkpoint on held-out text.

    Reports max and mean |Δlogit|, top-1 agreement, mean KL, the perplexity of both and its relative
    change, and tie-aware greedy agreement on fixed prompts (one longer than the window). Each precision
    has its own thresholds (docs/export.md); exceeding one exits with status 1. A checkpoint without a
    tokenizer is compared on synthetic ids, and the report says so.

    Args:
        candidate: an artifact folder (radon_manifest.json + model.onnx), or a TensorRT engine folder
            written by `radon export trt` (needs the trt extra and a GPU).
        reference: the checkpoint folder it was exported from.
        text: held-out text files (default: the repository's eval texts when present, else a built-in sample).
        json: print the full result as JSON.
        report: also write a Markdown report here, with a |Δlogit| histogram PNG beside it.
        max_tokens: tokens per text file.
        context: tokens per forward pass.
        greedy_tokens: tokens generated per greedy prompt.
        threads: onnxruntime intra-op threads.
    """
    import json as jsonlib

    from radon.errors import RadonError
    from radon.export.parity import gate, run_parity
    from radon.export.parity_report import markdown, write_report

    for flag, value in (
        ("--max-tokens", max_tokens),
        ("--context", context),
        ("--greedy-tokens", greedy_tokens),
    ):
        if value < 2:
            raise RadonError(f"{flag}: must be >= 2, got {value}")
    options = {"max_tokens": max_tokens, "context": context, "greedy_tokens": greedy_tokens}
    from radon.export.trt.parity_candidate import is_engine_folder

    if is_engine_folder(candidate):
        result = _engine_parity(candidate, reference, text, options)
    else:
        result = run_parity(candidate, reference, texts=text, threads=threads, **options)
    if report is not None:
        write_report(result, report)
    if json:
        print(jsonlib.dumps(result.to_dict(), indent=2))
    else:
        print(markdown(result, None), end="")
        if report is not None:
            print(f"report: {report}")
    gate(result)
    return 0


def _engine_parity(engine: Path, reference: Path, texts: list[Path] | None, options: dict) -> object:
    """Parity of a TensorRT engine folder; the engine must have been built from this checkpoint's export."""
    from radon.checkpoint import load_model
    from radon.export.parity import compare
    from radon.export.trt.parity_candidate import EngineCandidate

    model = load_model(reference)
    candidate = EngineCandidate(engine)
    try:
        tok = reference / "tokenizer"
        return compare(
            candidate, model, texts=texts, tokenizer_dir=tok if tok.is_dir() else None,
            reference_name=str(reference), **options,
        )  # fmt: skip
    finally:
        candidate.close()
