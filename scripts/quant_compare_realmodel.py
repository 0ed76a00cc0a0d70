"""RADON's quantizations of SmolLM2-135M-Instruct against llama.cpp's and onnxruntime-genai's, in one run:
quality per language and speed, side by side (a benchmark command, never a CI test).

    python scripts/quant_compare_realmodel.py [--int8 ART] [--int4 ART] [--int8-static ART] [--runs 5]

What it does, each step printed as it starts, with the time so far:

1. The fp32 reference: ``radon convert --from-hf`` of the cached Hugging Face folder
   (``radon.realmodel``), and its ``ort`` fp32 export (the speed baseline).
2. RADON's artifacts, with the recipes of the working tree's defaults unless given:
   ``radon quantize --precision int8-dynamic``, ``int4`` and the static ``int8`` (``--no-parity``: this
   script scores them itself), cached per state of ``export/`` (its last commit, plus a hash of any
   uncommitted change there), so a rerun after a recipe change rebuilds them and one without does not.
3. The peers, from the same Hugging Face folder, cached in ``--work`` (``radon/bench/peers.py``):
   llama.cpp's ``convert_hf_to_gguf.py --outtype f32`` (the folder's real tokenizer), then
   ``llama_model_quantize`` to Q8_0, Q4_0 and Q4_K_M; onnxruntime-genai's builder ``-p fp32`` and
   ``-p int4``; and the shipped Q4_1 GGUF as it is. They need ``scripts/make_bench_venv.sh``
   (``RADON_BENCH_LLAMA_CPP=1`` for llama.cpp); a peer that cannot be built is a row saying why.
4. Quality against the fp32 checkpoint with ``radon.export.parity.compare`` (the code behind
   ``radon parity``): KL(fp32 || candidate), top-1 (all positions, and decisive: where the reference
   leads by 1 nat), perplexity change and greedy agreement, per held-out text: the ``en``, ``code`` and
   ``ru`` eval texts, plus a text nobody tuned on (the GPL-3 licence text), the first ``--tokens``
   tokens of each. Each GGUF is scored twice: run by llama.cpp (in the peer venv, in a process of its
   own: ``peer_quant_quality.GgufServer``), and weight-only, dequantized tensor by tensor with the
   ``gguf`` package (``radon convert --from-gguf``) and run in float32 by RADON's PyTorch model, which
   leaves out llama.cpp's 8-bit activations: a lower bound of its KL that runs on every host.
5. Speed: ``radon bench``'s engine (``radon.bench.runtime.measure``): RADON fp32, int8-dynamic and int4
   against llama.cpp (f32, Q8_0, Q4_0, Q4_K_M, the shipped Q4_1) and genai (fp32, int4), every engine
   in its own process, interleaved rounds, 2 threads; decode tok/s (median), prefill, peak RSS.

Prints Markdown (also written to ``--work``, with the JSON of everything). Measured on 2 shared cores
(load average 6-20, 2026-12-06): a first run builds for about 40 minutes (the fp32 export 2, int8-dynamic
2, that day's work-in-progress int4 26, genai 8, llama.cpp 1, weight-only conversions 2; the static int8
more); then, with everything cached, quality takes about 75 s a row at 512 tokens per text (11 rows)
and speed about 3 minutes a round: about 40 minutes at the defaults (1,024 tokens, 5 rounds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # peer_quant_quality, beside this script

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO.parent / "shared" / "data" / "eval"
TEXTS = {"en": EVAL / "en_eval.txt", "code": EVAL / "code_eval.txt", "ru": EVAL / "ru_eval.txt",
         "unseen (GPL-3, en)": Path("/usr/share/common-licenses/GPL-3")}  # fmt: skip
SHIPPED = "the shipped Q4_1 file"
START = time.perf_counter()
MB = 1e6


def say(message: str) -> None:
    minutes, seconds = divmod(int(time.perf_counter() - START), 60)
    print(f"[{minutes:02d}:{seconds:02d}] {message}", file=sys.stderr, flush=True)


def run_step(cmd: list[str], what: str, log_file: Path) -> str | None:
    """A build step (``radon.bench.peers._run``): None on success, else why it failed."""
    from radon.bench.peers import _run

    say(f"{what} ...")
    return _run(cmd, what, log_file)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def recipe_state() -> str:
    """The state of ``export/`` that RADON's quantized artifacts come from: its last commit, plus a hash
    of what is uncommitted there (others may be editing the recipes while this runs)."""
    commit = git("log", "-1", "--format=%h", "--", "export")
    dirty = git("diff", "HEAD", "--", "export") + "".join(
        (REPO / f).read_text(errors="replace") for f in git("ls-files", "--others", "--exclude-standard", "export").split()
    )  # fmt: skip
    return commit + (f"-dirty-{hashlib.sha256(dirty.encode()).hexdigest()[:8]}" if dirty else "")


@dataclass
class Row:
    """One candidate of the quality table: how to open it, and what it measured (or why not)."""

    name: str
    label: str
    precision: str  # the gate it is held to (radon.export.parity.THRESHOLDS)
    size_bytes: int
    opener: Callable[[], Any] | None  # -> a parity Candidate
    skipped: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


def size_of(path: Path) -> int:
    from radon.bench.peers import Peer

    return Peer("", "", model=path).size_bytes if path.exists() else 0


def refused(path: Path) -> str | None:
    """None when this tree's runtime loads the artifact (manifest, seal and file hashes), else why not."""
    from radon.runtime.contract import read_manifest

    try:
        read_manifest(path)
    except Exception as exc:  # RadonError's kinds, or no such folder
        return f"{type(exc).__name__}: {exc}"
    return None


