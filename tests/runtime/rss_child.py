"""Child process of the memory test: generate N tokens from an artifact, print peak RSS as JSON.

    python rss_child.py ARTIFACT ring N     # the runtime (ring buffer of W - 1 slots)
    python rss_child.py ARTIFACT grow N     # contrast: the same graph fed a past that grows

Peak RSS is ``VmHWM`` from ``/proc/self/status`` (KiB): the high-water mark of this process's own
memory map, which starts afresh at exec. (``getrusage(RUSAGE_SELF).ru_maxrss`` does not: Linux carries
it over from the parent through fork and exec, so a child of a 700 MB pytest reports >= 700 MB.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import radon.runtime


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def main() -> None:
    artifact, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    gen = radon.runtime.load(artifact, threads=1, verify=False)
    ids = np.array([[1, 10, 11, 12]], np.int64)
    longest = 0
    if mode == "ring":
        for _ in gen.stream(ids, n, ignore_eos=True):
            longest = max(longest, max(s[2] for s in gen.last_engine.past_shapes()))
    else:
        gen.session.greedy(ids, n, rolling=False)
        longest = ids.shape[1] + n - 1
    print(json.dumps({
        "maxrss_kib": peak_rss_kib(),
        "longest_past": longest,
        "torch_imported": "torch" in sys.modules,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
