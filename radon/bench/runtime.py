"""``radon bench ARTIFACT [--compare]``: the runtime's speed, llama-bench style, side by side with peers.

llama-bench's tests: ``pp N`` is prompt processing (prefill) of N tokens, tokens/s; ``tg N`` is text
generation, here after a prompt of ``prompt_tokens`` (by default prompt 128 + 128 new), and
its rate is the decode rate (tokens after the first over the time after the first); time to first
token (prompt + first token) is reported beside it. Each engine runs in its own process
(``radon.bench.worker``), loaded once; the parent runs the tests in interleaved rounds, rotating the order
every round, so a machine whose load drifts penalises every engine alike, and reports the median
with its spread (min-max). Peak RSS is each worker's own VmHWM, twice: after the first prompt +
generation (the default setting, what the RSS target is about) and after every test (pp512's
prefill holds 512 positions of logits and activations).

The decode rate is also compared with the memory-bandwidth limit of this machine: a decode step reads
every weight except the embedding table (a row per token) plus the KV cache, so
``limit = bandwidth / bytes per token``; bandwidth is measured in the same run with numpy copies
(STREAM's copy: 2 x bytes per pass, best of 5, with as many threads as the engines get).
The load average is recorded before, during and after, since the machine may be shared.

An engine whose worker dies (a segfault in a peer's native code, a signal, a non-zero exit, an
exception) is reported as crashed, with how, where and the end of its stderr (``radon.bench.crash``), and
the run goes on with the others. The report's header names the host's CPU and instruction sets
(``radon.host``): the figures depend on them.
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from radon.bench.crash import Crash, WorkerCrashed
from radon.bench.peers import FAMILIES, Peer, prepare_peers
from radon.errors import RadonError
from radon.host import detect
from radon.runtime.contract import Manifest, read_manifest

log = logging.getLogger(__name__)
PP_SIZES = (128, 512)  # llama-bench's default prompt sizes


def measure_bandwidth(threads: int, megabytes: int = 256, repeats: int = 5) -> dict[str, float]:
    """Host memory bandwidth in GB/s from numpy copies, single-threaded and with ``threads`` threads."""
    n = megabytes * 2**20 // 4
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)

    def copy(part: slice) -> None:
        np.copyto(dst[part], src[part])

    out = {}
    for t in sorted({1, max(1, threads)}):
        parts = [slice(i * n // t, (i + 1) * n // t) for i in range(t)]
        best = float("inf")
        with ThreadPoolExecutor(t) as pool:
            for _ in range(repeats):
                start = time.perf_counter()
                list(pool.map(copy, parts))
                best = min(best, time.perf_counter() - start)
        out[f"{t}_thread"] = 2 * src.nbytes / best / 1e9
    out["gb_per_s"] = max(out.values())
    return out


def embedding_bytes(model_file: Path) -> int | None:
    """Bytes of the token-embedding table as stored (float, or 8/4-bit blocks and their scales): the
    constant inputs of the node that reads ``input_ids``. None without onnx (the torch-free runtime)."""
    try:
        import onnx
        from onnx.helper import tensor_dtype_to_np_dtype
    except ImportError:
        return None
    graph = onnx.load(str(model_file), load_external_data=False).graph
    sizes = {}
    for t in graph.initializer:
        bits = 4 if t.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4) else 0
        item = bits / 8 if bits else tensor_dtype_to_np_dtype(t.data_type).itemsize
        sizes[t.name] = int(np.prod(t.dims, dtype=np.int64) * item)
    for node in graph.node:
        if "input_ids" in node.input and node.op_type.startswith("Gather"):
            return sum(sizes.get(name, 0) for name in node.input)
    return None


def bytes_per_token(artifact: Path, manifest: Manifest, context: float) -> float:
    """Bytes a decode step reads: the weights but the embedding table (one row of it is read), plus the
    KV cache at ``context``. The table is measured in the graph, so a quantized one counts as stored."""
    a = manifest.architecture
    files = [manifest.model_file, *manifest.external_data]
    weights = sum((artifact / f).stat().st_size for f in files)
    embedding = embedding_bytes(artifact / manifest.model_file)
    if embedding is None:  # no onnx: assume a float table of the artifact's precision
        embedding = a.vocab_size * a.hidden_size * (2 if manifest.precision == "fp16" else 4)
    kv_itemsize = np.dtype(manifest.kv_cache.dtype).itemsize
    positions = min(context, a.sliding_window or context)
    return weights - embedding + 2 * a.num_layers * a.num_kv_heads * a.head_dim * kv_itemsize * positions


class Worker:
    """A ``radon.bench.worker`` process: one engine, JSON lines over pipes. If it dies, the call that was
    waiting on it raises ``WorkerCrashed``, naming the request and the ``phase`` (load, warm-up, round)."""

    def __init__(self, peer: Peer, args: list[str], log_dir: Path) -> None:
        self.peer, self.phase = peer, "load"
        self.stderr = (log_dir / f"{peer.name}.log").open("w")
        cmd = [peer.python or sys.executable, "-m", "radon.bench.worker", peer.engine, str(peer.model),
               *args, *peer.args]  # fmt: skip
        env = dict(os.environ)
        if "--spinning" not in args:  # OpenMP's threads (torch) must not spin either: on a shared machine
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning made transformers' forward 10x slower
        env["PYTHONFAULTHANDLER"] = "1"  # a fatal signal dumps the Python stack to stderr: where it died
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, env=env)  # fmt: skip
        self.ready = self._read("load")

    def _read(self, request: str) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise self._crashed(request)
        return jsonlib.loads(line)

    def _crashed(self, request: str) -> WorkerCrashed:
        """The process ended (or closed its output): how, from its exit and its stderr."""
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # it closed stdout but lives on: end it, and say so
            self.proc.kill()
            self.proc.wait()
        during = request if request == "load" else f"{request} ({self.phase})"
        self.stderr.close()
        stderr = Path(self.stderr.name).read_text(errors="replace")
        return WorkerCrashed(Crash.from_exit(self.proc.returncode, stderr, during, self.stderr.name))

    def ask(self, **request: Any) -> dict[str, Any]:
        """One request; ``{"op": "tg", "n": 8, ...}`` is named ``tg8`` if the worker dies on it."""
        name = f"{request['op']}{request.get('n', '')}"
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(jsonlib.dumps(request) + "\n")
            self.proc.stdin.flush()
        except OSError:  # BrokenPipeError: it is gone already
            raise self._crashed(name) from None
        return self._read(name)

    def close(self) -> int:
        """Ask a live worker to quit; its peak RSS in KiB (0 if it had died)."""
        peak = 0
        if self.proc.poll() is None:
            try:
                peak = int(self.ask(op="quit").get("peak_rss_kib", 0))
            except WorkerCrashed:
                pass
            self.proc.wait(timeout=60)
        self.stderr.close()
        return peak


def _decode_rate(times: list[float]) -> float:
    return (
        (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else float("nan")
    )


def _stats(values: list[float]) -> dict[str, Any]:
    """Median, range and count, and the values in round order (for ratios paired by round)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "rounds": list(values)}  # fmt: skip


