"""Requests to the Triton generate model: TensorRT-LLM's ensemble names, checked before anything runs.

The inputs are the names and dtypes of TensorRT-LLM's Triton ensemble
(``triton_backend/all_models/inflight_batcher_llm/ensemble/config.pbtxt`` in TensorRT-LLM), which is
also what Triton's OpenAI-compatible frontend sends to any model that is not vLLM
(``python/openai/openai_frontend/engine/utils/triton.py``, ``_create_trtllm_generate_request``:
``text_input`` [[prompt]], ``stream``, ``max_tokens`` INT32, ``stop_words`` [[...]], ``top_p``,
``frequency_penalty``, ``presence_penalty``, ``temperature`` FP32, ``seed`` UINT64,
``exclude_input_in_output``, ``return_num_input_tokens`` and ``return_num_output_tokens`` BOOL, and it
reads ``num_input_tokens`` / ``num_output_tokens`` INT32 or UINT32 back, summing ``num_output_tokens``
over a stream's responses). ``GENERATE_INPUTS`` lists every input with its meaning; each is honoured,
or refused by name when its value cannot be (never ignored). RADON adds ``messages`` (BYTES: a chat as
a JSON list of ``{"role", "content"}``, sent instead of ``text_input`` and rendered by the model's chat
template, ``radon.tokenizer.chat``) and the output ``generated_tokens`` (INT32: how many tokens the
request had when its response left, so a client can tell a stream from a buffered answer without a
clock). Triton's generate extension (``/v2/models/<m>/generate``) maps a JSON body's keys onto these
inputs; a key that is not an input arrives as a request *parameter*, and is refused here by name.

A request is checked in two steps, so that a batch of prompts is tokenized in one call in between:

- ``read_fields(inputs, parameters)``: one value per input, the ranges, unknown parameters;
- ``plan_request(fields, prompt_ids, ...)``: the token budget against the context and the server's
  limit, and what the artifact cannot honour.

Every value goes through ``radon.runtime.params``, the validation module that the CLI and
``radon serve`` use too (integers within range, finite floats, seeds in [0, 2**63), UTF-8 text, stop
strings, ``plan_budget``), so Triton refuses a value with the same words as the other surfaces, under
its own input names. The dtypes stay TensorRT-LLM's (``max_tokens`` INT32, as Triton's OpenAI
frontend sends it): a value wider than the declared dtype is wrapped by Triton's HTTP parser before
any model sees it (docs/triton.md), so what can be refused here is what arrives.

Every refusal is a ``RequestError`` whose message starts with the input's name; the generate model
returns it as ``TritonError(INVALID_ARG)``, which Triton sends as HTTP 400 or a gRPC error. Torch-free,
and free of Triton: plain numpy arrays in, so the checks are tested outside the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radon.errors import RadonError
from radon.runtime.batching import Plan
from radon.runtime.contract import Manifest
from radon.runtime.params import (
    MAX_STOP_STRINGS,
    PENALTY_LIMIT,
    check_bool,
    check_float,
    check_int,
    check_seed,
    check_stop_strings,
    check_text,
    make_params,
    plan_budget,
)
from radon.tokenizer.chat import ChatError, check_messages

RESERVED_PREFIX = "triton_"  # request parameters Triton itself sets (e.g. triton_enable_empty_final_response)


@dataclass(frozen=True)
class FieldSpec:
    """One input or output of the generate model, as its config.pbtxt declares it (batch dim excluded)."""

    name: str
    data_type: str  # Triton's config type: TYPE_STRING, TYPE_INT32, TYPE_FP32, TYPE_BOOL, TYPE_UINT64
    dims: tuple[int, ...]
    optional: bool
    doc: str


GENERATE_INPUTS: tuple[FieldSpec, ...] = (
    FieldSpec("text_input", "TYPE_STRING", (1,), True, "the prompt, UTF-8 (required unless messages is sent)"),
    FieldSpec("max_tokens", "TYPE_INT32", (1,), False, "new tokens to generate, >= 1"),
    FieldSpec("stream", "TYPE_BOOL", (1,), True, "one response per token (default false: one response)"),
    FieldSpec("temperature", "TYPE_FP32", (1,), True, "0 = greedy (the default); > 0 samples"),
    FieldSpec("top_k", "TYPE_INT32", (1,), True, "keep the k most likely tokens; 0 = off"),
    FieldSpec("top_p", "TYPE_FP32", (1,), True, "nucleus sampling mass in (0, 1]; 1 = off"),
    FieldSpec("repetition_penalty", "TYPE_FP32", (1,), True, "> 0; 1 = off"),
    FieldSpec("stop_words", "TYPE_STRING", (-1,), True, "strings that end the text (cut before them)"),
    FieldSpec("seed", "TYPE_UINT64", (1,), True, "seed of the sampler (a request with a seed runs alone)"),
    FieldSpec("messages", "TYPE_STRING", (1,), True,
              'a chat instead of text_input: JSON [{"role": ..., "content": ...}], through the chat template'),
    FieldSpec("frequency_penalty", "TYPE_FP32", (1,), True,
              "OpenAI's, in [-2, 2]: minus count x penalty on each generated token's logit; 0 = off"),
    FieldSpec("presence_penalty", "TYPE_FP32", (1,), True,
              "OpenAI's, in [-2, 2]: minus penalty on every token generated at least once; 0 = off"),
    FieldSpec("bad_words", "TYPE_STRING", (-1,), True,
              "words never generated: each word's token ids (encoded alone) never appear in that order"),
    FieldSpec("end_id", "TYPE_INT32", (1,), True, "the id that ends the text, instead of the model's eos"),
    FieldSpec("pad_id", "TYPE_INT32", (1,), True, "the id that pads the batch (masked; the text does not change)"),
    FieldSpec("exclude_input_in_output", "TYPE_BOOL", (1,), True,
              "default true; false puts the prompt before the generated text (OpenAI's echo)"),
    FieldSpec("return_num_input_tokens", "TYPE_BOOL", (1,), True, "add num_input_tokens to every response"),
    FieldSpec("return_num_output_tokens", "TYPE_BOOL", (1,), True, "add num_output_tokens to every response"),
)  # fmt: skip
GENERATE_OUTPUT = FieldSpec("text_output", "TYPE_STRING", (1,), False, "the text (one piece per response)")
GENERATED_TOKENS = FieldSpec("generated_tokens", "TYPE_INT32", (1,), False,
                             "tokens the decode loop had generated for this request when the response was sent")  # fmt: skip
NUM_INPUT_TOKENS = FieldSpec("num_input_tokens", "TYPE_INT32", (1,), False,
                             "the prompt's tokens (with return_num_input_tokens)")  # fmt: skip
NUM_OUTPUT_TOKENS = FieldSpec("num_output_tokens", "TYPE_INT32", (1,), False,
                              "tokens this response carries: 1 per streamed token, all of them otherwise "
                              "(with return_num_output_tokens; a stream's responses sum to the total)")  # fmt: skip
GENERATE_OUTPUTS: tuple[FieldSpec, ...] = (
    GENERATE_OUTPUT,
    GENERATED_TOKENS,
    NUM_INPUT_TOKENS,
    NUM_OUTPUT_TOKENS,
)
INPUT_NAMES: tuple[str, ...] = tuple(f.name for f in GENERATE_INPUTS)
_KINDS = {"TYPE_STRING": "OSU", "TYPE_INT32": "iu", "TYPE_UINT64": "iu", "TYPE_FP32": "fiu", "TYPE_BOOL": "b"}
MAX_STOP_WORDS = MAX_STOP_STRINGS  # as radon serve (OpenAI's limit)
MAX_BAD_WORDS = 64  # each is matched against every row at every step


class RequestError(RadonError):
    """A request the generate model refuses; ``param`` names the input (None: the request as a whole)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class GenerateFields:
    """One request's inputs, read and range-checked (the prompt is not tokenized yet)."""

    text: str
    max_tokens: int
    stream: bool = False
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop_words: list[str] = field(default_factory=list)
    seed: int | None = None
    messages: list[dict[str, str]] | None = None  # a chat (checked); text is "" then
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    bad_words: list[str] = field(default_factory=list)  # words; their ids come with the plan
    end_id: int | None = None
    pad_id: int | None = None
    exclude_input_in_output: bool = True
    return_num_input_tokens: bool = False
    return_num_output_tokens: bool = False

    @property
    def prompt_input(self) -> str:
        """The input that carries the prompt: refusals about its length name it."""
        return "messages" if self.messages is not None else "text_input"

    def params(self, bad_words: list[list[int]] | None = None) -> dict[str, Any]:
        """The runtime's generation parameters (``radon.runtime.params`` names); ``bad_words`` are the
        words' token ids, once they are encoded."""
        params: dict[str, Any] = {
            "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty, "seed": self.seed,
            "frequency_penalty": self.frequency_penalty, "presence_penalty": self.presence_penalty,
        }  # fmt: skip
        if bad_words:
            params["bad_words"] = bad_words
        if self.end_id is not None:
            params["eos_token_id"] = self.end_id
        if self.pad_id is not None:
            params["pad_token_id"] = self.pad_id
        return params

    def reply(self, prompt_tokens: int) -> dict[str, Any]:
        """How the responses are shaped (``Plan.reply``): the echoed prompt, the counts asked for."""
        return {"echo": "" if self.exclude_input_in_output else self.text,
                "num_input_tokens": prompt_tokens if self.return_num_input_tokens else None,
                "num_output_tokens": self.return_num_output_tokens}  # fmt: skip


