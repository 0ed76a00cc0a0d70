"""``radon bench --architectures A B``: the seed's ``benchmark_mistral``, measured instead of claimed.

Two model configs (a GPT-2 and a Mistral of about equal size, say) are built with random weights in
PyTorch and measured one at a time, each in a fresh subprocess so that peak memory is its own. The
subprocesses alternate (A, B, A, B, ... for ``rounds``) and each speed is the best of all its runs, as
``timeit`` reports: on a shared machine the fastest run is the one least disturbed by other load.

- prefill tokens/s: one forward over ``batch x prompt`` tokens without a cache;
- decode tokens/s: generated tokens after the first / time after the first (greedy, KV cache on);
- weights: bytes of the parameters at the run's dtype;
- KV cache: bytes the reference cache holds after ``prompt + new`` tokens (measured on its tensors),
  and bytes at ``kv_context`` tokens in fp16 from the config (``radon info``'s formula);
- peak memory: CUDA max allocated, or on the CPU the process's peak RSS above what it held before the
  model was built.

A config is a file, a preset name, or either with overrides: ``small:model_type=mistral,tie_word_embeddings=true``
builds the Mistral twin of the seed's GPT-2 ``small`` (values are JSON: numbers, true/false, null).
The report states what was measured; it never repeats the seed's "3-5x" claim.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from radon.config import ModelConfig, resolve_config_path
from radon.errors import RadonError

EQUAL_SIZE_TOLERANCE = 0.10  # parameter counts within 10% count as "equal size"


@dataclass
class BenchSettings:
    batch: int = 1
    prompt: int = 128  # prompt tokens
    new_tokens: int = 128
    runs: int = 3  # timed runs per process
    rounds: int = 2  # alternating A/B processes
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 0  # 0 = torch's default
    kv_context: int = 32768  # context for the computed (fp16) KV-cache column


def parse_config_spec(spec: str) -> ModelConfig:
    """``CONFIG[:key=value,...]`` -> ModelConfig; an override names a config key, its value is JSON."""
    base, sep, overrides = spec.partition(":")
    if sep and (len(base) == 1 and base.isalpha()):  # a Windows drive letter, not an override
        base, overrides = spec, ""
    data = json.loads(resolve_config_path(base).read_text(encoding="utf-8"))  # derived keys stay derived
    if overrides:
        for part in overrides.split(","):
            key, eq, value = part.partition("=")
            if not eq:
                raise RadonError(f"{spec}: expected CONFIG:key=value,..., got {part!r}")
            try:
                data[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                data[key.strip()] = value
    data["name"] = spec
    if data.get("model_type") == "gpt2" and not overrides.count("sliding_window"):
        data.pop("sliding_window", None)  # GPT-2 has no window; drop a Mistral base's
    if data.get("model_type") == "gpt2" and not overrides.count("num_kv_heads"):
        data.pop("num_kv_heads", None)
    return ModelConfig.from_dict(data, source=spec)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(spec: str, s: BenchSettings) -> dict[str, Any]:
    """Build ``spec`` with random weights and measure it in this process."""
    import torch

    from radon.info import count_parameters, kv_cache_bytes
    from radon.model import HybridTransformerModel

    if s.threads:
        torch.set_num_threads(s.threads)
    cfg = parse_config_spec(spec)
    if s.prompt + s.new_tokens > cfg.max_position_embeddings:
        raise RadonError(
            f"{spec}: prompt + new tokens ({s.prompt + s.new_tokens}) exceed max_position_embeddings "
            f"({cfg.max_position_embeddings})"
        )
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[s.dtype]
    device = torch.device(s.device)
    cuda = device.type == "cuda"
    rss_before = _rss_bytes()
    torch.manual_seed(0)
    model = HybridTransformerModel(cfg).to(device=device, dtype=dtype).eval()
    ids = torch.randint(4, cfg.vocab_size, (s.batch, s.prompt), device=device)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    with torch.no_grad():
        model(ids, use_cache=False)  # warm-up
        prefill = []
        for _ in range(s.runs):
            sync()
            t = time.perf_counter()
            model(ids, use_cache=False)
            sync()
            prefill.append(time.perf_counter() - t)
        decode = []
        for _ in range(s.runs):
            sync()
            t0 = time.perf_counter()
            first = None
            n = 0
            for _tok in model.stream(ids, max_new_tokens=s.new_tokens, ignore_eos=True, do_sample=False):
                sync()
                n += 1
                if first is None:
                    first = time.perf_counter()
            decode.append(((n - 1) * s.batch, time.perf_counter() - (first or t0)))
        full = torch.randint(4, cfg.vocab_size, (s.batch, s.prompt + s.new_tokens), device=device)
        cache = model(full, use_cache=True).past_key_values
        kv_measured, kv_held = cache.nbytes(), cache.length
    n = count_parameters(cfg).total
    rate = max(tok / max(sec, 1e-9) for tok, sec in decode)
    peak = (
        torch.cuda.max_memory_allocated(device)
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    )
    return {
        "config": spec,
        "model_type": cfg.model_type,
        "layers": cfg.num_layers,
        "hidden": cfg.hidden_size,
        "heads": cfg.num_attention_heads,
        "kv_heads": cfg.kv_heads_for(cfg.architectures[-1]),
        "window": cfg.sliding_window,
        "parameters": n,
        "weight_bytes": sum(
            p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values()
        ),
        "prefill_tokens_per_s": s.batch * s.prompt / min(prefill),
        "decode_tokens_per_s": rate,
        "kv_cache_bytes": kv_measured,
        "kv_cache_tokens_held": kv_held,
        "kv_context": s.kv_context,
        "kv_cache_bytes_at_context_fp16": kv_cache_bytes(cfg, s.kv_context, "float16", s.batch),
        "beyond_max_positions": s.kv_context > cfg.max_position_embeddings,
        "peak_memory_bytes": int(peak),
        "peak_memory_kind": "cuda max allocated" if cuda else "peak RSS above the pre-model baseline",
    }


def run_isolated(spec: str, s: BenchSettings) -> dict[str, Any]:
    """``measure`` in a fresh Python process, so its peak memory is its own."""
    cmd = [sys.executable, "-m", "radon.bench.architectures", spec, json.dumps(s.__dict__)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RadonError(f"bench {spec}: the measuring process failed: {tail[0]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(spec_a: str, spec_b: str, s: BenchSettings, isolated: bool = True) -> list[dict[str, Any]]:
    """Measure both configs, alternating A and B for ``s.rounds`` rounds: best speeds, highest peak memory."""
    for spec in (spec_a, spec_b):
        parse_config_spec(spec)  # fail fast, in this process, on a bad config
    run = run_isolated if isolated else measure
    best: list[dict[str, Any]] = []
    for _ in range(max(1, s.rounds)):
        for i, spec in enumerate((spec_a, spec_b)):
            r = run(spec, s)
            if len(best) <= i:
                best.append(r)
                continue
            for key in ("prefill_tokens_per_s", "decode_tokens_per_s", "peak_memory_bytes"):
                best[i][key] = max(best[i][key], r[key])
    return best


def format_report(results: list[dict[str, Any]], s: BenchSettings) -> str:
    """A Markdown table of both measurements, the B/A ratios, and a note when sizes differ."""
    from radon.info import human_bytes, human_count

    head = ("config", "type", "params", "weights", "prefill tok/s", "decode tok/s",
            "KV cache (measured)", f"KV @ {s.kv_context:,} (fp16)", "peak memory")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        window = f", window {r['window']}" if r["window"] else ""
        kv_ctx = human_bytes(r["kv_cache_bytes_at_context_fp16"]) + (
            " (past max positions)" if r["beyond_max_positions"] else ""
        )
        lines.append("| " + " | ".join([
            f"`{r['config']}`", f"{r['model_type']} ({r['layers']}L, {r['heads']}/{r['kv_heads']} heads{window})",
            human_count(r["parameters"]), human_bytes(r["weight_bytes"]),
            f"{r['prefill_tokens_per_s']:,.0f}", f"{r['decode_tokens_per_s']:,.1f}",
            f"{human_bytes(r['kv_cache_bytes'])} ({r['kv_cache_tokens_held']} tokens)", kv_ctx,
            human_bytes(r["peak_memory_bytes"]),
        ]) + " |")  # fmt: skip
    a, b = results
    ratio = lambda key: b[key] / a[key] if a[key] else float("nan")  # noqa: E731
    lines += [
        "",
        f"B/A: prefill {ratio('prefill_tokens_per_s'):.2f}x, decode {ratio('decode_tokens_per_s'):.2f}x, "
        f"KV cache {ratio('kv_cache_bytes'):.2f}x, peak memory {ratio('peak_memory_bytes'):.2f}x "
        f"(A = {a['config']}, B = {b['config']}).",
        f"Settings: batch {s.batch}, prompt {s.prompt}, {s.new_tokens} new tokens, best of {s.runs} runs x "
        f"{s.rounds} alternating rounds, "
        f"{s.device}, {s.dtype}"
        + (f", {s.threads} thread{'s' if s.threads > 1 else ''}" if s.threads else "")
        + "; random weights.",
    ]
    pa, pb = a["parameters"], b["parameters"]
    if abs(pa - pb) > EQUAL_SIZE_TOLERANCE * max(pa, pb):
        lines.append(
            f"Note: not equal size ({pa:,} vs {pb:,} parameters); the speed ratio mixes architecture and size."
        )
    return "\n".join(lines)


if __name__ == "__main__":  # the isolated measuring process: SPEC SETTINGS_JSON -> one JSON line
    try:
        result = measure(sys.argv[1], BenchSettings(**json.loads(sys.argv[2])))
    except RadonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(result))
