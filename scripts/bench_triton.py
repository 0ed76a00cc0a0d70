"""The Triton benchmarks of docs/benchmarks.md: a load test against radon serve, and the BLS cost.

    scripts/make_triton_env.sh                    # once: .triton-venv (nvidia-pytriton, numpy<2)
    python scripts/bench_triton.py load --clients 32 --duration 60 [--config demo] [--json out.json]
    python scripts/bench_triton.py load --clients 32 --duration 60 --servers triton   # docs/reliability.md
    python scripts/bench_triton.py bls --configs tiny,demo,bench_100m --tokens 64 --rounds 5

``load``: one server on loopback at a time, the same artifact and batching (max batch 8, greedy, the
same prompts): ``radon triton serve`` (nvidia-pytriton's tritonserver, python-backend decoder, the
generate model's in-process decode loop) through ``/v2/models/radon/generate_stream``, then
``radon serve`` through its SSE endpoint ``/api/v1/generate``. ``--clients`` asyncio clients each send
streaming requests back to back (``--max-tokens`` new tokens each) for ``--warmup`` seconds, then for
``--duration`` seconds; the report gives requests completed per second, time to the first streamed
token (p50, p99), streamed tokens per second, errors, and the server's RSS (the whole process tree:
tritonserver plus its python stubs) after the warm-up and at the end, whose ratio is the leak check
(within 10%). Every answer is first checked against the runtime's own greedy text. After each Triton
run the server is stopped and its process group (tritonserver and its stubs) must be gone: the report
counts the processes left (``orphans``). ``--servers triton`` skips ``radon serve``. The exit status
is 1 on any error, wrong text, RSS growth past 10% or orphan.

``bls``: one client, requests one after another, greedy, ``--tokens`` new tokens: the time per token
after the first (client-side arrival of the streamed pieces over gRPC) of the generate model with the
in-process loop and with the BLS loop (one BLS call to ``radon_decoder`` per step), against
``radon.runtime`` called directly on the same artifact in a process of its own; interleaved rounds,
medians. The cost per token is the slope (T(n) - T(1)) / (n - 1) of a request's wall time, so a
request's fixed cost (HTTP, the tokenizer's BLS call, Triton's scheduling) is reported apart.

Models: random decisive weights (seed 0) with a hybrid tokenizer trained on the built-in text, exported
with the ``ort`` lowering, kept in ``--work`` (default ``~/.cache/radon/bench-triton``) and reused.
Speed only: random weights make no quality claim (DESIGN.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from functools import partial
from pathlib import Path

log = logging.getLogger("bench_triton")
PROMPTS = [
    "Привет, как дела?", "Once upon a time", "def fibonacci(n):", "Москва — столица", "The quick brown fox",
    "import os\nimport sys\n", "В начале было слово", "It was the best of times", "class Stack:",
    "Однажды весною", "for i in range(10):", "Call me Ishmael.", "Мороз и солнце;", "return self.",
    "Шёл дождь", "In a hole in the ground",
]  # fmt: skip
CONFIGS = {"tiny": None, "demo": "demo", "bench_100m": "bench_100m"}


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- artifacts ------------------------------------------------------------------------------------
def make_artifact(work: Path, name: str, threads: int) -> Path:
    """A random-weight (decisive, seed 0) checkpoint with a hybrid tokenizer of its vocab, exported (ort)."""
    art = work / f"{name}_ort"
    if (art / "radon_manifest.json").is_file():
        return art
    import torch

    from radon import HybridTransformerModel, ModelConfig, save_checkpoint
    from radon.export.exporter import export_onnx
    from radon.tokenizer import train_hybrid

    torch.manual_seed(0)
    if CONFIGS[name] is None:  # the tests' tiny model
        cfg = ModelConfig(model_type="mistral", vocab_size=520, hidden_size=64, num_layers=2, num_attention_heads=4,
                          num_kv_heads=2, intermediate_size=176, max_position_embeddings=512, sliding_window=16)  # fmt: skip
    else:
        cfg = ModelConfig.from_json(CONFIGS[name])
    model = HybridTransformerModel(cfg)
    with torch.no_grad():  # decisive: greedy text does not flip on noise (DESIGN.md, tests on random models)
        for pname, p in model.named_parameters():
            p.copy_(
                torch.randn_like(p) * 0.08 if p.dim() > 1 else (torch.ones_like(p) if "norm" in pname else p)
            )
    tok = train_hybrid(*tokenizer_texts(work), cfg.vocab_size)
    ckpt = save_checkpoint(model, work / f"ckpt_{name}", tokenizer=tok)
    export_onnx(ckpt, art, attention="ort", parity=False, threads=threads)
    return art


def tokenizer_texts(work: Path, mb: float = 2.0) -> tuple[str, str, str]:
    """Russian, English and code text for the tokenizer: ../shared/data when present (the first ``mb`` MB
    of each), else the corpus RADON builds from its built-in text and the standard library."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (shared / "ru.txt").is_file():
        from radon.data import builtin_corpus

        shared = work / "corpus"
        if not (shared / "code.txt").is_file():
            builtin_corpus(shared, code_bytes=2_000_000, doc_bytes=500_000)
    n = int(mb * 2**20)
    return tuple(open(shared / f"{lang}.txt", encoding="utf-8").read(n) for lang in ("ru", "en", "code"))  # type: ignore[return-value]


