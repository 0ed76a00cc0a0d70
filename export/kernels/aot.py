"""Ahead-of-time compilation of the sliding-window kernel to PTX, for TensorRT's AOT plugin.

Follows NVIDIA's ``tensorrt.plugin.aot_impl`` samples (TensorRT ``samples/python/
quickly_deployable_plugins``): ``triton.compiler.ASTSource`` with an explicit signature and the
constants baked in, ``triton.compile``, then the kernel's name, PTX, warps and shared memory go to
``KernelLaunchParams``. Nothing here imports TensorRT, so the compilation and the kernel's parameter
list are checked on any machine: Triton compiles PTX for a named GPU target without a GPU.

Since Triton 3.3/3.5 every kernel ends with two pointer parameters, ``global_scratch`` and
``profile_scratch``, after the user's arguments. TensorRT's AOT launcher passes the plugin's inputs,
its int32 extra arguments and its outputs; this module refuses a kernel that would need global
scratch memory (size > 0), and records how many trailing parameters the PTX declares.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from radon.errors import RadonError
from radon.export.kernels.spec import (
    KERNEL_INPUT_POINTERS,
    KERNEL_OUTPUT_POINTERS,
    KERNEL_SCALARS,
    TRITON_POINTER_TYPE,
    AttentionAttrs,
    kernel_constants,
)

# Plugin tactics: (BLOCK_M, BLOCK_N, num_warps). TensorRT times each at build time and keeps the fastest
# per optimization profile: small row tiles suit decode (T * group rows), large ones suit prefill.
AOT_TACTICS: dict[int, tuple[int, int, int]] = {1: (16, 64, 4), 2: (64, 64, 4), 3: (128, 32, 8)}
# Dynamic shared memory a kernel may use without cuFuncSetAttribute's opt-in. Whether TensorRT's AOT
# launcher opts in to more has not been verified, so variants above it are refused.
SHARED_MEM_LIMIT = 48 * 1024
FALLBACK_TILES = ((16, 64, 4), (16, 32, 4))


@dataclass(frozen=True)
class CompiledAttention:
    """One compiled variant of the kernel, ready for ``tensorrt.plugin.KernelLaunchParams``."""

    name: str  # the PTX entry's name
    ptx: str
    num_warps: int  # block_x = num_warps * 32
    shared_mem: int  # bytes of dynamic shared memory
    block_m: int  # rows per program: grid_x = cdiv(T * group, block_m)
    block_n: int
    target: str  # e.g. "cuda:90"
    num_params: int  # parameters the PTX entry declares
    trailing_params: (
        int  # of which after the plugin's inputs, scalars and outputs (Triton's scratch pointers)
    )


def signature(dtype: str, mask_dtype: str) -> dict[str, str]:
    """The kernel's runtime arguments and their Triton types, in order (spec.KERNEL_* names)."""
    sig = {name: TRITON_POINTER_TYPE[dtype] for name in KERNEL_INPUT_POINTERS}
    sig["KeyMask"] = TRITON_POINTER_TYPE[mask_dtype]
    sig.update({name: "i32" for name in KERNEL_SCALARS})
    sig.update({name: TRITON_POINTER_TYPE[dtype] for name in KERNEL_OUTPUT_POINTERS})
    return sig


def tactics_for(dtype: str) -> list[int]:
    """The tactics advertised to TensorRT: fp32 tiles are twice the bytes, so fp32 gets the small tile only."""
    return [1] if dtype == "float32" else sorted(AOT_TACTICS)


def ptx_params(ptx: str, name: str) -> list[str]:
    """The parameter declarations of the PTX entry ``name``, in order."""
    m = re.search(r"\.entry\s+" + re.escape(name) + r"\s*\((.*?)\)", ptx, re.S)
    if m is None:
        raise RadonError(f"PTX: no entry named {name}")
    return [p.strip() for p in m.group(1).split(",") if p.strip()]


def compile_ptx(
    attrs: AttentionAttrs,
    dtype: str,
    mask_dtype: str = "int32",
    *,
    tactic: int = 2,
    capability: int | None = None,
    num_stages: int = 2,
) -> CompiledAttention:
    """Compile the kernel for one dtype and tactic to PTX.

    ``capability`` is the GPU's compute capability as an int (80 = sm_80, 90 = sm_90); None compiles
    for the GPU that Triton sees. Needs Triton in compiled mode (not ``TRITON_INTERPRET=1``).
    """
    import triton
    from triton.backends.compiler import GPUTarget

    from radon.export.kernels.sliding_window import interpreting, radon_swa_fwd

    if interpreting():
        raise RadonError(
            "compile_ptx: TRITON_INTERPRET=1 is set; ahead-of-time compilation needs compiled Triton"
        )
    if tactic not in AOT_TACTICS:
        raise RadonError(f"tactic: {tactic} is not one of {sorted(AOT_TACTICS)}")
    target = None
    if capability is not None:
        target = GPUTarget("cuda", int(capability), 32)
    # the tactic's tiles first, then smaller ones, each with fewer pipeline stages, until one fits
    candidates = [AOT_TACTICS[tactic], *FALLBACK_TILES]
    for (block_m, block_n, num_warps), stages in itertools.product(candidates, range(num_stages, 0, -1)):
        consts = kernel_constants(attrs, dtype, block_m, block_n, has_mask=True)
        src = triton.compiler.ASTSource(
            fn=radon_swa_fwd, signature=signature(dtype, mask_dtype), constexprs=consts
        )
        kernel = triton.compile(src, target=target, options={"num_warps": num_warps, "num_stages": stages})
        meta = kernel.metadata
        if meta.shared <= SHARED_MEM_LIMIT:
            break
    else:
        raise RadonError(
            f"compile_ptx: no tile of the kernel fits {SHARED_MEM_LIMIT} bytes of shared memory for {dtype} "
            f"and head_dim {attrs.head_dim} (an AOT plugin kernel may not use more)"
        )
    if getattr(meta, "global_scratch_size", 0):
        raise RadonError(
            f"compile_ptx: the kernel needs {meta.global_scratch_size} bytes of global scratch memory, "
            "which TensorRT's AOT plugin launcher does not provide"
        )
    params = ptx_params(kernel.asm["ptx"], meta.name)
    expected = len(KERNEL_INPUT_POINTERS) + len(KERNEL_SCALARS) + len(KERNEL_OUTPUT_POINTERS)
    if len(params) < expected:
        raise RadonError(
            f"compile_ptx: the PTX entry declares {len(params)} parameters, expected >= {expected}"
        )
    arch = target.arch if target is not None else meta.target.arch
    return CompiledAttention(
        name=meta.name, ptx=kernel.asm["ptx"], num_warps=meta.num_warps, shared_mem=meta.shared,
        block_m=block_m, block_n=block_n, target=f"cuda:{arch}", num_params=len(params),
        trailing_params=len(params) - expected,
    )  # fmt: skip
