"""Turn a request body into a generation plan, or a 4xx with a message naming the field.

Every value check is ``radon.runtime.params``'s (the one validation that the CLI, this server and
Triton share): types, ranges and finiteness of the sampling parameters, seeds, UTF-8 text (a lone
surrogate in a prompt, a stop string or a message is a 400 naming the field), stop strings, the token
budget against the model's context and the server's limit (``max_length`` a ceiling, capped, with the
cap reported in ``Plan.budget``) and what the artifact cannot honour (window, flash attention on a
non-fused lowering). Here: which field of which route maps to which parameter, the prompt (empty,
token ids out of the vocabulary, no tokenizer), the OpenAI fields RADON refuses, and for chat a
malformed conversation (``radon.tokenizer.chat.check_messages``, naming ``messages[i].role`` and so
on). Plain functions of the body and the generator, tested without HTTP.
"""

from __future__ import annotations

import re
from typing import Any

from radon.errors import RadonError
from radon.runtime.batching import Plan
from radon.runtime.generator import Generator
from radon.runtime.params import Budget, check_stop_strings, check_text, make_params, plan_budget
from radon.runtime.server.schemas import ChatCompletionRequest, CompletionRequest, GenerateRequest
from radon.tokenizer.chat import ChatError, check_messages


class RequestError(Exception):
    """A request the server refuses: HTTP ``status`` and a message that names ``param``."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")  # a JSON body can carry it
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


def _refuse(exc: RadonError) -> RequestError:
    """The runtime's ConfigError as a 400 whose ``param`` is the field its message starts with."""
    head = str(exc).split(":", 1)[0]
    return RequestError(str(exc), re.sub(r"\[.*$", "", head).split(".")[0] or None)


def _encode(gen: Generator, prompt: str | list[int], param: str = "prompt") -> list[int]:
    if isinstance(prompt, str):
        try:
            check_text(param, prompt)
        except RadonError as exc:
            raise _refuse(exc) from None
        if not prompt.strip():
            raise RequestError(f"{param}: the prompt is empty", param)
        if gen.tokenizer is None:
            raise RequestError(f"{param}: this artifact has no tokenizer; send token ids", param)
        return gen.tokenizer.encode_prompt(prompt)
    if not prompt:
        raise RequestError(f"{param}: the prompt is empty", param)
    if any(not 0 <= int(i) < gen.vocab_size for i in prompt):
        raise RequestError(f"{param}: token ids must be in [0, {gen.vocab_size})", param)
    return [int(i) for i in prompt]


def _budget(gen: Generator, n_prompt: int, limit: int, **kwargs: Any) -> Budget:
    """``plan_budget`` against the model's context and the server's limit, as a 400."""
    try:
        return plan_budget(n_prompt, gen.max_positions, limit=limit, **kwargs)
    except RadonError as exc:
        raise _refuse(exc) from None


def _check_params(gen: Generator, params: dict[str, Any]) -> None:
    """Types, ranges, finiteness and what the artifact cannot honour: ``radon.runtime.params``."""
    try:
        make_params(**params).check_artifact(gen.manifest)
    except RadonError as exc:
        raise _refuse(exc) from None


def _stops(value: Any) -> list[str]:
    try:
        return check_stop_strings("stop", value)
    except RadonError as exc:
        raise _refuse(exc) from None


def plan_generate(req: GenerateRequest, gen: Generator, limit: int) -> Plan:
    """``POST /api/v1/generate``: the seed's fields. ``max_length`` is a ceiling on prompt + new tokens,
    capped at the server's limit and the model's context (``Plan.budget`` says which applied)."""
    params = {
        "temperature": req.temperature, "top_k": req.top_k, "top_p": req.top_p, "min_p": req.min_p,
        "repetition_penalty": req.repetition_penalty, "seed": req.seed,
        "sliding_window_size": req.sliding_window_size, "use_flash_attention": req.use_flash_attention,
        "ignore_eos": req.ignore_eos,
    }  # fmt: skip
    _check_params(gen, params)
    stops = _stops(req.stop)
    ids = _encode(gen, req.prompt)
    budget = _budget(gen, len(ids), limit, max_new_tokens=req.max_new_tokens, max_length=req.max_length)
    return Plan(ids, budget.new_tokens, params, stops, budget=budget)