def make_repository(art: Path, work: Path, threads: int, max_batch: int, bls: bool = True) -> Path:
    """``radon triton build`` with the python-backend decoder: ``radon`` (in-process loop), and with
    ``bls`` also ``radon_bls`` (one BLS call to radon_decoder per step) over the same decoder."""
    from radon.model_repository import build_repository

    repo = work / f"repo_{art.name}"
    shutil.rmtree(repo, ignore_errors=True)
    build_repository(art, repo, decoder="python", max_batch=max_batch, threads=threads)
    if bls:
        build_repository(art, repo, decoder="python", name="radon_bls", decode_loop="bls", max_batch=max_batch,
                     threads=threads)  # fmt: skip
    return repo


# ---- servers --------------------------------------------------------------------------------------
def rss_tree(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (tritonserver's python stubs are its children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


class Triton:
    """radon triton serve's TritonServer on the repository: HTTP generate_stream, or the gRPC stream."""

    def __init__(self, repo: Path, work: Path, protocol: str = "http") -> None:
        self.protocol = protocol
        self.name = f"radon triton serve (tritonserver 2.51, python backend), {'gRPC stream' if protocol == 'grpc' else 'HTTP generate_stream'}"
        from radon.model_repository.server import TritonServer, find_server

        self.server = TritonServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                                   install=find_server(prefer_path=False), log_file=work / "tritonserver.log")  # fmt: skip

    def __enter__(self) -> Triton:
        self.server.start(300)
        self.url = f"{self.server.url}/v2/models/radon/generate_stream"
        self.grpc_address = self.server.grpc_url
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def pid(self) -> int:
        return self.server.pid or 0

    def orphans(self, pgid: int, wait_s: float = 15.0) -> int:
        """Processes left in the stopped server's process group (it leads a session of its own) after
        ``wait_s`` seconds: 0 when tritonserver and every python stub are gone."""
        deadline = time.monotonic() + wait_s
        while True:
            left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _pgid(int(p.name)) == pgid]
            if not left or time.monotonic() > deadline:
                return len(left)
            time.sleep(0.2)

    @staticmethod
    def body(prompt: str, n: int) -> dict:
        return {"text_input": prompt, "max_tokens": n, "stream": True}

    @staticmethod
    def piece(event: dict) -> str | None:
        return event.get("text_output")


def _pgid(pid: int) -> int | None:
    """The process group of ``pid`` (``/proc/PID/stat``), or None when it is gone."""
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


