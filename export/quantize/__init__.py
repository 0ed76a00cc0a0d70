"""INT8 and INT4 quantization of RADON's ONNX artifacts, with calibration, mixed precision and quality gates.

Built on onnxruntime's quantization tools (``quantize_static``, ``quantize_dynamic``,
``matmul_nbits_quantizer``), never a hand-written quantizer; docs/quantization.md has the recipes, the
defaults and the measurements. The public entry points:

- ``quantize_artifact(artifact, out, precision=...)``: ``radon quantize``;
- ``calibrate_artifact(artifact, out, ...)``: ``radon calibrate``;
- ``Int4Options``, ``DEFAULT_INT4_BUDGET``, ``PRECISIONS``;
- the pieces: ``DecoderCalibrationReader`` (prefill + decode feeds), ``write_trt_cache`` /
  ``read_trt_cache``, ``units_of`` (the quantizable weights), ``choose_keeps`` (estimated sensitivity and keeps).
"""

from __future__ import annotations

from radon.export.quantize.api import calibrate_artifact
from radon.export.quantize.graph import Unit, units_of
from radon.export.quantize.int4 import Int4Options
from radon.export.quantize.pipeline import DEFAULT_INT4_BUDGET, PRECISIONS, QuantizeResult, quantize_artifact
from radon.export.quantize.reader import DecoderCalibrationReader, build_feeds
from radon.export.quantize.sensitivity import choose_keeps, mean_kl
from radon.export.quantize.trt_cache import read_trt_cache, write_trt_cache

__all__ = [
    "DEFAULT_INT4_BUDGET", "PRECISIONS", "DecoderCalibrationReader", "Int4Options", "QuantizeResult", "Unit",
    "build_feeds", "calibrate_artifact", "choose_keeps", "mean_kl", "quantize_artifact", "read_trt_cache",
    "units_of", "write_trt_cache",
]  # fmt: skip
