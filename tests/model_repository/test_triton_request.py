"""The generate model's request checks (radon.model_repository.request), outside Triton: every refusal names
its input, and a batch of requests is tokenized in one call with each refusal kept to its request."""

from __future__ import annotations

import numpy as np
import pytest

from radon.model_repository.request import (
    GENERATE_INPUTS,
    GENERATE_OUTPUTS,
    MAX_STOP_WORDS,
    GenerateFields,
    RequestError,
    plan_all,
    plan_request,
    read_fields,
)


def col(value, dtype=None) -> np.ndarray:
    """A batched (1, 1) input, as the python backend hands it over."""
    if isinstance(value, str):
        return np.array([[value.encode()]], dtype=object)
    return np.array([[value]], dtype=dtype)


def inputs(**overrides) -> dict:
    base = {"text_input": col("Привет"), "max_tokens": col(8, np.int32)}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def refused(param: str, request: dict, parameters=None) -> str:
    with pytest.raises(RequestError) as err:
        read_fields(request, parameters)
    assert str(err.value).startswith(param), str(err.value)
    assert err.value.param == param
    return str(err.value)


# TensorRT-LLM's ensemble (triton_backend/all_models/inflight_batcher_llm/ensemble/config.pbtxt), the
# inputs that Triton's OpenAI frontend sends (python/openai/openai_frontend/engine/utils/triton.py) or
# that issue 22 lists, with their dtypes and dims as that file declares them
TRTLLM_ENSEMBLE = {
    "text_input": ("TYPE_STRING", (1,)), "max_tokens": ("TYPE_INT32", (1,)), "stream": ("TYPE_BOOL", (1,)),
    "temperature": ("TYPE_FP32", (1,)), "top_k": ("TYPE_INT32", (1,)), "top_p": ("TYPE_FP32", (1,)),
    "repetition_penalty": ("TYPE_FP32", (1,)), "frequency_penalty": ("TYPE_FP32", (1,)),
    "presence_penalty": ("TYPE_FP32", (1,)), "seed": ("TYPE_UINT64", (1,)), "stop_words": ("TYPE_STRING", (-1,)),
    "bad_words": ("TYPE_STRING", (-1,)), "end_id": ("TYPE_INT32", (1,)), "pad_id": ("TYPE_INT32", (1,)),
    "exclude_input_in_output": ("TYPE_BOOL", (1,)), "return_num_input_tokens": ("TYPE_BOOL", (1,)),
    "return_num_output_tokens": ("TYPE_BOOL", (1,)),
}  # fmt: skip
TRTLLM_OUTPUTS = {
    "text_output": "TYPE_STRING",
    "num_input_tokens": "TYPE_INT32",
    "num_output_tokens": "TYPE_INT32",
}


def test_names_are_tensorrt_llm_ensemble_names():
    assert [f.name for f in GENERATE_INPUTS] == [
        "text_input", "max_tokens", "stream", "temperature", "top_k", "top_p", "repetition_penalty",
        "stop_words", "seed", "messages", "frequency_penalty", "presence_penalty", "bad_words", "end_id",
        "pad_id", "exclude_input_in_output", "return_num_input_tokens", "return_num_output_tokens",
    ]  # fmt: skip
    required = [f.name for f in GENERATE_INPUTS if not f.optional]
    assert required == ["max_tokens"]  # and exactly one of text_input and messages
    ours = {f.name: (f.data_type, f.dims) for f in GENERATE_INPUTS}
    assert {k: ours[k] for k in TRTLLM_ENSEMBLE} == TRTLLM_ENSEMBLE
    assert set(ours) - set(TRTLLM_ENSEMBLE) == {"messages"}  # RADON's one addition
    outputs = {f.name: f.data_type for f in GENERATE_OUTPUTS}
    assert {k: outputs[k] for k in TRTLLM_OUTPUTS} == TRTLLM_OUTPUTS


