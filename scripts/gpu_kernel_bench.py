"""One-call GPU benchmark of RADON's Triton sliding-window attention kernel.

    python scripts/gpu_kernel_bench.py [--quick] [--dtype float16|bfloat16] [--out FILE]

On a CUDA GPU it (1) checks the kernel at real shapes against the reference (SDPA with an explicit band
mask, fp32, on head and tail query rows so the reference fits in memory) and (2) times it against
SDPA's math backend (band mask: exact semantics, O(T*S) memory), SDPA's flash backend (causal, no
window: it computes more, so it is a speed bound, exact only when W >= seq), FlexAttention with a
sliding-window block mask (torch.compile'd: exact semantics) and, when it is installed, the flash-attn
package with its window (``radon.flash.attend``, what ``use_flash_attention`` runs: exact semantics), at W in {512, 4096} and seq in
{1 (decode: one query over a full rolling buffer of W keys), 512, 4096, 16384}, Mistral-7B heads
(32 query, 8 kv, head_dim 128). It reports time ratios and the achieved fraction of the GPU's
measured copy bandwidth (the kernel's compulsory bytes: q, o and the K/V band, read once).

It writes a Markdown section to --out, else to $OUT/gpu_kernel_bench.md when $OUT is set, else stdout.
Timing: median of CUDA-event times, L2 flushed before every repetition (as triton.testing.do_bench).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

FULL = {"windows": (512, 4096), "seqs": (1, 512, 4096, 16384)}
QUICK = {"windows": (512,), "seqs": (1, 512)}
HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128
MATH_MEMORY_LIMIT = 24 << 30  # skip SDPA math when its scores alone would take more
FP32_TOL = 1e-5  # the kernel in fp32 against the reference (tests/kernels' floor, here at real shapes)
CHECK_ROWS = 128  # query rows checked at each end of the sequence


def time_ms(fn: Callable[[], object], reps: int, flush: object) -> float:
    """Median milliseconds of ``fn`` over ``reps`` runs, L2 flushed before each."""
    import torch

    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        flush.zero_()  # type: ignore[attr-defined]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_bandwidth(flush: object) -> float:
    """Bytes per second of a 1 GiB device-to-device copy (read + write): the achievable peak."""
    import torch

    src = torch.empty(1 << 29, dtype=torch.float16, device="cuda")
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), 10, flush)
    return 2 * src.numel() * src.element_size() / (ms / 1e3)


def compulsory_bytes(B: int, T: int, S: int, W: int, elem: int) -> int:
    """q and o once, plus each kv head's keys and values in the band, once."""
    band = S if W <= 0 else min(S, T + W - 1)
    return elem * (2 * B * HEADS * T * HEAD_DIM + 2 * B * KV_HEADS * band * HEAD_DIM)


def check_rows(q, k, v, W: int) -> float:  # noqa: ANN001
    """max |kernel - reference| in fp32 on the first and last CHECK_ROWS queries (reference in fp64)."""
    import torch

    from radon.export.kernels.reference import attention_reference
    from radon.export.kernels.sliding_window import sliding_window_attention

    q32, k32, v32 = q.float(), k.float(), v.float()
    T, S = q.shape[2], k.shape[2]
    out = sliding_window_attention(q32, k32, v32, None, window=W)
    n = min(CHECK_ROWS, T)
    # tail: the last n queries over all keys (query i sits at key S - T + i in both calls)
    ref = attention_reference(q32[:, :, T - n :], k32, v32, None, window=W, compute_dtype=torch.float64)
    worst = float((out[:, :, T - n :] - ref).abs().max())
    if T > n:  # head: the first n queries see only the first S - T + n keys
        keys = S - T + n
        ref = attention_reference(q32[:, :, :n], k32[:, :, :keys], v32[:, :, :keys], None, window=W,
                                  compute_dtype=torch.float64)  # fmt: skip
        worst = max(worst, float((out[:, :, :n] - ref).abs().max()))
    return worst