class RadonServe:
    """radon serve (FastAPI + uvicorn) on the artifact, its SSE endpoint."""

    name = "radon serve (FastAPI + uvicorn), HTTP SSE"
    protocol = "http"

    def __init__(self, art: Path, threads: int, max_batch: int, work: Path) -> None:
        self.port = free_port()
        self.cmd = [sys.executable, "-m", "radon", "serve", str(art), "--port", str(self.port), "--threads",
                    str(threads), "--max-batch", str(max_batch), "--log-level", "warning"]  # fmt: skip
        self.log = work / "radon-serve.log"

    def __enter__(self) -> RadonServe:
        self.out = open(self.log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(self.cmd, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"radon serve exited: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.3)
        self.url = f"http://127.0.0.1:{self.port}/api/v1/generate"
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.out.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @staticmethod
    def body(prompt: str, n: int) -> dict:
        return {"prompt": prompt, "max_new_tokens": n, "stream": True}

    @staticmethod
    def piece(event: dict) -> str | None:
        return event.get("text") if event.get("type") == "token" else None


# ---- the load test --------------------------------------------------------------------------------
async def one_request(client, server, prompt: str, n: int) -> dict:
    start = time.perf_counter()
    first, tokens, text = None, 0, ""
    async with client.stream("POST", server.url, json=server.body(prompt, n)) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if "error" in event:
                raise RuntimeError(str(event["error"]))
            piece = server.piece(event)
            if piece is None:
                continue
            tokens += 1
            text += piece
            first = first or time.perf_counter()
    return {"prompt": prompt, "start": start, "ttft": (first or time.perf_counter()) - start,
            "end": time.perf_counter(), "tokens": tokens, "text": text}  # fmt: skip


class GrpcStream:
    """One client's gRPC stream to the generate model (tritonclient.grpc.aio), reused for its requests."""

    def __init__(self, address: str, model: str = "radon") -> None:
        from tritonclient.grpc.aio import InferenceServerClient

        self.client, self.model = InferenceServerClient(address), model
        self.queue: asyncio.Queue = asyncio.Queue()
        self.responses = self.client.stream_infer(self._requests())

    async def _requests(self):
        while (item := await self.queue.get()) is not None:
            yield item

    async def request(self, prompt: str, n: int) -> dict:
        from radon.model_repository.client import grpc_inputs, request_body

        start = time.perf_counter()
        first, tokens, text = None, 0, ""
        await self.queue.put({"model_name": self.model, "inputs": grpc_inputs(request_body(prompt, n, True))})
        while True:
            result, error = await anext(self.responses)
            if error is not None:
                raise RuntimeError(str(error))
            tokens += 1
            text += result.as_numpy("text_output").reshape(-1)[0].decode("utf-8")
            first = first or time.perf_counter()
            if result.get_response().parameters["triton_final_response"].bool_param:
                break
        return {"prompt": prompt, "start": start, "ttft": first - start, "end": time.perf_counter(),
                "tokens": tokens, "text": text}  # fmt: skip

    async def close(self) -> None:
        await self.queue.put(None)
        await self.client.close()


async def drive(server, clients: int, seconds: float, n: int) -> tuple[list[dict], list[str], float]:
    import httpx

    done: list[dict] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0), limits=limits) as client:

        async def worker(k: int) -> None:
            stream = GrpcStream(server.grpc_address) if server.protocol == "grpc" else None
            i = k
            while True:  # at least one request each; a request started before the deadline completes
                prompt = PROMPTS[i % len(PROMPTS)]
                try:
                    if stream is not None:
                        done.append(await stream.request(prompt, n))
                    else:
                        done.append(await one_request(client, server, prompt, n))
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(str(exc))
                i += clients
                if time.perf_counter() >= stop_at:
                    break
            if stream is not None:
                await stream.close()

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
    return done, errors, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")
    )


def load_run(server, args, expected: dict[str, str]) -> dict:
    check, errors, _ = asyncio.run(drive(server, 1, 0.0, args.max_tokens))  # one request, checked
    assert not errors and check[0]["text"] == expected[check[0]["prompt"]], (errors, check)
    before = load_avg()
    asyncio.run(drive(server, args.clients, args.warmup, args.max_tokens))
    rss_warm = rss_tree(server.pid)
    done, errors, elapsed = asyncio.run(drive(server, args.clients, args.duration, args.max_tokens))
    rss_end = rss_tree(server.pid)
    wrong = sum(1 for d in done if d["text"] != expected[d["prompt"]])
    ttft = [d["ttft"] * 1000 for d in done]
    tokens = sum(d["tokens"] for d in done)
    return {
        "server": server.name, "completed": len(done), "errors": len(errors), "error_samples": errors[:3],
        "wrong_text": wrong, "elapsed_s": round(elapsed, 1), "requests_per_s": round(len(done) / elapsed, 2),
        "ttft_p50_ms": round(percentile(ttft, 50), 1), "ttft_p99_ms": round(percentile(ttft, 99), 1),
        "tokens_per_s": round(tokens / elapsed, 1), "rss_after_warmup_mb": round(rss_warm / 2**20, 1),
        "rss_end_mb": round(rss_end / 2**20, 1), "rss_ratio": round(rss_end / rss_warm, 3),
        "load_before": before, "load_after": load_avg(),
    }  # fmt: skip


