"""A real tritonserver on loopback ports (nvidia-pytriton's, with the server environment): the generate
endpoints against the runtime's own greedy text, streaming over HTTP and gRPC, every refusal as a 4xx or a
gRPC error with a message, concurrent batched requests, the tokenizer, detokenizer and decoder models on
their own, and ``radon client``. Marker ``triton``; skipped with the reason when the environment is missing
(scripts/make_triton_env.sh)."""

from __future__ import annotations

import json
import queue
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from radon.model_repository.client import TritonClientError, generate, generate_http, request_body

pytestmark = pytest.mark.triton
grpcclient = pytest.importorskip("tritonclient.grpc", reason="needs tritonclient[grpc] (the triton extra)")

PROMPTS = ["Привет, мир", "Hello there", "def f(x):", "Однажды вечером"]
MODELS = ["radon", "radon_bls"]  # in-process decode loop, one BLS call to radon_decoder per step


def post(server, model: str, body: dict, route: str = "generate") -> tuple[int, dict | str]:
    request = urllib.request.Request(f"{server.url}/v2/models/{model}/{route}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            raw = r.read().decode()
            return r.status, (json.loads(raw) if route == "generate" else raw)
    except urllib.error.HTTPError as err:  # generate_stream sends its error as an event: "data: {...}"
        return err.code, json.loads(err.read().decode().strip().removeprefix("data:"))


@pytest.mark.parametrize("model", MODELS)
def test_generate_equals_the_runtime(server, text_gen, model):
    for prompt in PROMPTS:
        status, body = post(server, model, {"text_input": prompt, "max_tokens": 24})
        assert status == 200, body
        assert body["text_output"] == text_gen.generate_text(prompt, 24), prompt
        assert body["model_name"] == model


@pytest.mark.parametrize("model", MODELS)
def test_generate_stream_is_incremental(server, text_gen, model):
    expected = text_gen.generate_text(PROMPTS[0], 30)
    pieces: list[str] = []
    reply = generate_http(f"127.0.0.1:{server.http_port}", model, request_body(PROMPTS[0], 30, True),
                          on_piece=pieces.append)  # fmt: skip
    assert reply.responses == len(pieces) == 30  # one response per token, in order, each its own event
    assert reply.text == expected
    assert reply.generated == sorted(reply.generated) and reply.generated[-1] == 30
    # the same over gRPC's stream
    reply = generate(f"grpc://{server.grpc_url}", PROMPTS[0], model=model, max_tokens=30, stream=True)
    assert reply.responses == 30 and reply.text == expected and reply.generated[-1] == 30
    # incremental, not buffered, shown by what the server did rather than by a clock: each response says
    # how many tokens the decode loop had generated when that response left (generated_tokens); a
    # buffered stream would send every piece after the last token (all counts equal to the total)
    for url in (f"http://127.0.0.1:{server.http_port}", f"grpc://{server.grpc_url}"):
        pieces = []
        reply = generate(url, PROMPTS[0], model=model, max_tokens=400, stream=True, on_piece=pieces.append)
        assert reply.responses == len(pieces) >= 100 and reply.text == text_gen.generate_text(PROMPTS[0], 400)
        counts = reply.generated
        assert len(counts) == reply.responses and counts == sorted(counts) and counts[-1] == reply.responses
        assert counts[0] <= reply.responses // 2, (url, counts[:8])  # the first piece left in the first half
    single = generate(f"grpc://{server.grpc_url}", PROMPTS[0], model=model, max_tokens=30)
    assert single.responses == 1 and single.text == expected and single.generated == [30]


def test_stop_words_and_sampling_inputs(server, text_gen):
    full = text_gen.generate_text(PROMPTS[1], 30)
    stop = full[8:12]
    status, body = post(server, "radon", {"text_input": PROMPTS[1], "max_tokens": 30, "stop_words": [stop]})
    assert status == 200 and body["text_output"] == full[: full.find(stop)]
    sampled = {
        "text_input": PROMPTS[1],
        "max_tokens": 12,
        "temperature": 0.8,
        "top_k": 20,
        "top_p": 0.9,
        "seed": 3,
    }
    first, second = post(server, "radon", sampled)[1], post(server, "radon_bls", sampled)[1]
    assert first["text_output"] == second["text_output"]  # a seed reproduces a run, whichever decode loop
    expected = text_gen.generate_text(PROMPTS[1], 12, temperature=0.8, top_k=20, top_p=0.9, seed=3)
    assert first["text_output"] == expected


@pytest.mark.parametrize(("body", "param"), [
    ({"text_input": "Hello", "max_tokens": 0}, "max_tokens"),
    ({"text_input": "Hello", "max_tokens": -5}, "max_tokens"),
    ({"text_input": "", "max_tokens": 8}, "text_input"),
    ({"text_input": "Hello", "max_tokens": 8, "min_p": 0.1}, "min_p"),
    ({"text_input": "Hello", "max_tokens": 8, "parameters": {"bogus": 1}}, "bogus"),
    ({"text_input": "Hello", "max_tokens": 8, "top_p": 1.5}, "top_p"),
    ({"text_input": "Hello", "max_tokens": 100000}, "max_tokens"),
])  # fmt: skip
def test_http_refusals_are_400_with_a_message(server, body, param):
    for route in ("generate", "generate_stream"):
        status, answer = post(server, "radon", body, route)
        assert status == 400, (route, answer)
        assert answer["error"].startswith(param), answer


def test_http_wrong_dtype_is_an_error_with_a_message(server):
    # Triton's generate extension converts JSON before the model sees it; a value of the wrong type is
    # refused by Triton itself (2.51: HTTP 500 "Unable to parse 'data'"), never reaching the model.
    status, answer = post(server, "radon", {"text_input": "Hello", "max_tokens": "ten"})
    assert status >= 400 and "parse" in answer["error"]


def stream_once(server, model: str, inputs: list, parameters: dict | None = None) -> list:
    results: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        client.async_stream_infer(model, inputs, parameters=parameters)
        out = [results.get(timeout=60)]
    finally:
        client.stop_stream()
        client.close()
    return out


@pytest.mark.parametrize(("inputs", "parameters", "message"), [
    ([("text_input", b"Hello", "BYTES"), ("max_tokens", np.float32(8), "FP32")], None,
     "data-type is 'FP32', but model 'radon' expects 'INT32'"),
    ([("text_input", b"Hello", "BYTES"), ("max_tokens", np.int32(0), "INT32")], None, "max_tokens: must be > 0"),
    ([("text_input", b"", "BYTES"), ("max_tokens", np.int32(8), "INT32")], None, "text_input: the prompt is empty"),
    ([("text_input", b"Hello", "BYTES"), ("max_tokens", np.int32(8), "INT32")], {"bogus": 1}, "bogus: not a parameter"),
])  # fmt: skip
def test_grpc_refusals_are_errors_with_a_message(server, inputs, parameters, message):
    tensors = []
    for name, value, datatype in inputs:
        tensor = grpcclient.InferInput(name, [1, 1], datatype)
        tensor.set_data_from_numpy(
            np.array([[value]], dtype=object) if datatype == "BYTES" else np.array([[value]])
        )
        tensors.append(tensor)
    ((result, error),) = stream_once(server, "radon", tensors, parameters)
    assert result is None and error is not None
    assert message in error.message()


def test_concurrent_streams_are_batched_and_exact(server, text_gen):
    jobs = [(PROMPTS[i % 4] + f" {i}", 10 + 3 * i, MODELS[i % 2]) for i in range(8)]

    def run(job):
        prompt, n, model = job
        return generate(f"grpc://{server.grpc_url}", prompt, model=model, max_tokens=n, stream=True)

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(run, jobs))
    for (prompt, n, _), reply in zip(jobs, replies):
        assert reply.responses == n and reply.text == text_gen.generate_text(prompt, n)


