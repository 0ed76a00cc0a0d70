"""Chat on the edge runtime: ``/v1/chat/completions`` under a real uvicorn with the stock ``openai`` client
(streaming included), ``radon generate --chat`` on an artifact and a checkpoint, and every refusal.

The model is a decisive tiny Mistral whose tokenizer is an ``hf`` one carrying SmolLM2's ChatML template
(``chat_testing``); the expected replies come from the runtime's generator on the template's ids, so the
tests check the surfaces, not the model. SmolLM2 itself against transformers is
``test_runtime_realmodel_text.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from chat_testing import chat_artifact, serving

import radon.runtime
from radon.cli import main

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

MODEL = "radon-chat"
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, мир!"}]
N = 12


@pytest.fixture(scope="module")
def chat_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return chat_artifact(tmp_path_factory.mktemp("chat"))


@pytest.fixture(scope="module")
def chat_gen(chat_paths):
    return radon.runtime.load(chat_paths[1], threads=1)


@pytest.fixture(scope="module")
def server(chat_paths):
    from radon.runtime.server import create_app

    app = create_app(
        radon.runtime.load(chat_paths[1], threads=1), max_tokens_limit=64, max_batch=4, model_name=MODEL
    )
    with serving(app) as url:
        yield SimpleNamespace(url=url)


def expected(gen, messages, n: int = N, **kw):
    ids = gen.encode_chat(messages)
    return ids, gen.complete([ids], n, temperature=0, **kw)[0]


def test_openai_client_chat(server, chat_gen):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    ids, want = expected(chat_gen, CHAT)
    out = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=N, temperature=0)
    assert out.object == "chat.completion" and out.model == MODEL and out.id.startswith("chatcmpl-")
    choice = out.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == want.text
    assert choice.finish_reason == want.finish_reason
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (len(ids), want.new_tokens)
    assert out.usage.total_tokens == len(ids) + want.new_tokens
    # max_completion_tokens wins over max_tokens
    short = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=N, max_completion_tokens=3,
                                           temperature=0)  # fmt: skip
    assert short.usage.completion_tokens <= 3 and want.text.startswith(short.choices[0].message.content)


def test_openai_client_streams_chunks(server, chat_gen):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    ids, want = expected(chat_gen, CHAT)
    chunks = list(client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=N, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))  # fmt: skip
    assert all(c.object == "chat.completion.chunk" for c in chunks) and len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(content) == want.text and sum(bool(p) for p in content) > 1  # streamed in pieces
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == want.finish_reason and not any(finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == len(ids)
    assert chunks[-1].usage.completion_tokens == want.new_tokens


def test_raw_stream_ends_with_done(server, chat_gen):
    _, want = expected(chat_gen, CHAT, 4)
    body = {"model": MODEL, "messages": CHAT, "max_completion_tokens": 4, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[6:]) for line in lines[:-1]]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == want.text


def test_stop_string_and_eos_end_the_reply(server, chat_gen):
    _, want = expected(chat_gen, CHAT, 40)
    stop = want.text[3:6]
    r = httpx.post(f"{server.url}/v1/chat/completions", timeout=60, json={
        "model": MODEL, "messages": CHAT, "max_tokens": 40, "temperature": 0, "stop": stop})  # fmt: skip
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert (
        choice["finish_reason"] == "stop"
        and choice["message"]["content"] == want.text[: want.text.index(stop)]
    )


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


@pytest.mark.parametrize(
    "change, param, message",
    [
        ({"messages": "hi"}, "messages", "messages: expected a list of messages"),
        ({"messages": []}, "messages", "conversation is empty"),
        ({"messages": [{"content": "x"}]}, "messages", r"messages\[0\]\.role: required"),
        ({"messages": [{"role": "user"}]}, "messages", r"messages\[0\]\.content: required"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages", r"messages\[0\]\.role: 'wizard' is not one of"),
        ({"n": 2}, "n", "does not support n=2"),
        ({"tools": [{"type": "function"}]}, "tools", "does not support tools"),
        ({"response_format": {"type": "json_object"}}, "response_format", "only {'type': 'text'}"),
        ({"max_tokens": 0}, "max_tokens", "must be > 0"),
        ({"max_completion_tokens": 65}, "max_completion_tokens", "over this server's limit of 64"),
        ({"temperature": -1}, "temperature", "must be >= 0"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "up to 4"),
        ({"frobnicate": 1}, "frobnicate", "frobnicate"),
    ],
)  # fmt: skip
def test_bad_requests_are_400_naming_the_field(server, change, param, message):
    import re

    body = {"model": MODEL, "messages": CHAT} | change
    err = _error(httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30), 400)
    assert err["param"] == param and err["type"] == "invalid_request_error"
    assert re.search(message, err["message"]), err


def test_unknown_model_route_and_method_are_openai_errors(server):
    err = _error(
        httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4", "messages": CHAT}), 404
    )
    assert "'gpt-4' is not served here" in err["message"] and err["param"] == "model"
    for path in ("/v1/chat/complete", "/chat/completions", "/v2/nothing"):
        err = _error(httpx.post(f"{server.url}{path}", json={}), 404)
        assert path in err["message"] and "/v1/chat/completions" in err["message"], err
    err = _error(httpx.get(f"{server.url}/v1/chat/completions"), 405)
    assert "GET /v1/chat/completions: method not allowed" in err["message"]
    r = httpx.post(f"{server.url}/api/v1/generate", json={})  # the seed's route keeps its own shape
    assert r.status_code == 422 and "detail" in r.json()


def test_tokenizer_without_a_template_is_refused(text_artifact):
    from fastapi.testclient import TestClient

    from radon.runtime.server import create_app

    app = create_app(radon.runtime.load(text_artifact, threads=1), model_name=MODEL)
    with TestClient(app) as client:
        err = _error(client.post("/v1/chat/completions", json={"model": MODEL, "messages": CHAT}), 400)
    assert "has no chat template" in err["message"] and "chat_template.jinja" in err["message"]


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["generate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_chat_on_the_artifact_and_the_checkpoint(chat_paths, chat_gen, capsys):
    ckpt, artifact = chat_paths
    ids, want = expected(chat_gen, CHAT, 8)
    for model in (artifact, ckpt):
        code, out, err = _cli(capsys, str(model), "--chat", CHAT[1]["content"], "--system", CHAT[0]["content"],
                              "--max-new-tokens", "8", "--json")  # fmt: skip
        assert code == 0, err
        result = json.loads(out)
        assert result["ids"] == want.token_ids and result["text"] == want.text, model
        assert result["prompt_tokens"] == len(ids)
    code, out, _ = _cli(capsys, str(artifact), "--chat", CHAT[1]["content"], "--max-new-tokens", "8")
    assert code == 0 and out.startswith(expected(chat_gen, CHAT[1:], 8)[1].text)  # the reply, no prompt


@pytest.mark.parametrize(
    "args, message",
    [
        (["--chat", "hi", "--prompt", "hi"], "exactly one of"),
        (["--system", "x", "--prompt", "hi"], "--system: goes with --chat"),
        (["--chat", " "], "--chat: the message is empty"),
    ],
)
def test_generate_chat_flag_errors(chat_paths, capsys, args, message):
    code, _, err = _cli(capsys, str(chat_paths[1]), *args)
    assert code == 2 and message in err


def test_generate_chat_needs_a_template(text_artifact, text_ckpt, capsys):
    for model in (text_artifact, text_ckpt):
        code, _, err = _cli(capsys, str(model), "--chat", "hi")
        assert code == 2 and "has no chat template" in err and "chat_template.jinja" in err, err