def flex_runner(B: int, T: int, S: int, W: int):  # noqa: ANN201
    """Compiled FlexAttention with the sliding-window block mask of the same band."""
    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    offset = S - T

    def band(b, h, q_idx, kv_idx):  # noqa: ANN001, ANN202
        qa = q_idx + offset
        return (kv_idx <= qa) & (qa - kv_idx < W)

    mask = create_block_mask(band, None, None, T, S, device="cuda")
    compiled = torch.compile(flex_attention, dynamic=False)
    return lambda q, k, v: compiled(q, k, v, block_mask=mask, enable_gqa=True)


def bench_case(W: int, T: int, batch: int, dtype: str, bandwidth: float, flush, reps: int) -> dict:  # noqa: ANN001
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from radon.export.kernels.sliding_window import sliding_window_attention
    from radon.model import band_mask

    S = W if T == 1 else T  # decode: the rolling buffer is full (W - 1 past keys + the new one)
    g = torch.Generator(device="cuda").manual_seed(1000 * W + T)
    dt_ = getattr(torch, dtype)
    q = torch.randn(batch, HEADS, T, HEAD_DIM, device="cuda", dtype=dt_, generator=g)
    k = torch.randn(batch, KV_HEADS, S, HEAD_DIM, device="cuda", dtype=dt_, generator=g)
    v = torch.randn(batch, KV_HEADS, S, HEAD_DIM, device="cuda", dtype=dt_, generator=g)
    row: dict = {"W": W, "seq": T, "S": S, "batch": batch}

    def attempt(name: str, fn: Callable[[], object]) -> None:
        try:
            row[name] = time_ms(fn, reps, flush)
        except Exception as exc:  # noqa: BLE001 (a failed peer is a table cell, not a crash)
            row[name] = f"error: {type(exc).__name__}"
            traceback.print_exc(file=sys.stderr)

    try:
        row["max_abs_fp32"] = check_rows(q, k, v, W)
    except Exception as exc:  # noqa: BLE001
        row["max_abs_fp32"] = f"error: {type(exc).__name__}"
        traceback.print_exc(file=sys.stderr)
    attempt("kernel", lambda: sliding_window_attention(q, k, v, None, window=W))
    try:
        flex = flex_runner(batch, T, S, W)
        attempt("flex", lambda: flex(q, k, v))
    except Exception as exc:  # noqa: BLE001
        row["flex"] = f"error: {type(exc).__name__}"
    mask = band_mask(None, T, S, S - T, W, q.device)
    if batch * HEADS * T * S * q.element_size() <= MATH_MEMORY_LIMIT:

        def math_sdpa() -> object:
            with sdpa_kernel(SDPBackend.MATH):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)

        attempt("sdpa_math", math_sdpa)
    else:
        row["sdpa_math"] = "skipped: scores > 24 GiB"

    def flash_sdpa() -> object:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, enable_gqa=True)

    attempt("sdpa_flash", flash_sdpa)
    from radon import flash

    if flash.kernel() is None or dt_ not in flash.HALF:
        row["flash_attn"] = "not installed" if flash.kernel() is None else "fp16/bf16 only"
    else:
        attempt("flash_attn", lambda: flash.attend(q, k, v, W, 0.0))
    if isinstance(row.get("kernel"), float):
        moved = compulsory_bytes(batch, T, S, W, q.element_size())
        row["GB/s"] = moved / (row["kernel"] / 1e3) / 1e9
        row["bw_frac"] = moved / (row["kernel"] / 1e3) / bandwidth
        keys = sum(min(W, S - T + i + 1) for i in range(T))  # key positions the band holds, all queries
        row["TFLOP/s"] = 4 * batch * HEADS * keys * HEAD_DIM / (row["kernel"] / 1e3) / 1e12
    return row


def fmt(x: object, spec: str = ".3f") -> str:
    return format(x, spec) if isinstance(x, float) else str(x) if x is not None else "—"


