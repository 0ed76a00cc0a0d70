"""The serving stage of ``radon demo``: start the server on the demo's artifact, send one request, stop it.

DESIGN.md: a demo's serving step starts the server, sends one request and stops it. The server is
the real app under uvicorn, on a loopback port chosen by the OS, in a thread of the demo's process;
the request is the seed's ``POST /api/v1/generate`` (standard library HTTP, no extra client). The
answer's text and timings go into the demo's facts. ``radon.demo`` joins it to the pipeline with
``register_demo_step(register, Step)``, after the export step.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from typing import Any

DEMO_PROMPT = "It was a dark and stormy night"
DEMO_NEW_TOKENS = {False: 48, True: 16}  # full demo, --quick


def serve_once(
    artifact: Any, prompt: str, max_new_tokens: int, *, threads: int | None = None
) -> dict[str, Any]:
    """Start ``radon serve``'s app on 127.0.0.1, POST one ``/api/v1/generate``, stop; returns the answer."""
    import uvicorn

    from radon.runtime import load
    from radon.runtime.server import create_app

    app = create_app(load(artifact, threads=threads), max_batch=1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 60
        while not server.started:
            if time.time() > deadline or not thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        body = json.dumps({"prompt": prompt, "max_new_tokens": max_new_tokens}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/generate", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        answer["url"] = f"http://127.0.0.1:{port}/api/v1/generate"
        return answer
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def step_serve(ctx: Any) -> str:
    """Serve ``ctx.outputs["onnx"]`` and record one answer in ``ctx.facts["serve"]``."""
    answer = serve_once(ctx.outputs["onnx"], DEMO_PROMPT, DEMO_NEW_TOKENS[bool(ctx.quick)])
    ctx.facts["serve"] = {
        k: answer[k] for k in ("text", "prompt_tokens", "completion_tokens", "timings", "providers")
    }
    ctx.say(f"      POST /api/v1/generate {DEMO_PROMPT!r} -> {(DEMO_PROMPT + answer['text'])!r}")
    t = answer["timings"]
    return (f"radon serve answered {answer['completion_tokens']} tokens in {t['total_s']:.2f} s "
            f"({t['tokens_per_second']} tok/s, {', '.join(answer['providers'])}), then stopped")  # fmt: skip


def register_demo_step(register: Any, step_type: Any) -> None:
    """Add the serving step after ``export`` (``radon.demo.register`` and ``radon.demo.Step``)."""
    register(
        step_type("serve", "serve: start radon serve, send one request, stop it", step_serve), after="export"
    )
