"""Why a ``radon bench`` worker died, in one line and a few lines of its stderr.

A peer engine may die inside native code: llama-cpp-python 0.3.36 segfaults in ``decode`` on quantized
GGUFs on an Intel AMX host (DESIGN.md, facts of 2026-12-06). The benchmark then reports that engine as
crashed, with the reason, and goes on with the others. The reason is read from what the process left:

- its exit: ``killed by SIGSEGV`` (subprocess gives a signal as a negative return code), or
  ``exited with status N`` (N > 128 is also named as 128 + a signal, which is how a shell reports one);
- the innermost Python function on its stderr: from the stack that ``faulthandler`` dumps on a fatal
  signal (the parent sets ``PYTHONFAULTHANDLER``; ``File "...", line N in decode``, most recent call
  first), or from a traceback (``File "...", line N, in decode``, most recent call last), whose last
  line, the exception, is kept too;
- an excerpt of its stderr: the fatal-error dump from its first line, else the last lines.
"""

from __future__ import annotations

import re
import signal
from dataclasses import asdict, dataclass, field

EXCERPT_LINES = 4
_FAULT_FRAME = re.compile(r'^\s+File "[^"]*", line \d+ in (\S+)')  # faulthandler: no comma
_TRACEBACK_FRAME = re.compile(r'^\s+File "[^"]*", line \d+, in (\S+)')


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_reason(returncode: int) -> str:
    """``killed by SIGSEGV`` for a signal (a negative code), else ``exited with status N``."""
    if returncode < 0:
        return f"killed by {signal_name(-returncode)}"
    reason = f"exited with status {returncode}"
    if 128 < returncode < 128 + 65:
        reason += f" (128 + {signal_name(returncode - 128)}, as a shell reports that signal)"
    return reason


def crash_site(stderr: str) -> tuple[str | None, str | None]:
    """``(function, exception)``: the innermost Python function of the last fatal-signal dump or
    traceback on ``stderr``, and a traceback's exception line; None where there is none."""
    lines = stderr.splitlines()
    fatal = max((i for i, line in enumerate(lines) if line.startswith("Fatal Python error")), default=None)
    if fatal is not None:
        for line in lines[fatal:]:
            if m := _FAULT_FRAME.match(line):
                return m.group(1), None
        return None, None
    start = max((i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")), default=None)  # fmt: skip
    if start is None:
        return None, None
    frames = [m.group(1) for line in lines[start:] if (m := _TRACEBACK_FRAME.match(line))]
    tail = [line for line in lines[start:] if line.strip() and not line.startswith((" ", "\t"))]
    return (frames[-1] if frames else None), (tail[-1] if len(tail) > 1 else None)


def stderr_excerpt(stderr: str, lines: int = EXCERPT_LINES) -> list[str]:
    """A few lines of ``stderr``: from the last ``Fatal Python error`` on (the signal and the innermost
    frames), else its last ``lines``; blank lines and a traceback's ``^^^^`` markers left out."""
    text = [line.rstrip() for line in stderr.splitlines() if line.strip().strip("^~")]
    fatal = max((i for i, line in enumerate(text) if line.startswith("Fatal Python error")), default=None)
    return text[fatal : fatal + lines] if fatal is not None else text[-lines:]


@dataclass
class Crash:
    """How a worker died, and while doing what (``during``: ``load``, ``tg8 (round 2)``, ...)."""

    how: str
    during: str
    site: str | None = None
    error: str | None = None
    stderr: list[str] = field(default_factory=list)
    log: str = ""

    @classmethod
    def from_exit(cls, returncode: int, stderr: str, during: str, log: str = "") -> Crash:
        site, error = crash_site(stderr)
        return cls(exit_reason(returncode), during, site, error, stderr_excerpt(stderr), log)

    @property
    def summary(self) -> str:
        """``killed by SIGSEGV in decode; during tg4 (warm-up)``."""
        where = f" in {self.site}" if self.site else ""
        return f"{self.how}{where}{': ' + self.error if self.error else ''}; during {self.during}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"summary": self.summary}


class WorkerCrashed(RuntimeError):
    """A worker process died while the parent waited on it."""

    def __init__(self, crash: Crash) -> None:
        super().__init__(crash.summary)
        self.crash = crash
