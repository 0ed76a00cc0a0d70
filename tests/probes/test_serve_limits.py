"""Probes of ``radon serve``'s limits, authentication and flags (docs/reliability.md, "Limits,
authentication and flags"): each bad input gets the expected status or exit code, and a message that
names the limit, the header or the flag.

One server for the module: the tiny chat artifact (tests/chat_testing.py) under a real uvicorn with
``radon serve``'s own protocol and settings (``uvicorn_settings``), tiny limits and an API key, on a
loopback port. HTTP probes speak raw HTTP/1.1 over a socket where a client library would refuse to
send the input (a lying Content-Length, a trickled header); flag probes call ``radon.cli.main``.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("torch")
uvicorn = pytest.importorskip("uvicorn")

KEY = "s3cret-Key_0123"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY_LIMIT = 4096
CHARS_LIMIT = 500
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
MAX_CONNECTIONS = 24
MAX_CONCURRENT = 2
MAX_QUEUE = 2
HANG_GUARD = 30  # seconds: a probe that waits this long has failed; no probe asserts a duration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    from chat_testing import chat_artifact, serving

    import radon.runtime
    from radon.runtime.server import create_app
    from radon.runtime.server.limits import Limits

    _, artifact = chat_artifact(tmp_path_factory.mktemp("serve_limits"))
    limits = Limits(max_body_bytes=BODY_LIMIT, header_timeout=HEADER_TIMEOUT, body_timeout=BODY_TIMEOUT,
                    keep_alive_timeout=1, max_connections=MAX_CONNECTIONS, max_concurrent_requests=MAX_CONCURRENT,
                    max_queue=MAX_QUEUE, max_prompt_chars=CHARS_LIMIT, api_key=KEY)  # fmt: skip
    app = create_app(radon.runtime.load(artifact, threads=1), model_name="m", limits=limits)
    with serving(app) as url:  # radon serve's own protocol settings (limits.uvicorn_settings)
        port = int(url.rsplit(":", 1)[1])
        yield SimpleNamespace(url=url, port=port, artifact=artifact)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str


def raw(port: int, data: bytes, *, then: float = 0.0, more: bytes = b"") -> Answer:
    """Send ``data`` (then ``more`` after ``then`` seconds) on a fresh socket; read until the server closes
    it or a response is complete. A socket the server never answers fails the probe at HANG_GUARD."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD) as s:
        try:
            s.sendall(data)
            if then:
                time.sleep(then)
            if more:
                s.sendall(more)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the client has sent everything
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
            head, sep, body = got.partition(b"\r\n\r\n")
            length = re.search(rb"content-length: *(\d+)", head, re.I)
            if sep and length and len(body) >= int(length.group(1)):
                break
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), f"no HTTP response: {got[:200]!r}"
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return Answer(int(lines[0].split()[1]), headers, body.decode("utf-8", "replace"))


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: x", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def post(path: str, payload: dict, headers: dict[str, str] | None = None) -> bytes:
    body = json.dumps(payload).encode()
    h = {"Content-Type": "application/json", "Content-Length": str(len(body))} | (headers or {})
    return request("POST", path, h, body)


def via_httpx(method: str, path: str, **kw) -> Callable[[SimpleNamespace], Answer]:
    def run(server: SimpleNamespace) -> Answer:
        r = httpx.request(method, server.url + path, timeout=HANG_GUARD, **kw)
        return Answer(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.text)

    return run


def via_raw(data: bytes, **kw) -> Callable[[SimpleNamespace], Answer]:
    return lambda server: raw(server.port, data, **kw)


GEN = {"prompt": "hi", "max_new_tokens": 4}
COMPLETION = {"model": "m", "prompt": "hi", "max_tokens": 4}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
CHUNKED = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"} | AUTH
big_chunk = b"%x\r\n%s\r\n" % (BODY_LIMIT + 10, b"x" * (BODY_LIMIT + 10))