def build_radon(
    args: argparse.Namespace, ckpt: Path, state: str, log_file: Path
) -> tuple[dict[str, Path], dict[str, str]]:
    """RADON's fp32, int8-dynamic, int4 and static int8 artifacts: given, cached for this state of
    ``export/``, or built now (a cached one that this tree's runtime refuses is rebuilt); and for each
    that could not be had, why."""
    out: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for precision, given in (("fp32", args.fp32), ("int8-dynamic", args.int8), ("int4", args.int4),
                             ("int8", args.int8_static)):  # fmt: skip
        if precision == "int8" and args.no_static_int8:
            failed[precision] = "left out of this run (--no-static-int8)"
            continue
        path = given or args.work / f"radon-{state}" / precision
        why = refused(path)
        if why and not given:
            if path.exists():
                say(f"  {path}: this tree's runtime refuses it ({why}); rebuilding")
            if precision == "fp32":
                what, cmd = "radon export onnx (fp32)", ["export", "onnx", str(ckpt), "--quiet"]
            else:
                what = f"radon quantize --precision {precision}"
                cmd = ["quantize", str(out["fp32"]), "--precision", precision]
            cmd = [sys.executable, "-m", "radon", *cmd, "--out", str(path), "--no-parity", "--force", "--threads",
                   str(args.threads)]  # fmt: skip
            t = time.perf_counter()
            why = run_step(cmd, f"{what} (export/ at {state})", log_file) or refused(path)
            say(f"  {precision}: {f'failed: {why}' if why else 'built'} in {time.perf_counter() - t:.0f} s")
        if why and precision == "fp32":
            raise SystemExit(f"quant_compare_realmodel: no fp32 artifact: {why}")
        if why:
            failed[precision] = why
        else:
            out[precision] = path
    return out, failed


def build_peers(args: argparse.Namespace, hf: Path, log_file: Path) -> list[Any]:
    """The peers of ``radon bench`` (``radon.bench.peers.Peer``), built from ``hf`` into ``--work`` or found there."""
    from radon.bench.peers import Peer, _genai, _llamacpp, bench_venv_python

    bench_py = bench_venv_python()
    no_venv = f"{bench_py} is missing (run scripts/make_bench_venv.sh)"
    peers = []
    for precision in ("fp32", "int4"):
        say(f"onnxruntime-genai {precision}: build or find in {args.work}")
        peers.append(_genai(hf, args.work, bench_py, log_file, no_venv, precision))
    for kind in ("f32", "q8_0", "q4_0", "q4_k_m"):
        say(f"llama.cpp {kind}: convert/quantize or find in {args.work}")
        peers.append(_llamacpp(hf, args.work, bench_py, log_file, no_venv, kind, own_tokenizer=True))
    shipped = Peer(
        "llamacpp-q4_1", f"llama.cpp Q4_1 ({SHIPPED})", str(bench_py), args.gguf, engine="llamacpp"
    )
    shipped.skipped = next((p.skipped for p in peers if p.engine == "llamacpp" and p.skipped), None)
    for p in [*peers, shipped]:
        if p.skipped:
            say(f"  {p.label}: not available: {p.skipped}")
    return [*peers, shipped]