def ratio(row: dict, peer: str) -> str:
    a, b = row.get("kernel"), row.get(peer)
    return f"{b / a:.2f}x" if isinstance(a, float) and isinstance(b, float) and a > 0 else "—"


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"## Triton sliding-window kernel on {meta['device']} ({meta['date']})",
        "",
        f"{meta['dtype']}, heads {HEADS} / kv heads {KV_HEADS}, head_dim {HEAD_DIM}. torch {meta['torch']}, "
        f"triton {meta['triton']}. Measured copy bandwidth {meta['bandwidth'] / 1e9:.0f} GB/s. "
        "Times are medians in ms, L2 flushed. Ratios are peer time / kernel time (> 1: the kernel is faster). "
        "seq 1 is one decode step over a full rolling buffer (S = W). SDPA flash is causal without a window "
        "(it computes more; exact only when W >= seq). max |Δ| is the kernel in fp32 against SDPA with a band "
        f"mask in fp64, on the first and last {CHECK_ROWS} query rows (tolerance {FP32_TOL}).",
        "",
        "| W | seq | batch | kernel | flex | sdpa flash | sdpa math | flash-attn | flex/kernel | flash/kernel "
        "| math/kernel | flash-attn/kernel | GB/s | of copy BW | TFLOP/s | max \\|Δ\\| fp32 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['W']} | {r['seq']} | {r['batch']} | {fmt(r.get('kernel'))} | {fmt(r.get('flex'))} | "
            f"{fmt(r.get('sdpa_flash'))} | {fmt(r.get('sdpa_math'))} | {fmt(r.get('flash_attn'))} | "
            f"{ratio(r, 'flex')} | {ratio(r, 'sdpa_flash')} | {ratio(r, 'sdpa_math')} | {ratio(r, 'flash_attn')} | {fmt(r.get('GB/s'), '.0f')} | {fmt(r.get('bw_frac'), '.0%')} | "
            f"{fmt(r.get('TFLOP/s'), '.1f')} | {fmt(r.get('max_abs_fp32'), '.2e')} |"
        )
    bad = [r for r in rows if isinstance(r.get("max_abs_fp32"), float) and r["max_abs_fp32"] > FP32_TOL]
    lines += [
        "",
        f"Correctness: {'FAILED for ' + str(len(bad)) + ' case(s)' if bad else 'all cases within ' + str(FP32_TOL)}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="W 512, seq 1 and 512 only (a smoke run)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    parser.add_argument("--batch", type=int, default=1, help="batch for prefill rows")
    parser.add_argument("--decode-batch", type=int, default=16, help="batch for decode rows (seq 1)")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET"):
        print("gpu_kernel_bench: unset TRITON_INTERPRET; this script times compiled kernels", file=sys.stderr)
        return 2
    import torch
    import triton

    if not torch.cuda.is_available():
        print("gpu_kernel_bench: no CUDA GPU visible; nothing was measured", file=sys.stderr)
        return 2
    flush = torch.empty(256 << 20, dtype=torch.int8, device="cuda")
    bandwidth = copy_bandwidth(flush)
    grid = QUICK if args.quick else FULL
    rows = []
    for W in grid["windows"]:
        for T in grid["seqs"]:
            batch = args.decode_batch if T == 1 else args.batch
            print(f"W={W} seq={T} batch={batch} ...", file=sys.stderr, flush=True)
            rows.append(bench_case(W, T, batch, args.dtype, bandwidth, flush, args.reps))
    meta = {
        "device": torch.cuda.get_device_name(), "date": dt.date.today().isoformat(), "dtype": args.dtype,
        "torch": torch.__version__, "triton": triton.__version__, "bandwidth": bandwidth, "python": platform.python_version(),
    }  # fmt: skip
    text = markdown(rows, meta)
    out = args.out or (Path(os.environ["OUT"]) / "gpu_kernel_bench.md" if os.environ.get("OUT") else None)
    if out:
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text)
    failed = any(isinstance(r.get("max_abs_fp32"), float) and r["max_abs_fp32"] > FP32_TOL for r in rows)
    return 1 if failed or any(isinstance(r.get("max_abs_fp32"), str) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
