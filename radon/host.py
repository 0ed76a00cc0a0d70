"""This host's CPU in one line: model, CPUs, the instruction sets that pick kernels, ATEN_CPU_CAPABILITY.

Figures depend on the CPU (DESIGN.md, "Hosts differ"): torch's ATen, onnxruntime's MLAS and llama.cpp's
ggml choose their kernels by AVX2, AVX-512, VNNI and AMX, so a speed or a last-bits difference means
little without the host it came from. Benchmarks, parity reports and the demo print this line:

    AMD EPYC 7B13 (2 CPUs): AVX2; no AVX-512, no VNNI, no AMX

Read from ``/proc/cpuinfo`` (Linux; the flag names are the kernel's), else ``platform.processor()``
with the instruction sets unknown. ``ATEN_CPU_CAPABILITY`` (``avx2``, ``avx512``, ...) caps torch's
kernels below what the CPU offers, so it is shown when set. Torch-free: the edge runtime uses it too.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# (shown name, any of these /proc/cpuinfo flags): the sets that choose GEMM and INT8 kernels
FEATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AVX2", ("avx2",)),
    ("AVX-512", ("avx512f",)),
    ("VNNI", ("avx512_vnni",)),  # AVX-512 VNNI: int8 dot products, what u8s8 GEMMs want
    ("AVX-VNNI", ("avx_vnni",)),  # the same instructions on 256-bit registers (Alder Lake, Sapphire Rapids)
    ("AMX-INT8", ("amx_int8",)),
    ("AMX-BF16", ("amx_bf16",)),
)
# a family's absence is worth a word ("no AMX"); AVX-VNNI alone counts as VNNI
ABSENT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AVX2", ("avx2",)),
    ("AVX-512", ("avx512f",)),
    ("VNNI", ("avx512_vnni", "avx_vnni")),
    ("AMX", ("amx_tile", "amx_int8", "amx_bf16")),
)


@dataclass(frozen=True)
class HostCPU:
    """The CPU as the kernels see it; ``flags`` is None where they could not be read."""

    model: str
    cpus: int | None
    flags: frozenset[str] | None
    aten_cpu_capability: str | None = None

    @property
    def features(self) -> list[str]:
        """The instruction sets of ``FEATURES`` this CPU has, in that order (AMX-TILE alone: ``AMX``)."""
        if self.flags is None:
            return []
        have = [name for name, flags in FEATURES if self.flags & set(flags)]
        if "amx_tile" in self.flags and not any(n.startswith("AMX") for n in have):
            have.append("AMX")
        return have

    @property
    def missing(self) -> list[str]:
        """The families of ``ABSENT`` it lacks, as ``no X``."""
        if self.flags is None:
            return []
        return [f"no {name}" for name, flags in ABSENT if not self.flags & set(flags)]

    def summary(self) -> str:
        """One line: ``MODEL (N CPUs): AVX2, AVX-512, VNNI; no AMX[; ATEN_CPU_CAPABILITY=avx2]``."""
        head = self.model + (f" ({self.cpus} CPU{'s' if self.cpus > 1 else ''})" if self.cpus else "")
        if self.flags is None:
            isa = "instruction sets unknown"
        else:
            isa = "; ".join(part for part in (", ".join(self.features), ", ".join(self.missing)) if part)
        line = f"{head}: {isa}"
        if self.aten_cpu_capability:
            line += f"; ATEN_CPU_CAPABILITY={self.aten_cpu_capability}"
        return line

    def to_dict(self) -> dict[str, object]:
        return {"summary": self.summary(), "model": self.model, "cpus": self.cpus, "features": self.features,
                "aten_cpu_capability": self.aten_cpu_capability}  # fmt: skip


def parse_cpuinfo(text: str, cpus: int | None = None, aten_cpu_capability: str | None = None) -> HostCPU:
    """The CPU that ``/proc/cpuinfo`` text describes: ``model name`` and ``flags`` of its first processor
    (an empty model, and flags None, where absent, as on other architectures); ``cpus`` defaults to
    the processors it lists."""
    model, flags = "", None
    processors = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep:
            continue
        if key == "processor":
            processors += 1
        elif key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and flags is None:
            flags = frozenset(value.split())
    cpus = cpus if cpus is not None else processors or None
    return HostCPU(model, cpus, flags, aten_cpu_capability or None)


def detect(cpuinfo: Path = CPUINFO, environ: Mapping[str, str] | None = None) -> HostCPU:
    """This host's CPU: from ``cpuinfo`` when readable, its model else from ``platform``. CPUs are the
    ones this process may run on (its affinity mask, which a container or ``taskset`` narrows)."""
    env = os.environ if environ is None else environ
    try:
        cpus: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count()
    aten = env.get("ATEN_CPU_CAPABILITY")
    try:
        host = parse_cpuinfo(cpuinfo.read_text(errors="replace"), cpus, aten)
    except OSError:
        host = HostCPU("", cpus, None, aten or None)
    if not host.model:
        host = replace(host, model=platform.processor() or platform.machine() or "unknown CPU")
    return host


def host_summary() -> str:
    """``detect().summary()``: the line reports print."""
    return detect().summary()