def radon_engines(artifacts: list[Path], manifests: list[Manifest], caches: list[str], pages: list[str],
                  spins: list[str]) -> list[Peer]:  # fmt: skip
    """RADON's engines: the first artifact once per A/B variant (KV cache, huge pages, spinning; the first
    value of each is the setting every engine runs with), then every further artifact once."""
    manifest, artifact = manifests[0], artifacts[0]
    variants = [(c, pages[0], spins[0]) for c in caches] + [(caches[0], p, spins[0]) for p in pages[1:]]
    variants += [(caches[0], pages[0], s) for s in spins[1:]]
    engines = []
    for i, (c, hp, spin) in enumerate(variants):
        spin_tag = "" if spin == spins[0] else ("spinning" if spin == "on" else "no spinning")
        tags = [t for t in (c, "no huge pages" if hp == "off" else "", spin_tag) if t]
        name = "radon" if i == 0 else "radon-" + "-".join(t.replace(" ", "-") for t in tags)
        args = (("--cache", c) if c else ()) + (("--no-huge-pages",) if hp == "off" else ())
        args += {"spinning": ("--spinning",), "no spinning": ("--no-spinning",)}.get(spin_tag, ())
        engines.append(Peer(name, f"RADON ({manifest.lowering}, {manifest.precision}{''.join(', ' + t for t in tags)})",
                            sys.executable, artifact, engine="radon", args=args))  # fmt: skip
    precisions = [m.precision for m in manifests]
    for path, m in zip(artifacts[1:], manifests[1:]):
        twice = precisions.count(m.precision) > 1  # then the folder tells them apart
        name = f"radon-{m.precision}" + (f"-{path.name}" if twice else "")
        label = f"RADON ({m.lowering}, {m.precision}{', ' + path.name if twice else ''})"
        engines.append(Peer(name, label, sys.executable, path, engine="radon"))
    return engines


def run(artifact: Path | list[Path], *, json: bool = False, **kwargs: Any) -> int:
    """``measure`` (its arguments), then print the report as Markdown or JSON; returns 0."""
    from radon.bench.report import markdown

    report = measure(artifact, **kwargs)
    print(jsonlib.dumps(report, indent=2) if json else markdown(report))
    return 0


