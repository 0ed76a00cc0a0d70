"""The generate model's TensorRT-LLM / OpenAI-frontend tensors on a real tritonserver, each by its effect.

Every tensor of ``radon.model_repository.request.GENERATE_INPUTS`` that TensorRT-LLM's ensemble declares
is sent to a live server and its effect asserted against the runtime on the same artifact (``text_gen``):
a penalty changes the text exactly as ``radon.runtime`` computes it, a banned word's ids never appear,
``end_id`` ends the text, ``pad_id`` changes nothing, ``exclude_input_in_output`` false echoes the
prompt, and the token counts are the prompt's and the generated ones. The last test sends the exact
request that Triton's OpenAI-compatible frontend builds for a model that is not vLLM
(``python/openai/openai_frontend/engine/utils/triton.py``, ``_create_trtllm_generate_request``: every
tensor batched as ``[[value]]``, ``stop_words`` as ``[[...]]``), over gRPC's stream. The frontend itself
is not run: it drives an in-process ``tritonserver`` Python API that the pytriton server here lacks.
Marker ``triton``; skipped with the reason when the server environment is missing.
"""

from __future__ import annotations

import json
import queue
import urllib.request

import numpy as np
import pytest

pytestmark = pytest.mark.triton
grpcclient = pytest.importorskip("tritonclient.grpc", reason="needs tritonclient[grpc] (the triton extra)")

PROMPT = "Привет, мир"
N = 24