def test_reads_every_field():
    f = read_fields(inputs(stream=col(True), temperature=col(0.7, np.float32), top_k=col(40, np.int32),
                           top_p=col(0.9, np.float32), repetition_penalty=col(1.1, np.float32),
                           stop_words=np.array([[b"\n\n", "конец".encode()]], dtype=object),
                           seed=col(7, np.uint64)),
                    '{"triton_enable_empty_final_response": true}')  # fmt: skip
    assert f == GenerateFields("Привет", 8, True, pytest.approx(0.7), 40, pytest.approx(0.9), pytest.approx(1.1),
                               ["\n\n", "конец"], 7)  # fmt: skip
    defaults = read_fields(
        inputs(text_input=np.array([b"hi"], dtype=object), max_tokens=np.array([3], np.int32))
    )
    assert (defaults.stream, defaults.temperature, defaults.top_k, defaults.top_p, defaults.seed) == (
        False,
        0,
        0,
        1,
        None,
    )


@pytest.mark.parametrize(("param", "overrides"), [
    ("text_input", {"text_input": None}),
    ("max_tokens", {"max_tokens": None}),
    ("text_input", {"text_input": col("   ")}),
    ("text_input", {"text_input": col(1.5, np.float32)}),
    ("text_input", {"text_input": np.array([[b"\xff\xfe"]], dtype=object)}),
    ("text_input", {"text_input": np.array([[b"a"], [b"b"]], dtype=object)}),
    ("max_tokens", {"max_tokens": col(0, np.int32)}),
    ("max_tokens", {"max_tokens": col(-3, np.int32)}),
    ("max_tokens", {"max_tokens": col("ten")}),
    ("max_tokens", {"max_tokens": col(1.5, np.float32)}),
    ("temperature", {"temperature": col(-0.5, np.float32)}),
    ("top_k", {"top_k": col(-1, np.int32)}),
    ("top_p", {"top_p": col(0.0, np.float32)}),
    ("top_p", {"top_p": col(1.5, np.float32)}),
    ("repetition_penalty", {"repetition_penalty": col(0.0, np.float32)}),
    ("stop_words", {"stop_words": np.array([[b""]], dtype=object)}),
    ("stop_words", {"stop_words": np.array([[b"a"] * (MAX_STOP_WORDS + 1)], dtype=object)}),
    ("stop_words", {"stop_words": col(3, np.int32)}),
    ("seed", {"seed": col(-1, np.int64)}),
    ("stream", {"stream": col(1, np.int32)}),
    ("temperature", {"temperature": col(np.nan, np.float32)}),
    ("temperature", {"temperature": col(np.inf, np.float32)}),
    ("top_p", {"top_p": col(np.nan, np.float32)}),
    ("repetition_penalty", {"repetition_penalty": col(-np.inf, np.float32)}),
    ("seed", {"seed": col(2**63, np.uint64)}),
    ("stop_words", {"stop_words": np.array([[b"\xff"]], dtype=object)}),
    ("messages", {"text_input": None, "messages": col('[{"role": "user", "content": "\\ud800"}]')}),
    ("frequency_penalty", {"frequency_penalty": col(2.5, np.float32)}),
    ("frequency_penalty", {"frequency_penalty": col(np.nan, np.float32)}),
    ("presence_penalty", {"presence_penalty": col(-2.5, np.float32)}),
    ("presence_penalty", {"presence_penalty": col(1, np.bool_)}),
    ("bad_words", {"bad_words": np.array([[b""]], dtype=object)}),
    ("bad_words", {"bad_words": col(3, np.int32)}),
    ("bad_words", {"bad_words": np.array([[b"\xff"]], dtype=object)}),
    ("end_id", {"end_id": col(-1, np.int32)}),
    ("end_id", {"end_id": col(1.5, np.float32)}),
    ("pad_id", {"pad_id": col(-2, np.int32)}),
    ("exclude_input_in_output", {"exclude_input_in_output": col(0, np.int32)}),
    ("return_num_input_tokens", {"return_num_input_tokens": col("yes")}),
    ("return_num_output_tokens", {"return_num_output_tokens": col(1.0, np.float32)}),
    ("exclude_input_in_output", {"text_input": None, "messages": col('[{"role": "user", "content": "hi"}]'),
                                 "exclude_input_in_output": col(False, np.bool_)}),
])  # fmt: skip
def test_refusals_name_the_input(param, overrides):
    refused(param, inputs(**overrides))


