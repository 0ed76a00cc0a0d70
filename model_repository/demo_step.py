"""The Triton stage of ``radon demo``: build the repository, start tritonserver, send one request, stop it.

DESIGN.md: a demo's serving step starts the server, sends one request and stops it. The repository is
``radon triton build DIR/onnx --out DIR/triton`` (the python-backend decoder, which every tritonserver
has); the server is a real tritonserver on free loopback ports (``TritonServer``: PATH first, else
nvidia-pytriton in ``.triton-venv``); the request is ``POST /v2/models/radon/generate`` with the serve
step's prompt and budget (``PROMPTS["en"]``, ``recipe.serve_tokens``). Without a server environment the
step says so, naming ``scripts/make_triton_env.sh``, and the demo goes on: the server environment is an
install of its own (numpy<2), not part of ``pip install radon``. ``radon.demo.PIPELINE`` runs it after
``serve``.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radon.errors import RadonError

if TYPE_CHECKING:
    from radon.demo import DemoContext


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def triton_once(artifact: str | Path, repository: str | Path, prompt: str, max_tokens: int) -> dict[str, Any]:
    """Build ``repository`` from ``artifact``, serve it, send one generate request, stop; the answer.

    Raises RadonError when no tritonserver can be found (the message names the script that makes one).
    """
    from radon.model_repository.build import build_repository
    from radon.model_repository.client import generate
    from radon.model_repository.server import TritonServer, find_server

    install = find_server()
    build = build_repository(artifact, repository, decoder="python", max_batch=2, overwrite=True)
    server = TritonServer(build.repository, http_port=_port(), grpc_port=_port(), metrics_port=_port(),
                          install=install, log_file=Path(f"{repository}.tritonserver.log"))  # fmt: skip
    with server:
        reply = generate(server.url, prompt, max_tokens=max_tokens)
    return {"text": reply.text, "seconds": reply.total_s, "url": f"{server.url}/v2/models/radon/generate",
            "server": install.describe(), "repository": str(build.repository)}  # fmt: skip


def step_triton(ctx: DemoContext) -> str:
    """Serve ``ctx.outputs["onnx"]`` with Triton and record the answer in ``ctx.facts["triton"]``."""
    from radon.demo import PROMPTS

    prompt = PROMPTS["en"]
    out = Path(ctx.out) / "triton"
    try:
        answer = triton_once(ctx.outputs["onnx"], out, prompt, ctx.recipe.serve_tokens)
    except RadonError as exc:
        ctx.facts["triton"] = {"skipped": str(exc)}
        return f"skipped: {exc}"
    ctx.facts["triton"] = answer
    ctx.outputs["triton"] = out
    ctx.say(f"      POST /v2/models/radon/generate {prompt!r} -> {(prompt + answer['text'])!r}")
    return f"tritonserver answered in {answer['seconds']:.2f} s ({answer['server']}), then stopped"
