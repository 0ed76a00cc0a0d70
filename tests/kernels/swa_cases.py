"""The sliding-window kernel's CPU cases, run under Triton's interpreter in a subprocess.

``python tests/kernels/swa_cases.py ID...`` (with TRITON_INTERPRET=1, which the test fixture sets)
runs the named cases and prints one JSON line: {id: {"max_abs": ..., "finite": ...}}. Running them in a
subprocess keeps TRITON_INTERPRET out of the pytest process, where another test may already have
imported triton in compiled mode. Inputs are fresh per case: each case has its own generator seed,
fixed by its position in CASES, never tuned.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Case:
    id: str
    B: int
    H: int
    Hkv: int
    T: int  # queries (this step's tokens)
    S: int  # keys: the past plus the T new ones
    D: int
    W: int  # 0 = full causal
    dtype: str = "float32"
    mask: str = "none"  # none | ones | left | holes
    mask_dtype: str = "int64"
    nan_outside_band: bool = False  # NaN keys/values in tiles wholly before the band: they must be skipped


CASES: tuple[Case, ...] = (
    # prefill, windows shorter than, equal to and longer than the sequence
    Case("prefill-w3-mha", 1, 2, 2, 9, 9, 16, 3),
    Case("prefill-w5-gqa2-odd", 2, 4, 2, 13, 13, 16, 5),
    Case("prefill-w4-gqa4", 1, 8, 2, 17, 17, 16, 4),
    Case("prefill-w-equals-T", 1, 4, 2, 11, 11, 16, 11),
    Case("prefill-w-longer", 1, 4, 1, 7, 7, 16, 40),
    Case("prefill-full-causal", 1, 4, 2, 19, 19, 16, 0),
    Case("prefill-w1-self-only", 1, 2, 1, 6, 6, 16, 1),
    Case("prefill-headdim-24", 1, 2, 2, 10, 10, 24, 4),
    Case("prefill-across-tiles", 1, 2, 1, 37, 37, 16, 20),
    # padding in key_mask (left padding as a batch of prompts has; holes anywhere)
    Case("prefill-left-pad", 2, 4, 2, 12, 12, 16, 5, mask="left"),
    Case("prefill-holes-int32", 2, 2, 2, 15, 15, 16, 6, mask="holes", mask_dtype="int32"),
    Case("prefill-mask-all-ones", 1, 2, 1, 9, 9, 16, 3, mask="ones"),
    # decode: one query with a past (the buffer holds at most W - 1 past keys)
    Case("decode-full-buffer-gqa2", 2, 4, 2, 1, 8, 16, 8),
    Case("decode-past-longer-than-w", 1, 4, 4, 1, 23, 16, 6),
    Case("decode-gqa4-holes", 2, 8, 2, 1, 9, 16, 7, mask="holes"),
    Case("decode-full-causal", 1, 2, 1, 1, 21, 16, 0),
    # chunked prefill with a past: T new tokens after S - T cached ones
    Case("chunk-with-past", 1, 4, 2, 5, 14, 16, 6, mask="left"),
    # tiles entirely before the band hold NaN: correct output proves they are never read (O(T*W))
    Case("skips-tiles-decode", 1, 2, 1, 1, 64, 16, 8, nan_outside_band=True),
    Case("skips-tiles-prefill", 1, 2, 2, 16, 80, 16, 5, nan_outside_band=True),
    # 16-bit inputs (looser tolerance, see the test)
    Case("fp16-gqa2", 1, 4, 2, 10, 10, 16, 4, dtype="float16", mask="left"),
    Case("bf16-decode", 1, 4, 2, 1, 9, 16, 5, dtype="bfloat16"),
)


def make_inputs(case: Case, seed: int):  # noqa: ANN201 (torch is imported lazily)
    import torch

    g = torch.Generator().manual_seed(seed)
    dt = getattr(torch, case.dtype)
    q = torch.randn(case.B, case.H, case.T, case.D, generator=g).to(dt)
    k = torch.randn(case.B, case.Hkv, case.S, case.D, generator=g).to(dt)
    v = torch.randn(case.B, case.Hkv, case.S, case.D, generator=g).to(dt)
    mask = None
    if case.mask != "none":
        mask = torch.ones(case.B, case.S, dtype=getattr(torch, case.mask_dtype))
        if case.mask == "left":  # row b has b * 2 + 1 padded slots at the start
            for b in range(case.B):
                mask[b, : min(case.S - 1, 2 * b + 1)] = 0
        elif case.mask == "holes":
            mask[:, torch.randperm(case.S, generator=g)[: case.S // 3]] = 0
    if case.nan_outside_band:
        first_band_key = max(0, case.S - case.T - case.W + 1)
        skipped = (first_band_key // 16) * 16  # the kernel's CPU tiles are 16 keys wide
        k[:, :, :skipped] = float("nan")
        v[:, :, :skipped] = float("nan")
    return q, k, v, mask


def run(case: Case, seed: int) -> dict:
    import torch

    from radon.export.kernels.reference import attention_reference
    from radon.export.kernels.sliding_window import sliding_window_attention

    q, k, v, mask = make_inputs(case, seed)
    out = sliding_window_attention(q, k, v, mask, window=case.W)
    if case.nan_outside_band:  # the reference must not see the NaN tiles; they are outside every band
        keep = torch.isfinite(k[0, 0, :, 0])
        k, v = k[:, :, keep], v[:, :, keep]
        mask = None if mask is None else mask[:, keep]
    ref = attention_reference(q, k, v, mask, window=case.W)
    diff = (out.double() - ref.double()).abs()
    return {
        "max_abs": float(diff.max()),
        "ref_max": float(ref.double().abs().max()),
        "finite": bool(torch.isfinite(out).all()),
        "dtype_ok": out.dtype == q.dtype and out.shape == q.shape,
    }


def seed_of(case: Case) -> int:
    return 1000 + [c.id for c in CASES].index(case.id)


if __name__ == "__main__":
    wanted = set(sys.argv[1:]) or {c.id for c in CASES}
    results = {c.id: run(c, seed_of(c)) | {"case": asdict(c)} for c in CASES if c.id in wanted}
    print(json.dumps(results))
