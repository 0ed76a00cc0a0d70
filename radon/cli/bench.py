"""``radon bench``: one verb, two exclusive modes.

- ``radon bench ARTIFACT [--compare]``: the runtime's speed against peers (``radon.bench.runtime``,
  imported only when this mode runs);
- ``radon bench --architectures CONFIG_A CONFIG_B``: the seed's GPT-2 against Mistral comparison in
  PyTorch (``radon.bench.architectures``).
"""

from __future__ import annotations

import json as jsonlib
import re
from pathlib import Path
from typing import Annotated, Literal

from radon.cli._app import Opt

AT_LEAST_1 = Opt(ge=1)  # radon.cli._app.check_bounds: exit 2 naming the flag
DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def bench(
    targets: Annotated[list[str], Opt(metavar="TARGET")],
    *,
    architectures: bool = False,
    compare: bool = False,
    batch: Annotated[int, AT_LEAST_1] = 1,
    prompt_tokens: Annotated[int, AT_LEAST_1] = 128,
    new_tokens: Annotated[int, AT_LEAST_1] = 128,
    runs: Annotated[int, AT_LEAST_1] = 3,
    rounds: Annotated[int, AT_LEAST_1] = 2,
    device: str = "cpu",
    dtype: Literal["float32", "float16", "bfloat16"] = "float32",
    threads: Annotated[int, Opt(ge=0)] = 0,
    kv_context: Annotated[int, AT_LEAST_1] = 32768,
    reference: Annotated[Path | None, Opt(metavar="CKPT")] = None,
    spinning: str = "on",
    cache: str | None = None,
    huge_pages: str = "on",
    json: bool = False,
) -> int:
    """Benchmark an artifact's runtime speed, or two model architectures in PyTorch.

    radon bench ARTIFACT... [--compare]           the edge runtime on exported artifacts (fp32 int8 int4 ...)
    radon bench --architectures CONFIG_A CONFIG_B GPT-2 vs Mistral (the seed's benchmark_mistral)

    A CONFIG is a file or preset, optionally with overrides: small:model_type=mistral,tie_word_embeddings=true
    is the Mistral twin of the seed's GPT-2 `small`. Each architecture is measured in its own process
    with random weights: prefill and decode tokens/s, weight bytes, KV-cache bytes, peak memory.

    Args:
        targets: ARTIFACT folders (one, or several of one checkpoint: each runs as an engine in the same rounds, and --compare adds each precision's peers), or with --architectures CONFIG_A CONFIG_B.
        architectures: compare two model configs in PyTorch (exclusive with an ARTIFACT and --compare).
        compare: with an ARTIFACT, also run the peers (optimum, onnxruntime-genai, llama.cpp).
        batch: sequences per batch.
        prompt_tokens: prompt length in tokens.
        new_tokens: tokens generated per sequence.
        runs: timed runs per process (the best is reported for --architectures; see radon.bench.runtime).
        rounds: alternating A/B processes per config (--architectures).
        device: cpu, cuda or cuda:N (--architectures).
        dtype: weights and activations dtype (--architectures).
        threads: torch threads (0 = torch's default).
        kv_context: context for the computed fp16 KV-cache column (--architectures).
        reference: the checkpoint the peers are built from (ARTIFACT mode; default: found beside it).
        spinning: on or off: onnxruntime's idle threads spin-wait (RADON's and optimum's; genai and llama.cpp spin by their own defaults); on,off adds a RADON engine without spinning, an A/B (ARTIFACT mode).
        cache: the runtime's KV engine, shared (ort lowering with a window), ring or copy; comma-separated runs an A/B (ARTIFACT mode).
        huge_pages: on or off: back RADON's weights with transparent huge pages; on,off runs an A/B (ARTIFACT mode).
        json: print JSON instead of a Markdown table.
    """
    from radon.errors import RadonError

    if architectures:
        if compare:
            raise RadonError(
                "--compare belongs to `radon bench ARTIFACT`; it does not apply to --architectures"
            )
        if reference is not None or spinning != "on" or cache is not None or huge_pages != "on":
            raise RadonError(
                "--reference, --spinning, --cache and --huge-pages belong to `radon bench ARTIFACT`"
            )
        if not DEVICE.fullmatch(device):
            raise RadonError(f"--device: expected cpu, cuda or cuda:N, got {device!r}")
        if len(targets) != 2:
            raise RadonError(
                f"--architectures takes exactly two configs (CONFIG_A CONFIG_B), got {len(targets)}"
            )
        from radon.bench.architectures import BenchSettings, format_report
        from radon.bench.architectures import compare as compare_architectures

        settings = BenchSettings(batch=batch, prompt=prompt_tokens, new_tokens=new_tokens, runs=runs, rounds=rounds,
                                 device=device, dtype=dtype, threads=threads, kv_context=kv_context)  # fmt: skip
        results = compare_architectures(targets[0], targets[1], settings)
        if json:
            print(jsonlib.dumps({"settings": settings.__dict__, "results": results}, indent=2))
        else:
            print(format_report(results, settings))
        return 0
    given = {"dtype": dtype, "device": device, "rounds": rounds, "kv_context": kv_context}
    stray = [f"--{k.replace('_', '-')}" for k, v in given.items() if v != (bench.__kwdefaults__ or {})[k]]
    if stray:
        raise RadonError(f"{', '.join(stray)}: only for `radon bench --architectures`, not ARTIFACT mode")
    import importlib

    try:
        runtime_bench = importlib.import_module("radon.bench.runtime")
    except ModuleNotFoundError as exc:
        if exc.name in ("radon.runtime", "radon.bench.runtime"):
            raise RadonError(
                "radon bench ARTIFACT: the runtime benchmark (radon.bench.runtime) is not in this build yet; "
                "`radon bench --architectures CONFIG_A CONFIG_B` is available"
            ) from None
        raise
    if cache is not None:
        from radon.runtime.engine import ENGINES

        unknown = [c for c in cache.split(",") if c not in ENGINES]
        if unknown:
            raise RadonError(
                f"--cache: expected {', '.join(ENGINES)} (comma-separated: an A/B), got {unknown[0]!r}"
            )
    return int(
        runtime_bench.run(
            [Path(t) for t in targets],
            compare=compare,
            batch=batch,
            prompt_tokens=prompt_tokens,
            new_tokens=new_tokens,
            runs=runs,
            threads=threads,
            json=json,
            reference=reference,
            spinning=spinning,
            cache=cache,
            huge_pages=huge_pages,
        )  # fmt: skip
        or 0
    )