def test_unknown_parameters_are_refused_by_name():
    message = refused("bogus", inputs(), '{"bogus": 1}')
    assert "text_input" in message  # says what the model takes
    refused("min_p", inputs(), {"min_p": 0.1})
    refused("min_tokens", inputs(min_tokens=col(2, np.int32)))  # TensorRT-LLM's, not taken here
    with pytest.raises(RequestError, match="parameters: not JSON"):
        read_fields(inputs(), "{oops")


def test_plan_checks_the_budget(text_gen):
    m = text_gen.manifest
    context = m.architecture.max_position_embeddings
    f = read_fields(inputs(max_tokens=col(8, np.int32)))
    plan = plan_request(f, [1, 5, 6], manifest=m, max_tokens_limit=64)
    assert (plan.prompt_ids, plan.max_new_tokens, plan.stream) == ([1, 5, 6], 8, False)
    with pytest.raises(RequestError, match="^max_tokens: 8 is over this server's limit of 4"):
        plan_request(f, [1, 5], manifest=m, max_tokens_limit=4)
    with pytest.raises(RequestError, match="^max_tokens: the prompt"):
        plan_request(f, list(range(context - 4)), manifest=m, max_tokens_limit=64)
    with pytest.raises(RequestError, match="^text_input: .* leave no room"):
        plan_request(f, [1] * context, manifest=m, max_tokens_limit=64)
    with pytest.raises(RequestError, match="^text_input: 5 tokens is over this decoder's longest prompt"):
        plan_request(f, [1] * 5, manifest=m, max_tokens_limit=64, max_prompt_tokens=4)


def test_batch_keys_follow_radon_serve(text_gen):
    def plan(**params):
        p = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0, "seed": None} | params
        return plan_request(
            GenerateFields("x", 4, **p), [1, 2], manifest=text_gen.manifest, max_tokens_limit=16
        )

    assert plan().batch_key() == plan().batch_key()
    assert plan(temperature=0.5).batch_key() != plan().batch_key()
    assert plan(seed=3).batch_key() is None and plan(repetition_penalty=1.2).batch_key() is None


def test_plan_all_tokenizes_once_and_keeps_refusals_apart(text_gen):
    calls = []

    def tokenize(texts):
        calls.append(list(texts))
        return [text_gen.tokenizer.encode(t, add_bos=True) for t in texts]

    requests = [(inputs(), None), (inputs(max_tokens=col(0, np.int32)), None),
                (inputs(text_input=col("Hello")), '{"bogus": 2}'), (inputs(text_input=col("Hello")), None)]  # fmt: skip
    out = plan_all(requests, tokenize, manifest=text_gen.manifest, max_tokens_limit=64)
    assert calls == [["Привет", "Hello"]]
    assert [type(o).__name__ for o in out] == ["Plan", "RequestError", "RequestError", "Plan"]
    assert out[3].prompt_ids == text_gen.tokenizer.encode("Hello", add_bos=True)
    assert plan_all([(inputs(max_tokens=None), None)], tokenize, manifest=text_gen.manifest,
                    max_tokens_limit=64)[0].param == "max_tokens"  # fmt: skip
    assert len(calls) == 1  # nothing valid: the tokenizer is not called


CHAT = '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Привет"}]'


