"""Markdown for ``radon bench``: a llama-bench table per test, a summary, and the speed targets.

Targets for the fp32 artifact: median decode tok/s >= onnxruntime-genai fp32 (so >= 1.3 x optimum);
prefill no slower than any peer; peak RSS <= 1.15 x the artifact's size + 100 MB. Targets for
quantized artifacts: int4 decode >= onnxruntime-genai int4; int8 decode >= llama.cpp Q8_0.
A target whose peer did not run (or crashed) says so instead of passing. An engine that crashed gets
a row that says so and why, and a note with the end of its stderr.

Each decode target also gives the ratio paired by round: the median over rounds of (ours / theirs) in
the same round, and in how many rounds ours was ahead. Rounds interleave the engines, so a round's two
figures saw the same machine; on a shared 2-core host the load moves the whole table by more than the
gap between engines, and the paired ratio is the steadier estimate (docs/benchmarks.md).
"""

from __future__ import annotations

import statistics
from typing import Any

MB = 1e6


def _fmt(stats: dict[str, float] | None, digits: int = 1) -> str:
    if not stats:
        return "–"
    return f"{stats['median']:.{digits}f} ({stats['min']:.{digits}f}–{stats['max']:.{digits}f})"


def _median(report: dict[str, Any], engine: str, test: str) -> float | None:
    e = report["engines"].get(engine, {})
    s = e.get("tests", {}).get(test)
    return None if not s or e.get("skipped") or e.get("crashed") else s["median"]


def _absent(report: dict[str, Any], engine: str, label: str) -> str:
    """Why a target could not be checked: ``LABEL crashed`` or ``LABEL did not run``."""
    return f"{label} {'crashed' if report['engines'].get(engine, {}).get('crashed') else 'did not run'}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def _radon_of(report: dict[str, Any], family: str) -> str | None:
    """The first RADON engine (an artifact, not an A/B variant) of a precision family."""
    for name, e in report["engines"].items():
        if name.startswith("radon") and e.get("family", "fp32") == family and "no huge" not in e["label"]:
            return name
    return None


def paired(report: dict[str, Any], ours: str, theirs: str, test: str) -> str:
    """`` paired by round: median R x, ahead in k of n rounds`` for two engines' per-round figures."""
    a = report["engines"].get(ours, {}).get("tests", {}).get(test, {}).get("rounds")
    b = report["engines"].get(theirs, {}).get("tests", {}).get(test, {}).get("rounds")
    if not a or not b or len(a) != len(b):
        return ""
    ratios = [x / y for x, y in zip(a, b) if y]
    ahead = sum(r >= 1 for r in ratios)
    return f"; paired by round: median {statistics.median(ratios):.2f}x, ahead in {ahead} of {len(ratios)} rounds"


def quantized_targets(report: dict[str, Any]) -> list[str]:
    tg = f"tg{report['new_tokens']}"
    lines = []
    for family, peer, label in (
        ("int4", "genai-int4", "onnxruntime-genai int4"),
        ("int8", "llamacpp-q8_0", "llama.cpp Q8_0"),
    ):
        name = _radon_of(report, family)
        if name is None:
            continue
        ours, theirs = _median(report, name, tg), _median(report, peer, tg)
        if ours and theirs:
            lines.append(f"- {family} decode >= {label}: {ours:.1f} vs {theirs:.1f} tok/s = {ours / theirs:.2f}x "
                         f"({'met' if ours >= theirs else 'MISSED'}){paired(report, name, peer, tg)}")  # fmt: skip
        else:
            who = _absent(report, peer, label) if ours else _absent(report, name, "RADON")
            lines.append(f"- {family} decode >= {label}: not checked ({who})")
    return lines


def targets(report: dict[str, Any]) -> list[str]:
    """One line per target: met, missed, or not checkable (peer not run)."""
    tg = f"tg{report['new_tokens']}"
    if _radon_of(report, "fp32") != "radon":  # the fp32 targets are about the fp32 artifact, run first
        return quantized_targets(report)
    ours = _median(report, "radon", tg)
    lines = []
    genai = _median(report, "genai", tg)
    if ours and genai:
        lines.append(f"- decode >= onnxruntime-genai fp32: {ours:.1f} vs {genai:.1f} tok/s = {ours / genai:.2f}x "
                     f"({'met' if ours >= genai else 'MISSED'}){paired(report, 'radon', 'genai', tg)}")  # fmt: skip
    else:
        who = _absent(report, "genai", "genai") if ours else _absent(report, "radon", "RADON")
        lines.append(f"- decode >= onnxruntime-genai fp32: not checked ({who})")
    optimum = _median(report, "optimum", tg)
    if ours and optimum:
        lines.append(
            f"- decode >= 1.3 x optimum: {ours / optimum:.2f}x ({'met' if ours >= 1.3 * optimum else 'MISSED'})"
        )
    for pp in report["pp_sizes"]:
        test = f"pp{pp}"
        mine = _median(report, "radon", test)
        peers = {n: _median(report, n, test) for n, e in report["engines"].items()
                 if not n.startswith("radon") and e.get("family", "fp32") == "fp32"}  # fmt: skip
        ran = {n: v for n, v in peers.items() if v}
        if mine and ran:
            best = max(ran, key=lambda n: ran[n])
            verdict = "met" if mine >= ran[best] else "MISSED"
            lines.append(
                f"- prefill {test} >= every peer: {mine:.0f} vs best peer {best} {ran[best]:.0f} tok/s ({verdict})"
            )
    radon = report["engines"].get("radon", {})
    if radon.get("peak_rss_bytes"):
        budget = 1.15 * report["artifact_bytes"] + 100 * MB
        rss = radon["peak_rss_bytes"]
        lines.append(f"- peak RSS <= 1.15 x artifact + 100 MB (prompt {report['prompt_tokens']} + {report['new_tokens']} "
                     f"new): {rss / MB:.0f} MB vs {budget / MB:.0f} MB ({'met' if rss <= budget else 'MISSED'}; "
                     f"{radon.get('peak_rss_all_tests_bytes', 0) / MB:.0f} MB after every test)")  # fmt: skip
    return lines + quantized_targets(report)


