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


def trim_heap() -> bool:
    """Collect garbage and hand the heap's free pages back to the OS (glibc's ``malloc_trim(0)``).

    After a large object is dropped (an onnxruntime session, a model), its memory may stay in the
    process as free heap; the export and quantize tools call this between stages so that the next stage's
    weights do not stack on top of it. False where there is no glibc (the collection still runs).
    """
    import gc

    gc.collect()
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False


# ---- transparent huge pages for the weights ------------------------------------------------------
MADV_HUGEPAGE = 14  # linux/mman.h
MADV_COLLAPSE = 25  # Linux >= 6.1: make the range's pages huge now, synchronously
HUGE_PAGE = 2 << 20  # x86-64 and arm64 (4 KiB base pages) PMD size
RESIDENT_FRACTION = 0.9  # only mappings this full: collapsing a sparse one (a thread stack) would fill it


def _resident_anonymous_ranges(min_bytes: int) -> list[tuple[int, int]]:
    """(start, end) of private anonymous mappings of at least ``min_bytes`` that are nearly all resident."""
    out, current = [], None
    with open("/proc/self/smaps", encoding="ascii", errors="replace") as smaps:
        lines = smaps.read().splitlines()
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        if (
            "-" in fields[0] and len(fields) >= 5
        ):  # a mapping's header: addr-addr perms offset dev inode [path]
            start, end = (int(x, 16) for x in fields[0].split("-"))
            anonymous = fields[4] == "0" and (len(fields) == 5 or fields[5] == "[heap]")
            current = (
                (start, end)
                if anonymous and fields[1].startswith("rw") and end - start >= min_bytes
                else None
            )
        elif current is not None and fields[0] == "Rss:":
            if int(fields[1]) * 1024 >= RESIDENT_FRACTION * (current[1] - current[0]):
                out.append(current)
            current = None
    return out


def huge_pages(min_bytes: int = 4 * HUGE_PAGE) -> int:
    """Back the process's large, resident anonymous mappings (onnxruntime's prepacked weights, made while
    the session was built) with transparent huge pages; returns the bytes advised (0 where unsupported).

    A decode step streams every weight once. With 4 KiB pages, 400 MB of weights are 100,000 pages, far
    more than the TLB holds, so nearly every page costs a page walk; 2 MiB pages cut that 512-fold.
    glibc only asks for huge pages when ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` is set at process
    start, so the mappings are advised afterwards: ``MADV_HUGEPAGE`` (khugepaged may collapse them
    later), then ``MADV_COLLAPSE`` (Linux >= 6.1) to collapse them now. Where THP is off ("never") or
    the kernel is older, the calls fail quietly and nothing changes but the time spent asking.
    """
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        ranges = _resident_anonymous_ranges(min_bytes)
    except OSError:
        return 0
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    advised = 0
    for start, end in ranges:
        lo = (start + HUGE_PAGE - 1) // HUGE_PAGE * HUGE_PAGE
        hi = end // HUGE_PAGE * HUGE_PAGE
        if hi <= lo:
            continue
        if libc.madvise(lo, hi - lo, MADV_HUGEPAGE) == 0:
            advised += hi - lo
            libc.madvise(
                lo, hi - lo, MADV_COLLAPSE
            )  # best effort: EINVAL before 6.1, EAGAIN when memory is short
    log.debug("huge pages advised for %d bytes in %d mappings", advised, len(ranges))
    return advised
