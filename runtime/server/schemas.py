"""Request bodies of the HTTP server: the seed's ``/api/v1/generate`` and OpenAI's ``/v1/completions``
and ``/v1/chat/completions``.

All forbid unknown fields (pydantic ``extra="forbid"``), so a misspelled parameter is a 4xx with its
name, never silently ignored, and all are strict: a bool, a string or a float where an integer belongs
(``"top_k": true``, ``"seed": "1"``, ``"max_tokens": 1.5``) is refused, not coerced. Ranges, finiteness
(NaN and inf), seeds and UTF-8 text are checked by ``radon.runtime.params``, the validation every
surface shares (``validate.py`` calls it).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from radon.errors import RadonError
from radon.runtime.params import check_text


def _check_keys(data: Any, where: str) -> None:
    """Every key of every object in ``data`` is valid UTF-8 text (no lone surrogate), so that no error
    message that names a key can carry one. Values are checked where they are used (``validate.py``)."""
    if isinstance(data, dict):
        for key, value in data.items():
            try:
                check_text(f"{where}: a key" if where else "a key", key)
            except RadonError as exc:  # pydantic's own error type, so its message is ours as it stands
                raise PydanticCustomError("text", "{message}", {"message": str(exc)}) from None
            _check_keys(value, f"{where}.{key}" if where else key)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            _check_keys(item, f"{where}[{i}]")


class _Body(BaseModel):
    """Unknown fields forbidden, strict types, keys checked before pydantic echoes them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _keys_are_text(cls, data: Any) -> Any:
        _check_keys(data, "")
        return data


class GenerateRequest(_Body):
    """The seed's API request (MIGRATION_GUIDE.md), plus DESIGN.md's min_p, seed, stop, max_new_tokens and ignore_eos."""

    prompt: str
    max_length: int | None = Field(
        None, description="a ceiling on prompt + new tokens, capped at the server's limit and the context"
    )
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


class CompletionRequest(_Body):
    """OpenAI's legacy completions request; fields RADON cannot honour are refused when set."""

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


class ChatCompletionRequest(_Body):
    """OpenAI's chat completions request; fields RADON cannot honour (tools, n > 1, logprobs, penalties,
    a JSON response format) are refused when set. ``messages`` is checked by ``radon.tokenizer.chat``
    (``check_messages``), so a bad message is refused with the same words on every surface."""

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