def _one(name: str, value: np.ndarray, spec: FieldSpec) -> Any:
    """The single value of a (1,) or (1, 1) input; a batch of several prompts in one request is refused."""
    arr = np.asarray(value)
    if arr.dtype.kind not in _KINDS[spec.data_type]:
        raise RequestError(f"{name}: expected {spec.data_type[5:]}, got {arr.dtype}", name)
    if arr.size != 1:
        raise RequestError(
            f"{name}: expected one value per request, got shape {list(arr.shape)} (send one request per prompt)",
            name,
        )
    value = arr.reshape(-1)[0]
    return value.item() if isinstance(value, np.generic) else value  # Python scalars for the checks


def _text(name: str, value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(f"{name}: not valid UTF-8 ({exc})", name) from None
    return str(value)


def parse_parameters(parameters: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """Triton's request parameters (a JSON string in the python backend) as a dict."""
    if parameters is None or parameters == "":
        return {}
    if isinstance(parameters, str):
        try:
            parameters = json.loads(parameters)
        except json.JSONDecodeError as exc:
            raise RequestError(f"parameters: not JSON ({exc})") from None
    if not isinstance(parameters, Mapping):
        raise RequestError("parameters: expected an object")
    return dict(parameters)


def read_fields(inputs: Mapping[str, np.ndarray | None],
                parameters: Mapping[str, Any] | str | None = None) -> GenerateFields:  # fmt: skip
    """Check one request's inputs (name -> numpy array, None when absent) and parameters.

    Refused, naming the input: a missing required input, a value of the wrong kind, more than one
    value per scalar input, neither or both of ``text_input`` and ``messages``, an empty ``text_input``,
    ``messages`` that are not JSON or not a valid chat (``check_messages``), ``max_tokens`` <= 0,
    ``temperature`` < 0, ``top_k`` < 0, ``top_p`` outside (0, 1], ``repetition_penalty`` <= 0, more than
    ``MAX_STOP_WORDS`` or empty stop words, and any request parameter that is not an input.
    """
    unknown = sorted(k for k in parse_parameters(parameters) if not k.startswith(RESERVED_PREFIX))
    unknown += sorted(k for k in inputs if k not in INPUT_NAMES)
    if unknown:
        raise RequestError(
            f"{unknown[0]}: not a parameter of the generate model (it takes {', '.join(INPUT_NAMES)})",
            unknown[0],
        )
    values: dict[str, Any] = {}
    for spec in GENERATE_INPUTS:
        value = inputs.get(spec.name)
        if value is None:
            if not spec.optional:
                raise RequestError(f"{spec.name}: required", spec.name)
            continue
        if spec.name in ("stop_words", "bad_words"):
            arr = np.asarray(value)
            if arr.size and arr.dtype.kind not in "OSU":
                raise RequestError(f"{spec.name}: expected strings, got {arr.dtype}", spec.name)
            values[spec.name] = [_text(spec.name, v) for v in arr.reshape(-1)]
        else:
            values[spec.name] = _one(spec.name, value, spec)
    if ("text_input" in values) == ("messages" in values):
        raise RequestError(
            "text_input: send exactly one of text_input (a prompt) and messages (a chat)", "text_input"
        )
    try:
        return _checked(values)
    except RadonError as exc:  # radon.runtime.params' ConfigError: the message starts with the input's name
        name = str(exc).split(":", 1)[0].split("[", 1)[0]
        raise RequestError(str(exc), name if name in INPUT_NAMES else None) from None


def _checked(values: dict[str, Any]) -> GenerateFields:
    """``GenerateFields`` from one value per input, each checked by ``radon.runtime.params``."""
    messages = None
    if "messages" in values:
        messages = _messages(_text("messages", values["messages"]))
        text = ""
    else:
        text = check_text("text_input", _text("text_input", values["text_input"]))
        if not text.strip():
            raise RequestError("text_input: the prompt is empty", "text_input")
    stream = check_bool("stream", values.get("stream", False))
    fields = GenerateFields(
        text=text,
        max_tokens=_int(check_int("max_tokens", values["max_tokens"], low=1)),
        stream=bool(stream),
        temperature=_float(check_float("temperature", values.get("temperature", 0.0), low=0)),
        top_k=_int(check_int("top_k", values.get("top_k", 0), low=0)),
        top_p=_float(check_float("top_p", values.get("top_p", 1.0), low=0, high=1, low_open=True)),
        repetition_penalty=_float(
            check_float("repetition_penalty", values.get("repetition_penalty", 1.0), low=0, low_open=True)
        ),
        stop_words=check_stop_strings("stop_words", values.get("stop_words", []), max_count=MAX_STOP_WORDS),
        seed=check_seed(values.get("seed")),
        messages=messages,
        frequency_penalty=_penalty("frequency_penalty", values),
        presence_penalty=_penalty("presence_penalty", values),
        bad_words=check_stop_strings("bad_words", values.get("bad_words", []), max_count=MAX_BAD_WORDS),
        end_id=check_int("end_id", values.get("end_id"), low=0, optional=True),
        pad_id=check_int("pad_id", values.get("pad_id"), low=0, optional=True),
        exclude_input_in_output=bool(check_bool("exclude_input_in_output", values.get("exclude_input_in_output", True))),
        return_num_input_tokens=bool(check_bool("return_num_input_tokens", values.get("return_num_input_tokens", False))),
        return_num_output_tokens=bool(check_bool("return_num_output_tokens", values.get("return_num_output_tokens", False))),
    )  # fmt: skip
    if messages is not None and not fields.exclude_input_in_output:
        raise RequestError("exclude_input_in_output: false echoes text_input; a chat (messages) has no prompt "
                           "text to echo", "exclude_input_in_output")  # fmt: skip
    make_params(max_new_tokens=fields.max_tokens, **fields.params())  # the whole set, as the runtime takes it
    return fields


def _penalty(name: str, values: dict[str, Any]) -> float:
    return _float(check_float(name, values.get(name, 0.0), low=-PENALTY_LIMIT, high=PENALTY_LIMIT))


def _int(value: int | None) -> int:
    assert value is not None  # a required value: the check returned it
    return value


def _float(value: float | None) -> float:
    assert value is not None
    return value


def _messages(raw: str) -> list[dict[str, str]]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestError(f"messages: not JSON ({exc})", "messages") from None
    try:
        messages = check_messages(value)
        for i, message in enumerate(messages):  # JSON escapes can carry lone surrogates ("\\ud800")
            for key, text in message.items():
                check_text(f"messages[{i}].{key}", text)
        return messages
    except (ChatError, RadonError) as exc:
        raise RequestError(str(exc), "messages") from None


def plan_request(fields: GenerateFields, prompt_ids: Sequence[int], *, manifest: Manifest,
                 max_tokens_limit: int, max_prompt_tokens: int | None = None,
                 encode_words: Callable[[str], list[int]] | None = None) -> Plan:  # fmt: skip
    """The plan for one request once its prompt is tokenized: the budget against the context
    (``max_position_embeddings``), the server's ``max_tokens_limit`` and, for engines whose prefill
    profile is bounded, ``max_prompt_tokens``; ``bad_words`` encoded by ``encode_words`` (the
    tokenizer's ``encode``, no special tokens: TensorRT-LLM encodes each word alone too)."""
    ids = [int(i) for i in prompt_ids]
    name = fields.prompt_input
    context = manifest.architecture.max_position_embeddings
    if not ids:
        raise RequestError(f"{name}: the prompt is empty", name)
    if max_prompt_tokens is not None and len(ids) > max_prompt_tokens:
        raise RequestError(
            f"{name}: {len(ids)} tokens is over this decoder's longest prompt ({max_prompt_tokens} "
            "tokens, its prefill profile)", name,
        )  # fmt: skip
    try:
        plan_budget(len(ids), context, max_new_tokens=fields.max_tokens, limit=max_tokens_limit,
                    new_name="max_tokens", prompt_name=name)  # fmt: skip
    except RadonError as exc:
        param = str(exc).split(":", 1)[0]
        raise RequestError(str(exc), param if param in INPUT_NAMES else None) from None
    bad_ids = _bad_word_ids(fields.bad_words, encode_words)
    params = fields.params(bad_ids)
    try:
        make_params(**params).check_artifact(manifest)
    except RadonError as exc:  # the message names the runtime's parameter: say the input's name
        message = str(exc)
        for runtime_name, name in (("eos_token_id", "end_id"), ("pad_token_id", "pad_id")):
            message = message.replace(f"{runtime_name}:", f"{name}:", 1)
        if message.startswith("bad_words["):
            message = f"bad_words: {message}"
        name = message.split(":", 1)[0]
        raise RequestError(message, name if name in INPUT_NAMES else None) from None
    return Plan(
        ids, fields.max_tokens, params, list(fields.stop_words), fields.stream, reply=fields.reply(len(ids))
    )


def _bad_word_ids(words: list[str], encode: Callable[[str], list[int]] | None) -> list[list[int]]:
    if words and encode is None:
        raise RequestError("bad_words: this generate model has no tokenizer to encode them", "bad_words")
    out = []
    for i, word in enumerate(words):
        ids = [int(t) for t in encode(word)] if encode is not None else []
        if not ids:
            raise RequestError(f"bad_words[{i}]: {word!r} encodes to no tokens", "bad_words")
        out.append(ids)
    return out


def plan_all(
    inputs: Sequence[tuple[Mapping[str, np.ndarray | None], Mapping[str, Any] | str | None]],
    tokenize: Callable[[list[str]], list[list[int]]],
    *,
    tokenize_chat: Callable[[list[dict[str, str]]], list[int]] | None = None,
    **limits: Any,
) -> list[Plan | RequestError]:
    """Plans for a list of requests (inputs, parameters), tokenizing every valid prompt in one
    ``tokenize`` call and every chat with ``tokenize_chat`` (``Generator.encode_chat``: the model's chat
    template, no special tokens added); each entry is a plan or the RequestError that refuses that
    request alone. ``limits`` are ``plan_request``'s keywords."""
    fields: list[GenerateFields | RequestError] = []
    for request_inputs, parameters in inputs:
        try:
            fields.append(read_fields(request_inputs, parameters))
        except RequestError as exc:
            fields.append(exc)
    texts = [f.text for f in fields if isinstance(f, GenerateFields) and f.messages is None]
    ids = iter(tokenize(texts) if texts else [])
    out: list[Plan | RequestError] = []
    for f in fields:
        if isinstance(f, RequestError):
            out.append(f)
            continue
        try:
            prompt = _chat_ids(f, tokenize_chat) if f.messages is not None else next(ids)
            out.append(plan_request(f, prompt, **limits))
        except RequestError as exc:
            out.append(exc)
    return out


def _chat_ids(
    fields: GenerateFields, tokenize_chat: Callable[[list[dict[str, str]]], list[int]] | None
) -> list[int]:
    if tokenize_chat is None:
        raise RequestError("messages: this generate model takes prompts only (no chat template)", "messages")
    try:
        return tokenize_chat(fields.messages or [])
    except ChatError as exc:  # e.g. a tokenizer without a chat template: the message names the input
        message = str(exc) if str(exc).startswith("messages") else f"messages: {exc}"
        raise RequestError(message, "messages") from None


def response_outputs(
    text: str, generated: int, counts: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """One response's outputs as a batch of one: ``text_output`` (1, 1) UTF-8 bytes, ``generated_tokens``
    (1, 1) int32 (the request's tokens so far) and, when asked, ``num_input_tokens`` and
    ``num_output_tokens`` (1, 1) int32 from ``counts``."""
    out = {
        GENERATE_OUTPUT.name: np.array([[text.encode("utf-8")]], dtype=object),
        GENERATED_TOKENS.name: np.array([[generated]], np.int32),
    }
    for name, value in (counts or {}).items():
        out[name] = np.array([[value]], np.int32)
    return out