class WeightOnly:
    """A GGUF dequantized to float32 (``radon convert --from-gguf``), run by RADON's PyTorch model."""

    def __init__(self, ckpt: Path, label: str, precision: str) -> None:
        from radon.checkpoint import load_model
        from radon.export.parity import TorchReference

        self.model = TorchReference(load_model(ckpt))
        self.description, self.precision = label, precision

    def logits(self, ids: Any) -> Any:
        return self.model.logits(ids)

    def greedy(self, ids: Any, new_tokens: int) -> Any:
        return self.model.greedy(ids, new_tokens)


class CachedReference:
    """The fp32 reference with its logits on the held-out chunks kept: every candidate is compared with
    the same arrays, computed once (``compare`` takes any object with ``logits``, ``greedy``, ``config``)."""

    def __init__(self, model: Any) -> None:
        from radon.export.parity import TorchReference

        self.torch, self.config = TorchReference(model), model.config
        self.memo: dict[bytes, Any] = {}

    def fill(self, chunks: list[Any]) -> None:
        for c in chunks:
            self.memo[c.tobytes()] = self.torch.logits(c)

    def logits(self, ids: Any) -> Any:
        hit = self.memo.get(ids.tobytes())
        return hit if hit is not None else self.torch.logits(ids)

    def greedy(self, ids: Any, new_tokens: int) -> Any:
        key = b"greedy" + ids.tobytes() + bytes([new_tokens])
        if key not in self.memo:
            self.memo[key] = self.torch.greedy(ids, new_tokens)
        return self.memo[key]


def quality_rows(radon: dict[str, Path], radon_failed: dict[str, str], peers: list[Any], args: argparse.Namespace,
                 log_file: Path) -> list[Row]:  # fmt: skip
    """The candidates of the quality table, in the order printed."""
    from peer_quant_quality import GenaiGraph, GgufServer

    from radon.export.parity import OnnxCandidate

    rows = []
    for precision, label in (("int8-dynamic", "RADON int8-dynamic (default INT8)"),
                             ("int8", "RADON int8 (static Q/DQ, TensorRT's)"), ("int4", "RADON int4 (default)")):  # fmt: skip
        path = radon.get(precision)
        opener = partial(OnnxCandidate, path, threads=args.threads) if path else None
        rows.append(Row(f"radon-{precision}", label, precision, size_of(path) if path else 0, opener,
                        radon_failed.get(precision)))  # fmt: skip
    by_name = {p.name: p for p in peers}
    for name, precision in (("genai", "fp32"), ("genai-int4", "int4")):  # fp32: a control of the harness
        g = by_name[name]
        rows.append(Row(name, f"onnxruntime-genai {precision}", precision, size_of(g.model),
                        partial(GenaiGraph, g.model, precision), g.skipped))  # fmt: skip
    # f32 run by llama.cpp is the control of that harness (ids in, every position's logits out)
    for kind, precision in (("f32", "fp32"), ("q8_0", "int8-dynamic"), ("q4_0", "int4"), ("q4_k_m", "int4")):
        p = by_name["llamacpp" if kind == "f32" else f"llamacpp-{kind}"]
        upper = "f32" if kind == "f32" else kind.upper()
        rows.append(Row(p.name, f"llama.cpp {upper}, run by llama.cpp", precision, size_of(p.model),
                        partial(GgufServer, p.model, precision, str(p.python)), p.skipped))  # fmt: skip
        if kind == "f32":
            continue
        ckpt = args.work / "weight-only" / kind
        why = p.skipped
        if not why and not (ckpt / "config.json").is_file():
            why = run_step([sys.executable, "-m", "radon", "convert", "--from-gguf", str(p.model), "--out", str(ckpt),
                            "--force"], f"radon convert --from-gguf {p.model.name} (weight-only {upper})", log_file)  # fmt: skip
        label = f"llama.cpp {upper}, weight-only (gguf dequantize, fp32 compute)"
        rows.append(Row(f"{p.name}-weights", label, precision, size_of(p.model),
                        partial(WeightOnly, ckpt, label, precision), why))  # fmt: skip
    return rows


