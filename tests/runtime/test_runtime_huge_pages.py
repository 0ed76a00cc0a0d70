"""``radon.runtime.memory.huge_pages``: resident anonymous mappings end up on transparent huge pages,
sparse ones (a thread stack, a reserved arena) are left alone so that RSS does not grow.

Checked in a fresh interpreter against the kernel's own accounting (/proc/self/smaps), not against
the function's return value. Skips where the kernel cannot collapse pages (THP "never", Linux < 6.1).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

CHILD = r"""
import json, mmap
import numpy as np
from radon.runtime.memory import huge_pages

def mapping_of(address):
    out, current = {}, None
    for line in open("/proc/self/smaps"):
        f = line.split()
        if "-" in f[0] and len(f) >= 5:
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            current = lo <= address < hi
        elif current and f[0].endswith(":") and len(f) >= 2 and f[1].isdigit():
            out[f[0][:-1]] = int(f[1])
    return out

dense = np.ones(64 << 18, np.float32)          # 64 MiB, every page touched
sparse = mmap.mmap(-1, 64 << 20)               # 64 MiB reserved, one page touched
sparse[0] = 1
import ctypes
sparse_addr = ctypes.addressof(ctypes.c_char.from_buffer(sparse))
before = mapping_of(sparse_addr)
advised = huge_pages()
print(json.dumps({"advised": advised, "dense": mapping_of(dense.ctypes.data + (32 << 20)),
                  "sparse_before": before, "sparse": mapping_of(sparse_addr)}))
"""


def _collapse_supported() -> str | None:
    if sys.platform != "linux" or not THP.is_file():
        return "no transparent huge pages on this system"
    if "[never]" in THP.read_text():
        return "transparent huge pages are disabled ([never])"
    major, minor = (int(x) for x in platform.release().split(".")[:2])
    if (major, minor) < (6, 1):
        return f"MADV_COLLAPSE needs Linux >= 6.1, this is {platform.release()}"
    return None


def test_resident_weights_are_collapsed_and_sparse_mappings_are_not() -> None:
    reason = _collapse_supported()
    if reason:
        pytest.skip(reason)
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["advised"] >= 60 << 20
    # the kernel's count: most of the dense array is now on 2 MiB pages
    assert r["dense"]["AnonHugePages"] >= 48 << 10, r["dense"]
    # the sparse mapping was not filled in (collapsing it would have made 64 MiB resident); with THP
    # "always" its touched page may already be huge, so compare with before rather than with zero
    before = r["sparse_before"]
    assert r["sparse"]["AnonHugePages"] == before["AnonHugePages"], (before, r["sparse"])
    assert r["sparse"]["Rss"] <= before["Rss"] + 8, (before, r["sparse"])


def test_without_thp_it_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import radon.runtime.memory as memory

    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.huge_pages() == 0
