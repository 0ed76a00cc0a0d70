"""``radon serve ARTIFACT``: the local HTTP server (FastAPI + uvicorn) over the edge runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from radon.cli._app import Opt


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
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info",
) -> int:
    """Serve an ONNX artifact over HTTP until interrupted.

    Endpoints: POST /api/v1/generate (the seed's API; "stream": true for server-sent events),
    POST /v1/completions, POST /v1/chat/completions (the model's own chat template) and
    GET /v1/models (OpenAI-compatible, streaming too), GET /health,
    GET /metrics (Prometheus). Requests are queued and compatible ones batched; a client that
    disconnects stops its generation. docs/runtime.md has curl and openai examples.

    Args:
        artifact: an ONNX artifact folder (radon export onnx), with tokenizer/ for text prompts.
        host: address to listen on (0.0.0.0 to accept other machines, as in the Docker image).
        port: TCP port.
        providers: onnxruntime execution providers in priority order (cpu, cuda, tensorrt, ...).
        threads: onnxruntime intra-op threads (default: one per physical core).
        max_tokens_limit: the most new tokens one request may ask for (also capped by the context).
        max_batch: the most requests generated together in one batch.
        model_name: the name clients use in "model" (default: the artifact folder's name).
        spinning: let onnxruntime's idle threads spin-wait between operators. Off by default here:
            the server's event loop and its clients share the cores (docs/runtime.md, "Threads").
        log_level: uvicorn's log level.
    """
    from radon._extras import require
    from radon.runtime import load

    uvicorn = require("uvicorn", extra="serve", purpose="radon serve")
    require("fastapi", extra="serve", purpose="radon serve")
    from radon.runtime.server import create_app

    gen = load(artifact, providers=providers, threads=threads, spinning=spinning)
    app = create_app(gen, max_tokens_limit=max_tokens_limit, max_batch=max_batch, model_name=model_name)
    print(f"radon serve: {gen.name} ({gen.manifest.lowering}, {gen.manifest.precision}) on "
          f"{', '.join(gen.providers)} at http://{host}:{port}", flush=True)  # fmt: skip
    uvicorn.run(app, host=host, port=port, log_level=log_level)
    return 0
