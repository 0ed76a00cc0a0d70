"""``radon.host``: the one-line CPU description that benchmarks, parity reports and the demo print,
parsed from fixture ``/proc/cpuinfo`` text (an AVX2-only AMD EPYC, an AMX Intel Xeon)."""

from __future__ import annotations

from pathlib import Path

import pytest

from radon.host import HostCPU, detect, parse_cpuinfo

AMD_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht "
    "syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid extd_apicid "
    "pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand "
    "hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext "
    "invpcid_single ssbd ibrs ibpb stibp vmmcall fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid "
    "rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 clzero xsaveerptr arat npt nrip_save "
    "umip vaes vpclmulqdq rdpid fsrm"
)
INTEL_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss "
    "ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid tsc_known_freq "
    "pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand "
    "hypervisor lahf_lm abm 3dnowprefetch ssbd ibrs ibpb stibp ibrs_enhanced fsgsbase tsc_adjust bmi1 hle "
    "avx2 smep bmi2 erms invpcid rtm avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd "
    "sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx_vnni avx512_bf16 arat avx512vbmi umip pku "
    "ospke waitpkg avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq la57 rdpid "
    "cldemote movdiri movdir64b fsrm md_clear serialize tsxldtrk amx_bf16 avx512_fp16 amx_tile amx_int8 "
    "flush_l1d arch_capabilities"
)


def cpuinfo(model: str, flags: str, processors: int = 2) -> str:
    block = "processor\t: {i}\nvendor_id\t: x\ncpu family\t: 6\nmodel name\t: {model}\nflags\t\t: {flags}\n"
    return "\n".join(block.format(i=i, model=model, flags=flags) for i in range(processors))


def test_amd_avx2_only():
    host = parse_cpuinfo(cpuinfo("AMD EPYC 7B13 64-Core Processor", AMD_FLAGS))
    assert host.summary() == "AMD EPYC 7B13 64-Core Processor (2 CPUs): AVX2; no AVX-512, no VNNI, no AMX"
    assert host.features == ["AVX2"] and host.cpus == 2


def test_intel_amx():
    host = parse_cpuinfo(cpuinfo("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", INTEL_FLAGS))
    assert host.summary() == (
        "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (2 CPUs): AVX2, AVX-512, VNNI, AVX-VNNI, AMX-INT8, AMX-BF16"
    )


def test_minimal_intel_flags_and_aten_capability():
    flags = "sse2 avx avx2 avx512f avx512_vnni amx_tile amx_int8"
    host = parse_cpuinfo(cpuinfo("Intel Xeon", flags, processors=4), aten_cpu_capability="avx2")
    assert host.summary() == "Intel Xeon (4 CPUs): AVX2, AVX-512, VNNI, AMX-INT8; ATEN_CPU_CAPABILITY=avx2"
    tile_only = HostCPU("X", 1, frozenset({"avx2", "amx_tile"}))
    assert tile_only.summary() == "X (1 CPU): AVX2, AMX; no AVX-512, no VNNI"
    assert HostCPU("Y", None, frozenset()).summary() == "Y: no AVX2, no AVX-512, no VNNI, no AMX"


def test_detect_reads_the_file_and_the_environment(tmp_path: Path):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo("AMD EPYC 7B13 64-Core Processor", AMD_FLAGS, processors=64))
    host = detect(path, {"ATEN_CPU_CAPABILITY": "default"})
    assert host.model == "AMD EPYC 7B13 64-Core Processor" and host.features == ["AVX2"]
    assert host.cpus is not None and host.cpus >= 1  # the CPUs this process may use, not the file's 64
    assert host.summary().endswith(": AVX2; no AVX-512, no VNNI, no AMX; ATEN_CPU_CAPABILITY=default")


def test_detect_without_cpuinfo_says_the_sets_are_unknown(tmp_path: Path):
    host = detect(tmp_path / "absent", {})
    assert host.model and host.flags is None and host.aten_cpu_capability is None
    assert host.summary().endswith(": instruction sets unknown")


def test_non_x86_cpuinfo_has_no_flags():
    host = parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes\n")
    assert host.model == "" and host.flags is None and host.cpus == 1


def test_demo_prints_the_host_first(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path):
    import radon.demo
    from radon.cli.demo import demo

    monkeypatch.setattr(radon.demo, "resolve_data", lambda data, out, say: (tmp_path, True))
    monkeypatch.setattr(radon.demo, "run_demo", lambda ctx: [])
    monkeypatch.setattr("radon.host.detect", lambda: HostCPU("Test CPU", 2, frozenset({"avx2"})))
    assert demo(out=tmp_path / "demo", quick=True) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "host: Test CPU (2 CPUs): AVX2; no AVX-512, no VNNI, no AMX"