def test_messages_instead_of_a_prompt():
    f = read_fields(inputs(text_input=None, messages=col(CHAT)))
    assert f.text == "" and f.prompt_input == "messages"
    assert f.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Привет"}]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"messages": col(CHAT)}, "^text_input: send exactly one of text_input"),
    ({"text_input": None}, "^text_input: send exactly one of text_input"),
    ({"text_input": None, "messages": col("[{oops")}, "^messages: not JSON"),
    ({"text_input": None, "messages": col('{"role": "user"}')}, "^messages: expected a list"),
    ({"text_input": None, "messages": col('[{"role": "bot", "content": "x"}]')}, r"^messages\[0\]\.role: 'bot'"),
    ({"text_input": None, "messages": col('[{"role": "user"}]')}, r"^messages\[0\]\.content: required"),
])  # fmt: skip
def test_bad_messages_name_the_field(overrides, message):
    with pytest.raises(RequestError, match=message):
        read_fields(inputs(**overrides))


def test_plan_all_renders_chats_apart_from_prompts(text_gen):
    calls, chats = [], []

    def tokenize(texts):
        calls.append(list(texts))
        return [text_gen.tokenizer.encode_prompt(t) for t in texts]

    def tokenize_chat(messages):
        chats.append(messages)
        return [5, 6, 7]

    requests = [(inputs(), None), (inputs(text_input=None, messages=col(CHAT)), None)]
    out = plan_all(
        requests, tokenize, tokenize_chat=tokenize_chat, manifest=text_gen.manifest, max_tokens_limit=64
    )
    assert calls == [["Привет"]] and len(chats) == 1 and out[1].prompt_ids == [5, 6, 7]
    assert out[0].prompt_ids == text_gen.tokenizer.encode_prompt("Привет")
    with pytest.raises(RequestError, match="^messages: .* leave no room"):
        plan_request(read_fields(inputs(text_input=None, messages=col(CHAT))), [1] * 4096, manifest=text_gen.manifest,
                     max_tokens_limit=64)  # fmt: skip
    # no chat function, or a tokenizer without a template: that request alone is refused, naming messages
    for chat in (None, text_gen.encode_chat):
        out = plan_all(
            requests, tokenize, tokenize_chat=chat, manifest=text_gen.manifest, max_tokens_limit=64
        )
        assert type(out[0]).__name__ == "Plan" and out[1].param == "messages"
    assert "no chat template" in str(out[1])


def test_plan_carries_the_new_inputs_to_the_runtime(text_gen):
    m, tok = text_gen.manifest, text_gen.tokenizer
    vocab = m.architecture.vocab_size
    f = read_fields(inputs(frequency_penalty=col(0.5, np.float32), presence_penalty=col(-0.25, np.float32),
                           bad_words=np.array([[b"hello", "мир".encode()]], dtype=object), end_id=col(7, np.int32),
                           pad_id=col(5, np.int32), exclude_input_in_output=col(False, np.bool_),
                           return_num_input_tokens=col(True, np.bool_)))  # fmt: skip
    plan = plan_request(f, [1, 5, 6], manifest=m, max_tokens_limit=64, encode_words=tok.encode)
    assert plan.params["frequency_penalty"] == 0.5 and plan.params["presence_penalty"] == -0.25
    assert plan.params["bad_words"] == [tok.encode("hello"), tok.encode("мир")]
    assert (plan.params["eos_token_id"], plan.params["pad_token_id"]) == (7, 5)
    assert plan.reply == {"echo": "Привет", "num_input_tokens": 3, "num_output_tokens": False}
    assert plan.batch_key() is None  # a penalty over the generated tokens: the request runs alone
    for name, value in (("end_id", vocab), ("pad_id", vocab + 1)):
        bad = read_fields(inputs(**{name: col(value, np.int32)}))
        with pytest.raises(RequestError, match=f"^{name}: token id {value} is outside") as err:
            plan_request(bad, [1, 2], manifest=m, max_tokens_limit=64)
        assert err.value.param == name
    with pytest.raises(RequestError, match="^bad_words: this generate model has no tokenizer"):
        plan_request(read_fields(inputs(bad_words=np.array([[b"x"]], dtype=object))), [1], manifest=m,
                     max_tokens_limit=64)  # fmt: skip