def measure(
    artifact: Path | list[Path],
    *,
    compare: bool = False,
    batch: int = 1,
    prompt_tokens: int = 128,
    new_tokens: int = 128,
    runs: int = 3,
    threads: int = 0,
    reference: Path | None = None,
    spinning: bool | str = True,
    cache: str | None = None,
    huge_pages: str = "on",
    pp_sizes: tuple[int, ...] = PP_SIZES,
    peers: list[Peer] | None = None,
) -> dict[str, Any]:
    """Benchmark ``artifact`` (and with ``compare`` its peers); the report as a JSON-ready dict.

    Several artifacts of one checkpoint (``[fp32, int8, int4]``) run as separate RADON engines in the
    same rounds, and ``compare`` then adds the peers of each precision (``radon.bench.peers.prepare_peers``):
    genai int4 and llama.cpp Q4_0 for int4, llama.cpp Q8_0 for int8 (the quantized targets' peers).

    ``threads`` 0 leaves each engine its default (onnxruntime: one per physical core). ``reference``
    is the source checkpoint for the peers (default: found beside the artifact). ``cache`` picks the
    runtime's KV engine (``ring`` or ``copy``); several, comma-separated, run as separate engines in
    the same rounds (an A/B; the first is the one the targets use). ``spinning`` lets onnxruntime's idle
    threads spin (RADON and optimum; genai and llama.cpp keep their own settings, which spin): True/False,
    or ``on,off`` / ``off,on`` to add a RADON engine with the second setting (an A/B). ``huge_pages``:
    ``on`` or ``off`` (RADON's weights on transparent huge pages), or ``on,off`` for an A/B.
    ``peers``: these engines instead of the ones ``compare`` prepares (a caller that built its own).
    """
    artifacts = [Path(a) for a in (artifact if isinstance(artifact, list) else [artifact])]
    manifests = [read_manifest(a) for a in artifacts]
    artifact, manifest = artifacts[0], manifests[0]
    sources = {m.source.get("checkpoint_sha256") for m in manifests}
    if compare and len(sources) > 1:
        raise RadonError("bench --compare: the artifacts come from different checkpoints; peers need one")
    limit = min(m.architecture.max_position_embeddings for m in manifests)
    if prompt_tokens + new_tokens > limit or prompt_tokens < 1 or new_tokens < 2 or runs < 1:
        raise RadonError(f"bench: need 1 <= prompt, 2 <= new tokens, prompt + new <= {limit}, runs >= 1")
    if batch != 1 and compare:
        raise RadonError(
            "bench --compare runs batch 1 (genai and llama.cpp are driven one sequence at a time)"
        )
    pps = sorted({p for p in (prompt_tokens, *pp_sizes) if p <= limit})
    caches = (cache or "").split(",") if cache else [""]
    pages = huge_pages.split(",")
    spins = spinning.split(",") if isinstance(spinning, str) else ["on" if spinning else "off"]
    for flag, values in (("--huge-pages", pages), ("--spinning", spins)):
        if not values or any(v not in ("on", "off") for v in values):
            raise RadonError(f"bench: {flag} takes on, off or on,off; got {','.join(values)!r}")
    spinning = spins[0] == "on"
    radon_peers = radon_engines(artifacts, manifests, caches, pages, spins)
    radon_peer = radon_peers[0]
    precisions = {m.precision for m in manifests}
    if peers is None:
        peers = prepare_peers(artifact, manifest, reference, precisions) if compare else []
    peers = radon_peers + peers
    args = [
        "--threads",
        str(threads),
        "--batch",
        str(batch),
        "--context",
        str(max(pps[-1], prompt_tokens + new_tokens) + 8),
    ]
    args += ["--spinning"] if spinning else []
    load: dict[str, float | list[float]] = {"before": os.getloadavg()[0]}
    bandwidth = measure_bandwidth(threads or os.cpu_count() or 1)
    results: dict[str, dict[str, Any]] = {}
    workers: list[Worker] = []
    log_dir = Path(tempfile.mkdtemp(prefix="radon-bench-"))
    for peer in peers:
        entry = results.setdefault(
            peer.name, {"label": peer.label, "size_bytes": peer.size_bytes, "tests": {}}
        )
        if peer.skipped:
            entry["skipped"] = peer.skipped
            continue
        try:
            log.info("bench: loading and warming up %s", peer.label)
            w = Worker(peer, args, log_dir)
            entry.update(load_s=w.ready["load_s"], version=w.ready.get("version"))
            w.phase = "warm-up"
            w.ask(op="pp", n=prompt_tokens)  # warm-up, as llama-bench does
            w.ask(op="tg", prompt=prompt_tokens, n=4)
            workers.append(w)
        except WorkerCrashed as exc:
            entry.update(crashed=exc.crash.summary, crash=exc.crash.to_dict())
            log.warning("bench: %s crashed: %s", peer.name, exc.crash.summary)
        except (RuntimeError, OSError) as exc:
            entry["skipped"] = f"failed: {exc}"
    samples: dict[str, dict[str, list[float]]] = {w.peer.name: {} for w in workers}
    rounds: list[float] = []  # the load average after each round
    load["rounds"] = rounds
    gen_peak: dict[str, int] = {}
    live = list(workers)
    for r in range(runs):
        log.info("bench: round %d of %d (%d engines)", r + 1, runs, len(live))
        for w in live[r % max(1, len(live)) :] + live[: r % max(1, len(live))]:
            s = samples[w.peer.name]
            w.phase = f"round {r + 1}"
            try:  # tg first: the peak RSS after it is the peak of the prompt + generation setting
                answer = w.ask(op="tg", prompt=prompt_tokens, n=new_tokens)
                gen_peak.setdefault(w.peer.name, int(answer.get("peak_rss_kib", 0)))
                times = answer["token_times"]
                for n in pps:
                    s.setdefault(f"pp{n}", []).append(n * batch / w.ask(op="pp", n=n)["seconds"])
            except WorkerCrashed as exc:  # the others go on; its earlier rounds stay in the JSON
                results[w.peer.name].update(crashed=exc.crash.summary, crash=exc.crash.to_dict())
                log.warning("bench: %s crashed: %s", w.peer.name, exc.crash.summary)
                live.remove(w)
                continue
            except (RuntimeError, OSError) as exc:
                results[w.peer.name]["skipped"] = f"failed in round {r + 1}: {exc}"
                continue
            s.setdefault(f"tg{new_tokens}", []).append(batch * _decode_rate(times))
            s.setdefault("ttft_ms", []).append(1000 * times[0])
        rounds.append(os.getloadavg()[0])
    for w in workers:
        results[w.peer.name]["peak_rss_bytes"] = 1024 * gen_peak.get(w.peer.name, 0)
        results[w.peer.name]["peak_rss_all_tests_bytes"] = 1024 * w.close()
        results[w.peer.name]["tests"] = {k: _stats(v) for k, v in samples[w.peer.name].items() if v}
    load["after"] = os.getloadavg()[0]
    context = prompt_tokens + new_tokens / 2
    bpt = bytes_per_token(artifact, manifest, context)
    family_bpt: dict[str, float] = {}  # the bytes a step reads, per precision family (peers: their family's)
    for path, m in zip(artifacts, manifests):
        family_bpt.setdefault(FAMILIES.get(m.precision, "fp32"), bytes_per_token(path, m, context))
    radon_families = {str(a): FAMILIES.get(m.precision, "fp32") for a, m in zip(artifacts, manifests)}
    for p in peers:
        fam = peer_family(p, radon_families)
        results[p.name]["family"] = fam
        results[p.name]["bytes_per_decode_token"] = family_bpt.get(fam)
    report = {
        "artifact": str(artifact), "artifacts": [str(a) for a in artifacts],
        "lowering": manifest.lowering, "precision": manifest.precision,
        "artifact_bytes": radon_peer.size_bytes, "batch": batch, "threads": threads, "spinning": spinning,
        "huge_pages": huge_pages,
        "prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "runs": runs, "pp_sizes": pps,
        "machine": machine(), "load_average": load, "bandwidth": bandwidth,
        "bytes_per_decode_token": bpt, "decode_limit_tok_s": bandwidth["gb_per_s"] * 1e9 / bpt,
        "engines": results, "logs": str(log_dir),
    }  # fmt: skip
    return report


def peer_family(peer: Peer, radon_families: dict[str, str]) -> str:
    """fp32, int8 or int4: the precision family an engine runs (its artifact's, or the peer's format)."""
    if peer.engine == "radon":
        return radon_families.get(str(peer.model), "fp32")
    for tag, family in (("int4", "int4"), ("q4", "int4"), ("q8", "int8"), ("int8", "int8")):
        if tag in peer.name:
            return family
    return "fp32"


def machine() -> dict[str, Any]:
    """CPU model, cores, instruction sets (``host``: radon.host's line) and memory, from /proc (Linux)."""
    host = detect()
    info: dict[str, Any] = {"cpus": os.cpu_count(), "host": host.summary(), "cpu_features": host.features}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["memory_gib"] = round(int(mem[1]) / 2**20, 1)
    except OSError:
        pass
    return info