def run_load(args) -> dict:
    import radon.runtime

    art = make_artifact(args.work, args.config, args.threads)
    repo = make_repository(art, args.work, args.threads, args.max_batch, bls=False)
    gen = radon.runtime.load(art, threads=args.threads)
    expected = {p: gen.generate_text(p, args.max_tokens) for p in PROMPTS}
    del gen
    results = []
    servers = args.servers.split(",")
    for protocol in args.protocols.split(",") if "triton" in servers else []:
        with Triton(repo, args.work, protocol) as server:
            results.append(load_run(server, args, expected))
            pgid = server.pid
        results[-1]["orphans"] = server.orphans(pgid)
    if "radon" in servers:
        with RadonServe(art, args.threads, args.max_batch, args.work) as server:
            results.append(load_run(server, args, expected))
    return {"config": args.config, "artifact": str(art), "clients": args.clients, "duration_s": args.duration,
            "warmup_s": args.warmup, "max_tokens": args.max_tokens, "max_batch": args.max_batch,
            "threads": args.threads, "results": results}  # fmt: skip


# ---- BLS cost -------------------------------------------------------------------------------------
_WORKER = r"""
import sys, time
import radon.runtime
gen = radon.runtime.load(sys.argv[1], threads=int(sys.argv[2]))
print("ready", flush=True)
for line in sys.stdin:
    n, prompt = line.rstrip("\n").split(" ", 1)
    start = time.perf_counter()
    gen.complete(prompt.replace("\\n", "\n"), int(n))
    print((time.perf_counter() - start) * 1000, flush=True)
"""