def measure_quality(rows: list[Row], ckpt: Path, texts: list[Path], args: argparse.Namespace) -> None:
    from radon.checkpoint import load_model
    from radon.export.parity import compare, parity_plan

    say(f"quality: the fp32 reference's logits on {len(texts)} texts x {args.tokens} tokens")
    ref = CachedReference(load_model(ckpt))
    plan = parity_plan(ref.config, texts, ckpt / "tokenizer", max_tokens=args.tokens)
    ref.fill([c for stream in plan.chunks for c in stream])
    todo = [r for r in rows if not r.skipped]
    for i, row in enumerate(todo, 1):
        say(f"quality {i}/{len(todo)}: {row.label}")
        t, candidate = time.perf_counter(), None
        try:
            candidate = row.opener() if row.opener else None
            r = compare(candidate, ref, texts=texts, tokenizer_dir=ckpt / "tokenizer", precision=row.precision,
                        max_tokens=args.tokens, reference_name=str(ckpt))  # fmt: skip
            row.result = {
                "metrics": r.metrics,
                "per_text": r.per_text,
                "failures": r.failures,
                "passed": r.passed,
            }
            say(f"  KL {r.metrics['kl_mean']:.4g}, decisive top-1 {r.metrics['top1_decisive']:.3f} "
                f"({time.perf_counter() - t:.0f} s)")  # fmt: skip
        except Exception as exc:  # a peer that dies or refuses is a row that says so; the run goes on
            summary = getattr(getattr(exc, "crash", None), "summary", None)
            row.skipped = f"crashed: {summary}" if summary else f"failed: {type(exc).__name__}: {exc}"
            say(f"  {row.skipped}")
        finally:
            if candidate is not None and hasattr(candidate, "close"):
                candidate.close()
            del candidate


def kl_cell(m: dict[str, float]) -> str:
    return (
        f"{m['kl_mean']:.4f} / {m['top1_decisive']:.3f} ({m['top1_agreement']:.3f}) / {m['ppl_change']:+.1%}"
    )


def quality_table(rows: list[Row], fp32_bytes: int, names: list[str]) -> list[str]:
    out = ["| candidate | size MB (x fp32) | " + " | ".join(names) + " | all texts: KL | own gate |",
           "|---|---:|" + "---|" * len(names) + "---:|---|"]  # fmt: skip
    for r in rows:
        size = f"{r.size_bytes / MB:.0f} ({r.size_bytes / fp32_bytes:.3f})" if r.size_bytes else "–"
        if not r.result:
            out.append(
                f"| {r.label} | {size} | " + " | ".join(["–"] * len(names)) + f" | – | not run: {r.skipped} |"
            )
            continue
        cells = [kl_cell(t) for t in r.result["per_text"]]
        gate = "pass" if r.result["passed"] else "FAIL: " + "; ".join(r.result["failures"])
        out.append(f"| {r.label} | {size} | " + " | ".join(cells) + f" | **{r.result['metrics']['kl_mean']:.4f}** "
                   f"| {r.precision}: {gate} |")  # fmt: skip
    return out


def goals(rows: list[Row], names: list[str]) -> list[str]:
    """The issue's two goals, against llama.cpp run by itself and weight-only."""
    by = {r.name: r for r in rows}
    lines = []
    for ours, theirs, what in (
        ("radon-int4", "llamacpp-q4_k_m", "Q4_K_M"),
        ("radon-int8-dynamic", "llamacpp-q8_0", "Q8_0"),
    ):
        a = by[ours]
        for name in (theirs, theirs + "-weights"):
            b = by[name]
            if not (a.result and b.result):
                lines.append(f"- {a.label} KL < {b.label}: not checked ({a.skipped or b.skipped})")
                continue
            ka, kb = a.result["metrics"]["kl_mean"], b.result["metrics"]["kl_mean"]
            per = [f"{n} {x['kl_mean']:.4f} vs {y['kl_mean']:.4f}"
                   for n, x, y in zip(names, a.result["per_text"], b.result["per_text"])]  # fmt: skip
            size = "" if what == "Q8_0" else (f"; size {a.size_bytes / MB:.0f} vs {b.size_bytes / MB:.0f} MB "
                                              f"({'no larger' if a.size_bytes <= b.size_bytes else 'LARGER'})")  # fmt: skip
            met = ka < kb and (what == "Q8_0" or a.size_bytes <= b.size_bytes)
            lines.append(f"- {a.label} KL < {b.label}: {ka:.4f} vs {kb:.4f} = {ka / kb:.2f}x ({'met' if met else 'NOT MET'}"
                         f"{size}; per text: {', '.join(per)})")  # fmt: skip
    return lines