# (id, how to send it, expected status, regex the message must match, headers the answer must carry)
HTTP_PROBES: list[tuple[str, Callable[[SimpleNamespace], Answer], int, str, dict[str, str]]] = [
    # --- body size (413, before the body is read when Content-Length says so) ---
    ("body-10MB-declared-seed-route", via_raw(request("POST", "/api/v1/generate", {"Content-Length": "10000000",
     "Content-Type": "application/json"} | AUTH, b"{")), 413, r"body: 10000000 bytes.*--max-body-bytes", {}),
    ("body-10MB-declared-completions", via_raw(request("POST", "/v1/completions", {"Content-Length": "10485760"}
     | AUTH)), 413, r"over this server's limit of 4096 bytes \(--max-body-bytes\)", {}),
    ("body-over-limit-chat-json", via_httpx("POST", "/v1/chat/completions", headers=AUTH,
     json=CHAT | {"user": "u" * BODY_LIMIT}), 413, r"--max-body-bytes", {}),
    ("body-over-limit-chunked", via_raw(request("POST", "/v1/completions", CHUNKED, big_chunk + b"0\r\n\r\n")),
     413, r"body: over this server's limit of 4096 bytes", {}),
    ("body-over-limit-on-get-route", via_raw(request("GET", "/v1/models", {"Content-Length": "99999"} | AUTH)),
     413, r"--max-body-bytes", {}),
    ("body-over-limit-unknown-route", via_raw(request("POST", "/nope", {"Content-Length": "5000"} | AUTH)),
     413, r"--max-body-bytes", {}),
    # --- headers (431, or 408 when they do not arrive) ---
    ("headers-150-fields", via_raw(request("GET", "/v1/models", AUTH | {f"X-H{i}": "v" for i in range(150)})),
     431, r"headers: 152 header fields.*limit of 100", {}),
    ("header-block-20KiB", via_raw(request("GET", "/v1/models", AUTH | {"X-Big": "b" * 20000})),
     431, r"headers: over this server's limit of 16384 bytes", {}),
    ("header-block-20KiB-unterminated", via_raw(b"GET /v1/models HTTP/1.1\r\nX-Big: " + b"b" * 20000),
     431, r"headers: over this server's limit of 16384 bytes", {}),
    ("headers-trickled-slowloris", via_raw(b"GET /health HTTP/1.1\r\nHost: x\r\n", then=0.3, more=b"X-a: b\r\n"),
     408, r"headers: not received within 1 s \(--header-timeout\)", {}),
    ("request-line-unfinished", via_raw(b"POST /v1/completions HTT"), 408, r"--header-timeout", {}),
    ("connection-silent", via_raw(b""), 408, r"headers: not received within 1 s", {}),
    # --- body time (408) ---
    ("body-half-sent", via_raw(post("/v1/completions", COMPLETION, AUTH)[:-5]), 408,
     r"body: not received within 2 s \(--body-timeout\)", {}),
    ("body-declared-never-sent", via_raw(request("POST", "/api/v1/generate", {"Content-Length": "100"} | AUTH)),
     408, r"--body-timeout.*0 bytes arrived", {}),
    ("body-chunked-never-ended", via_raw(request("POST", "/v1/completions", CHUNKED, b"5\r\nhello\r\n")), 408,
     r"--body-timeout", {}),
    # --- API key (401 with WWW-Authenticate) ---
    ("auth-missing-completions", via_raw(post("/v1/completions", COMPLETION)), 401,
     r"Authorization: this server needs an API key", {"www-authenticate": 'Bearer realm="radon"'}),
    ("auth-missing-seed-route", via_raw(post("/api/v1/generate", GEN)), 401, r"Authorization:.*Bearer <key>",
     {"www-authenticate": "Bearer"}),
    ("auth-missing-chat", via_raw(post("/v1/chat/completions", CHAT)), 401, r"Authorization", {}),
    ("auth-missing-models", via_httpx("GET", "/v1/models"), 401, r"Authorization", {"www-authenticate": "Bearer"}),
    ("auth-missing-metrics", via_httpx("GET", "/metrics"), 401, r"Authorization", {}),
    ("auth-missing-unknown-route", via_httpx("GET", "/admin"), 401, r"Authorization", {}),
    ("auth-wrong-key", via_httpx("GET", "/v1/models", headers={"Authorization": "Bearer nope"}), 401,
     r"not this server's API key", {"www-authenticate": 'error="invalid_token"'}),
    ("auth-wrong-case-key", via_httpx("GET", "/v1/models", headers={"Authorization": f"Bearer {KEY.upper()}"}),
     401, r"not this server's API key", {}),
    ("auth-key-plus-suffix", via_httpx("GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}x"}), 401,
     r"not this server's API key", {}),
    ("auth-key-prefix-only", via_httpx("GET", "/v1/models", headers={"Authorization": f"Bearer {KEY[:-1]}"}),
     401, r"not this server's API key", {}),
    ("auth-bearer-no-token", via_httpx("GET", "/v1/models", headers={"Authorization": "Bearer"}), 401,
     r"Authorization: the Bearer token is empty", {"www-authenticate": "Bearer"}),
    ("auth-basic-scheme", via_httpx("GET", "/v1/models", auth=("user", KEY)), 401,
     r"expected 'Bearer <key>', got 'Basic'", {}),
    ("auth-key-without-scheme", via_httpx("GET", "/v1/models", headers={"Authorization": KEY}), 401,
     r"expected 'Bearer <key>'\"", {}),
    ("auth-x-api-key-header", via_httpx("GET", "/v1/models", headers={"X-API-Key": KEY}), 401,
     r"Authorization: this server needs an API key", {}),
    ("auth-key-in-query", via_httpx("GET", f"/v1/models?api_key={KEY}"), 401, r"Authorization", {}),
    ("auth-non-ascii-token", via_raw(request("GET", "/v1/models", {"Authorization": "Bearer key\xff"})), 401,
     r"not this server's API key", {}),
    # --- prompt length in characters (400, before the tokenizer sees it) ---
    ("prompt-chars-seed-route", via_httpx("POST", "/api/v1/generate", headers=AUTH,
     json=GEN | {"prompt": "a" * (CHARS_LIMIT + 1)}), 400, r"prompt: 501 characters.*--max-prompt-chars", {}),
    ("prompt-chars-completions-list", via_httpx("POST", "/v1/completions", headers=AUTH,
     json=COMPLETION | {"prompt": ["b" * 300, "c" * 300]}), 400, r"prompt: 600 characters.*limit of 500", {}),
    ("prompt-chars-chat-messages", via_httpx("POST", "/v1/chat/completions", headers=AUTH, json=CHAT |
     {"messages": [{"role": "user", "content": "d" * 300}] * 2}), 400, r"messages: \d+ characters.*--max-prompt",
     {}),
    ("prompt-chars-chat-nested-deep", via_httpx("POST", "/v1/chat/completions", headers=AUTH | {"Content-Type": "application/json"}, content=json.dumps(
     CHAT | {"messages": json.loads("[" * 600 + json.dumps("e" * 501) + "]" * 600)})), 400,
     r"messages: 501 characters.*--max-prompt-chars", {}),
    # --- the queue (503 with Retry-After): three prompts cannot join a queue of two ---
    ("queue-three-prompts-over-two", via_httpx("POST", "/v1/completions", headers=AUTH,
     json=COMPLETION | {"prompt": ["x", "y", "z"]}), 503, r"queue:.*adds 3.*\(--max-queue\) is 2", {"retry-after": ""}),
]  # fmt: skip