def markdown(report: dict[str, Any]) -> str:
    m, load, bw = report["machine"], report["load_average"], report["bandwidth"]
    tg = f"tg{report['new_tokens']}"
    rounds = ", ".join(f"{x:.2f}" for x in load.get("rounds", []))
    host = m.get("host") or f"{m.get('cpu', '?')}, {m.get('cpus')} CPUs"  # reports from before radon.host
    out = [
        f"## radon bench: {report['artifact']} ({report['lowering']}, {report['precision']}, "
        f"{report['artifact_bytes'] / MB:.0f} MB)",
        "",
        f"batch {report['batch']}, threads {report['threads'] or 'default'}, spinning "
        f"{'on' if report['spinning'] else 'off'}, huge pages {report.get('huge_pages', 'on')}, prompt {report['prompt_tokens']} + {report['new_tokens']} new "
        f"tokens, {report['runs']} interleaved rounds (median, min–max)",
        f"host: {host}; {m.get('memory_gib', '?')} GiB memory",
        f"load average {load['before']:.2f} before, {rounds} after each round, {load['after']:.2f} after",
        f"memory bandwidth (numpy copy): {bw['gb_per_s']:.1f} GB/s; a decode step reads "
        f"{report['bytes_per_decode_token'] / MB:.0f} MB, so the limit is {report['decode_limit_tok_s']:.1f} tok/s",
        "",
        "| engine | version | size MB | pp" + " t/s | pp".join(str(p) for p in report["pp_sizes"])
        + f" t/s | {tg} t/s | of limit | TTFT ms | peak RSS MB (tg / all) | load s |",
        "|---" * (8 + len(report["pp_sizes"])) + "|",
    ]  # fmt: skip
    notes = []
    for e in report["engines"].values():
        if e.get("crashed"):  # a row that says so; its figures from earlier rounds stay in the JSON
            cells = [e["label"], e.get("version") or "", f"{e['size_bytes'] / MB:.0f}"]
            cells += [f"**crashed**: {_cell(e['crashed'])}"] + ["–"] * (4 + len(report["pp_sizes"]))
            out.append("| " + " | ".join(cells) + " |")
            crash = e.get("crash", {})
            stderr = " / ".join(f"`{_cell(line)}`" for line in crash.get("stderr", []))
            notes.append(f"- {e['label']}: crashed: {e['crashed']}" + (f"; stderr: {stderr}" if stderr else "")
                         + (f" (log: {crash['log']})" if crash.get("log") else ""))  # fmt: skip
            continue
        if e.get("skipped") and not e.get("tests"):
            notes.append(f"- {e['label']}: not run: {e['skipped']}")
            continue
        t = e.get("tests", {})
        bpt = e.get("bytes_per_decode_token") or (
            report["bytes_per_decode_token"] if "family" not in e else None
        )
        share = (
            t.get(tg, {}).get("median", 0) * bpt / (report["bandwidth"]["gb_per_s"] * 1e9)
            if t.get(tg) and bpt
            else None
        )
        cells = [e["label"], e.get("version") or "", f"{e['size_bytes'] / MB:.0f}"]
        cells += [_fmt(t.get(f"pp{p}"), 0) for p in report["pp_sizes"]]
        cells += [_fmt(t.get(tg)), f"{share:.2f}" if share else "–", _fmt(t.get("ttft_ms"), 0),
                  f"{e.get('peak_rss_bytes', 0) / MB:.0f} / {e.get('peak_rss_all_tests_bytes', 0) / MB:.0f}",
                  f"{e.get('load_s', 0):.1f}"]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
        if e.get("skipped"):
            notes.append(f"- {e['label']}: {e['skipped']}")
    out += ["", *notes] if notes else []
    out += ["", "Targets against the peers:", *targets(report), "", f"worker logs: {report['logs']}"]
    return "\n".join(out)
