"""One engine of ``radon bench``, in its own process: load once, then answer timing requests.

    python -m radon.bench.worker ENGINE MODEL --threads N [--spinning] [--no-huge-pages]

ENGINE is ``radon`` (this runtime on an artifact), ``transformers`` (eager ``generate`` on a Hugging
Face folder), ``optimum`` (``ORTModelForCausalLM`` on its own export), ``genai``
(onnxruntime-genai on a folder its builder wrote) or ``llamacpp`` (llama-cpp-python on a GGUF file).
The parent (``radon.bench.runtime``) writes one JSON request per line on stdin and reads one JSON
answer per line on stdout (llama-bench's tests, run by the parent in interleaved rounds):

    {"op": "pp", "n": 128}                   -> {"seconds": prefill time of n prompt tokens, "peak_rss_kib"}
    {"op": "tg", "prompt": 128, "n": 128}    -> {"token_times": [s from the call, per token], "peak_rss_kib"}
    {"op": "quit"}                           -> {"peak_rss_kib": VmHWM}

The prompt is the same seeded random ids in every engine. Peak RSS is VmHWM of this process (a
fresh exec, so nothing of the parent counts). Anything a peer prints on stdout is sent to stderr,
so the protocol stays clean. Imports are per engine: this module runs in the peer venv too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PROMPT_SEED = 1234


def vm_kib(field: str = "VmHWM") -> int:
    """A field of /proc/self/status in KiB (VmHWM = peak RSS of this process since exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def prompt_ids(n: int, vocab: int, batch: int = 1) -> np.ndarray:
    """The benchmark prompt: seeded random ids (B, n) in [4, vocab), the same for every engine."""
    return np.random.default_rng(PROMPT_SEED).integers(4, vocab, size=(batch, n), dtype=np.int64)


class RadonEngine:
    def __init__(
        self, model: str, threads: int | None, spinning: bool, batch: int, cache: str | None, huge_pages: bool
    ) -> None:
        import onnxruntime

        import radon.runtime

        self.gen = radon.runtime.load(model, threads=threads, spinning=spinning, cache=cache, verify=False,
                                      huge_pages=huge_pages)  # fmt: skip
        self.vocab, self.batch = self.gen.vocab_size, batch
        self.info = {"version": f"radon (onnxruntime {onnxruntime.__version__})", "cache": self.gen.cache,
                     "lowering": self.gen.manifest.lowering}  # fmt: skip

    def pp(self, n: int) -> float:
        from radon.runtime.engine import make_engine
        from radon.runtime.session import positions_from_mask

        ids = prompt_ids(n, self.vocab, self.batch)
        mask = np.ones_like(ids)
        engine = make_engine(self.gen.session, self.gen.cache)
        t = time.perf_counter()
        engine.prefill(ids, mask, positions_from_mask(mask))
        return time.perf_counter() - t

    def tg(self, prompt: int, n: int) -> list[float]:
        ids = prompt_ids(prompt, self.vocab, self.batch)
        start = time.perf_counter()
        return [e.time - start for e in self.gen.stream(ids, n, ignore_eos=True)]


class _Stamps:
    """A transformers streamer that records when each new token arrives (the first put is the prompt)."""

    def __init__(self, start: float) -> None:
        self.start, self._prompt = start, True
        self.times: list[float] = []

    def put(self, value: Any) -> None:
        if self._prompt:
            self._prompt = False
            return
        self.times.append(time.perf_counter() - self.start)

    def end(self) -> None:
        pass


class HFEngine:
    """transformers eager, or optimum's ORTModelForCausalLM: both driven by GenerationMixin.generate."""

    def __init__(self, kind: str, model: str, threads: int | None, spinning: bool, batch: int) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.torch, self.batch = torch, batch
        if kind == "transformers":
            import transformers
            from transformers import AutoModelForCausalLM

            self.model = AutoModelForCausalLM.from_pretrained(
                model, dtype=torch.float32, attn_implementation="eager"
            )
            self.info = {
                "version": f"transformers {transformers.__version__} eager, torch {torch.__version__}"
            }
        else:
            import onnxruntime as ort
            import optimum.version
            from optimum.onnxruntime import ORTModelForCausalLM

            so = ort.SessionOptions()
            if threads:
                so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
            if not spinning:
                so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.model = ORTModelForCausalLM.from_pretrained(model, use_cache=True, session_options=so,
                                                             provider="CPUExecutionProvider")  # fmt: skip
            self.info = {"version": f"optimum {optimum.version.__version__}, onnxruntime {ort.__version__}"}
        if hasattr(self.model, "eval"):  # a torch module; optimum's model is not one
            self.model.eval()
        self.vocab = self.model.config.vocab_size

    def pp(self, n: int) -> float:
        ids = self.torch.from_numpy(prompt_ids(n, self.vocab, self.batch))
        with self.torch.inference_mode():
            t = time.perf_counter()
            self.model(input_ids=ids, attention_mask=self.torch.ones_like(ids), use_cache=True)
            return time.perf_counter() - t

    def tg(self, prompt: int, n: int) -> list[float]:
        ids = self.torch.from_numpy(prompt_ids(prompt, self.vocab, self.batch))
        stamps = _Stamps(time.perf_counter())
        with self.torch.inference_mode():
            self.model.generate(ids, attention_mask=self.torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                do_sample=False, pad_token_id=0, streamer=stamps)  # fmt: skip
        return stamps.times


class GenaiEngine:
    def __init__(self, model: str, threads: int | None, batch: int) -> None:
        import onnxruntime_genai as og

        if batch != 1:
            raise SystemExit("genai: the benchmark drives batch 1 only")
        path = Path(model) / "genai_config.json"  # genai takes its threads from its config file only
        cfg = json.loads(path.read_text())
        options = cfg["model"]["decoder"].setdefault("session_options", {})
        if threads:
            options.update(intra_op_num_threads=threads, inter_op_num_threads=1)
        else:
            options.pop("intra_op_num_threads", None)
        path.write_text(json.dumps(cfg, indent=4))
        config = og.Config(model)
        self.og, self.model = og, og.Model(config)
        self.vocab = json.loads((Path(model) / "genai_config.json").read_text())["model"]["vocab_size"]
        self.info = {"version": f"onnxruntime-genai {og.__version__}"}

    def _generator(self, length: int) -> Any:
        params = self.og.GeneratorParams(self.model)
        params.set_search_options(max_length=length, min_length=length, do_sample=False)
        return self.og.Generator(self.model, params)

    def pp(self, n: int) -> float:
        gen = self._generator(n + 1)
        tokens = prompt_ids(n, self.vocab)[0].astype(np.int32)
        t = time.perf_counter()
        gen.append_tokens(tokens)
        return time.perf_counter() - t

    def tg(self, prompt: int, n: int) -> list[float]:
        gen = self._generator(prompt + n)
        tokens = prompt_ids(prompt, self.vocab)[0].astype(np.int32)
        start = time.perf_counter()
        gen.append_tokens(tokens)
        times: list[float] = []
        while not gen.is_done() and len(times) < n:
            gen.generate_next_token()
            times.append(time.perf_counter() - start)
        return times


class LlamaCppEngine:
    def __init__(self, model: str, threads: int | None, batch: int, context: int) -> None:
        import llama_cpp

        if batch != 1:
            raise SystemExit("llama.cpp: the benchmark drives batch 1 only")
        self.llm = llama_cpp.Llama(model_path=model, n_ctx=context, n_batch=512, n_threads=threads or None,
                                   n_threads_batch=threads or None, verbose=False)  # fmt: skip
        self.vocab = self.llm.n_vocab()
        self.info = {"version": f"llama-cpp-python {llama_cpp.__version__}"}

    def pp(self, n: int) -> float:
        self.llm.reset()
        tokens = prompt_ids(n, self.vocab)[0].tolist()
        t = time.perf_counter()
        self.llm.eval(tokens)
        return time.perf_counter() - t

    def tg(self, prompt: int, n: int) -> list[float]:
        self.llm.reset()
        tokens = prompt_ids(prompt, self.vocab)[0].tolist()
        start = time.perf_counter()
        times = []
        for _ in self.llm.generate(tokens, top_k=1, temp=0.0, reset=True):
            times.append(time.perf_counter() - start)
            if len(times) == n:
                break
        return times


def make(args: argparse.Namespace) -> Any:
    if args.engine == "radon":
        return RadonEngine(
            args.model, args.threads, args.spinning, args.batch, args.cache, not args.no_huge_pages
        )
    if args.engine in ("transformers", "optimum"):
        return HFEngine(args.engine, args.model, args.threads, args.spinning, args.batch)
    if args.engine == "genai":
        return GenaiEngine(args.model, args.threads, args.batch)
    if args.engine == "llamacpp":
        return LlamaCppEngine(args.model, args.threads, args.batch, args.context)
    raise SystemExit(f"unknown engine {args.engine}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine")
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--spinning", action="store_true")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--cache", default=None)
    parser.add_argument("--no-huge-pages", action="store_true")
    parser.add_argument("--no-spinning", action="store_true", help="overrides --spinning (an A/B variant)")
    args = parser.parse_args()
    args.spinning = args.spinning and not args.no_spinning
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # a peer's prints (C or Python) go to stderr, never into the protocol
    sys.stdout = sys.stderr

    def answer(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")

    t = time.perf_counter()
    engine = make(args)
    answer({"ready": True, "load_s": time.perf_counter() - t, "rss_kib": vm_kib("VmRSS"), **engine.info})
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "pp":
            answer({"seconds": engine.pp(int(req["n"])), "peak_rss_kib": vm_kib("VmHWM")})
        elif req["op"] == "tg":
            answer(
                {"token_times": engine.tg(int(req["prompt"]), int(req["n"])), "peak_rss_kib": vm_kib("VmHWM")}
            )
        else:
            answer({"peak_rss_kib": vm_kib("VmHWM")})
            return


if __name__ == "__main__":
    main()
