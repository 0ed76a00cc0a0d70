#!/usr/bin/env python
"""Run a command and report its peak memory: VmRSS summed over the command and its descendants.

``/usr/bin/time -v`` reports the parent's peak and its children's apart; a tool that runs a stage in a
child process (``radon quantize``'s Fisher pass) needs both at once. Every 0.25 s this sums VmRSS over
the process tree (Linux ``/proc``); each output line of the command is printed with the time and that
sum, so a peak can be placed in its stage. A sampler can miss a peak shorter than its period.

    python scripts/peak_rss.py radon quantize smol-ort --precision int4 --out smol-int4
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

PERIOD = 0.25


def children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            out.setdefault(ppid, []).append(int(entry))
    return out


def tree_rss(root: int) -> int:
    """KiB of VmRSS over ``root`` and every descendant."""
    kids, total, todo = children(), 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except OSError:
            pass
        todo += kids.get(pid, [])
    return total


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    start = time.time()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    except OSError as exc:
        print(f"peak_rss: cannot run {argv[0]}: {exc}", file=sys.stderr)
        return 2
    now, peak = [0], [0, 0.0]

    def sample() -> None:
        while proc.poll() is None:
            now[0] = tree_rss(proc.pid)
            if now[0] > peak[0]:
                peak[:] = [now[0], time.time() - start]
            time.sleep(PERIOD)

    threading.Thread(target=sample, daemon=True).start()
    assert proc.stdout is not None
    for line in proc.stdout:
        print(f"[{time.time() - start:7.1f} s, {now[0]:>10,} KiB] {line.rstrip()}", flush=True)
    rc = proc.wait()
    print(f"exit {rc}; wall {time.time() - start:.1f} s; peak RSS of the process tree {peak[0]:,} KiB "
          f"at {peak[1]:.1f} s")  # fmt: skip
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
