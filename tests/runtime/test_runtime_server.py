"""``radon serve``'s app under a real uvicorn on a loopback port, with its default limits and no key:
every 4xx, the seed's request, streaming, the OpenAI client, 16 concurrent requests, disconnects,
/health and /metrics.

The server runs in a thread of this process (uvicorn.Server on a socket bound to port 0). Expected
texts come from a second generator on the same artifact, used directly (greedy, so deterministic).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import pytest

import radon.runtime

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

LIMIT = 3000  # the server's max new tokens (the disconnect test needs long generations)
PROMPTS = [f"{w} number {i}" for i, w in enumerate(["Привет", "Hello", "def f(x):", "Однажды"] * 4)]


@pytest.fixture(scope="module")
def server(text_artifact):
    from radon.runtime.server import create_app
    from radon.runtime.server.limits import uvicorn_settings

    gen = radon.runtime.load(text_artifact, threads=1)
    app = create_app(gen, max_tokens_limit=LIMIT, max_batch=8, model_name="radon-test")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # radon serve's own stack: default limits, no key, the guarded protocol
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_settings(app)))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30  # hang guard only: no test asserts how long anything takes
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", app=app, gen=gen)
    srv.should_exit = True
    thread.join(timeout=30)
    sock.close()


def expected(text_gen, prompt: str, n: int, **kw) -> str:
    return text_gen.generate_text(prompt, n, **kw)


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    values = [float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    return sum(values)


def sse_events(response: httpx.Response) -> list:
    return [json.loads(line[6:]) if line[6:] != "[DONE]" else "[DONE]"
            for line in response.iter_lines() if line.startswith("data: ")]  # fmt: skip


def test_health(server):
    r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["model"] == "radon-test"
    assert body["providers"] == ["CPUExecutionProvider"] and body["sliding_window"] == 16
    assert body["parity"] == "skipped", "exported with parity=False, and /health says so"


def test_generate_answers_text_counts_and_timings(server, text_gen):
    r = httpx.post(f"{server.url}/api/v1/generate", json={"prompt": PROMPTS[0], "max_length": 30}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    n_prompt = len(text_gen.tokenizer.encode(PROMPTS[0], add_bos=True))
    assert body["prompt_tokens"] == n_prompt and body["total_tokens"] == 30
    assert body["text"] == expected(text_gen, PROMPTS[0], 30 - n_prompt)
    assert body["timings"]["total_s"] > 0 and body["timings"]["time_to_first_token_s"] > 0
    assert body["finish_reason"] in ("length", "stop")


BAD_GENERATE = [
    ({"prompt": ""}, 400, "prompt: the prompt is empty"),
    ({"prompt": "a " * 5000}, 400, "leave no room in the model's context of 4096"),
    ({"prompt": "hi", "max_new_tokens": 0}, 400, "max_new_tokens: must be > 0"),
    ({"prompt": "hi", "max_new_tokens": LIMIT + 1}, 400, f"over this server's limit of {LIMIT}"),
    ({"prompt": "hi", "max_length": 2}, 400, "max_length: 2 leaves no room"),
    ({"prompt": "hi " * 1000, "max_new_tokens": LIMIT}, 400, "exceed the model's context of 4096"),
    ({"prompt": "hi", "temperature": -0.5}, 400, "temperature: must be >= 0"),
    ({"prompt": "hi", "top_p": 0}, 400, r"top_p: must be in \(0, 1\]"),
    ({"prompt": "hi", "top_p": 1.5}, 400, r"top_p: must be in \(0, 1\]"),
    ({"prompt": "hi", "top_k": -2}, 400, "top_k: must be >= 0"),
    (
        {"prompt": "hi", "sliding_window_size": 4096},
        400,
        "sliding_window_size: this artifact was exported with",
    ),
    ({"prompt": "hi", "beam_size": 4}, 422, "beam_size: Extra inputs are not permitted"),
    ({"prompt": "hi", "max_length": "many"}, 422, "max_length"),
    ({"max_length": 5}, 422, "prompt: Field required"),
    ({"prompt": "hi", "seed": -1}, 400, r"seed: must be in \[0, 2\*\*63\)"),
]


@pytest.mark.parametrize("body, status, message", BAD_GENERATE)
def test_generate_refuses_with_a_message(server, body, status, message):
    r = httpx.post(f"{server.url}/api/v1/generate", json=body, timeout=30)
    assert r.status_code == status, r.text
    assert re.search(message, r.json()["detail"]), r.json()


def test_the_seeds_request_is_answered_with_the_cap_that_applied(server):
    """MIGRATION_GUIDE.md's curl: max_length 32000 is a ceiling (capped at the server's limit here), and
    use_flash_attention is honoured by the ort lowering's fused GroupQueryAttention."""
    body = {"prompt": "Привет, RADON!", "max_length": 32000, "use_flash_attention": True}
    r = httpx.post(f"{server.url}/api/v1/generate", json=body, timeout=120)
    assert r.status_code == 200, r.text
    budget = r.json()["budget"]
    assert budget["requested"] == 32000 and budget["capped_by"] == "max_tokens_limit"
    assert budget["max_new_tokens"] == LIMIT and budget["max_length"] == r.json()["prompt_tokens"] + LIMIT


