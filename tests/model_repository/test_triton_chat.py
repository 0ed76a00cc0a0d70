"""Chat and prompts through a real tritonserver, on a model whose tokenizer is an ``hf`` one with SmolLM2's
ChatML template (``chat_testing``): the generate model takes ``messages`` (a JSON string) instead of
``text_input`` and answers what the runtime answers for the template's ids, streamed or not; a prompt gets
the tokenizer's own special tokens (none here), not a forced bos; bad messages are HTTP 400 naming the field.
Marker ``triton``; skipped with the reason when the server environment is missing."""

from __future__ import annotations

import json
import urllib.request

import pytest
from chat_testing import chat_artifact

from radon.model_repository.client import generate_http

pytestmark = pytest.mark.triton

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, мир!"}]


@pytest.fixture(scope="module")
def chat_repo(tmp_path_factory: pytest.TempPathFactory):
    from radon.model_repository import build_repository

    root = tmp_path_factory.mktemp("triton_chat")
    _, artifact = chat_artifact(root)
    build_repository(artifact, root / "repo", decoder="python", max_batch=2, threads=1)
    return artifact, root / "repo"


@pytest.fixture(scope="module")
def chat_gen(chat_repo):
    import radon.runtime

    return radon.runtime.load(chat_repo[0], threads=1)


@pytest.fixture(scope="module")
def chat_server(chat_repo, server_install, free_port, tmp_path_factory):
    from radon.model_repository.server import TritonServer

    log = tmp_path_factory.mktemp("triton_chat_log") / "tritonserver.log"
    srv = TritonServer(chat_repo[1], http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                       install=server_install, log_file=log)  # fmt: skip
    srv.start(timeout_s=180)
    yield srv
    srv.stop()


def post(server, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{server.url}/v2/models/radon/generate", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode())


def test_messages_equal_the_runtime(chat_server, chat_gen):
    ids = chat_gen.encode_chat(CHAT)
    want = chat_gen.complete([ids], 12, temperature=0)[0].text
    status, body = post(chat_server, {"messages": json.dumps(CHAT), "max_tokens": 12})
    assert status == 200, body
    assert body["text_output"] == want
    pieces: list[str] = []
    reply = generate_http(f"127.0.0.1:{chat_server.http_port}", "radon",
                          {"messages": json.dumps(CHAT), "max_tokens": 12, "stream": True}, on_piece=pieces.append)  # fmt: skip
    assert reply.text == want and reply.responses == 12


def test_a_prompt_gets_no_forced_bos(chat_server, chat_gen):
    prompt = "The answer is"
    assert chat_gen.tokenizer.encode_prompt(prompt) == chat_gen.tokenizer.encode(
        prompt
    )  # no bos in this tokenizer
    status, body = post(chat_server, {"text_input": prompt, "max_tokens": 10})
    assert status == 200 and body["text_output"] == chat_gen.generate_text(prompt, 10, temperature=0)


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {"messages": json.dumps([{"role": "bot", "content": "x"}])},
            "messages[0].role: 'bot' is not one of",
        ),
        ({"messages": "not json"}, "messages: not JSON"),
        ({"messages": json.dumps(CHAT), "text_input": "hi"}, "send exactly one of text_input"),
    ],
)
def test_bad_messages_are_400(chat_server, body, message):
    status, answer = post(chat_server, body | {"max_tokens": 4})
    assert status == 400 and message in answer["error"], answer
