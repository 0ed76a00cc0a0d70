"""``radon serve ARTIFACT``: the local HTTP server (FastAPI + uvicorn) over the edge runtime."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Annotated, Literal

from radon.cli._app import Opt
from radon.errors import RadonError

API_KEY_ENV = "RADON_API_KEY"


def serve(
    artifact: Annotated[Path, Opt(metavar="ARTIFACT")],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    providers: Annotated[str | None, Opt(metavar="NAME[,NAME]")] = None,
    threads: int | None = None,
    max_tokens_limit: int = 1024,
    max_batch: int = 8,
    model_name: str | None = None,
    spinning: bool = False,
    api_key: Annotated[str | None, Opt(metavar="KEY")] = None,
    max_body_bytes: int = 1 << 20,
    max_prompt_chars: int | None = None,
    max_concurrent_requests: int = 128,
    max_queue: int = 256,
    max_connections: int = 4096,
    header_timeout: float = 10.0,
    body_timeout: float = 30.0,
    keep_alive_timeout: int = 5,
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info",
) -> int:
    """Serve an ONNX artifact over HTTP until interrupted.

    Endpoints: POST /api/v1/generate (the seed's API; "stream": true for server-sent events),
    POST /v1/completions, POST /v1/chat/completions (the model's own chat template) and
    GET /v1/models (OpenAI-compatible, streaming too), GET /health,
    GET /metrics (Prometheus). Requests are queued and compatible ones batched; a client that
    disconnects stops its generation. Limits (docs/runtime.md, "Limits and authentication"): a body over
    --max-body-bytes is 413, more than --max-concurrent-requests generation requests or a queue
    past --max-queue is 429 / 503 with Retry-After, slow headers or bodies are 408 and closed.

    Args:
        artifact: an ONNX artifact folder (radon export onnx), with tokenizer/ for text prompts.
        host: address to listen on (0.0.0.0 to accept other machines, as in the Docker image: set an
            API key there).
        port: TCP port (1-65535).
        providers: onnxruntime execution providers in priority order (cpu, cuda, tensorrt, ...).
        threads: onnxruntime intra-op threads (default or 0: one per physical core).
        max_tokens_limit: the most new tokens one request may ask for (also capped by the context).
        max_batch: the most requests generated together in one batch.
        model_name: the name clients use in "model" (default: the artifact folder's name).
        spinning: let onnxruntime's idle threads spin-wait between operators. Off by default here:
            the server's event loop and its clients share the cores (docs/runtime.md, "Threads").
        api_key: a bearer token every route but /health requires ("Authorization: Bearer KEY");
            default: the RADON_API_KEY environment variable, else none.
        max_body_bytes: the largest request body, in bytes (413 above it).
        max_prompt_chars: the most characters of prompt text in one request (400 above it; default:
            16 x the model's context).
        max_concurrent_requests: generation requests in progress at once (429 above it).
        max_queue: prompts waiting for the generation thread (503 above it).
        max_connections: open connections (503 and close above it).
        header_timeout: seconds a client has to send its request line and headers (408, then close).
        body_timeout: seconds a client has to send its body after the headers (408, then close).
        keep_alive_timeout: seconds an idle connection is kept open between requests.
        log_level: uvicorn's log level.
    """
    from radon.runtime.server.limits import Limits

    if not 1 <= port <= 65535:
        raise RadonError(f"--port: must be in 1..65535, got {port}")
    for flag, value in (("--max-tokens-limit", max_tokens_limit), ("--max-batch", max_batch)):
        if value <= 0:
            raise RadonError(f"{flag}: must be > 0, got {value}")
    if threads is not None and threads < 0:
        raise RadonError(f"--threads: must be >= 0 (0: onnxruntime's default), got {threads}")
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV) or None
    limits = Limits(max_body_bytes=max_body_bytes, header_timeout=header_timeout, body_timeout=body_timeout,
                    keep_alive_timeout=keep_alive_timeout, max_connections=max_connections,
                    max_concurrent_requests=max_concurrent_requests, max_queue=max_queue,
                    max_prompt_chars=max_prompt_chars, api_key=api_key)  # fmt: skip
    limits.check()
    if not artifact.is_dir():
        raise RadonError(f"ARTIFACT: {artifact} is not a folder (an artifact from radon export onnx)")
    if not (artifact / "radon_manifest.json").is_file():
        raise RadonError(
            f"ARTIFACT: {artifact} has no radon_manifest.json (not an artifact of radon export onnx)"
        )

    from radon._extras import require
    from radon.runtime import load

    uvicorn = require("uvicorn", extra="serve", purpose="radon serve")
    require("fastapi", extra="serve", purpose="radon serve")
    from radon.runtime.server import create_app
    from radon.runtime.server.limits import uvicorn_settings

    if api_key is None and not is_loopback(host):
        print(f"radon serve: warning: listening on {host} without an API key: anyone who can reach this port "
              f"can use the model; set --api-key or {API_KEY_ENV}", file=sys.stderr, flush=True)  # fmt: skip
    gen = load(artifact, providers=providers, threads=threads or None, spinning=spinning)
    if gen.manifest.parity_verdict.startswith("failed"):
        print(f"radon serve: warning: {artifact.name} was written past its parity gate (radon quantize --no-gate): "
              f"{gen.manifest.parity_verdict}; /health says so too", file=sys.stderr, flush=True)  # fmt: skip
    app = create_app(gen, max_tokens_limit=max_tokens_limit, max_batch=max_batch, model_name=model_name,
                     limits=limits)  # fmt: skip
    print(f"radon serve: {gen.name} ({gen.manifest.lowering}, {gen.manifest.precision}) on "
          f"{', '.join(gen.providers)} at http://{host}:{port}"
          f"{' (API key required)' if api_key else ''}", flush=True)  # fmt: skip
    uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_settings(app))
    return 0


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
