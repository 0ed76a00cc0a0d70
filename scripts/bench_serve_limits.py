#!/usr/bin/env python
"""Load and denial of service against ``radon serve`` (slow: about 5 minutes; not a CI test).

Starts ``radon serve`` in its own process on SmolLM2-135M-Instruct's ``ort`` fp32 artifact (built once
into ``~/.cache/radon/bench/serve-limits/`` by ``radon convert --from-hf`` and ``radon export onnx``, or
``--artifact``) with its default limits, and measures, from this process:

1. **Big prompts**: four 10 MB prompts sent at once, (a) as curl sends them (``Expect: 100-continue``)
   and (b) blindly, body and all; then four prompts at the default character cap, which the server
   tokenizes. Meanwhile ``/health`` is asked every 50 ms (latency) and the server's RSS is sampled
   (peak against idle). Goals: ``/health`` under 100 ms, RSS within 50 MB of idle.
2. **Slowloris**: 3,000 sockets that send a partial request and one more header line every 2 s.
   Goal: every one closed by the server's header timeout. ``/health`` latency and RSS meanwhile.
3. **64 clients for 60 s** (``/v1/completions``, 16 greedy tokens, a new request as soon as one ends),
   without and with ``--api-key``. Goals: 0 errors, no 429, RSS flat within 10% (last sample against
   the one after warm-up).

Prints a Markdown section for docs/reliability.md (the command, the machine, the date, the figures)
and writes the raw figures as JSON with ``--json``.

    python scripts/bench_serve_limits.py [--artifact DIR] [--clients 64 --duration 60 --slowloris 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil

CACHE = Path(os.environ.get("RADON_BENCH_CACHE", Path.home() / ".cache" / "radon" / "bench")) / "serve-limits"
HF_DIR = Path.home() / ".cache" / "radon" / "realmodel" / "smollm2-135m-instruct" / "hf"
KEY = "bench-key-0123456789abcdef"
PROMPTS = ["Once upon a time", "Привет, RADON!", "def fibonacci(n):", "The capital of France is"]


def radon_cmd() -> list[str]:
    exe = shutil.which("radon", path=str(Path(sys.executable).parent)) or shutil.which("radon")
    if exe is None:
        raise SystemExit("bench_serve_limits: the radon command is not installed in this environment")
    return [exe]


def build_artifact() -> Path:
    """SmolLM2-135M-Instruct, ort fp32 (no parity: this measures the server, not the export)."""
    artifact = CACHE / "smollm2-ort"
    if (artifact / "radon_manifest.json").is_file():
        return artifact
    CACHE.mkdir(parents=True, exist_ok=True)
    ckpt = CACHE / "smollm2-ckpt"
    if not (ckpt / "config.json").is_file():
        subprocess.run([*radon_cmd(), "convert", "--from-hf", str(HF_DIR), "--out", str(ckpt)], check=True)
    subprocess.run([*radon_cmd(), "export", "onnx", str(ckpt), "--out", str(artifact), "--no-parity",
                    "--quiet", "--force"], check=True)  # fmt: skip
    return artifact


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``radon serve`` in a child process; ``rss()`` in MB, ``cpu()`` user+sys seconds."""

    def __init__(self, artifact: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [*radon_cmd(), "serve", str(artifact), "--port", str(self.port), "--threads", "2",
                "--log-level", "warning", *extra]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
            if self.proc.poll() is not None:
                raise SystemExit(f"radon serve exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.limits = httpx.get(f"{self.url}/health").json()["limits"]
        self.model = httpx.get(f"{self.url}/health").json()["model"]

    def rss(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def refused(self, key: str | None = None) -> dict[str, int]:
        """The server's own count of refusals by reason (``radon_requests_refused_total``)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        text = httpx.get(f"{self.url}/metrics", headers=headers).text
        found = re.findall(r'^radon_requests_refused_total\{reason="(\w+)"\} (\S+)$', text, re.M)
        return {reason: int(float(v)) for reason, v in found}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Watch:
    """While running: ``/health`` every ``every`` s on one keep-alive connection (latency, ms), and RSS."""

    def __init__(self, server: Server, every: float = 0.05) -> None:
        self.server, self.every = server, every
        self.latency_ms: list[float] = []
        self.failures: list[str] = []
        self.rss: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    r = client.get(f"{self.server.url}/health")
                    if r.status_code != 200:
                        self.failures.append(str(r.status_code))
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                self.latency_ms.append((time.perf_counter() - t0) * 1000)
                self.rss.append(self.server.rss())
                self._stop.wait(self.every)

    def summary(self, idle_rss: float) -> dict[str, Any]:
        lat = sorted(self.latency_ms)
        return {"health_requests": len(lat), "health_failures": len(self.failures),
                "health_p50_ms": round(statistics.median(lat), 1) if lat else None,
                "health_p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 1) if lat else None,
                "health_max_ms": round(lat[-1], 1) if lat else None,
                "rss_idle_mb": round(idle_rss, 1), "rss_peak_mb": round(max(self.rss, default=idle_rss), 1),
                "rss_peak_over_idle_mb": round(max(self.rss, default=idle_rss) - idle_rss, 1)}  # fmt: skip


def post_big(port: int, size: int, *, expect: bool) -> str:
    """POST a ``size``-byte JSON prompt; returns the status, or what happened to the socket."""
    head = (f"POST /api/v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n{'Expect: 100-continue' + chr(13) + chr(10) if expect else ''}\r\n")  # fmt: skip
    body = b'{"prompt": "' + b"a" * (size - 14) + b'"}'
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        try:
            s.sendall(head.encode())
            if expect:
                first = s.recv(65536)
                if not first.startswith(b"HTTP/1.1 100"):
                    return first.split(b" ", 2)[1].decode()
            s.sendall(body)
            got = s.recv(65536)
            return got.split(b" ", 2)[1].decode() if got else "closed"
        except (BrokenPipeError, ConnectionResetError) as exc:
            return f"reset ({type(exc).__name__}) after the server answered"


def big_prompts(server: Server, mb: float, n: int = 4) -> dict[str, Any]:
    out: dict[str, Any] = {}
    size = int(mb * 1_000_000)
    for name, expect in (("expect_100_continue", True), ("blind", False)):
        time.sleep(1)
        idle, cpu0, refused0 = server.rss(), server.cpu(), server.refused()
        with Watch(server) as watch:
            time.sleep(0.5)
            with ThreadPoolExecutor(n) as pool:
                statuses = list(pool.map(lambda _: post_big(server.port, size, expect=expect), range(n)))  # noqa: B023
            time.sleep(0.5)
        out[f"{n}x{mb:g}MB_{name}"] = {"statuses": statuses, "server_cpu_s": round(server.cpu() - cpu0, 2),
                                       "server_refused": _delta(server.refused(), refused0)} | watch.summary(idle)  # fmt: skip
    # prompts the server does tokenize: the character cap each (the limit a body under 1 MiB can reach)
    chars = int(server.limits["max_prompt_chars"])
    text = " ".join(["the quick brown fox jumps over the lazy dog"] * (chars // 44 + 1))[:chars]
    time.sleep(1)
    idle, cpu0 = server.rss(), server.cpu()
    with Watch(server) as watch:
        time.sleep(0.5)
        with httpx.Client(timeout=120) as client:
            results: list[Any] = [None] * n

            def ask(i: int) -> None:
                r = client.post(f"{server.url}/api/v1/generate", json={"prompt": text, "max_new_tokens": 1})
                results[i] = (r.status_code, r.json().get("detail", "")[:90])

            threads = [threading.Thread(target=ask, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        time.sleep(0.5)
    out[f"{n}x{chars}chars_tokenized"] = {"statuses": [r[0] for r in results], "message": results[0][1],
                                          "server_cpu_s": round(server.cpu() - cpu0, 2)} | watch.summary(idle)  # fmt: skip
    return out


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def slowloris(server: Server, n: int, every: float = 2.0) -> dict[str, Any]:
    """``n`` sockets, each a partial request plus one header line every ``every`` s, until the server
    closes them all (or 3 header timeouts pass after the last one opened)."""
    timeout = float(server.limits["header_timeout"])
    idle, refused0, cpu0 = server.rss(), server.refused(), server.cpu()
    sel = selectors.DefaultSelector()
    opened: dict[socket.socket, float] = {}
    closed: dict[str, list[float]] = {"408": [], "closed": [], "reset": []}
    with Watch(server, every=0.1) as watch:
        t_open = time.perf_counter()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            opened[s] = time.perf_counter()
        open_s = time.perf_counter() - t_open
        peak_open = len(opened)
        deadline = time.perf_counter() + 3 * timeout
        next_trickle = time.perf_counter() + every
        while opened and time.perf_counter() < deadline:
            for key, _ in sel.select(timeout=0.2):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(4096)
                    kind = "408" if data.startswith(b"HTTP/1.1 408") else "closed"
                except ConnectionResetError:
                    kind = "reset"
                closed[kind].append(time.perf_counter() - opened.pop(s))
                sel.unregister(s)
                s.close()
            if time.perf_counter() >= next_trickle:
                for s in list(opened):
                    try:
                        s.send(b"X-a: b\r\n")
                    except OSError:
                        pass
                next_trickle += every
    still_open = len(opened)
    for s in opened:
        s.close()
    lifetimes = sorted(closed["408"] + closed["closed"] + closed["reset"])
    return {"sockets": n, "opened_in_s": round(open_s, 2), "open_at_once": peak_open,
            "closed_with_408": len(closed["408"]), "closed_silently": len(closed["closed"]),
            "reset": len(closed["reset"]), "still_open": still_open, "header_timeout_s": timeout,
            "lifetime_min_s": round(lifetimes[0], 2) if lifetimes else None,
            "lifetime_max_s": round(lifetimes[-1], 2) if lifetimes else None,
            "server_refused": _delta(server.refused(), refused0),
            "server_cpu_s": round(server.cpu() - cpu0, 2)} | watch.summary(idle)  # fmt: skip


async def _clients(server: Server, clients: int, duration: float, key: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    statuses: dict[str, int] = {}
    errors: list[str] = []
    latencies: list[float] = []
    rss: list[tuple[float, float]] = []
    stop = time.perf_counter() + duration

    async def client(i: int, http: httpx.AsyncClient) -> None:
        j = 0
        while time.perf_counter() < stop:
            body = {"model": server.model, "prompt": f"{PROMPTS[(i + j) % len(PROMPTS)]} {i}", "max_tokens": 16,
                    "temperature": 0}  # fmt: skip
            t0 = time.perf_counter()
            try:
                r = await http.post(f"{server.url}/v1/completions", json=body, headers=headers)
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:120]}")
                else:
                    latencies.append(time.perf_counter() - t0)
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            j += 1

    async def sample() -> None:
        t0 = time.perf_counter()
        while time.perf_counter() < stop:
            rss.append((time.perf_counter() - t0, server.rss()))
            await asyncio.sleep(1.0)

    cpu0 = server.cpu()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    with Watch(server, every=0.5) as watch:
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            await asyncio.gather(sample(), *(client(i, http) for i in range(clients)))
    health = watch.summary(rss[0][1])
    warm = next((r for t, r in rss if t >= 5.0), rss[0][1])
    last = rss[-1][1]
    lat = sorted(latencies)
    return {"clients": clients, "duration_s": duration, "api_key": key is not None, "statuses": statuses,
            "errors": len(errors), "first_errors": errors[:3], "requests_ok": len(lat),
            "requests_per_s": round(len(lat) / duration, 2),
            "latency_p50_s": round(statistics.median(lat), 3) if lat else None,
            "latency_p99_s": round(lat[int(0.99 * (len(lat) - 1))], 3) if lat else None,
            "rss_after_5s_mb": round(warm, 1), "rss_last_mb": round(last, 1),
            "rss_max_mb": round(max(r for _, r in rss), 1), "rss_change_pct": round(100 * (last - warm) / warm, 1),
            "server_cpu_s": round(server.cpu() - cpu0, 1), "health_p50_ms": health["health_p50_ms"],
            "health_p99_ms": health["health_p99_ms"], "health_max_ms": health["health_max_ms"],
            "health_failures": health["health_failures"]}  # fmt: skip


def machine() -> str:
    cpu = platform.machine()
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


NAMES = {
    "expect_100_continue": "sent as curl does (`Expect: 100-continue`)",
    "blind": "sent blindly, body and all",
}


def _got(r: dict[str, Any]) -> str:
    got = ", ".join(sorted({str(x).split(" (")[0] for x in r["statuses"]}))
    refused = ", ".join(f"{k} {v}" for k, v in r.get("server_refused", {}).items())
    return got + (f" (server: refused {refused})" if refused else "")


def markdown(results: dict[str, Any], argv: list[str]) -> str:
    lines = [f"Measured {dt.date.today().isoformat()} on {machine()}, load average before "
             f"{results['loadavg_before']}, after {results['loadavg_after']} (a shared machine), with",
             "", "```bash", "python scripts/bench_serve_limits.py " + shlex.join(argv), "```", ""]  # fmt: skip
    lines += ["| test | what the clients got | /health p50 / p99 / max (ms) | RSS idle → peak (MB) | server CPU (s) |",
              "|---|---|---:|---:|---:|"]  # fmt: skip
    for name, r in results["big_prompts"].items():
        n, _, kind = name.partition("_")
        label = f"{n.replace('x', ' × ')} prompts, {NAMES.get(kind, kind.replace('_', ' '))}"
        lines.append(f"| {label} | {_got(r)} | {r['health_p50_ms']} / {r['health_p99_ms']} / {r['health_max_ms']} | "
                     f"{r['rss_idle_mb']} → {r['rss_peak_mb']} (+{r['rss_peak_over_idle_mb']}) | {r['server_cpu_s']} |")  # fmt: skip
    s = results["slowloris"]
    lines.append(f"| slowloris: {s['sockets']} sockets, a header line every 2 s | {s['closed_with_408']} closed "
                 f"with 408, {s['closed_silently']} closed silently, {s['reset']} reset, {s['still_open']} still "
                 f"open; lifetime {s['lifetime_min_s']}–{s['lifetime_max_s']} s (header timeout "
                 f"{s['header_timeout_s']:g} s) | {s['health_p50_ms']} / {s['health_p99_ms']} / "
                 f"{s['health_max_ms']} | {s['rss_idle_mb']} → {s['rss_peak_mb']} (+{s['rss_peak_over_idle_mb']}) | "
                 f"{s['server_cpu_s']} |")  # fmt: skip
    lines += ["", "| clients | API key | requests OK (per s) | statuses | errors | latency p50 / p99 (s) | "
              "/health p50 / p99 / max (ms) | RSS after 5 s → last (max), MB | server CPU (s) |",
              "|---|---|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results["load"]:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
        lines.append(f"| {r['clients']} × {r['duration_s']:g} s | {'on' if r['api_key'] else 'off'} | "
                     f"{r['requests_ok']} ({r['requests_per_s']}) | {statuses} | {r['errors']} | "
                     f"{r['latency_p50_s']} / {r['latency_p99_s']} | {r['health_p50_ms']} / {r['health_p99_ms']} / "
                     f"{r['health_max_ms']} | {r['rss_after_5s_mb']} → {r['rss_last_mb']} "
                     f"({r['rss_max_mb']}; {r['rss_change_pct']:+}%) | {r['server_cpu_s']} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--artifact", type=Path, default=None, help="an ONNX artifact (default: SmolLM2, built once)"
    )
    p.add_argument("--prompt-mb", type=float, default=10.0, help="size of each big prompt, MB")
    p.add_argument("--slowloris", type=int, default=3000, help="slow sockets")
    p.add_argument("--clients", type=int, default=64, help="concurrent clients of the load test")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of each load test")
    p.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = p.parse_args(argv)
    signal.signal(
        signal.SIGTERM, lambda *_: sys.exit(143)
    )  # so the servers are stopped by the finally blocks
    argv = sys.argv[1:] if argv is None else argv
    artifact = args.artifact or build_artifact()
    results: dict[str, Any] = {"loadavg_before": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    server = Server(artifact)
    try:
        httpx.post(
            f"{server.url}/api/v1/generate", json={"prompt": "warm up", "max_new_tokens": 4}, timeout=60
        )
        results["big_prompts"] = big_prompts(server, args.prompt_mb)
        print(json.dumps(results["big_prompts"], indent=1), file=sys.stderr)
        results["slowloris"] = slowloris(server, args.slowloris)
        print(json.dumps(results["slowloris"], indent=1), file=sys.stderr)
        results["load"] = [asyncio.run(_clients(server, args.clients, args.duration, None))]
        print(json.dumps(results["load"][-1], indent=1), file=sys.stderr)
    finally:
        server.stop()
    server = Server(artifact, "--api-key", KEY)
    try:
        httpx.post(f"{server.url}/api/v1/generate", json={"prompt": "warm up", "max_new_tokens": 4}, timeout=60,
                   headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
        results["load"].append(asyncio.run(_clients(server, args.clients, args.duration, KEY)))
        print(json.dumps(results["load"][-1], indent=1), file=sys.stderr)
    finally:
        server.stop()
    results["loadavg_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(markdown(results, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
