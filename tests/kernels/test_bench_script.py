"""scripts/gpu_kernel_bench.py without a GPU: it refuses clearly, and its report renders."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_kernel_bench.py"


def load():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("gpu_kernel_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_renders_ratios_and_bandwidth() -> None:
    bench = load()
    rows = [
        {"W": 512, "seq": 1, "S": 512, "batch": 16, "kernel": 0.02, "flex": 0.04, "sdpa_flash": 0.03,
         "sdpa_math": 0.1, "flash_attn": 0.025, "GB/s": 1700.0, "bw_frac": 0.55, "TFLOP/s": 1.2, "max_abs_fp32": 3e-7},
        {"W": 4096, "seq": 16384, "S": 16384, "batch": 1, "kernel": 5.0, "flex": "error: RuntimeError",
         "sdpa_flash": 10.0, "sdpa_math": "skipped: scores > 24 GiB", "flash_attn": "not installed",
         "max_abs_fp32": 2e-5},
    ]  # fmt: skip
    meta = {"device": "GPU", "date": "2026-01-01", "dtype": "float16", "torch": "2.13", "triton": "3.9",
            "bandwidth": 3.0e12}  # fmt: skip
    text = bench.markdown(rows, meta)
    assert (
        "| 512 | 1 | 16 | 0.020 | 0.040 | 0.030 | 0.100 | 0.025 | 2.00x | 1.50x | 5.00x | 1.25x | 1700 | 55% | 1.2 "
        "| 3.00e-07 |" in text
    )
    assert (
        "error: RuntimeError" in text
        and "skipped" in text
        and "not installed" in text
        and "FAILED for 1 case(s)" in text
    )
    assert bench.compulsory_bytes(1, 1, 512, 512, 2) == 2 * (2 * 32 * 128 + 2 * 8 * 512 * 128)


def test_without_a_gpu_the_script_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    argv = [sys.executable, str(SCRIPT), "--quick"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    import torch

    if torch.cuda.is_available():  # pragma: no cover (a GPU machine runs the real benchmark instead)
        return
    assert result.returncode == 2 and "no CUDA GPU visible" in result.stderr
