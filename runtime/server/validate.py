"""Turn a request body into a generation plan, or a 4xx with a message naming the field.

Checked here, before anything is queued: an empty prompt, a prompt that fills the context, max tokens
<= 0 or over the server's limit, a prompt plus max tokens beyond ``max_position_embeddings``,
temperature < 0, top_p outside (0, 1], and the parameters the artifact cannot honour (the runtime's
own checks: window, flash attention, top_k/min_p/repetition_penalty ranges); for chat, a malformed
conversation (``radon.tokenizer.chat.check_messages``, naming ``messages[i].role`` and so on) and a
tokenizer without a chat template. The checks are plain functions of the body and the generator,
tested without HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from radon.errors import RadonError
from radon.runtime.generator import Generator
from radon.runtime.params import DEFAULT_MAX_NEW_TOKENS, make_params
from radon.runtime.server.schemas import ChatCompletionRequest, CompletionRequest, GenerateRequest
from radon.tokenizer.chat import ChatError, check_messages

MAX_STOP_STRINGS = 4  # OpenAI's limit


class RequestError(Exception):
    """A request the server refuses: HTTP ``status`` and a message that names ``param``."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


@dataclass
class Plan:
    """What the scheduler needs for one prompt."""

    prompt_ids: list[int]
    max_new_tokens: int
    params: dict[str, Any]
    stop_strings: list[str]


def _encode(gen: Generator, prompt: str | list[int], param: str = "prompt") -> list[int]:
    if isinstance(prompt, str):
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


def _check_budget(gen: Generator, n_prompt: int, new: int, limit: int, param: str) -> None:
    context = gen.max_positions
    if n_prompt >= context:
        raise RequestError(
            f"prompt: {n_prompt} tokens leave no room in the model's context of {context} tokens", "prompt"
        )
    if new <= 0:
        raise RequestError(f"{param}: must be > 0, got {new}", param)
    if new > limit:
        raise RequestError(f"{param}: {new} is over this server's limit of {limit} new tokens", param)
    if n_prompt + new > context:
        raise RequestError(
            f"{param}: the prompt ({n_prompt} tokens) + {new} new tokens exceed the model's context "
            f"of {context} tokens", param,
        )  # fmt: skip


def _check_params(gen: Generator, params: dict[str, Any]) -> None:
    t, p = params.get("temperature", 0.0), params.get("top_p", 1.0)
    if t is not None and t < 0:
        raise RequestError(f"temperature: must be >= 0, got {t}", "temperature")
    if p is not None and not 0 < p <= 1:
        raise RequestError(f"top_p: must be in (0, 1], got {p}", "top_p")
    try:
        make_params(**params).check_artifact(gen.manifest)
    except RadonError as exc:
        name = str(exc).split(":", 1)[0]
        raise RequestError(str(exc), name if name in params else None) from None


def plan_generate(req: GenerateRequest, gen: Generator, limit: int) -> Plan:
    """``POST /api/v1/generate``: the seed's fields (max_length = prompt + new tokens)."""
    ids = _encode(gen, req.prompt)
    if req.max_new_tokens is not None:
        new, param = req.max_new_tokens, "max_new_tokens"
    elif req.max_length is not None:
        new, param = req.max_length - len(ids), "max_length"
        if new <= 0:
            raise RequestError(
                f"max_length: {req.max_length} leaves no room after the {len(ids)}-token prompt", param
            )
    else:
        new, param = min(DEFAULT_MAX_NEW_TOKENS, limit), "max_new_tokens"
    _check_budget(gen, len(ids), new, limit, param)
    params = {
        "temperature": req.temperature, "top_k": req.top_k, "top_p": req.top_p, "min_p": req.min_p,
        "repetition_penalty": req.repetition_penalty, "seed": req.seed,
        "sliding_window_size": req.sliding_window_size, "use_flash_attention": req.use_flash_attention,
        "ignore_eos": req.ignore_eos,
    }  # fmt: skip
    _check_params(gen, params)
    if len(req.stop) > MAX_STOP_STRINGS or any(not s for s in req.stop):
        raise RequestError(f"stop: up to {MAX_STOP_STRINGS} non-empty strings", "stop")
    return Plan(ids, new, params, list(req.stop))


UNSUPPORTED = {  # OpenAI fields RADON cannot honour, with the value that means "off"
    "n": 1, "best_of": 1, "echo": False, "logprobs": None, "suffix": None,
    "presence_penalty": 0.0, "frequency_penalty": 0.0,
}  # fmt: skip
CHAT_UNSUPPORTED = {
    "n": 1, "logprobs": False, "top_logprobs": None, "presence_penalty": 0.0, "frequency_penalty": 0.0,
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
    if req.logit_bias:
        raise RequestError("logit_bias: RADON's server does not support logit_bias", "logit_bias")
    if req.stream_options and set(req.stream_options) - {"include_usage"}:
        raise RequestError("stream_options: only include_usage is supported", "stream_options")
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stops) > MAX_STOP_STRINGS or any(not s for s in stops):
        raise RequestError(f"stop: up to {MAX_STOP_STRINGS} non-empty strings", "stop")
    params = {
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "top_p": 1.0 if req.top_p is None else req.top_p, "top_k": req.top_k or 0, "min_p": req.min_p or 0.0,
        "repetition_penalty": 1.0 if req.repetition_penalty is None else req.repetition_penalty,
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
    new = 16 if req.max_tokens is None else req.max_tokens
    plans = []
    for prompt in prompts:
        ids = _encode(gen, prompt)
        _check_budget(gen, len(ids), new, limit, "max_tokens")
        plans.append(Plan(ids, new, params, stops))
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
        if gen.tokenizer is None:
            raise RequestError("messages: this artifact has no tokenizer/ and so no chat template; send token "
                               "ids to /v1/completions", "messages")  # fmt: skip
        ids = gen.encode_chat(messages)
    except ChatError as exc:
        raise RequestError(str(exc), exc.param) from None
    if req.max_completion_tokens is not None:
        new, param = req.max_completion_tokens, "max_completion_tokens"
    elif req.max_tokens is not None:
        new, param = req.max_tokens, "max_tokens"
    else:
        new, param = max(1, min(limit, gen.max_positions - len(ids))), "max_completion_tokens"
    _check_budget(gen, len(ids), new, limit, param)
    return Plan(ids, new, params, stops)
