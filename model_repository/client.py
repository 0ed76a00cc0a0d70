"""A client for the generate model: Triton's HTTP generate extension, or gRPC streaming via tritonclient.

- HTTP (``http://host:8000``): ``POST /v2/models/<m>/generate`` (one JSON answer) and
  ``/generate_stream`` (server-sent events, one per response), as Triton's generate extension
  specifies (``docs/protocol/extension_generate.md``). tritonclient's HTTP client cannot be used here:
  it speaks only ``/infer``, which Triton refuses for decoupled models (HTTP 501). The standard
  library's ``http.client`` sends these requests.
- gRPC (``grpc://host:8001``): ``tritonclient.grpc``'s bidirectional stream (``start_stream`` /
  ``async_stream_infer``), the one gRPC call that takes decoupled models; the request ends at the
  response whose ``triton_final_response`` parameter is true, or at an error.

Both give a ``Reply`` with the pieces in arrival order, each response's ``generated_tokens`` (how many
tokens the server had generated when it sent that response) and the client-side timings. Inputs use
the generate model's names (``radon.model_repository.request.GENERATE_INPUTS``).
"""

from __future__ import annotations

import http.client
import json
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from radon.errors import RadonError

NP_TYPES = {"TYPE_STRING": (object, "BYTES"), "TYPE_INT32": (np.int32, "INT32"), "TYPE_FP32": (np.float32, "FP32"),
            "TYPE_BOOL": (np.bool_, "BOOL"), "TYPE_UINT64": (np.uint64, "UINT64")}  # fmt: skip


class TritonClientError(RadonError):
    """The server refused or failed a request; ``status`` is the HTTP status (None for gRPC)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Reply:
    """One generate request's answer, as the client saw it."""

    pieces: list[str] = field(default_factory=list)  # text of each response, in order
    generated: list[int] = field(default_factory=list)  # each response's generated_tokens, when sent
    time_to_first_response_s: float = 0.0
    total_s: float = 0.0

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def responses(self) -> int:
        return len(self.pieces)


def request_body(prompt: str, max_tokens: int, stream: bool, **params: Any) -> dict[str, Any]:
    """The generate model's inputs as a JSON body; parameters left at None are not sent."""
    body: dict[str, Any] = {"text_input": prompt, "max_tokens": max_tokens, "stream": stream}
    body.update({k: v for k, v in params.items() if v is not None and v != []})
    return body


