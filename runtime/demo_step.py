"""The serving stage of ``radon demo``: start the server on the demo's artifact, send one request, stop it.

DESIGN.md: a demo's serving step starts the server, sends one request and stops it. The server is
the real app under uvicorn, on a loopback port chosen by the OS, in a thread of the demo's process;
``serve_once`` posts one JSON body to one route (standard library HTTP, no extra client). The serve step
asks the seed's ``POST /api/v1/generate`` for ``PROMPTS["en"]`` (``recipe.serve_tokens`` new tokens);
the real-model step (radon/demo_realmodel.py) asks ``/v1/chat/completions`` the same way. The answer's
text and timings go into the demo's facts. ``radon.demo.PIPELINE`` runs it after ``parity``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radon.errors import RadonError

if TYPE_CHECKING:
    from radon.demo import DemoContext


@dataclass(frozen=True)
class Served:
    """One request to a freshly started ``radon serve``: where it went, how long it took, the JSON answer."""

    url: str
    seconds: float  # the request alone (the server was already up)
    answer: dict[str, Any]


def serve_once(
    artifact: str | Path,
    route: str,
    body: dict[str, Any],
    *,
    model_name: str | None = None,
    threads: int | None = None,
) -> Served:
    """Start ``radon serve``'s app on 127.0.0.1, POST ``body`` as JSON to ``route``, stop it.

    ``model_name`` is the name the OpenAI routes answer to (default: the artifact folder's name). An
    HTTP error is a RadonError that quotes the server's message.
    """
    import uvicorn

    from radon.runtime import load
    from radon.runtime.server import create_app
    from radon.runtime.server.limits import uvicorn_settings

    app = create_app(load(artifact, threads=threads), max_batch=1, model_name=model_name)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}{route}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **uvicorn_settings(app)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 60
        while not server.started:
            if time.time() > deadline or not thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RadonError(
                f"POST {route}: HTTP {exc.code}: {exc.read().decode(errors='replace')}"
            ) from None
        return Served(url, time.perf_counter() - start, answer)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def step_serve(ctx: DemoContext) -> str:
    """Serve ``ctx.outputs["onnx"]`` and record one answer in ``ctx.facts["serve"]``."""
    from radon.demo import PROMPTS

    prompt = PROMPTS["en"]
    body = {"prompt": prompt, "max_new_tokens": ctx.recipe.serve_tokens}
    answer = serve_once(ctx.outputs["onnx"], "/api/v1/generate", body).answer
    ctx.facts["serve"] = {
        k: answer[k] for k in ("text", "prompt_tokens", "completion_tokens", "timings", "providers")
    }
    ctx.say(f"      POST /api/v1/generate {prompt!r} -> {(prompt + answer['text'])!r}")
    ctx.answers[f"the demo model: radon serve {ctx.outputs['onnx']}, POST /api/v1/generate"] = (
        prompt, answer["text"]
    )  # fmt: skip
    t = answer["timings"]
    return (f"radon serve answered {answer['completion_tokens']} tokens in {t['total_s']:.2f} s "
            f"({t['tokens_per_second']} tok/s, {', '.join(answer['providers'])}), then stopped")  # fmt: skip
