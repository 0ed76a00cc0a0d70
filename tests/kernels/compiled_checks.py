"""Checks that need Triton in compiled mode (no TRITON_INTERPRET), run in a subprocess by the tests.

Triton compiles PTX for a named GPU target without a GPU, so the kernel that TensorRT's AOT plugin
embeds is compiled here for sm_80 and sm_90 and its PTX entry is inspected: the parameter list must
follow the plugin's calling convention (input pointers, int32 scalars, output pointer, then Triton's
own trailing scratch pointers), within the shared-memory limit, with no global scratch.
Prints one JSON line.
"""

from __future__ import annotations

import json

VARIANTS = (  # (dtype, mask dtype, tactic, compute capability, head_dim)
    ("float16", "int64", 2, 90, 128),
    ("bfloat16", "int32", 1, 80, 64),
    ("float32", "int64", 1, 90, 64),
)


def compile_variants() -> dict:
    from radon.export.kernels.aot import compile_ptx, ptx_params
    from radon.export.kernels.spec import AttentionAttrs

    out = {}
    for dtype, mask_dtype, tactic, cc, head_dim in VARIANTS:
        attrs = AttentionAttrs(window=4096, num_heads=32, num_kv_heads=8, head_dim=head_dim)
        c = compile_ptx(attrs, dtype, mask_dtype, tactic=tactic, capability=cc)
        params = ptx_params(c.ptx, c.name)
        out[f"{dtype}-sm{cc}-t{tactic}"] = {
            "name": c.name, "target": c.target, "num_params": c.num_params, "trailing": c.trailing_params,
            "shared": c.shared_mem, "warps": c.num_warps, "block_m": c.block_m,
            "param_kinds": ["ptr" if ".ptr" in p or ".u64" in p else "u32" if ".u32" in p else p for p in params],
            "has_version": ".version" in c.ptx, "has_target": f".target sm_{cc}" in c.ptx,
        }  # fmt: skip
    return out


def cpu_without_interpreter() -> str:
    import torch

    from radon.errors import RadonError
    from radon.export.kernels.sliding_window import sliding_window_attention

    q = torch.zeros(1, 2, 3, 16)
    k = torch.zeros(1, 2, 3, 16)
    try:
        sliding_window_attention(q, k, k, None, window=2)
    except RadonError as exc:
        return str(exc)
    return "no error"


if __name__ == "__main__":
    print(json.dumps({"variants": compile_variants(), "cpu_error": cpu_without_interpreter()}))
