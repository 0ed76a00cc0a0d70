"""The FastAPI app of ``radon serve``: thin routes over the scheduler and the request checks.

Routes:

- ``POST /api/v1/generate``: the seed's request (MIGRATION_GUIDE.md); text, token counts, timings;
  ``"stream": true`` answers with server-sent events (one ``token`` event per token, then ``done``);
- ``POST /v1/completions``, ``POST /v1/chat/completions`` and ``GET /v1/models``: OpenAI's API (vLLM's
  and text-generation-inference's compatible servers are the model), ``stream`` included, so the
  ``openai`` package and other existing clients work; chat renders the model's own chat template
  (``radon.tokenizer.chat``) and streams ``chat.completion.chunk`` deltas (role, content, finish);
- ``GET /health`` and ``GET /metrics`` (Prometheus text format).

Errors are 4xx with a message naming the field: OpenAI's ``{"error": {"message", "type", "param",
"code"}}`` shape under ``/v1`` and for unknown routes and methods anywhere (a client with a wrong base
URL still reads an OpenAI error), ``{"detail": ..., "param": ...}`` for the seed's route. A client that
disconnects stops its generation.

What one client may take (body, headers, time, connections, concurrency, queue, prompt characters) and
the API key are ``limits.py``'s: its ASGI guard wraps this app, and a request's planning (tokenizer,
chat template, checks) runs in a worker thread, so the event loop keeps answering while it runs.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from radon import __version__
from radon.runtime.batching import Plan
from radon.runtime.generator import Generator
from radon.runtime.server.limits import Guard, Limits, Overloaded, retry_after, text_chars
from radon.runtime.server.metrics import CONTENT_TYPE, Metrics
from radon.runtime.server.scheduler import Job, Scheduler
from radon.runtime.server.schemas import ChatCompletionRequest, CompletionRequest, GenerateRequest
from radon.runtime.server.validate import RequestError, plan_chat, plan_completions, plan_generate

DEFAULT_MAX_TOKENS_LIMIT = 1024
PROMPT_CHARS_PER_POSITION = 16  # the default --max-prompt-chars is this times the model's context
ROUTES = ("/api/v1/generate", "/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _sse(data: Any) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _error(
    request: Request, status: int, message: str, param: str | None, *, openai: bool = False
) -> JSONResponse:
    body: dict[str, Any]
    if openai or request.url.path.startswith("/v1/"):
        kind = "not_found_error" if status == 404 else "invalid_request_error"
        body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    else:
        body = {"detail": message, "param": param}
    return JSONResponse(body, status_code=status)


class CountRequests:
    """Pure ASGI middleware counting responses by route and status. (Starlette's BaseHTTPMiddleware
    would wrap ``receive`` and hide a client's disconnect from the route.)"""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope["path"] if scope["path"] in ROUTES else "other"
            self.metrics.inc("radon_requests_total", route=route, status=str(status[0]))


class Server:
    """The app's state: the generator, the scheduler, the metrics and the limits."""

    def __init__(self, generator: Generator, *, max_tokens_limit: int | None, max_batch: int,
                 model_name: str | None, limits: Limits) -> None:  # fmt: skip
        self.generator = generator
        self.model_name = model_name or generator.name
        self.limit = min(max_tokens_limit or DEFAULT_MAX_TOKENS_LIMIT, generator.max_positions)
        self.limits = limits
        # a prompt of more characters cannot fit the context unless its tokens average over 16 characters
        self.max_prompt_chars = limits.max_prompt_chars or PROMPT_CHARS_PER_POSITION * generator.max_positions
        m = generator.manifest
        self.metrics = Metrics({"model": self.model_name, "lowering": m.lowering, "precision": m.precision,
                                "providers": ",".join(generator.providers), "version": __version__})  # fmt: skip
        self.scheduler = Scheduler(generator, self.metrics, max_batch=max_batch)
        for name, value in self.public_limits().items():
            self.metrics.set("radon_limit", float(value), limit=name)

    def public_limits(self) -> dict[str, Any]:
        """Every limit, as /health and /metrics show them (the API key only as whether one is set)."""
        return self.limits.public() | {"max_prompt_chars": self.max_prompt_chars, "max_tokens_limit": self.limit,
                                       "max_batch": self.scheduler.max_batch}  # fmt: skip

    def check_chars(self, prompt: Any, param: str) -> None:
        """Refuse prompt text over ``max_prompt_chars`` before the tokenizer sees it (400, naming ``param``)."""
        n = text_chars(prompt)
        if n > self.max_prompt_chars:
            raise RequestError(f"{param}: {n} characters, over this server's limit of {self.max_prompt_chars} "
                               f"(--max-prompt-chars)", param)  # fmt: skip

    def admit(self, n: int) -> None:
        """Refuse ``n`` more prompts when the queue would pass ``max_queue`` (503 with Retry-After)."""
        depth, cap = self.scheduler.depth, self.limits.max_queue
        if depth + n > cap:
            self.metrics.inc("radon_requests_refused_total", reason="queue_full")
            wait = retry_after(self.metrics)
            raise Overloaded(f"queue: {depth} prompts are waiting and this request adds {n}; this server's limit "
                             f"(--max-queue) is {cap}; retry after {wait} s", wait)  # fmt: skip

    def job(self, plan: Plan) -> Job:
        self.metrics.inc("radon_prompt_tokens_total", len(plan.prompt_ids))
        return Job(plan, asyncio.get_running_loop())

    async def results(self, job: Job, submit: bool = True) -> AsyncIterator[tuple]:
        """Queue ``job`` (unless already queued) and yield its items until ``done``; leaving early cancels it."""
        if submit:
            self.scheduler.submit(job)
        finished = False
        try:
            while True:
                item = await job.results.get()
                if item[0] in ("done", "error"):
                    finished = True
                yield item
                if finished:
                    return
        finally:
            if not finished:
                job.cancelled.set()

    async def collect(self, job: Job, request: Request) -> tuple[str, dict[str, Any] | None]:
        """Run ``job`` to the end while watching for a disconnect; returns (text, done info)."""

        async def watch() -> None:
            # the body has been read (limits.Guard reads it whole), so the next message is the
            # disconnect: wait for it rather than poll (64 clients polling every 50 ms cost the loop
            # over a thousand wake-ups a second)
            while not job.cancelled.is_set():
                if (await request.receive())["type"] == "http.disconnect":
                    job.cancelled.set()
                    return

        watcher = asyncio.create_task(watch())
        text, info = "", None
        try:
            async for item in self.results(job):
                if item[0] == "token":
                    text += item[2]
                elif item[0] == "error":
                    raise RuntimeError(item[1])
                else:
                    info = item[1]
        finally:
            watcher.cancel()
        return text, info

    def summary(self, job: Job, info: dict[str, Any], text: str | None) -> dict[str, Any]:
        total = info["end"] - job.arrived
        first = (job.first_token or info["end"]) - job.arrived
        n = info["completion_tokens"]
        out = {"text": text} if text is not None else {}
        return out | {
            "model": self.model_name, "providers": self.generator.providers,
            "finish_reason": info["finish_reason"], "prompt_tokens": len(job.plan.prompt_ids),
            "completion_tokens": n, "total_tokens": len(job.plan.prompt_ids) + n,
            "timings": {"time_to_first_token_s": round(first, 4), "total_s": round(total, 4),
                        "tokens_per_second": round(n / total, 2) if total > 0 else None},
        }  # fmt: skip


def create_app(generator: Generator, *, max_tokens_limit: int | None = None, max_batch: int = 8,
               model_name: str | None = None, limits: Limits | None = None) -> FastAPI:  # fmt: skip
    """The app for one loaded artifact; the generation thread starts and stops with the app.

    ``limits`` (runtime/server/limits.py) bounds bodies, time, concurrency and the queue, and holds the
    API key. Run the app under uvicorn with ``limits.uvicorn_settings(app)`` for the header deadline, the
    header-size cap and the connection cap, which only the HTTP protocol can see (``radon serve`` does).
    """
    limits = limits or Limits()
    limits.check()
    srv = Server(generator, max_tokens_limit=max_tokens_limit, max_batch=max_batch, model_name=model_name,
                 limits=limits)  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        srv.scheduler.start()
        yield
        srv.scheduler.stop()

    app = FastAPI(title="RADON", version=__version__, lifespan=lifespan)
    app.state.server = srv

    app.add_middleware(Guard, limits=limits, metrics=srv.metrics)  # inside CountRequests: refusals count too
    app.add_middleware(CountRequests, metrics=srv.metrics)

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        response = _error(request, 503, exc.message, None)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return _error(request, exc.status, exc.message, exc.param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Unknown routes (404) and methods (405), in OpenAI's shape wherever they are asked."""
        path = request.url.path
        if exc.status_code == 404 and path not in ROUTES:
            message = f"{request.method} {path}: no such route (routes: {', '.join(ROUTES)})"
        elif exc.status_code == 405:
            message = f"{request.method} {path}: method not allowed"
        else:
            message = str(exc.detail)
        response = _error(request, exc.status_code, message, None, openai=path != "/api/v1/generate")
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        param = loc[0] if loc else None
        message = f"{'.'.join(loc) or 'body'}: {first.get('msg')}"
        return _error(request, 400 if request.url.path.startswith("/v1/") else 422, message, param)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        m = generator.manifest
        return {"status": "ok", "model": srv.model_name, "providers": generator.providers,
                "lowering": m.lowering, "precision": m.precision, "parity": m.parity_verdict,
                "sliding_window": generator.window,
                "max_position_embeddings": generator.max_positions, "max_tokens_limit": srv.limit,
                "max_batch": srv.scheduler.max_batch, "queue_depth": srv.scheduler.depth,
                "limits": srv.public_limits()}  # fmt: skip

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        srv.metrics.set("radon_queue_depth", srv.scheduler.depth)
        return PlainTextResponse(srv.metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/api/v1/generate", response_model=None)
    async def api_generate(req: GenerateRequest, request: Request) -> Any:
        srv.check_chars(req.prompt, "prompt")
        plan = await run_in_threadpool(plan_generate, req, generator, srv.limit)
        srv.admit(1)
        job = srv.job(plan)
        if req.stream:
            return StreamingResponse(
                _stream_generate(srv, job, plan.report()), media_type="text/event-stream", headers=SSE_HEADERS
            )
        text, info = await srv.collect(job, request)
        if info is None:  # the client went away before its turn
            return JSONResponse({"detail": "cancelled"}, status_code=499)
        return srv.summary(job, info, text) | plan.report()  # the seed's max_length: the cap that applied

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": srv.model_name, "object": "model", "created": 0, "owned_by": "radon"}],
        }

    @app.post("/v1/completions", response_model=None)
    async def completions(req: CompletionRequest, request: Request) -> Any:
        srv.check_chars(req.prompt, "prompt")
        plans = await run_in_threadpool(plan_completions, req, generator, srv.limit, {srv.model_name})
        srv.admit(len(plans))
        jobs = [srv.job(p) for p in plans]
        cid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        head = {"id": cid, "object": "text_completion", "created": created, "model": srv.model_name}
        if req.stream:
            usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(_stream_completions(srv, jobs, head, usage), media_type="text/event-stream",
                                     headers=SSE_HEADERS)  # fmt: skip
        done = await asyncio.gather(*(srv.collect(j, request) for j in jobs))
        texts, infos = [text for text, _ in done], [info for _, info in done if info is not None]
        if len(infos) < len(done):  # the client went away before every choice ended
            return JSONResponse({"error": {"message": "cancelled", "type": "cancelled"}}, status_code=499)
        choices = [{"index": i, "text": text, "logprobs": None, "finish_reason": info["finish_reason"]}
                   for i, (text, info) in enumerate(zip(texts, infos))]  # fmt: skip
        prompt = sum(len(j.plan.prompt_ids) for j in jobs)
        completion = sum(info["completion_tokens"] for info in infos)
        return head | {"choices": choices, "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                                      "total_tokens": prompt + completion}}  # fmt: skip

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(req: ChatCompletionRequest, request: Request) -> Any:
        srv.check_chars(req.messages, "messages")
        plan = await run_in_threadpool(plan_chat, req, generator, srv.limit, {srv.model_name})
        srv.admit(1)
        job = srv.job(plan)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        head = {"id": cid, "created": created, "model": srv.model_name}
        if req.stream:
            usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(_stream_chat(srv, job, head, usage), media_type="text/event-stream",
                                     headers=SSE_HEADERS)  # fmt: skip
        text, info = await srv.collect(job, request)
        if info is None:
            return JSONResponse({"error": {"message": "cancelled", "type": "cancelled"}}, status_code=499)
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                  "finish_reason": info["finish_reason"]}  # fmt: skip
        return head | {"object": "chat.completion", "choices": [choice], "usage": _usage(job, info)}

    return app


def _usage(job: Job, info: dict[str, Any]) -> dict[str, int]:
    prompt, completion = len(job.plan.prompt_ids), info["completion_tokens"]
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _stream_chat(srv: Server, job: Job, head: dict[str, Any], usage: bool) -> AsyncIterator[bytes]:
    """OpenAI's chat stream: a ``chat.completion.chunk`` with the role, one per piece of content, one with
    the finish reason (and an empty delta), the usage when asked, then ``[DONE]``."""
    head = head | {"object": "chat.completion.chunk"}

    def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
        return _sse(
            head | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        )

    yield chunk({"role": "assistant", "content": ""})
    async for item in srv.results(job):
        if item[0] == "token":
            if item[2]:
                yield chunk({"content": item[2]})
        elif item[0] == "error":
            yield _sse({"error": {"message": item[1], "type": "server_error", "param": None, "code": None}})
            return
        elif item[1] is not None:
            yield chunk({}, item[1]["finish_reason"])
            if usage:
                yield _sse(head | {"choices": [], "usage": _usage(job, item[1])})
    yield _sse("[DONE]")


async def _stream_generate(srv: Server, job: Job, report: dict[str, Any]) -> AsyncIterator[bytes]:
    """SSE for ``/api/v1/generate``: ``{"type": "token", ...}`` per token, then ``{"type": "done", ...}``."""
    text = ""
    async for item in srv.results(job):
        if item[0] == "token":
            text += item[2]
            yield _sse({"type": "token", "token_id": item[1], "text": item[2]})
        elif item[0] == "error":
            yield _sse({"type": "error", "detail": item[1]})
        elif item[1] is not None:
            yield _sse({"type": "done"} | srv.summary(job, item[1], text) | report)


async def _stream_completions(
    srv: Server, jobs: list[Job], head: dict[str, Any], usage: bool
) -> AsyncIterator[bytes]:
    """SSE chunks as OpenAI sends them, one stream per prompt in turn, then ``[DONE]``."""
    prompt_tokens = completion_tokens = 0
    for job in jobs:  # queued together, so they can share a batch
        srv.scheduler.submit(job)
    try:
        for index, job in enumerate(jobs):
            async for item in srv.results(job, submit=False):
                if item[0] == "token":
                    if item[2]:
                        choice = {"index": index, "text": item[2], "logprobs": None, "finish_reason": None}
                        yield _sse(head | {"choices": [choice]})
                elif item[0] == "error":
                    yield _sse({"error": {"message": item[1], "type": "server_error"}})
                    return
                elif item[1] is not None:
                    completion_tokens += item[1]["completion_tokens"]
                    prompt_tokens += len(job.plan.prompt_ids)
                    choice = {
                        "index": index,
                        "text": "",
                        "logprobs": None,
                        "finish_reason": item[1]["finish_reason"],
                    }
                    yield _sse(head | {"choices": [choice]})
    finally:
        for job in jobs:  # a client that left mid-stream cancels the prompts not yet streamed too
            job.cancelled.set()
    if usage:
        yield _sse(head | {"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                                     "total_tokens": prompt_tokens + completion_tokens}})  # fmt: skip
    yield _sse("[DONE]")