def test_tokenizer_detokenizer_and_decoder_models(server, text_gen):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    texts = np.array([[PROMPTS[0].encode()], [PROMPTS[2].encode()]], dtype=object)
    tensor = grpcclient.InferInput("text_input", [2, 1], "BYTES")
    tensor.set_data_from_numpy(texts)
    out = client.infer("radon_tokenizer", [tensor])
    ids, lengths = out.as_numpy("input_ids"), out.as_numpy("input_lengths").reshape(-1)
    for row, prompt, n in zip(ids, (PROMPTS[0], PROMPTS[2]), lengths):
        assert row[:n].tolist() == text_gen.tokenizer.encode(prompt, add_bos=True)
    tokens = grpcclient.InferInput("token_ids", list(ids.shape), "INT64")
    tokens.set_data_from_numpy(ids)
    length = grpcclient.InferInput("sequence_length", [2, 1], "INT32")
    length.set_data_from_numpy(lengths.reshape(2, 1).astype(np.int32))
    texts_back = client.infer("radon_detokenizer", [tokens, length]).as_numpy("text_output").reshape(-1)
    assert [t.decode() for t in texts_back] == [PROMPTS[0], PROMPTS[2]]
    # raw logits for clients that want them: every position, as the artifact's graph gives them to any
    # caller (the generator's own session computes the last one only: logits_to_keep=1)
    prompt = np.array([text_gen.tokenizer.encode(PROMPTS[1], add_bos=True)], np.int64)
    a = text_gen.manifest.architecture
    feeds = {
        "input_ids": prompt,
        "attention_mask": np.ones_like(prompt),
        "position_ids": np.arange(prompt.shape[1])[None],
    }
    for spec in text_gen.manifest.inputs[3:]:
        feeds[spec.name] = np.zeros((1, a.num_kv_heads, 0, a.head_dim), np.float32)
    tensors = []
    for name, value in feeds.items():
        t = grpcclient.InferInput(name, list(value.shape), "INT64" if value.dtype == np.int64 else "FP32")
        t.set_data_from_numpy(value)
        tensors.append(t)
    logits = client.infer(
        "radon_decoder", tensors, outputs=[grpcclient.InferRequestedOutput("logits")]
    ).as_numpy("logits")
    from radon.runtime.session import DecoderSession

    expected = (
        DecoderSession(text_gen.session.artifact, manifest=text_gen.manifest, threads=1).step(prompt).logits
    )
    assert logits.shape == expected.shape == (1, prompt.shape[1], a.vocab_size)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(logits[:, -1:], text_gen.session.step(prompt).logits, rtol=0, atol=1e-5)
    client.close()


def test_radon_client_cli(server, text_gen, capsys):
    from radon.cli._app import call
    from radon.cli.triton import client

    expected = text_gen.generate_text(PROMPTS[3], 16)
    assert (
        call(client, "radon client", ["--url", server.url, "--prompt", PROMPTS[3], "--max-tokens", "16"]) == 0
    )
    assert capsys.readouterr().out == expected + "\n"
    argv = [
        "--url",
        f"grpc://{server.grpc_url}",
        "--prompt",
        PROMPTS[3],
        "--max-tokens",
        "16",
        "--stream",
        "--json",
    ]
    assert call(client, "radon client", argv) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["text"] == expected and answer["responses"] == 16
    with pytest.raises(TritonClientError, match="HTTP 400: max_tokens"):
        generate(server.url, "Hello", max_tokens=0)
