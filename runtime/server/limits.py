"""What one client may take from ``radon serve``: bytes, time, connections, concurrency, and a key.

Two guards, each where the thing it bounds can be seen:

- ``guarded_protocol``: uvicorn's h11 protocol with what uvicorn lacks below ASGI. uvicorn's only
  timeout is ``timeout_keep_alive``, which runs between requests and is reset by every byte received,
  so a client that trickles its headers (slowloris) holds a socket forever; an ASGI app never sees
  such a request at all. The protocol gives each request an absolute deadline for its headers
  (``header_timeout``: 408, then close), a cap on the header block (``max_header_bytes``: 431), and a
  cap on open connections (``max_connections``: 503 and close on accept). Go's ``ReadHeaderTimeout``,
  nginx's ``client_header_timeout`` and gunicorn's ``limit_request_field_size`` are the models.
- ``Guard``, a pure ASGI middleware in front of the app: the header count (431, gunicorn's
  ``limit_request_fields``), the API key (401 with ``WWW-Authenticate``, every route but ``/health``,
  ``hmac.compare_digest`` as vLLM's ``--api-key``), the concurrent generation requests (429 with
  ``Retry-After``, text-generation-inference's ``--max-concurrent-requests``), the body size (413 on
  ``Content-Length`` before a byte is read, or as a chunked body passes the cap; nginx's
  ``client_max_body_size``) and the body deadline (408, ``body_timeout``). The body is read whole
  here, so the app parses a body that is known to be complete and small.

Refusals that end a request before its body is read carry ``Connection: close``: the rest of the body
is never read, so a refused client cannot keep the socket by trickling it.
Each refusal is counted in ``radon_requests_refused_total{reason=...}``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from radon.errors import RadonError
from radon.runtime.server.metrics import Metrics

log = logging.getLogger(__name__)

GENERATION_ROUTES = frozenset({"/api/v1/generate", "/v1/completions", "/v1/chat/completions"})
OPEN_ROUTES = frozenset({"/health"})  # answered without the API key (load balancers, Docker's HEALTHCHECK)


@dataclass(frozen=True)
class Limits:
    """``radon serve``'s limits; the defaults admit 64 concurrent clients, queued rather than refused."""

    max_body_bytes: int = 1 << 20  # nginx's client_max_body_size default (1 MiB)
    max_header_bytes: int = 16 << 10  # h11's default buffer for the request line and headers
    max_headers: int = 100  # gunicorn's limit_request_fields
    header_timeout: float = 10.0  # seconds from a connection (or the previous response) to full headers
    body_timeout: float = 30.0  # seconds from the headers to the end of the body
    keep_alive_timeout: int = 5  # uvicorn's timeout_keep_alive: an idle connection between requests
    max_connections: int = 4096  # open sockets; more are answered 503 and closed on accept
    max_concurrent_requests: int = 128  # generation requests in progress (TGI's default)
    max_queue: int = 256  # prompts waiting for the generation thread
    max_prompt_chars: int | None = None  # characters of prompt text; None: 16 x the model's context
    api_key: str | None = None

    def check(self) -> None:
        """Refuse values that would disable a limit or make the server refuse everything, naming the flag."""
        for name, value in asdict(self).items():
            if name == "api_key" or (name == "max_prompt_chars" and value is None):
                continue
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise RadonError(f"--{name.replace('_', '-')}: must be > 0, got {value:g}")
        if self.api_key is not None and not self.api_key.strip():
            raise RadonError("--api-key / RADON_API_KEY: the key is empty (leave both out for no key)")

    def public(self) -> dict[str, Any]:
        """The limits clients may see (/health, /metrics): everything but the key."""
        shown = {k: v for k, v in asdict(self).items() if k != "api_key"}
        return shown | {"api_key": self.api_key is not None}


class Overloaded(Exception):
    """The generation queue is full: a 503 with ``Retry-After`` (seconds)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


def text_chars(value: Any) -> int:
    """Characters of text in a prompt: a string, a list of strings, or chat messages (every string in
    them). Iterative: a body nested a thousand levels deep is counted, not a RecursionError."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return total