@pytest.mark.parametrize("case", HTTP_PROBES, ids=[p[0] for p in HTTP_PROBES])
def test_http_probe(server, case):
    _, send, status, message, headers = case
    answer = send(server)
    assert answer.status == status, (answer.status, answer.text)
    assert re.search(message, answer.text), answer.text
    assert KEY not in answer.text and KEY.upper() not in answer.text, "a refusal echoed the API key"
    for name, part in headers.items():
        assert part in answer.headers.get(name, "<absent>"), (name, answer.headers)
    if status in (401, 408, 413, 431):  # refused before the body is read: the socket is not kept
        assert answer.headers.get("connection") == "close", answer.headers


def wait_for_metric(server, name: str, value: float) -> None:
    deadline = time.time() + HANG_GUARD
    while time.time() < deadline:
        text = httpx.get(f"{server.url}/metrics", headers=AUTH).text
        if re.search(rf"^{name} {float(value)!r}$", text, re.M):
            return
        time.sleep(0.02)
    raise AssertionError(f"{name} never reached {value}")


def test_http_probe_concurrency_over_cap(server):
    """Two requests hold both slots while their bodies are late; the third is 429 with Retry-After."""
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(MAX_CONCURRENT)]
    try:
        for s in held:
            s.sendall(request("POST", "/v1/completions", {"Content-Length": "50"} | AUTH))
        wait_for_metric(server, "radon_requests_active", MAX_CONCURRENT)
        r = httpx.post(f"{server.url}/v1/completions", json=COMPLETION, headers=AUTH, timeout=HANG_GUARD)
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) >= 1
        assert re.search(r"too many requests: 2 are in progress.*\(--max-concurrent-requests\) is 2", r.text)
        assert r.json()["error"]["type"] == "rate_limit_error" and r.headers["connection"] == "close"
    finally:
        for s in held:
            s.close()
    wait_for_metric(server, "radon_requests_active", 0)


def test_http_probe_connections_over_cap(server):
    """One connection past --max-connections is answered 503 (naming the flag) and closed on accept."""
    held = []
    try:
        for _ in range(MAX_CONNECTIONS - 1):
            held.append(socket.create_connection(("127.0.0.1", server.port)))
        wait_for_metric(server, "radon_connections", MAX_CONNECTIONS)  # the held ones and the metrics request
        held.append(socket.create_connection(("127.0.0.1", server.port)))
        answer = raw(server.port, b"")
        assert answer.status == 503 and "--max-connections" in answer.text, answer
        assert answer.headers.get("retry-after") == "1"
    finally:
        for s in held:
            s.close()


