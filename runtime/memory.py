"""Keep the heap from holding on to what onnxruntime frees while it builds a session.

Measured on the ~100M bench model (500 MB of fp32 weights inline in model.onnx, 2 intra-op threads):
after ``InferenceSession(...)`` the process sat at either 561 MB or 681 MB, at random, with a peak of
654 or 774 MB. glibc's malloc raises its mmap threshold dynamically (up to 32 MiB) once a large block
is freed, after which tensors of a few MiB come from the heap, and a heap that is fragmented, or
split over the intra-op threads' arenas, does not shrink when they are freed. Fixing the threshold at
1 MiB (``mallopt(M_MMAP_THRESHOLD)``, which also stops the dynamic adjustment) gave 540 MB steady and a
634 MB peak, the same in every run. Only glibc is touched; elsewhere this does nothing. It is
process-wide, so ``radon.runtime.load(..., compact_heap=False)`` leaves malloc alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD = 1 << 20  # blocks from 1 MiB up are mmapped and go back to the OS when freed
_done = False


def compact_heap() -> bool:
    """Fix glibc's mmap threshold at 1 MiB (once per process); False where there is no glibc."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # musl (Alpine) and others have no mallopt
        return False
    _done = ok
    log.debug("mallopt(M_MMAP_THRESHOLD, %d): %s", MMAP_THRESHOLD, ok)
    return ok
