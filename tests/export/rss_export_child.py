"""Child process of the export memory test: run one command on a checkpoint or artifact, print peak RSS.

    python rss_export_child.py export CKPT OUT          # radon export onnx, default validation and parity
    python rss_export_child.py int8-dynamic ARTIFACT OUT   # radon quantize --precision int8-dynamic --no-parity

Peak RSS is ``VmHWM`` from ``/proc/self/status`` (KiB), which starts afresh at exec; ``ru_maxrss`` would
carry the parent pytest's over (tests/runtime/rss_child.py says why).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def main() -> None:
    verb, src, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if verb == "export":
        from radon.export.exporter import export_onnx

        export_onnx(src, out, threads=2)
    else:
        from radon.export.quantize import quantize_artifact

        quantize_artifact(src, out, precision=verb, parity=False, threads=2)
    print(json.dumps({"maxrss_kib": peak_rss_kib()}))


if __name__ == "__main__":
    main()