def test_generate_streams_server_sent_events(server, text_gen):
    body = {"prompt": PROMPTS[1], "max_new_tokens": 20, "stream": True}
    with httpx.stream("POST", f"{server.url}/api/v1/generate", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    (want,) = text_gen.complete(PROMPTS[1], 20)
    tokens = [e for e in events if e["type"] == "token"]
    assert [e["token_id"] for e in tokens] == want.token_ids and events[-1]["type"] == "done"
    text = "".join(e["text"] for e in tokens)
    assert text == events[-1]["text"] == want.text
    assert (
        events[-1]["completion_tokens"] == want.new_tokens
        and events[-1]["finish_reason"] == want.finish_reason
    )


def test_openai_client(server, text_gen):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["radon-test"]
    want = expected(text_gen, PROMPTS[2], 16)
    done = client.completions.create(model="radon-test", prompt=PROMPTS[2], max_tokens=16, temperature=0)
    assert done.choices[0].text == want and done.usage.completion_tokens == 16
    chunks = client.completions.create(model="radon-test", prompt=PROMPTS[2], max_tokens=16, temperature=0,
                                       stream=True, stream_options={"include_usage": True})  # fmt: skip
    got = list(chunks)
    assert "".join(c.choices[0].text for c in got if c.choices) == want
    assert got[-1].usage.completion_tokens == 16
    stop = want[4:7]
    cut = client.completions.create(
        model="radon-test", prompt=PROMPTS[2], max_tokens=16, temperature=0, stop=stop
    )
    assert cut.choices[0].text == want[: want.index(stop)] and cut.choices[0].finish_reason == "stop"
    two = client.completions.create(model="radon-test", prompt=PROMPTS[:2], max_tokens=8, temperature=0,
                                    extra_body={"top_k": 5})  # fmt: skip
    assert [c.text for c in two.choices] == [expected(text_gen, p, 8) for p in PROMPTS[:2]]
    for kwargs, status, message in [
        ({"n": 2}, 400, "n: RADON's server does not support n=2"),
        ({"max_tokens": 0}, 400, "max_tokens: must be > 0"),
        ({"temperature": -1}, 400, "temperature: must be >= 0"),
        ({"top_p": 2}, 400, "top_p"),
        ({"logprobs": 3}, 400, "logprobs"),
        ({"extra_body": {"typical_p": 0.5}}, 400, "typical_p: Extra inputs are not permitted"),
        ({"model": "gpt-4"}, 404, "'gpt-4' is not served here"),
        ({"frequency_penalty": 2.5}, 400, "frequency_penalty: must be in [-2, 2]"),
    ]:
        args = {"model": "radon-test", "prompt": "hi", "max_tokens": 4} | kwargs
        with pytest.raises(openai.APIStatusError) as err:
            client.completions.create(**args)
        assert err.value.status_code == status and message in err.value.message, (kwargs, err.value.message)


def test_openai_penalties_are_the_runtimes(server, text_gen):
    """frequency_penalty and presence_penalty are honoured as radon.runtime computes them."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    plain = expected(text_gen, PROMPTS[0], 20)
    for penalties in ({"frequency_penalty": 1.5}, {"presence_penalty": -0.7, "frequency_penalty": 0.4}):
        done = client.completions.create(model="radon-test", prompt=PROMPTS[0], max_tokens=20, temperature=0,
                                         **penalties)  # fmt: skip
        assert done.choices[0].text == text_gen.generate_text(PROMPTS[0], 20, **penalties), penalties
    assert text_gen.generate_text(PROMPTS[0], 20, frequency_penalty=1.5) != plain


def test_sixteen_concurrent_requests(server, text_gen):
    batches_before = metric(server.url, "radon_batches_total")

    def ask(prompt: str) -> str:
        r = httpx.post(
            f"{server.url}/api/v1/generate", json={"prompt": prompt, "max_new_tokens": 24}, timeout=120
        )
        assert r.status_code == 200, r.text
        return r.json()["text"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, PROMPTS))
    assert answers == [expected(text_gen, p, 24) for p in PROMPTS]
    batches = metric(server.url, "radon_batches_total") - batches_before
    assert 1 <= batches < 16, f"16 concurrent requests ran in {batches} batches: nothing was batched"


def test_disconnect_stops_the_generation(server):
    cancelled = metric(server.url, "radon_requests_cancelled_total")
    generated = metric(server.url, "radon_generated_tokens_total")
    body = {"prompt": PROMPTS[3], "max_new_tokens": LIMIT, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", f"{server.url}/api/v1/generate", json=body, timeout=60) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i >= 4:
                break  # leaving the block closes the connection mid-stream
    deadline = time.time() + 30  # hang guard only: the asserts below count, they do not time
    while metric(server.url, "radon_requests_cancelled_total") == cancelled and time.time() < deadline:
        time.sleep(0.05)
    assert metric(server.url, "radon_requests_cancelled_total") == cancelled + 1
    assert metric(server.url, "radon_generated_tokens_total") - generated < LIMIT
    assert httpx.get(f"{server.url}/health").json()["queue_depth"] == 0


def test_disconnect_without_streaming(server):
    cancelled = metric(server.url, "radon_requests_cancelled_total")
    payload = json.dumps({"prompt": PROMPTS[0], "max_new_tokens": LIMIT, "ignore_eos": True}).encode()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"POST /api/v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)  # fmt: skip
        time.sleep(0.2)
    deadline = time.time() + 30  # hang guard only: the asserts below count, they do not time
    while metric(server.url, "radon_requests_cancelled_total") == cancelled and time.time() < deadline:
        time.sleep(0.05)
    assert metric(server.url, "radon_requests_cancelled_total") == cancelled + 1


def test_metrics_are_prometheus_text(server):
    r = httpx.get(f"{server.url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? -?[0-9.eE+-]+$')
    for line in r.text.strip().splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    assert metric(server.url, "radon_requests_total") > 0
    assert 'radon_requests_total{route="/api/v1/generate",status="400"}' in r.text
    assert metric(server.url, "radon_model_info") == 1


def test_the_stream_reports_the_budget_in_its_done_event(server, text_gen):
    body = {"prompt": PROMPTS[3], "max_length": 20, "stream": True}
    with httpx.stream("POST", f"{server.url}/api/v1/generate", json=body, timeout=60) as r:
        assert r.status_code == 200
        done = sse_events(r)[-1]
    n_prompt = len(text_gen.tokenizer.encode(PROMPTS[3], add_bos=True))
    assert done["type"] == "done" and done["budget"]["max_new_tokens"] == 20 - n_prompt
    assert done["budget"]["set_by"] == "max_length" and done["budget"]["capped_by"] is None
