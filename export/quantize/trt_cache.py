"""A TensorRT calibration cache from onnxruntime's calibration ranges: a legacy aid for TensorRT 10.

TensorRT's implicit INT8 mode reads a text cache, the file an ``IInt8EntropyCalibrator2`` writes:

    TRT-<version>-EntropyCalibration2
    <tensor name>: <scale as the big-endian hex of its float32 bits>

with ``scale = amax / 127`` (symmetric int8) per activation tensor, named as the ONNX tensor that the
parser turns into a network tensor. ``<version>`` is ``NV_TENSORRT_VERSION``: major * 10000 + minor * 100
+ patch from TensorRT 10 on (``100900`` for 10.9.0), major * 1000 + minor * 100 + patch before it (8601).
TensorRT ignores a cache whose header names another version and calibrates again, so pass the version
you build with. Implicit INT8 is deprecated since TensorRT 10.1 and gone in 11 (DESIGN.md contract 7):
the explicit Q/DQ artifact is the real path; this file is for TensorRT 10 users who still calibrate.
Never run here (no TensorRT on these machines); the format is tested.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from radon.errors import RadonError

DEFAULT_TRT_VERSION = "10.9.0"
ALGORITHM = "EntropyCalibration2"
INT8_MAX = 127.0
MIN_SCALE = 1e-12  # a tensor that was all zeros still gets a positive scale
LINE = re.compile(r"^(?P<name>.+): (?P<hex>[0-9a-f]{1,8})$")


def version_code(version: str) -> int:
    """``NV_TENSORRT_VERSION`` of a ``major.minor.patch`` string (10.9.0 -> 100900, 8.6.1 -> 8601)."""
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?(?:\..*)?", version.strip())
    if not m:
        raise RadonError(
            f"--trt-version: expected major.minor.patch such as {DEFAULT_TRT_VERSION}, got {version!r}"
        )
    major, minor, patch = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def scale_hex(scale: float) -> str:
    """The cache's spelling of a float32 scale: its IEEE-754 bits as big-endian hex, no leading ``0x``."""
    return format(struct.unpack(">I", struct.pack(">f", scale))[0], "x")


def hex_scale(text: str) -> float:
    return struct.unpack(">f", struct.pack(">I", int(text, 16)))[0]


def write_trt_cache(path: str | Path, amax: dict[str, float], version: str = DEFAULT_TRT_VERSION) -> Path:
    """Write ``amax`` (tensor -> max |x| over calibration, float) as a TensorRT calibration cache."""
    lines = [f"TRT-{version_code(version)}-{ALGORITHM}"]
    for name in sorted(amax):
        if ":" in name or "\n" in name:
            raise RadonError(f"TensorRT cache: tensor name {name!r} cannot be written (':' or newline)")
        scale = max(float(amax[name]) / INT8_MAX, MIN_SCALE)
        lines.append(f"{name}: {scale_hex(scale)}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_trt_cache(path: str | Path) -> tuple[str, dict[str, float]]:
    """(header, tensor -> scale) of a TensorRT calibration cache; a malformed line is an error naming it."""
    text = Path(path).read_text(encoding="utf-8").splitlines()
    if not text or not re.fullmatch(r"TRT-\d+-\w+", text[0]):
        raise RadonError(f"{path}: not a TensorRT calibration cache (header {text[:1]})")
    scales = {}
    for n, line in enumerate(text[1:], start=2):
        m = LINE.match(line)
        if not m:
            raise RadonError(f"{path}:{n}: malformed cache line {line!r}")
        scales[m.group("name")] = hex_scale(m.group("hex"))
    return text[0], scales