# --- flags: exit 2 and a message naming the flag, before any model is loaded -------------------
FLAG_PROBES = [
    ("port-70000", ["--port", "70000"], "--port: must be in 1..65535, got 70000"),
    ("port-0", ["--port", "0"], "--port: must be in 1..65535, got 0"),
    ("port-negative", ["--port", "-1"], "--port: must be in 1..65535"),
    ("port-not-a-number", ["--port", "http"], "argument --port: invalid int value"),
    ("max-tokens-limit-0", ["--max-tokens-limit", "0"], "--max-tokens-limit: must be > 0, got 0"),
    ("max-tokens-limit-negative", ["--max-tokens-limit", "-1"], "--max-tokens-limit: must be > 0, got -1"),
    ("max-batch-0", ["--max-batch", "0"], "--max-batch: must be > 0, got 0"),
    ("max-batch-negative", ["--max-batch", "-3"], "--max-batch: must be > 0, got -3"),
    ("threads-negative", ["--threads", "-2"], "--threads: must be >= 0"),
    ("max-body-bytes-0", ["--max-body-bytes", "0"], "--max-body-bytes: must be > 0, got 0"),
    ("max-prompt-chars-negative", ["--max-prompt-chars", "-5"], "--max-prompt-chars: must be > 0"),
    (
        "max-concurrent-requests-0",
        ["--max-concurrent-requests", "0"],
        "--max-concurrent-requests: must be > 0",
    ),
    ("max-queue-negative", ["--max-queue", "-1"], "--max-queue: must be > 0, got -1"),
    ("max-connections-0", ["--max-connections", "0"], "--max-connections: must be > 0"),
    ("header-timeout-0", ["--header-timeout", "0"], "--header-timeout: must be > 0, got 0"),
    ("header-timeout-nan", ["--header-timeout", "nan"], "--header-timeout: must be > 0, got nan"),
    ("body-timeout-negative", ["--body-timeout", "-1"], "--body-timeout: must be > 0, got -1"),
    ("body-timeout-inf", ["--body-timeout", "inf"], "--body-timeout: must be > 0, got inf"),
    ("keep-alive-timeout-0", ["--keep-alive-timeout", "0"], "--keep-alive-timeout: must be > 0"),
    ("api-key-empty", ["--api-key", ""], "--api-key / RADON_API_KEY: the key is empty"),
    ("api-key-blank", ["--api-key", "   "], "--api-key / RADON_API_KEY: the key is empty"),
    ("log-level-unknown", ["--log-level", "loud"], "argument --log-level: invalid choice"),
]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from radon.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [p[1:] for p in FLAG_PROBES], ids=[p[0] for p in FLAG_PROBES])
def test_flag_probe(server, capsys, argv, message):
    code, err = run_cli(["serve", str(server.artifact), *argv], capsys)
    assert code == 2, err
    assert message in err and "Traceback" not in err, err


def _a_file(folder: Path) -> Path:
    (folder / "model.onnx").write_text("x")
    return folder / "model.onnx"


def _no_manifest(folder: Path) -> Path:
    (folder / "empty").mkdir()
    return folder / "empty"


ARTIFACT_PROBES = [  # (id, the path to serve, made under tmp_path; message)
    ("artifact-missing", lambda folder: folder / "missing", "is not a folder"),
    ("artifact-a-file", _a_file, "is not a folder"),
    ("artifact-no-manifest", _no_manifest, "has no radon_manifest.json"),
]


@pytest.mark.parametrize(
    "make, message", [p[1:] for p in ARTIFACT_PROBES], ids=[p[0] for p in ARTIFACT_PROBES]
)
def test_flag_probe_artifact(tmp_path: Path, capsys, make, message):
    path = make(tmp_path)
    code, err = run_cli(["serve", str(path)], capsys)
    assert code == 2 and f"ARTIFACT: {path}" in err and message in err and "Traceback" not in err, err


def test_flag_probe_api_key_env_blank(server, capsys, monkeypatch):
    """A blank RADON_API_KEY is refused by name (an empty one, compose's ${RADON_API_KEY:-}, means no key)."""
    monkeypatch.setenv("RADON_API_KEY", "  ")
    code, err = run_cli(["serve", str(server.artifact)], capsys)
    assert code == 2 and "RADON_API_KEY: the key is empty" in err, err
