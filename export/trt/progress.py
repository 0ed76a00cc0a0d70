"""A progress display for TensorRT engine builds: nested phases as tqdm bars.

TensorRT reports build progress through ``IProgressMonitor`` (``phase_start(name, parent, steps)``,
``step_complete(name, step) -> keep going``, ``phase_finish(name)``; TensorRT's
``samples/python/simple_progress_monitor``). ``BuildProgress`` implements those three calls without
TensorRT, so it is tested anywhere; ``tensorrt_monitor`` wraps it in TensorRT's base class.
A Ctrl-C during the build makes ``step_complete`` return False, which asks TensorRT to cancel.
"""

from __future__ import annotations

from typing import Any, TextIO

from tqdm import tqdm


class BuildProgress:
    """One tqdm bar per running phase, indented by nesting depth."""

    def __init__(self, file: TextIO | None = None, disable: bool = False) -> None:
        self.file = file
        self.disable = disable
        self.bars: dict[str, Any] = {}
        self.depth: dict[str, int] = {}
        self.cancelled = False

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        depth = self.depth.get(parent_phase, -1) + 1 if parent_phase else 0
        self.depth[phase_name] = depth
        self.bars[phase_name] = tqdm(
            total=num_steps, desc="  " * depth + phase_name, position=depth, leave=depth == 0,
            file=self.file, disable=self.disable, dynamic_ncols=True,
        )  # fmt: skip

    def step_complete(self, phase_name: str, step: int) -> bool:
        bar = self.bars.get(phase_name)
        if bar is not None:
            bar.update(step + 1 - bar.n)
        return not self.cancelled

    def phase_finish(self, phase_name: str) -> None:
        bar = self.bars.pop(phase_name, None)
        if bar is not None:
            bar.update(bar.total - bar.n)
            bar.close()
        self.depth.pop(phase_name, None)

    def close(self) -> None:
        for name in list(self.bars):
            self.bars.pop(name).close()


def tensorrt_monitor(trt: Any, progress: BuildProgress) -> Any:
    """A ``trt.IProgressMonitor`` that forwards to ``progress`` (TensorRT imported by the caller)."""

    class _Monitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            try:
                return progress.step_complete(phase_name, step)
            except KeyboardInterrupt:
                progress.cancelled = True
                return False

        def phase_finish(self, phase_name: str) -> None:
            progress.phase_finish(phase_name)

    return _Monitor()