def error_body(path: str, status: int, message: str, param: str | None) -> dict[str, Any]:
    """The server's error shape: ``{"detail", "param"}`` on the seed's route, OpenAI's elsewhere."""
    if path == "/api/v1/generate":
        return {"detail": message, "param": param}
    kind = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def retry_after(metrics: Metrics) -> int:
    """Seconds a refused client should wait: the mean request's duration so far, 1 to 60."""
    count = metrics.value("radon_request_duration_seconds_count")
    mean = metrics.value("radon_request_duration_seconds_sum") / count if count else 1.0
    return int(min(60, max(1, math.ceil(mean))))


class Guard:
    """The ASGI middleware of the module docstring; ``active`` counts generation requests in progress."""

    def __init__(self, app: Any, limits: Limits, metrics: Metrics) -> None:
        self.app, self.limits, self.metrics = app, limits, metrics
        self.active = 0
        self._key = limits.api_key.encode() if limits.api_key is not None else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, headers = scope["path"], scope["headers"]
        lim = self.limits
        if len(headers) > lim.max_headers:
            await self._refuse(send, path, 431, "headers", f"headers: {len(headers)} header fields, over this "
                               f"server's limit of {lim.max_headers}", close=True)  # fmt: skip
            return
        if self._key is not None and path not in OPEN_ROUTES:
            problem = self._auth_problem(headers)
            if problem is not None:
                message, challenge = problem
                await self._refuse(send, path, 401, "unauthorized", message, param="Authorization", close=True,
                                   extra={"www-authenticate": challenge})  # fmt: skip
                return
        generation = scope["method"] == "POST" and path in GENERATION_ROUTES
        if generation and self.active >= lim.max_concurrent_requests:
            wait = retry_after(self.metrics)
            await self._refuse(send, path, 429, "concurrency", f"too many requests: {self.active} are in progress, "
                               f"this server's limit (--max-concurrent-requests) is {lim.max_concurrent_requests}; "
                               f"retry after {wait} s", extra={"retry-after": str(wait)}, close=True)  # fmt: skip
            return
        if generation:
            self.active += 1
            self.metrics.set("radon_requests_active", self.active)
        try:
            body = await self._read_body(scope, receive, send, path)
            if body is None:
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            if generation:
                self.active -= 1
                self.metrics.set("radon_requests_active", self.active)

    def _auth_problem(self, headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
        """None for the right key; else (message, WWW-Authenticate value), as RFC 6750 words them."""
        values = [v for k, v in headers if k == b"authorization"]
        if not values:
            return ("Authorization: this server needs an API key: send 'Authorization: Bearer <key>'",
                    'Bearer realm="radon"')  # fmt: skip
        scheme, _, token = values[0].strip().partition(b" ")
        if scheme.lower() != b"bearer":  # the scheme is case-insensitive (RFC 7235 2.1), the token is not
            # name the scheme only when credentials follow it: a bare value may be the key itself
            got = f", got {scheme.decode('latin-1')[:20]!r}" if token.strip() else ""
            return (f"Authorization: expected 'Bearer <key>'{got}",
                    'Bearer realm="radon", error="invalid_request"')  # fmt: skip
        if not token.strip():
            return "Authorization: the Bearer token is empty", 'Bearer realm="radon", error="invalid_request"'
        assert self._key is not None
        if not hmac.compare_digest(token.strip(), self._key):
            return ("Authorization: the bearer token is not this server's API key",
                    'Bearer realm="radon", error="invalid_token"')  # fmt: skip
        return None

    async def _read_body(self, scope: dict, receive: Any, send: Any, path: str) -> bytes | None:
        """The whole body, or None after a 400/408/413 has been sent."""
        lim = self.limits
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and int(length) > lim.max_body_bytes:  # h11 has checked it is a number
            await self._refuse(send, path, 413, "body_too_large", f"body: {int(length)} bytes, over this server's "
                               f"limit of {lim.max_body_bytes} bytes (--max-body-bytes)", close=True)  # fmt: skip
            return None
        deadline = time.monotonic() + lim.body_timeout
        chunks, size = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                await self._refuse(send, path, 408, "body_timeout", f"body: not received within {lim.body_timeout:g} s "
                                   f"(--body-timeout); {size} bytes arrived", close=True)  # fmt: skip
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > lim.max_body_bytes:
                await self._refuse(send, path, 413, "body_too_large", f"body: over this server's limit of "
                                   f"{lim.max_body_bytes} bytes (--max-body-bytes)", close=True)  # fmt: skip
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(self, send: Any, path: str, status: int, reason: str, message: str, *,
                      param: str | None = None, close: bool = False,
                      extra: dict[str, str] | None = None) -> None:  # fmt: skip
        self.metrics.inc("radon_requests_refused_total", reason=reason)
        body = json.dumps(error_body(path, status, message, param)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Any) -> Callable[[], Any]:
    """An ASGI ``receive`` that gives the read body once, then the real one (a disconnect, later)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> dict:
        if pending:
            return pending.pop()
        return await receive()

    return replay


def _raw_response(status: int, reason: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": {"message": message, "type": "server_error" if status >= 500 else
                                 "invalid_request_error", "param": None, "code": None}}).encode()  # fmt: skip
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{extra}connection: close\r\n\r\n")  # fmt: skip
    return head.encode() + body


def guarded_protocol(limits: Limits, metrics: Metrics) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the header deadline, the header-size cap and the connection cap."""

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _header_bytes = 0
        _tail = b""  # the previous read's last bytes: the headers' blank line may straddle reads

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            metrics.set("radon_connections", len(self.connections))
            if len(self.connections) > limits.max_connections:
                metrics.inc("radon_requests_refused_total", reason="connections")
                message = f"too many connections: this server's limit (--max-connections) is {limits.max_connections}"
                transport.write(_raw_response(503, "Service Unavailable", message, "retry-after: 1\r\n"))
                transport.close()
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)
            metrics.set("radon_connections", len(self.connections))

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE:  # still reading the request line and headers
                end = (self._tail + data).find(b"\r\n\r\n")  # the blank line that ends the headers
                size = self._header_bytes + (len(data) if end < 0 else end + 4 - len(self._tail))
                if size > limits.max_header_bytes:
                    self._close_with(431, "Request Header Fields Too Large", "header_too_large",
                                     f"headers: over this server's limit of {limits.max_header_bytes} bytes")  # fmt: skip
                    return
                self._header_bytes += len(data)
                self._tail = data[-3:]
            super().data_received(data)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
                self._disarm()

        def on_response_complete(self) -> None:
            self._arm()  # the next request's headers get their own deadline (disarmed if already in)
            super().on_response_complete()

        def _arm(self) -> None:
            self._disarm()
            self._header_bytes, self._tail = 0, b""
            if not self.transport.is_closing():
                self._header_timer = self.loop.call_later(limits.header_timeout, self._header_timeout)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._close_with(408, "Request Timeout", "header_timeout", f"headers: not received within "
                                 f"{limits.header_timeout:g} s (--header-timeout)")  # fmt: skip

        def _close_with(self, status: int, reason: str, why: str, message: str) -> None:
            metrics.inc("radon_requests_refused_total", reason=why)
            self._disarm()
            self._unset_keepalive_if_required()
            if not self.transport.is_closing():
                self.transport.write(_raw_response(status, reason, message))
                self.transport.close()

    return GuardedH11Protocol


def uvicorn_settings(app: Any) -> dict[str, Any]:
    """uvicorn's keyword arguments for an app of ``create_app``: the guarded protocol and its timeouts.
    h11's own buffer cap is set above ``max_header_bytes``, so the protocol's 431 (which names the
    limit) comes first instead of h11's bare 400."""
    srv = app.state.server
    limits: Limits = srv.limits
    return {"http": guarded_protocol(limits, srv.metrics), "timeout_keep_alive": limits.keep_alive_timeout,
            "h11_max_incomplete_event_size": 2 * limits.max_header_bytes}  # fmt: skip
