"""The ``radon::SlidingWindowAttention`` TensorRT plugin: a thin ``tensorrt.plugin`` layer.

Follows TensorRT's Python plugin guide and its ``quickly_deployable_plugins`` sample:

- ``@trtp.register``: inputs and attributes (the ONNX node's attribute names), output like the query;
- ``@trtp.autotune``: the supported dtype combinations (LINEAR layout) and the kernel tactics;
- ``@trtp.aot_impl`` (TensorRT >= 10.9): the Triton kernel compiled to PTX for the build GPU, with W,
  the scale and the head layout baked in as constants, and its launch as symbolic expressions of the
  input shapes. The PTX is embedded in the engine, so ``trtexec`` and Triton Inference Server's C++
  TensorRT backend run it without Python. No JIT ``@trtp.impl`` is defined, so TensorRT always takes
  the AOT path.

All logic lives in ``plugin_logic`` and ``radon.export.kernels`` (tested without TensorRT); this file
only adapts types. NEVER RUN HERE: no machine of this project has TensorRT (docs/tensorrt.md).

Deliberately no ``from __future__ import annotations``: ``tensorrt.plugin`` inspects the annotations
of the registered function as live objects.
"""

import logging
from typing import Any

from radon._extras import require
from radon.export.kernels.spec import PLUGIN_ID, PLUGIN_VERSION, AttentionAttrs

log = logging.getLogger(__name__)
_REGISTERED = False


def register_plugin() -> str:
    """Register the plugin with TensorRT's plugin registry (idempotent); return its id.

    Call before parsing an ONNX model that holds ``radon.SlidingWindowAttention`` nodes. Raises
    MissingExtraError naming the ``trt`` extra when tensorrt is not installed.
    """
    global _REGISTERED
    if _REGISTERED:
        return PLUGIN_ID
    require("tensorrt", extra="trt", purpose="the sliding-window attention plugin")
    trtp = require(
        "tensorrt.plugin", extra="trt", purpose="the sliding-window attention plugin (TensorRT >= 10.9)"
    )
    require("triton", extra="trt", purpose="compiling the plugin's kernel")
    from radon.export.kernels.aot import compile_ptx
    from radon.export.trt.plugin_logic import autotune_combinations, check_io_dtypes, dtype_name, launch_plan

    @trtp.register(PLUGIN_ID)
    def describe(
        query: trtp.TensorDesc,
        key: trtp.TensorDesc,
        value: trtp.TensorDesc,
        key_mask: trtp.TensorDesc,
        window: int,
        num_heads: int,
        num_kv_heads: int,
        head_dim: int,
        scale: float,
    ) -> trtp.TensorDesc:
        AttentionAttrs(window, num_heads, num_kv_heads, head_dim, scale)  # raises on a bad attribute
        return query.like()

    @trtp.autotune(PLUGIN_ID)
    def tune(query, key, value, key_mask, outputs) -> list[trtp.AutoTuneCombination]:  # noqa: ANN001
        return [
            trtp.AutoTuneCombination(c.types, c.layouts, list(c.tactics)) for c in autotune_combinations()
        ]

    @trtp.aot_impl(PLUGIN_ID)
    def compile_kernel(  # noqa: ANN001 (TensorRT validates the argument names; annotations are optional)
        query, key, value, key_mask, window, num_heads, num_kv_heads, head_dim, scale, outputs, tactic
    ) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymIntExprs]:  # required by TensorRT
        attrs = AttentionAttrs(int(window), int(num_heads), int(num_kv_heads), int(head_dim), float(scale))
        dtype = check_io_dtypes(
            dtype_name(query.dtype),
            dtype_name(key.dtype),
            dtype_name(value.dtype),
            dtype_name(key_mask.dtype),
        )
        compiled = compile_ptx(attrs, dtype, dtype_name(key_mask.dtype), tactic=int(tactic))
        tile = f"{compiled.block_m}x{compiled.block_n}, {compiled.num_warps} warps, {compiled.shared_mem} B shared"
        log.info("compiled %s for %s, tactic %s: %s", compiled.name, compiled.target, tactic, tile)
        shapes = [t.shape_expr for t in (query, key, value, key_mask)]
        plan = launch_plan(attrs, *shapes, compiled, cdiv=trtp.cdiv)
        params = trtp.KernelLaunchParams()
        params.grid_x, params.grid_y, params.grid_z = plan.grid
        params.block_x = plan.block_x
        params.shared_mem = plan.shared_mem
        extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(e) for e in plan.extra_args])
        return compiled.name.encode(), compiled.ptx.encode(), params, extra

    _REGISTERED = True
    log.info("registered TensorRT plugin %s", PLUGIN_ID)
    return PLUGIN_ID


def plugin_record(attrs: AttentionAttrs | None = None) -> dict[str, Any]:
    """What the engine manifest records about the plugin (no TensorRT needed)."""
    import importlib.metadata as md

    try:
        triton_version = md.version("triton")
    except md.PackageNotFoundError:
        triton_version = None
    record: dict[str, Any] = {"id": PLUGIN_ID, "version": PLUGIN_VERSION, "implementation": "aot"}
    record |= {"kernel": "radon_swa_fwd", "triton": triton_version}
    if attrs is not None:
        record["attributes"] = attrs.as_dict()
    return record
