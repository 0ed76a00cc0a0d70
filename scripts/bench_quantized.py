"""Decode speed of quantized RADON artifacts against fp32 and peers, in interleaved rounds (docs/quantization.md).

Each round times every candidate once, in turn, so that load on a shared machine spreads over all of
them; the table reports the median and the best round. A RADON candidate is an artifact folder, run by
``radon.runtime.session.DecoderSession`` (numpy in and out, the rolling buffer trimmed every step), or
``runtime:DIR``, run by the runtime's generator (``radon.runtime.load``: IO binding and its own cache;
``runtime-ring:DIR`` forces its Concat ring instead of the shared buffer); ``genai:DIR`` is an onnxruntime-genai model run by its own C++ loop (needs
``onnxruntime_genai``: run this script with the peer venv, ``.bench-venv/bin/python``). llama.cpp
(``gguf:FILE``) runs through ``llama-cpp-python`` when it is installed.

    .bench-venv/bin/python scripts/bench_quantized.py --rounds 7 --threads 2 \\
        fp32=ART_FP32 int8-dynamic=ART_I8D int8=ART_I8 int4=ART_I4 genai-int4=genai:GENAI_DIR

Prints a Markdown table (tok/s of decode, prompt 16, 64 new tokens; batch 1) and the load average.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from functools import partial

import numpy as np

PROMPT = 16


def radon_runner(folder: str, threads: int, new: int) -> Callable[[], float]:
    from radon.runtime.session import DecoderSession

    s = DecoderSession(folder, threads=threads, spinning=SPINNING)
    ids = np.arange(100, 100 + PROMPT, dtype=np.int64)[None]

    def run() -> float:
        out = s.step(ids)
        past, pos = out.presents, np.array([[PROMPT]])
        tok = out.logits[:, -1].argmax(-1)[:, None]
        t0 = time.perf_counter()
        for _ in range(new - 1):
            past = s.trim(past, s.keep)
            mask = np.ones((1, past[0][0].shape[2] + 1), np.int64)
            o = s.step(tok, mask, pos, past)
            past, tok, pos = o.presents, o.logits[:, -1].argmax(-1)[:, None], pos + 1
        return (new - 1) / (time.perf_counter() - t0)

    return run


SPINNING = False  # --spinning: RADON's onnxruntime threads spin-wait, as onnxruntime-genai's do by default


def runtime_runner(folder: str, threads: int, new: int, cache: str | None = None) -> Callable[[], float]:
    """``radon.runtime.load(folder)``: the runtime's generator (IO binding, its own KV cache), greedy."""
    import radon.runtime

    gen = radon.runtime.load(folder, threads=threads, cache=cache, spinning=SPINNING)
    ids = np.arange(100, 100 + PROMPT, dtype=np.int64)[None]

    def run() -> float:
        times = [e.time for e in gen.stream(ids, new, ignore_eos=True)]
        return (len(times) - 1) / (times[-1] - times[0])

    return run


def genai_runner(folder: str, threads: int, new: int) -> Callable[[], float]:
    import onnxruntime_genai as og

    model = og.Model(folder)
    ids = np.arange(100, 100 + PROMPT, dtype=np.int32)

    def run() -> float:
        p = og.GeneratorParams(model)
        p.set_search_options(max_length=PROMPT + new, do_sample=False)
        g = og.Generator(model, p)
        g.append_tokens(ids)  # the prompt runs here
        t0, n = time.perf_counter(), 0
        while not g.is_done():
            g.generate_next_token()
            n += 1
        return n / (time.perf_counter() - t0)

    return run


def gguf_runner(path: str, threads: int, new: int) -> Callable[[], float]:
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_threads=threads, n_ctx=PROMPT + new + 8, verbose=False)
    ids = list(range(100, 100 + PROMPT))

    def run() -> float:
        llm.reset()
        llm.eval(ids)
        t0 = time.perf_counter()
        for _ in range(new - 1):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            llm.eval([tok])
        return (new - 1) / (time.perf_counter() - t0)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("candidates", nargs="+",
                    help="NAME=ARTIFACT_DIR (DecoderSession loop) | NAME=runtime:ARTIFACT_DIR (radon.runtime) | "
                    "NAME=genai:DIR | NAME=gguf:FILE")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--spinning", action="store_true", help="RADON's threads spin-wait (genai's default)")
    args = ap.parse_args()
    global SPINNING
    SPINNING = args.spinning
    runners: dict[str, Callable[[], float]] = {}
    for item in args.candidates:
        name, _, where = item.partition("=")
        prefixed = where.startswith(("genai:", "gguf:", "runtime:", "runtime-ring:"))
        kind, _, path = where.partition(":") if prefixed else ("radon", "", where)
        make = {"radon": radon_runner, "runtime": runtime_runner, "genai": genai_runner, "gguf": gguf_runner,
                "runtime-ring": partial(runtime_runner, cache="ring")}[kind]  # fmt: skip
        runners[name] = make(path, args.threads, args.new_tokens)
        runners[name]()  # warm-up
    speeds: dict[str, list[float]] = {k: [] for k in runners}
    loads = []
    for _ in range(args.rounds):
        for name, run in runners.items():
            speeds[name].append(run())
        loads.append(os.getloadavg()[0])
    print(
        f"host: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads; "
        f"load average during the rounds: median {np.median(loads):.2f} (min {min(loads):.2f}, max {max(loads):.2f})"
    )
    print("\n| candidate | decode tok/s, median | best round | rounds |")
    print("|---|---|---|---|")
    for name, v in speeds.items():
        print(f"| {name} | {np.median(v):.1f} | {max(v):.1f} | {', '.join(f'{x:.0f}' for x in v)} |")


if __name__ == "__main__":
    main()
