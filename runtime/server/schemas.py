"""Request bodies of the HTTP server: the seed's ``/api/v1/generate`` and OpenAI's ``/v1/completions``
and ``/v1/chat/completions``.

All forbid unknown fields (pydantic ``extra="forbid"``), so a misspelled parameter is a 4xx with its
name, never silently ignored. Range checks that need the model (context, server limit) live in
``app.py``; the rest is the runtime's own validation (``GenerationParams.validate``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GenerateRequest(BaseModel):
    """The seed's API request (MIGRATION_GUIDE.md), plus DESIGN.md's min_p, seed, stop, max_new_tokens and ignore_eos."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    max_length: int | None = Field(None, description="prompt + new tokens, in tokens")
    max_new_tokens: int | None = Field(None, description="new tokens; wins over max_length")
    temperature: float = Field(0.0, description="0 = greedy")
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = Field(default_factory=list, description="stop strings (the text is cut before them)")
    sliding_window_size: int | None = None
    use_flash_attention: bool | None = None
    ignore_eos: bool = False
    stream: bool = False


class CompletionRequest(BaseModel):
    """OpenAI's legacy completions request; fields RADON cannot honour are refused when set."""

    model_config = ConfigDict(extra="forbid")

    model: str
    prompt: str | list[str] | list[int]
    max_tokens: int | None = 16
    temperature: float | None = 1.0
    top_p: float | None = 1.0
    n: int | None = 1
    stream: bool | None = False
    stream_options: dict | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    echo: bool | None = False
    logprobs: int | None = None
    best_of: int | None = None
    suffix: str | None = None
    presence_penalty: float | None = 0.0
    frequency_penalty: float | None = 0.0
    logit_bias: dict[str, float] | None = None
    # not in OpenAI's schema; clients send them with extra_body (vLLM does the same)
    top_k: int | None = 0
    min_p: float | None = 0.0
    repetition_penalty: float | None = 1.0
    ignore_eos: bool | None = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completions request; fields RADON cannot honour (tools, n > 1, logprobs, penalties,
    a JSON response format) are refused when set. ``messages`` is checked by ``radon.tokenizer.chat``
    (``check_messages``), so a bad message is refused with the same words on every surface."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: Any = Field(description="[{'role': 'system'|'user'|'assistant', 'content': str}, ...]")
    max_completion_tokens: int | None = Field(None, description="new tokens; wins over max_tokens")
    max_tokens: int | None = Field(None, description="new tokens (OpenAI's older name)")
    temperature: float | None = 1.0
    top_p: float | None = 1.0
    n: int | None = 1
    stream: bool | None = False
    stream_options: dict | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = 0.0
    frequency_penalty: float | None = 0.0
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = None
    response_format: dict | None = None
    tools: list | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    # not in OpenAI's schema; clients send them with extra_body (vLLM does the same)
    top_k: int | None = 0
    min_p: float | None = 0.0
    repetition_penalty: float | None = 1.0
    ignore_eos: bool | None = False