def split_url(url: str) -> tuple[str, str]:
    """(``http`` | ``grpc``, ``host:port``) from ``http://h:p``, ``grpc://h:p`` or ``h:p`` (HTTP)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "grpc") or not parts.hostname:
        raise RadonError(f"--url: expected http://HOST:PORT or grpc://HOST:PORT, got {url!r}")
    port = parts.port or (8001 if parts.scheme == "grpc" else 8000)
    return parts.scheme, f"{parts.hostname}:{port}"


def generate_http(address: str, model: str, body: dict[str, Any], *, timeout_s: float = 300.0,
                  on_piece: Callable[[str], None] | None = None) -> Reply:  # fmt: skip
    """One request over HTTP: ``/generate``, or ``/generate_stream`` when ``body["stream"]``."""
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    route = "generate_stream" if body.get("stream") else "generate"
    reply, start = Reply(), time.perf_counter()
    try:
        conn.request("POST", f"/v2/models/{model}/{route}", json.dumps(body).encode(),
                     {"Content-Type": "application/json"})  # fmt: skip
        response = conn.getresponse()
        if response.status != 200:
            raw = response.read().decode("utf-8", "replace").strip().removeprefix("data:")  # SSE-framed too
            try:
                message = json.loads(raw).get("error", raw)
            except json.JSONDecodeError:
                message = raw
            raise TritonClientError(f"HTTP {response.status}: {message}", response.status)
        events = _sse(response) if route == "generate_stream" else [json.loads(response.read())]
        for event in events:
            if "error" in event:
                raise TritonClientError(str(event["error"]), 200)
            piece = event.get("text_output", "")
            piece = piece if isinstance(piece, str) else "".join(piece)
            if not reply.pieces:
                reply.time_to_first_response_s = time.perf_counter() - start
            reply.pieces.append(piece)
            if "generated_tokens" in event:
                reply.generated.append(int(np.asarray(event["generated_tokens"]).reshape(-1)[0]))
            if on_piece:
                on_piece(piece)
    except (OSError, http.client.HTTPException) as exc:
        raise TritonClientError(f"{address}: {exc}") from None
    finally:
        conn.close()
    reply.total_s = time.perf_counter() - start
    return reply


def _sse(response: http.client.HTTPResponse):
    """The JSON objects of a server-sent event stream (``data: {...}`` lines)."""
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line.startswith("data:"):
            yield json.loads(line[5:].strip())


def grpc_inputs(body: dict[str, Any]) -> list[Any]:
    """tritonclient.grpc ``InferInput``s for a request body (batch of one: shape [1, n])."""
    import tritonclient.grpc as grpcclient

    from radon.model_repository.request import GENERATE_INPUTS

    specs = {f.name: f for f in GENERATE_INPUTS}
    out = []
    for name, value in body.items():
        if name not in specs:
            raise RadonError(f"{name}: not an input of the generate model")
        np_type, triton_type = NP_TYPES[specs[name].data_type]
        values = value if isinstance(value, list) else [value]
        if np_type is object:
            array = np.array([[str(v).encode("utf-8") for v in values]], dtype=object)
        else:
            array = np.array([values], dtype=np_type)
        tensor = grpcclient.InferInput(name, list(array.shape), triton_type)
        tensor.set_data_from_numpy(array)
        out.append(tensor)
    return out


def generate_grpc(address: str, model: str, body: dict[str, Any], *, timeout_s: float = 300.0,
                  on_piece: Callable[[str], None] | None = None) -> Reply:  # fmt: skip
    """One request over gRPC's stream (decoupled models answer only there)."""
    from radon._extras import require

    grpcclient = require("tritonclient.grpc", extra="triton", purpose="radon client over gRPC")
    results: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(address)
    reply, start = Reply(), time.perf_counter()
    client.start_stream(callback=lambda result, error: results.put((result, error, time.perf_counter())))
    try:
        client.async_stream_infer(model, grpc_inputs(body))
        while True:
            try:
                result, error, when = results.get(timeout=timeout_s)
            except queue.Empty:
                raise TritonClientError(f"{address}: no response in {timeout_s:.0f} s") from None
            if error is not None:
                raise TritonClientError(str(error.message() if hasattr(error, "message") else error))
            response = result.get_response()
            array = result.as_numpy("text_output")
            if array is not None:
                piece = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1))
                if not reply.pieces:
                    reply.time_to_first_response_s = when - start
                reply.pieces.append(piece.decode("utf-8"))
                count = result.as_numpy("generated_tokens")
                if count is not None:
                    reply.generated.append(int(count.reshape(-1)[0]))
                if on_piece:
                    on_piece(reply.pieces[-1])
            final = response.parameters.get("triton_final_response")
            if final is None or final.bool_param:
                break
    finally:
        client.stop_stream()
        client.close()
    reply.total_s = time.perf_counter() - start
    return reply


def generate(url: str, prompt: str, *, model: str = "radon", max_tokens: int = 64, stream: bool = False,
             timeout_s: float = 300.0, on_piece: Callable[[str], None] | None = None, **params: Any) -> Reply:  # fmt: skip
    """One generate request to ``url`` (``http://`` or ``grpc://``); ``params`` are the optional inputs
    (temperature, top_k, top_p, repetition_penalty, stop_words, seed)."""
    protocol, address = split_url(url)
    body = request_body(prompt, max_tokens, stream, **params)
    fn = generate_grpc if protocol == "grpc" else generate_http
    return fn(address, model, body, timeout_s=timeout_s, on_piece=on_piece)