OPENAI_MAX_TOKENS = 16  # OpenAI's default max_tokens for completions
UNSUPPORTED = {  # OpenAI fields RADON cannot honour, with the value that means "off"
    "n": 1, "best_of": 1, "echo": False, "logprobs": None, "suffix": None,
}  # fmt: skip
CHAT_UNSUPPORTED = {
    "n": 1, "logprobs": False, "top_logprobs": None,
    "tools": None, "tool_choice": None, "parallel_tool_calls": None,
}  # fmt: skip


def _openai_common(req: CompletionRequest | ChatCompletionRequest, gen: Generator, names: set[str],
                   unsupported: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """What both OpenAI routes check: the model, the fields RADON refuses, stop strings and the sampling
    parameters (OpenAI's defaults: temperature 1, top_p 1). Returns (params, stop strings)."""
    if req.model not in names:
        raise RequestError(
            f"model: {req.model!r} is not served here (served: {', '.join(sorted(names))})", "model", 404
        )
    for name, off in unsupported.items():
        value = getattr(req, name)
        if value is not None and value != off:
            raise RequestError(f"{name}: RADON's server does not support {name}={value!r}", name)
    if req.user is not None:
        try:
            check_text("user", req.user)
        except RadonError as exc:
            raise _refuse(exc) from None
    if req.logit_bias:
        raise RequestError("logit_bias: RADON's server does not support logit_bias", "logit_bias")
    if req.stream_options and set(req.stream_options) - {"include_usage"}:
        raise RequestError("stream_options: only include_usage is supported", "stream_options")
    stops = _stops(req.stop)
    params = {
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "top_p": 1.0 if req.top_p is None else req.top_p, "top_k": req.top_k or 0, "min_p": req.min_p or 0.0,
        "repetition_penalty": 1.0 if req.repetition_penalty is None else req.repetition_penalty,
        "frequency_penalty": req.frequency_penalty or 0.0, "presence_penalty": req.presence_penalty or 0.0,
        "seed": req.seed, "ignore_eos": bool(req.ignore_eos),
    }  # fmt: skip
    _check_params(gen, params)
    return params, stops


def plan_completions(req: CompletionRequest, gen: Generator, limit: int, names: set[str]) -> list[Plan]:
    """``POST /v1/completions``: one plan per prompt (a list of strings is several prompts)."""
    params, stops = _openai_common(req, gen, names, UNSUPPORTED)
    prompts: list[str | list[int]]
    if isinstance(req.prompt, str) or (req.prompt and isinstance(req.prompt[0], int)):
        prompts = [req.prompt]
    else:
        prompts = list(req.prompt)
    if not prompts:
        raise RequestError("prompt: the prompt is empty", "prompt")
    new = OPENAI_MAX_TOKENS if req.max_tokens is None else req.max_tokens
    plans = []
    for prompt in prompts:
        ids = _encode(gen, prompt)
        budget = _budget(gen, len(ids), limit, max_new_tokens=new, new_name="max_tokens")
        plans.append(Plan(ids, budget.new_tokens, params, stops, budget=budget))
    return plans


def plan_chat(req: ChatCompletionRequest, gen: Generator, limit: int, names: set[str]) -> Plan:
    """``POST /v1/chat/completions``: the conversation through the model's chat template
    (``Generator.encode_chat``); without ``max_completion_tokens`` / ``max_tokens`` the reply may fill
    what the server's limit and the context leave."""
    params, stops = _openai_common(req, gen, names, CHAT_UNSUPPORTED)
    if req.response_format not in (None, {"type": "text"}):
        raise RequestError(f"response_format: only {{'type': 'text'}} is supported, got {req.response_format!r}",
                           "response_format")  # fmt: skip
    try:
        messages = check_messages(req.messages)
        for i, message in enumerate(messages):
            for key, text in message.items():
                check_text(f"messages[{i}].{key}", text)
        if gen.tokenizer is None:
            raise RequestError("messages: this artifact has no tokenizer/ and so no chat template; send token "
                               "ids to /v1/completions", "messages")  # fmt: skip
        ids = gen.encode_chat(messages)
    except ChatError as exc:
        raise RequestError(str(exc), exc.param) from None
    except RadonError as exc:
        raise RequestError(str(exc), "messages") from None
    if req.max_completion_tokens is not None:
        new, param = req.max_completion_tokens, "max_completion_tokens"
    else:
        new, param = req.max_tokens, "max_tokens"
    budget = _budget(
        gen, len(ids), limit, max_new_tokens=new, new_name=param, default=limit, prompt_name="prompt"
    )
    return Plan(ids, budget.new_tokens, params, stops, budget=budget)