def speed(radon: dict[str, Path], peers: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    import logging

    from radon.bench.runtime import measure

    logging.basicConfig(format="%(message)s")  # its progress lines: each engine's load, each round
    logging.getLogger("radon.bench.runtime").setLevel(logging.INFO)
    arts = [radon[p] for p in ("fp32", "int8-dynamic", "int4") if p in radon]
    say(f"speed: {len(arts)} RADON engines and {len(peers)} peers, {args.runs} interleaved rounds "
        f"(prompt 128 + 128 new, pp128, pp512; about a minute a round)")  # fmt: skip
    return measure(arts, compare=True, peers=peers, runs=args.runs, threads=args.threads)


SPEED_PAIRS = (("radon-int8-dynamic", "llamacpp-q8_0"), ("radon-int4", "llamacpp-q4_k_m"), ("radon-int4", "llamacpp-q4_0"),
               ("radon-int4", "llamacpp-q4_1"), ("radon-int4", "genai-int4"), ("radon", "llamacpp"), ("radon", "genai"))  # fmt: skip


def speed_table(report: dict[str, Any]) -> list[str]:
    from radon.bench.report import _fmt, paired

    tg = f"tg{report['new_tokens']}"
    pps = report["pp_sizes"]
    out = ["| engine | size MB | " + " | ".join(f"pp{p} tok/s" for p in pps) + f" | decode ({tg}) tok/s | "
           "peak RSS MB (tg) |", "|---|---:|" + "---:|" * len(pps) + "---:|---:|"]  # fmt: skip
    for e in report["engines"].values():
        t = e.get("tests", {})
        if e.get("crashed") or not t:
            why = f"**crashed**: {e['crashed']}" if e.get("crashed") else f"not run: {e.get('skipped')}"
            out.append(f"| {e['label']} | {e['size_bytes'] / MB:.0f} | {why} |" + " |" * (len(pps) + 1))
            continue
        out.append(f"| {e['label']} | {e['size_bytes'] / MB:.0f} | " + " | ".join(_fmt(t.get(f"pp{p}"), 0) for p in pps)
                   + f" | {_fmt(t.get(tg))} | {e.get('peak_rss_bytes', 0) / MB:.0f} |")  # fmt: skip
    out += ["", "Decode ratios (ratio of medians, and paired by round):"]
    for ours, theirs in SPEED_PAIRS:
        a, b = report["engines"].get(ours, {}), report["engines"].get(theirs, {})
        ma, mb = (x.get("tests", {}).get(tg, {}).get("median") for x in (a, b))
        if ma and mb and not a.get("crashed") and not b.get("crashed"):
            out.append(f"- {a['label']} / {b['label']}: **{ma / mb:.2f}x**{paired(report, ours, theirs, tg)}")
        elif a and b:
            out.append(f"- {a['label']} / {b['label']}: not measured (one of them crashed or did not run)")
    return out


def versions(bench_py: Path) -> str:
    code = ("import importlib.metadata as m\nfor n in ('llama-cpp-python', 'onnxruntime-genai'):\n"
            "    try: print(n, m.version(n))\n    except Exception: print(n, 'not installed')")  # fmt: skip
    peers = subprocess.run([str(bench_py), "-c", code], capture_output=True, text=True).stdout.split("\n")
    import onnxruntime
    import torch

    return ", ".join(
        [f"torch {torch.__version__}", f"onnxruntime {onnxruntime.__version__}", *filter(None, peers)]
    )


def main() -> int:
    from radon.realmodel import SMOLLM2, cache_root

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "radon" / "bench" / "smollm2-135m-instruct",
                    help="where the checkpoint, artifacts, peers' files and reports are kept")  # fmt: skip
    ap.add_argument("--hf", type=Path, help="the Hugging Face folder (default: radon.realmodel's cache)")
    ap.add_argument("--gguf", type=Path, help="the shipped GGUF (default: radon.realmodel's cache)")
    ap.add_argument("--fp32", type=Path, help="RADON's fp32 ort artifact (default: exported into --work)")
    ap.add_argument(
        "--int8", type=Path, help="RADON's int8-dynamic artifact (default: built with the default recipe)"
    )
    ap.add_argument(
        "--int4", type=Path, help="RADON's int4 artifact (default: built with the default recipe)"
    )
    ap.add_argument("--int8-static", type=Path, help="RADON's static int8 artifact (default: built)")
    ap.add_argument("--no-static-int8", action="store_true",
                    help="leave the static int8 out (on 2 busy cores its calibration takes the longest)")  # fmt: skip
    ap.add_argument("--tokens", type=int, default=1024, help="held-out tokens per text (default 1024)")
    ap.add_argument(
        "--text", type=Path, nargs="*", help="held-out texts (default: eval en, code, ru, and GPL-3)"
    )
    ap.add_argument("--runs", type=int, default=5, help="speed: interleaved rounds (default 5)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("quality", "speed", "build"),
                    help="one half of the comparison, or only build (and cache) the artifacts and peers")  # fmt: skip
    args = ap.parse_args()
    cache = cache_root() / "realmodel" / SMOLLM2.name
    args.hf, args.gguf = args.hf or cache / "hf", args.gguf or cache / "model.gguf"
    texts = args.text or [p for p in TEXTS.values() if p.is_file()]
    names = [next((k for k, v in TEXTS.items() if v == p), p.stem) for p in texts]
    for path in (args.hf / "config.json", args.gguf, *texts):
        if not path.is_file():
            raise SystemExit(
                f"quant_compare_realmodel: {path}: no such file (python scripts/fetch_realmodel.py)"
            )
    args.work.mkdir(parents=True, exist_ok=True)
    log_file = args.work / "prepare.log"
    say(f"work folder {args.work}; build logs in {log_file}")
    ckpt = args.work / "ckpt"
    if not (ckpt / "config.json").is_file():
        run_step([sys.executable, "-m", "radon", "convert", "--from-hf", str(args.hf), "--out", str(ckpt), "--force"],
                 "radon convert --from-hf (the fp32 reference)", log_file)  # fmt: skip
    state = recipe_state()
    radon, radon_failed = build_radon(args, ckpt, state, log_file)
    peers = build_peers(args, args.hf, log_file)
    if args.only == "build":
        say("built (or found) everything that could be; --only build stops here")
        return 0
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "recipes": state, "head": git("rev-parse", "--short", "HEAD"),
                              "artifacts": {k: str(v) for k, v in radon.items()}, "texts": [str(t) for t in texts]}  # fmt: skip
    from radon.bench.peers import bench_venv_python
    from radon.host import host_summary

    md = [f"## SmolLM2-135M-Instruct: RADON against llama.cpp and onnxruntime-genai ({report['date']})", "",
          f"host: {host_summary()}; {versions(bench_venv_python())}",
          f"RADON rows (HEAD {report['head']}; what this run built used export/ at {state}): "
          + ", ".join(f"{k} `{v}`" for k, v in radon.items())]  # fmt: skip
    if args.only != "speed":
        rows = quality_rows(radon, radon_failed, peers, args, log_file)
        measure_quality(rows, ckpt, texts, args)
        fp32_bytes = size_of(radon["fp32"])
        md += ["", f"### Quality against fp32 ({args.tokens} held-out tokens per text; cell: KL / decisive top-1 "
               "(all positions) / perplexity change)", "", *quality_table(rows, fp32_bytes, names), "",
               "Goals:", *goals(rows, names)]  # fmt: skip
        report["quality"] = [{"name": r.name, "label": r.label, "precision": r.precision, "size_bytes": r.size_bytes,
                              "skipped": r.skipped, **r.result} for r in rows]  # fmt: skip
    if args.only != "quality":
        bench = speed(radon, peers, args)
        report["speed"] = bench
        load = bench["load_average"]
        md += ["", f"### Speed ({args.threads} threads, batch 1, prompt {bench['prompt_tokens']} + "
               f"{bench['new_tokens']} new, {bench['runs']} interleaved rounds: median (min–max); load average "
               f"{load['before']:.1f} before, {load['after']:.1f} after)", "", *speed_table(bench),
               "", f"worker logs: {bench['logs']}"]  # fmt: skip
    self, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = self.ru_utime + self.ru_stime + kids.ru_utime + kids.ru_stime
    md += [
        "",
        f"This run: {time.perf_counter() - START:.0f} s wall, {cpu:.0f} s CPU (user + sys, with children).",
    ]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.work / f"compare-{stamp}.json").write_text(json.dumps(report, indent=2, default=str))
    (args.work / f"compare-{stamp}.md").write_text("\n".join(md) + "\n")
    say(f"done: {args.work}/compare-{stamp}.md and .json")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())