class RuntimeWorker:
    """radon.runtime in a process of its own (as radon bench runs each engine), timing ``complete``."""

    def __init__(self, art: Path, threads: int) -> None:
        cmd = [sys.executable, "-c", _WORKER, str(art), str(threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def time_ms(self, prompt: str, tokens: int) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{tokens} " + prompt.replace("\n", "\\n") + "\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def timed_request(worker: RuntimeWorker, url: str, prompt: str, expected: str, n: int, model: str, stream: bool,
                  tokens: int) -> float:  # fmt: skip
    """Wall milliseconds of one request of ``tokens`` new tokens: the runtime in its worker process, or the
    generate model ``model`` over HTTP (whose text, at ``n`` tokens, must be the runtime's)."""
    from radon.model_repository.client import generate

    if model == "runtime":
        return worker.time_ms(prompt, tokens)
    start = time.perf_counter()
    reply = generate(url, prompt, model=model, max_tokens=tokens, stream=stream)
    assert tokens != n or reply.text == expected, (model, stream, reply.text)
    return (time.perf_counter() - start) * 1000


VARIANTS = (("radon", False), ("radon", True), ("radon_bls", False), ("radon_bls", True))


def run_bls(args) -> dict:
    """Per-token cost = the slope (T(n) - T(1)) / (n - 1) of a request's wall time in its new tokens, so the
    fixed cost of a request (HTTP, the tokenizer's BLS call, Triton's scheduling) is reported apart."""
    import radon.runtime

    rows = []
    for name in args.configs.split(","):
        art = make_artifact(args.work, name, args.threads)
        repo = make_repository(art, args.work, args.threads, args.max_batch)
        prompt, n = PROMPTS[1], args.tokens
        expected = radon.runtime.load(art, threads=args.threads).generate_text(prompt, n)
        worker = RuntimeWorker(art, args.threads)
        keys = [("runtime", False), *VARIANTS]
        samples: dict[tuple, list[float]] = {(k, s, m): [] for k, s in keys for m in (1, n)}
        before = load_avg()
        with Triton(repo, args.work) as server:
            timed = partial(timed_request, worker, server.server.url, prompt, expected, n)
            for key in keys:  # warm-up; every answer must be the runtime's text
                timed(key[0], key[1], n)
            for _ in range(args.rounds):
                for key in keys:
                    for tokens in (1, n):
                        samples[(*key, tokens)].append(timed(key[0], key[1], tokens))
        worker.close()
        med = {k: statistics.median(v) for k, v in samples.items()}
        slope = {key: (med[(*key, n)] - med[(*key, 1)]) / (n - 1) for key in keys}
        base = slope[("runtime", False)]
        row = {"config": name, "tokens": n, "rounds": args.rounds, "threads": args.threads,
               "runtime_ms_per_token": round(base, 3), "runtime_request_1_ms": round(med[("runtime", False, 1)], 2),
               "load_before": before, "load_after": load_avg(),
               "samples_ms": {f"{k[0]}/{'stream' if k[1] else 'single'}/{k[2]}": [round(x, 2) for x in v]
                              for k, v in samples.items()}}  # fmt: skip
        for model, stream in VARIANTS:
            tag = f"{'in_process' if model == 'radon' else 'bls'}_{'stream' if stream else 'single'}"
            row[f"{tag}_ms_per_token"] = round(slope[(model, stream)], 3)
            row[f"{tag}_overhead"] = round(slope[(model, stream)] / base - 1, 3)
            row[f"{tag}_fixed_ms"] = round(med[(model, stream, 1)] - med[("runtime", False, 1)], 2)
        rows.append(row)
        log.info("%s: %s", name, {k: v for k, v in row.items() if k != "samples_ms"})
    return {"rows": rows}


# ---- report -------------------------------------------------------------------------------------
def markdown(kind: str, report: dict) -> str:
    if kind == "load":
        lines = ["| server | completed | errors | wrong text | requests/s | TTFT p50 ms | TTFT p99 ms | tokens/s | "
                 "RSS after warm-up MB | RSS end MB | end / warm-up | orphans after stop | load avg |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
        for r in report["results"]:
            lines.append(f"| {r['server']} | {r['completed']} | {r['errors']} | {r['wrong_text']} | {r['requests_per_s']} | "
                         f"{r['ttft_p50_ms']} | {r['ttft_p99_ms']} | {r['tokens_per_s']} | {r['rss_after_warmup_mb']} | "
                         f"{r['rss_end_mb']} | {r['rss_ratio']} | {r.get('orphans', '-')} | "
                         f"{r['load_before']} → {r['load_after']} |")  # fmt: skip
        return "\n".join(lines)
    lines = ["| model | radon.runtime ms/token | generate model, decode loop, responses | ms/token | overhead | "
             "fixed ms per request | load avg |", "|---|---:|---|---:|---:|---:|---|"]  # fmt: skip
    for r in report["rows"]:
        for loop in ("in_process", "bls"):
            for mode, what in (("single", "one response"), ("stream", "one per token")):
                tag = f"{loop}_{mode}"
                lines.append(f"| {r['config']} | {r['runtime_ms_per_token']} | {loop.replace('_', '-')}, {what} | "
                             f"{r[tag + '_ms_per_token']} | {r[tag + '_overhead']:+.0%} | {r[tag + '_fixed_ms']} | "
                             f"{r['load_before']} → {r['load_after']} |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["load", "bls"])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "radon" / "bench-triton")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads everywhere")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--config", default="demo", choices=sorted(CONFIGS), help="load: the model")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--protocols", default="http,grpc", help="load: Triton's client protocols, in turn")
    parser.add_argument("--servers", default="triton,radon", help="load: triton, radon or both")
    parser.add_argument("--configs", default="tiny,demo", help="bls: comma-separated models")
    parser.add_argument("--tokens", type=int, default=64, help="bls: new tokens per request")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would load the client
    args.work.mkdir(parents=True, exist_ok=True)
    report = run_load(args) if args.kind == "load" else run_bls(args)
    report |= {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(markdown(args.kind, report))
    if args.kind == "load":
        bad = [r for r in report["results"]
               if r["errors"] or r["wrong_text"] or r["rss_ratio"] > 1.10 or r.get("orphans")]  # fmt: skip
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