def post(server, body: dict, model: str = "radon") -> dict:
    request = urllib.request.Request(f"{server.url}/v2/models/{model}/generate", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return json.loads(r.read().decode())
    except urllib.error.HTTPError as err:
        return {"status": err.code, **json.loads(err.read().decode())}


def generated_ids(text_gen, prompt: str, n: int, **params) -> list[int]:
    ids, mask = text_gen.encode([prompt])
    return text_gen.generate(ids, n, attention_mask=mask, **params)[0, ids.shape[1] :].tolist()


@pytest.mark.parametrize("model", ["radon", "radon_bls"])
def test_frequency_and_presence_penalties_equal_the_runtime(server, text_gen, model):
    plain = text_gen.generate_text(PROMPT, N)
    for penalties in ({"frequency_penalty": 1.5}, {"presence_penalty": 1.2},
                      {"frequency_penalty": -0.5, "presence_penalty": 0.8}):  # fmt: skip
        body = post(server, {"text_input": PROMPT, "max_tokens": N, **penalties}, model)
        expected = text_gen.generate_text(PROMPT, N, **penalties)
        assert body["text_output"] == expected, penalties
    assert text_gen.generate_text(PROMPT, N, frequency_penalty=1.5) != plain  # the penalty has an effect here
    body = post(server, {"text_input": PROMPT, "max_tokens": N, "frequency_penalty": 2.5}, model)
    assert body["status"] == 400 and body["error"].startswith("frequency_penalty: must be in [-2, 2]")


def test_bad_words_never_appear(server, text_gen):
    tok = text_gen.tokenizer
    plain = generated_ids(text_gen, PROMPT, N)
    # a word of the greedy text that the tokenizer encodes alone as the same ids
    word = next(
        w
        for w in (tok.decode([t]) for t in plain)
        if w.strip() and tok.encode(w) and tok.encode(w)[0] in plain
    )
    ids = tok.encode(word)
    body = post(server, {"text_input": PROMPT, "max_tokens": N, "bad_words": [word]})
    expected = generated_ids(text_gen, PROMPT, N, bad_words=[ids])
    assert body["text_output"] == tok.decode(expected)
    assert not any(expected[i : i + len(ids)] == ids for i in range(len(expected)))
    if len(ids) == 1:
        assert word not in body["text_output"]
    assert body["text_output"] != text_gen.generate_text(PROMPT, N)


def test_end_id_ends_the_text_and_counts(server, text_gen):
    plain = generated_ids(text_gen, PROMPT, N, ignore_eos=True)
    end = plain[4]
    k = plain.index(end) + 1  # generation ends with the first time end_id is generated
    body = post(
        server, {"text_input": PROMPT, "max_tokens": N, "end_id": end, "return_num_output_tokens": True}
    )
    assert body["num_output_tokens"] == k < N
    assert body["text_output"] == text_gen.tokenizer.decode(plain[:k], skip_special_tokens=True)
    vocab = text_gen.manifest.architecture.vocab_size
    body = post(server, {"text_input": PROMPT, "max_tokens": N, "end_id": vocab})
    assert body["status"] == 400 and body["error"].startswith(f"end_id: token id {vocab} is outside")


def test_pad_id_echo_and_token_counts(server, text_gen):
    plain = text_gen.generate_text(PROMPT, N)
    prompt_ids = text_gen.encode([PROMPT])[0]
    body = post(server, {"text_input": PROMPT, "max_tokens": N, "pad_id": 7})
    assert body["text_output"] == plain and "num_input_tokens" not in body and "num_output_tokens" not in body
    body = post(server, {"text_input": PROMPT, "max_tokens": N, "exclude_input_in_output": False,
                         "return_num_input_tokens": True, "return_num_output_tokens": True})  # fmt: skip
    assert body["text_output"] == PROMPT + plain
    assert (body["num_input_tokens"], body["num_output_tokens"]) == (prompt_ids.shape[1], N)
    body = post(server, {"text_input": PROMPT, "max_tokens": N, "exclude_input_in_output": True})
    assert body["text_output"] == plain


def openai_frontend_request(prompt: str, max_tokens: int, *, stream: bool, stop: list[str]) -> list:
    """The tensors ``_create_trtllm_generate_request`` builds for a completion with these fields, the
    sampling ones set as a client would (top_p, penalties, seed, temperature), echo False."""
    arrays = {
        "text_input": np.array([[prompt.encode()]], dtype=object),
        "stream": np.bool_([[stream]]),
        "max_tokens": np.int32([[max_tokens]]),
        "stop_words": np.array([[s.encode() for s in stop]], dtype=object),
        "top_p": np.float32([[0.9]]),
        "frequency_penalty": np.float32([[0.3]]),
        "presence_penalty": np.float32([[0.2]]),
        "seed": np.uint64([[11]]),
        "temperature": np.float32([[0.7]]),
        "exclude_input_in_output": np.bool_([[True]]),
        "return_num_input_tokens": np.bool_([[True]]),
        "return_num_output_tokens": np.bool_([[True]]),
    }
    kinds = {np.dtype(object): "BYTES", np.dtype(np.bool_): "BOOL", np.dtype(np.int32): "INT32",
             np.dtype(np.float32): "FP32", np.dtype(np.uint64): "UINT64"}  # fmt: skip
    tensors = []
    for name, array in arrays.items():
        tensor = grpcclient.InferInput(name, list(array.shape), kinds[array.dtype])
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def grpc_stream(server, model: str, tensors: list) -> list:
    results: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    out = []
    try:
        client.async_stream_infer(model, tensors, enable_empty_final_response=True)
        while True:
            result, error = results.get(timeout=60)
            assert error is None, error
            response = result.get_response()
            if response.outputs:
                out.append({o.name: result.as_numpy(o.name) for o in response.outputs})
            if (
                response.parameters.get("triton_final_response")
                and response.parameters["triton_final_response"].bool_param
            ):
                return out
    finally:
        client.stop_stream()
        client.close()


@pytest.mark.parametrize("stream", [False, True])
def test_the_openai_frontends_request_is_answered(server, text_gen, stream):
    full = text_gen.generate_text(PROMPT, N, temperature=0.7, top_p=0.9, frequency_penalty=0.3,
                                  presence_penalty=0.2, seed=11)  # fmt: skip
    stop = full[6:9]
    assert stop and full.find(stop) == 6
    responses = grpc_stream(server, "radon", openai_frontend_request(PROMPT, N, stream=stream, stop=[stop]))
    text = "".join(r["text_output"].reshape(-1)[0].decode() for r in responses)
    assert text == full[:6]
    # what the frontend reads back: num_input_tokens once, num_output_tokens summed over the responses
    assert all(
        r["num_input_tokens"].dtype == np.int32 and r["num_output_tokens"].dtype == np.int32
        for r in responses
    )
    assert {int(r["num_input_tokens"].reshape(-1)[0]) for r in responses} == {
        text_gen.encode([PROMPT])[0].shape[1]
    }
    completion = sum(int(r["num_output_tokens"].reshape(-1)[0]) for r in responses)
    assert completion == int(responses[-1]["generated_tokens"].reshape(-1)[0])
    assert len(responses) == (completion if stream else 1)
