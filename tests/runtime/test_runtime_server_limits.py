"""``radon serve``'s limits from the side of a client who keeps to them: the API key is accepted (any
case of the scheme, the ``openai`` client), ``/health`` stays open, a keep-alive connection and a long
stream outlive the header deadline, tokenization never blocks the event loop, and ``radon serve``
wires the guarded protocol into uvicorn and warns about a public address without a key. The refusals
themselves are probes: tests/probes/test_serve_limits.py.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from chat_testing import serving

import radon.runtime

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

KEY = "k3y-for-tests"
AUTH = {"Authorization": f"Bearer {KEY}"}
HEADER_TIMEOUT = 1.0
HANG_GUARD = 30  # seconds: only a hang guard, no test asserts how long anything takes
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(text_artifact):
    from radon.runtime.server import create_app
    from radon.runtime.server.limits import Limits

    gen = radon.runtime.load(text_artifact, threads=1)
    app = create_app(gen, model_name="m", limits=Limits(api_key=KEY, header_timeout=HEADER_TIMEOUT))
    with serving(app) as url:  # radon serve's own protocol settings (limits.uvicorn_settings)
        port = int(url.rsplit(":", 1)[1])
        yield SimpleNamespace(url=url, port=port, gen=gen)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_key_is_accepted_in_any_case_of_the_scheme(server, scheme):
    r = httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"{scheme} {KEY}"})
    assert r.status_code == 200 and r.json()["data"][0]["id"] == "m"


def test_openai_client_with_the_key(server, text_gen):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    done = client.completions.create(model="m", prompt="Привет", max_tokens=12, temperature=0)
    assert done.choices[0].text == text_gen.generate_text("Привет", 12)
    wrong = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY + "x", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_health_is_open_and_shows_the_limits_but_not_the_key(server):
    r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200 and KEY not in r.text
    limits = r.json()["limits"]
    assert (
        limits["api_key"] is True and limits["max_concurrent_requests"] == 128 and limits["max_queue"] == 256
    )
    assert limits["max_body_bytes"] == 1 << 20 and limits["max_prompt_chars"] == 16 * 4096


def test_metrics_show_limits_and_refusals(server):
    httpx.get(f"{server.url}/v1/models")  # no key: one refusal
    text = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    assert KEY not in text
    assert re.search(r'^radon_limit\{limit="max_queue"\} 256\.0$', text, re.M)
    assert re.search(r'^radon_limit\{limit="header_timeout"\} 1\.0$', text, re.M)
    assert re.search(r'^radon_requests_refused_total\{reason="unauthorized"\} [1-9]', text, re.M)
    assert re.search(r"^radon_requests_active 0\.0$", text, re.M)


def _exchange(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while b"\r\n\r\n" not in got or len(got.partition(b"\r\n\r\n")[2]) < int(
        re.search(rb"content-length: (\d+)", got, re.I).group(1)  # type: ignore[union-attr]
    ):
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection: {got!r}"
        got += chunk
    return got


def test_a_keep_alive_connection_gets_a_header_deadline_per_request(server):
    """Three requests on one connection, 0.6 s apart: each is within the 1 s deadline, their sum is not."""
    ask = f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD) as s:
        for _ in range(3):
            assert _exchange(s, ask).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.6 * HEADER_TIMEOUT)


def test_a_stream_outlives_the_header_deadline(server, text_gen):
    """A slow reader of a long stream is not cut by the header deadline (it covers headers only)."""
    body = {"prompt": "Однажды", "max_new_tokens": 48, "ignore_eos": True, "stream": True}
    with httpx.stream(
        "POST", f"{server.url}/api/v1/generate", json=body, headers=AUTH, timeout=HANG_GUARD
    ) as r:
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        time.sleep(1.5 * HEADER_TIMEOUT)
        events = [json.loads(first[6:])] + [json.loads(x[6:]) for x in lines if x.startswith("data: ")]
    assert events[-1]["type"] == "done" and events[-1]["completion_tokens"] == 48
    assert "".join(e["text"] for e in events[:-1]) == text_gen.generate_text("Однажды", 48, ignore_eos=True)


def test_tokenization_does_not_block_the_event_loop(server, monkeypatch):
    """The tokenizer is held inside a request; /health must still answer. On the event loop it could not
    (the loop would be stuck in the tokenizer until released)."""
    entered, release = threading.Event(), threading.Event()
    encode = server.gen.tokenizer.encode_prompt

    def held(text: str) -> list[int]:
        entered.set()
        release.wait(HANG_GUARD)
        return encode(text)

    monkeypatch.setattr(server.gen.tokenizer, "encode_prompt", held)
    with ThreadPoolExecutor(1) as pool:
        try:
            pending = pool.submit(httpx.post, f"{server.url}/api/v1/generate", headers=AUTH, timeout=HANG_GUARD,
                                  json={"prompt": "hi", "max_new_tokens": 2})  # fmt: skip
            assert entered.wait(HANG_GUARD), "the request never reached the tokenizer"
            health = httpx.get(f"{server.url}/health", timeout=5)
            assert health.status_code == 200 and not release.is_set()
        finally:
            release.set()
        assert pending.result().status_code == 200


def test_serve_wires_the_guarded_protocol_and_warns_without_a_key(text_artifact, monkeypatch, capsys):
    """``radon serve`` hands uvicorn the guarded protocol and the limits; on a non-loopback address
    without a key it warns on stderr; with a key, or on loopback, it does not."""
    from radon.cli import main

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    monkeypatch.delenv("RADON_API_KEY", raising=False)
    for argv, warns in [(["--host", "0.0.0.0"], True), (["--host", "192.0.2.7"], True),
                        (["--host", "0.0.0.0", "--api-key", KEY], False), (["--host", "127.0.0.1"], False),
                        (["--host", "::1"], False), (["--host", "localhost"], False)]:  # fmt: skip
        assert main(["serve", str(text_artifact), "--port", "8123", "--header-timeout", "3", *argv]) == 0
        err = capsys.readouterr().err
        assert ("without an API key" in err) is warns, (argv, err)
    kw = calls[-1]
    assert kw["http"].__name__ == "GuardedH11Protocol" and kw["timeout_keep_alive"] == 5
    assert kw["host"] == "localhost" and kw["port"] == 8123


def test_docker_files_show_a_key_without_setting_one():
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "RADON_API_KEY" in dockerfile and not re.search(r"^\s*ENV\b.*RADON_API_KEY", dockerfile, re.M)
    assert compose.count("RADON_API_KEY=${RADON_API_KEY:-}") == 2  # empty unless the user sets it


@pytest.mark.slow
def test_bench_serve_limits_script_end_to_end(text_artifact, tmp_path):
    """scripts/bench_serve_limits.py, small, on the tiny model: big prompts refused by the server (413),
    every slow socket closed by the header timeout, and the clients served without an error."""
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    argv = ["--artifact", str(text_artifact), "--prompt-mb", "2", "--slowloris", "100", "--clients", "8",
            "--duration", "5", "--json", str(out)]  # fmt: skip
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_serve_limits.py"), *argv],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["big_prompts"]["4x2MB_expect_100_continue"]["statuses"] == ["413"] * 4
    assert r["big_prompts"]["4x2MB_blind"]["server_refused"] == {"body_too_large": 4}
    slow = r["slowloris"]
    assert (
        slow["closed_with_408"] == 100
        and slow["still_open"] == 0
        and slow["server_refused"]["header_timeout"] == 100
    )
    for load in r["load"]:
        assert load["errors"] == 0 and set(load["statuses"]) == {"200"}, load
    assert "| slowloris: 100 sockets" in run.stdout


def test_the_cli_defaults_are_the_library_defaults():
    """``radon serve``'s flags repeat ``Limits``' defaults as literals (its --help must not import uvicorn)."""
    import dataclasses
    import inspect

    from radon.cli.serve import serve
    from radon.runtime.server.limits import Limits

    flags = inspect.signature(serve).parameters
    for field in dataclasses.fields(Limits):
        if field.name in flags:
            assert flags[field.name].default == field.default, field.name
    assert {f.name for f in dataclasses.fields(Limits)} - set(flags) == {"max_header_bytes", "max_headers"}
