"""The generation parameters and their checks: the one place every surface validates a request.

DESIGN.md's names (the seed's ``max_length``, ``max_new_tokens``, ``temperature``, ``top_k``,
``top_p``, ``repetition_penalty``, ``use_cache``, ``sliding_window_size``, ``use_flash_attention``,
plus ``min_p``, ``seed`` and ``stop``), and OpenAI's ``frequency_penalty`` and ``presence_penalty``
and TensorRT-LLM's ``bad_words`` (token-id sequences never generated), which Triton's OpenAI frontend
and TensorRT-LLM's ensemble send. The PyTorch reference (``radon.generation``), the edge runtime
(``radon.runtime.generator``), ``radon generate``, ``radon serve`` (seed API and OpenAI routes) and the
Triton generate model all build their parameters here, so a value is accepted or refused with the same
words everywhere. Torch-free (the torch-free runtime install has it).

API for callers (each raises ``ConfigError`` whose message starts with the parameter's name):

- ``make_params(**kwargs) -> GenerationParams``: every name, type, range and finiteness checked; an
  unknown name is refused by name. ``GenerationParams.validate()`` re-checks a directly built one.
- ``check_float`` / ``check_int`` / ``check_bool`` / ``check_seed``: one value, for front ends that
  read their own field names (Triton's ``max_tokens``, OpenAI's ``max_completion_tokens``). Floats
  must be finite (NaN and inf are refused), ints must not be booleans and must fit in int64.
- ``check_text(name, value)``: a string that is valid UTF-8 (a lone surrogate such as ``"\\ud800"``,
  or a CLI argument with undecodable bytes, is refused naming ``name``);
  ``check_stop_strings(name, value)``: up to ``MAX_STOP_STRINGS`` non-empty such strings.
- ``plan_budget(prompt_len, context, ...) -> Budget``: how many tokens to generate. ``max_new_tokens``
  is a request (refused past the server's limit or the context); ``max_length`` is a *ceiling* on the
  whole sequence, capped at what the server and the model allow, and ``Budget.capped_by`` says which
  cap applied (the seed's ``"max_length": 32000`` is answered, not refused).
- ``GenerationParams.check_artifact(manifest)``: what an artifact cannot honour: a ``sliding_window_size``
  other than the manifest's window (the graph bakes it in), and ``use_flash_attention=True`` on an
  artifact whose attention is not a fused kernel (``portable``); the ``ort`` lowering's
  GroupQueryAttention *is* the fused kernel, so it honours it.

Sampling: greedy when ``temperature`` is 0 (the default) or ``do_sample`` is False; ``do_sample=True``
without a temperature samples at 1.0, as transformers does.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from radon.errors import ConfigError
from radon.runtime.contract import Manifest

DEFAULT_MAX_NEW_TOKENS = 64  # without max_new_tokens or max_length
MAX_STOP_STRINGS = 4  # OpenAI's limit, for stop strings on every surface
SEED_LIMIT = 2**63  # seeds are in [0, 2**63): int64 for torch, numpy and Triton alike
INT_LIMIT = 2**63  # every integer parameter fits in int64
FUSED_LOWERINGS = ("ort", "trt-plugin")  # attention lowerings that are one fused kernel
PENALTY_LIMIT = 2.0  # OpenAI's range for frequency_penalty and presence_penalty: [-2, 2]


def _is_numpy_bool(value: object) -> bool:
    """numpy's bool scalar without importing numpy: ``numpy.bool_`` (1.x) is ``numpy.bool`` in 2.x."""
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool")


def check_bool(name: str, value: object, *, optional: bool = False) -> bool | None:
    """``value`` as a bool: True/False only (not 0/1, not a string); None when ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or _is_numpy_bool(value):
        return bool(value)
    raise ConfigError(f"{name}: expected true or false, got {_shown(value)}")


def check_int(name: str, value: object, *, low: int | None = None, high: int | None = None,
              optional: bool = False) -> int | None:  # fmt: skip
    """``value`` as an int in [low, high] (inclusive), within int64; not a bool, not a float."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name}: expected an integer, got {_shown(value)}")
    v = int(value)
    if low is not None and v < low:
        raise ConfigError(f"{name}: must be {'> 0' if low == 1 else f'>= {low}'}, got {v}")
    top = INT_LIMIT - 1 if high is None else high
    if v > top:
        raise ConfigError(f"{name}: must be <= {top}, got {v}")
    return v


def check_float(name: str, value: object, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False, optional: bool = False) -> float | None:  # fmt: skip
    """``value`` as a finite float in the range; ints are accepted, bools and strings are not."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name}: expected a number, got {_shown(value)}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"{name}: must be a finite number, got {v}")
    below = low is not None and (v <= low if low_open else v < low)
    above = high is not None and (v >= high if high_open else v > high)
    if below or above:
        if low is not None and high is not None:
            rng = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            rng = f"{'>' if low_open else '>='} {low:g}"
        else:
            rng = f"{'<' if high_open else '<='} {high:g}"
        raise ConfigError(f"{name}: must be {rng}, got {v:g}")
    return v


def check_seed(value: object, name: str = "seed") -> int | None:
    """A sampling seed in [0, 2**63), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name}: expected an integer, got {_shown(value)}")
    if not 0 <= int(value) < SEED_LIMIT:
        raise ConfigError(f"{name}: must be in [0, 2**63), got {int(value)}")
    return int(value)


def check_text(name: str, value: object) -> str:
    """``value`` as a str that encodes to UTF-8. A lone surrogate (JSON ``"\\ud800"``, or bytes that
    were not UTF-8 in a command-line argument, which Python keeps as ``\\udcXX``) is refused naming
    ``name`` and the position; the message never contains the bad character itself."""
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected a string, got {_shown(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        ch = ord(value[exc.start])
        what = f"byte 0x{ch - 0xDC00:02x}" if 0xDC80 <= ch <= 0xDCFF else f"lone surrogate U+{ch:04X}"
        raise ConfigError(f"{name}: not valid UTF-8 text ({what} at character {exc.start})") from None
    return value


def check_stop_strings(name: str, value: object, *, max_count: int = MAX_STOP_STRINGS) -> list[str]:
    """Stop strings: None, one string, or a list of up to ``max_count`` non-empty valid strings."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"{name}: expected a string or a list of strings, got {_shown(value)}")
    if len(items) > max_count or any(isinstance(s, str) and not s for s in items):
        raise ConfigError(f"{name}: up to {max_count} non-empty strings")
    return [check_text(f"{name}[{i}]", s) for i, s in enumerate(items)]


def _shown(value: object) -> str:
    """A value for a message: its type, and a short ASCII repr (a bad character is escaped)."""
    text = ascii(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


@dataclass
class GenerationParams:
    """What one ``generate``/``stream`` call asks for (see the module docstring for each name)."""

    max_new_tokens: int | None = None
    max_length: int | None = None  # ceiling on prompt + new tokens; max_new_tokens wins when both are given
    temperature: float = 0.0  # 0 = greedy; > 0 samples from softmax(logits / temperature)
    do_sample: bool | None = None  # transformers' switch: False = greedy, True without a temperature = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    min_p: float = 0.0  # 0 = off
    repetition_penalty: float = 1.0  # 1 = off
    # OpenAI's: logit[j] -= count[j] * frequency_penalty + (count[j] > 0) * presence_penalty, where
    # count[j] is how often token j was generated so far (the prompt not counted); 0 = off
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    stop: Sequence[Sequence[int]] = field(default_factory=list)  # token-id sequences that end a row
    # token-id sequences never generated (TensorRT-LLM's bad_words_list): the last id of a sequence is
    # banned whenever the text so far ends with the ones before it (a one-id sequence: always)
    bad_words: Sequence[Sequence[int]] = field(default_factory=list)
    use_cache: bool = True  # False recomputes the whole text every step (slow; a cross-check)
    sliding_window_size: int | None = None  # the reference honours any; an artifact only its own
    use_flash_attention: bool | None = None  # the fused attention kernel (see check_artifact)
    ignore_eos: bool = False
    eos_token_id: int | None = None  # default: the model's
    pad_token_id: int | None = None  # default: the model's pad, else eos, else 0

    def __post_init__(self) -> None:
        if self.do_sample is True and self.temperature == 0:
            self.temperature = 1.0  # transformers' default temperature when sampling

    @property
    def greedy(self) -> bool:
        return self.do_sample is False or self.temperature == 0

    @property
    def plain_logits(self) -> bool:
        """True when no penalty or ban changes the logits (greedy is then a bare argmax)."""
        return (self.repetition_penalty == 1.0 and self.frequency_penalty == 0.0
                and self.presence_penalty == 0.0 and not self.bad_words)  # fmt: skip

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def validate(self) -> None:
        """Types, ranges and finiteness of every field; raises ConfigError naming the parameter."""
        check_int("max_new_tokens", self.max_new_tokens, low=1, optional=True)
        check_int("max_length", self.max_length, low=1, optional=True)
        check_float("temperature", self.temperature, low=0)
        check_bool("do_sample", self.do_sample, optional=True)
        check_int("top_k", self.top_k, low=0)
        check_float("top_p", self.top_p, low=0, high=1, low_open=True)
        check_float("min_p", self.min_p, low=0, high=1, high_open=True)
        check_float("repetition_penalty", self.repetition_penalty, low=0, low_open=True)
        check_float("frequency_penalty", self.frequency_penalty, low=-PENALTY_LIMIT, high=PENALTY_LIMIT)
        check_float("presence_penalty", self.presence_penalty, low=-PENALTY_LIMIT, high=PENALTY_LIMIT)
        check_seed(self.seed)
        _check_id_lists("stop", self.stop, "an empty stop sequence would end every row at once")
        _check_id_lists("bad_words", self.bad_words, "an empty sequence bans nothing")
        check_bool("use_cache", self.use_cache)
        check_int("sliding_window_size", self.sliding_window_size, low=1, optional=True)
        check_bool("use_flash_attention", self.use_flash_attention, optional=True)
        check_bool("ignore_eos", self.ignore_eos)
        check_int("eos_token_id", self.eos_token_id, low=0, optional=True)
        check_int("pad_token_id", self.pad_token_id, low=0, optional=True)

    def check_artifact(self, manifest: Manifest) -> None:
        """Refuse what this artifact cannot honour (another window; flash attention on portable attention)."""
        window = manifest.architecture.sliding_window
        if self.sliding_window_size is not None and self.sliding_window_size != window:
            has = f"a sliding window of {window}" if window else "full attention (no sliding window)"
            raise ConfigError(
                f"sliding_window_size: this artifact was exported with {has}; the window is part of the "
                f"graph, so {self.sliding_window_size} cannot be honoured (re-export the checkpoint with "
                f"that window, or leave sliding_window_size unset)"
            )
        vocab = manifest.architecture.vocab_size
        ids = [("eos_token_id", self.eos_token_id), ("pad_token_id", self.pad_token_id)]
        ids += [
            (f"{name}[{i}]", t)
            for name in ("stop", "bad_words")
            for i, s in enumerate(getattr(self, name))
            for t in s
        ]
        for name, t in ids:
            if t is not None and t >= vocab:
                raise ConfigError(f"{name}: token id {t} is outside this model's vocabulary of {vocab}")
        if self.use_flash_attention and manifest.lowering not in FUSED_LOWERINGS:
            raise ConfigError(
                f"use_flash_attention: an ONNX artifact with the {manifest.lowering} lowering runs attention "
                "as standard ONNX ops, not a fused kernel; export with --attention ort (onnxruntime's fused "
                "GroupQueryAttention) or leave use_flash_attention unset"
            )

    def budget(self, prompt_len: int, context: int, *, limit: int | None = None) -> Budget:
        """``plan_budget`` for this call's max_new_tokens / max_length."""
        return plan_budget(
            prompt_len, context, max_new_tokens=self.max_new_tokens, max_length=self.max_length, limit=limit
        )

    def new_tokens(self, prompt_len: int, max_positions: int) -> int:
        """The number of tokens to generate after a ``prompt_len``-token prompt (checked against the context)."""
        return self.budget(prompt_len, max_positions).new_tokens


def _check_id_lists(name: str, value: object, empty: str) -> None:
    """A list of non-empty token-id lists (``stop``, ``bad_words``)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{name}: expected a list of token-id lists, got {_shown(value)}")
    for i, s in enumerate(value):
        if isinstance(s, (str, bytes)) or not isinstance(s, Sequence):
            raise ConfigError(f"{name}[{i}]: expected a list of token ids, got {_shown(s)}")
        if len(s) == 0:
            raise ConfigError(f"{name}: {empty}")
        for t in s:
            check_int(f"{name}[{i}]", t, low=0)


def make_params(**kwargs: Any) -> GenerationParams:
    """``GenerationParams(**kwargs)``, checked: an unknown name, a wrong type, NaN/inf or a value out of
    range is refused by name (a ConfigError, never a TypeError traceback). ``do_sample=True`` without a
    temperature samples at 1.0; with ``temperature=0`` it is a contradiction, refused."""
    known = set(GenerationParams.names())
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a generation parameter (known: {', '.join(sorted(known))})")
    if kwargs.get("do_sample") is True and kwargs.get("temperature", 1.0) == 0:
        raise ConfigError("temperature: 0 means greedy, which contradicts do_sample=True")
    if kwargs.get("temperature", 0.0) is None:
        kwargs.pop("temperature")
    for name in ("stop", "bad_words"):
        if kwargs.get(name) is None:
            kwargs.pop(name, None)
    p = GenerationParams(**kwargs)
    p.validate()
    p.stop = [[int(t) for t in s] for s in p.stop]
    p.bad_words = [[int(t) for t in s] for s in p.bad_words]
    p.temperature, p.top_p, p.min_p = float(p.temperature), float(p.top_p), float(p.min_p)
    p.repetition_penalty = float(p.repetition_penalty)
    p.frequency_penalty, p.presence_penalty = float(p.frequency_penalty), float(p.presence_penalty)
    return p


@dataclass(frozen=True)
class Budget:
    """How many tokens one prompt may generate, and what set that number."""

    new_tokens: int
    param: str  # the request's field that set it (max_new_tokens, max_length, max_tokens, ...) or "default"
    max_length: int  # prompt + new tokens: the ceiling on the whole sequence that applied
    requested: int | None  # what the request asked for under ``param`` (None: the default)
    capped_by: (
        str | None
    )  # "max_tokens_limit" (the server's), "max_position_embeddings" (the model's) or None

    def report(self) -> dict[str, Any]:
        """The cap that applied, for a response body."""
        return {"max_new_tokens": self.new_tokens, "max_length": self.max_length, "set_by": self.param,
                "requested": self.requested, "capped_by": self.capped_by}  # fmt: skip


def plan_budget(prompt_len: int, context: int, *, max_new_tokens: int | None = None,
                max_length: int | None = None, limit: int | None = None, default: int = DEFAULT_MAX_NEW_TOKENS,
                new_name: str = "max_new_tokens", prompt_name: str = "prompt") -> Budget:  # fmt: skip
    """The new-token budget of a ``prompt_len``-token prompt in a model of ``context`` positions, on a
    server that allows ``limit`` new tokens (None: no limit).

    - ``max_new_tokens`` (named ``new_name`` in messages: ``max_tokens`` on OpenAI's routes) is taken
      as asked: over ``limit`` or past the context it is refused.
    - else ``max_length`` is a ceiling on prompt + new tokens, lowered to the context and to
      ``prompt_len + limit``; refused only when it leaves no room after the prompt.
    - else ``default`` new tokens, lowered to what the limit and the context leave.
    """
    if prompt_len >= context:
        raise ConfigError(
            f"{prompt_name}: {prompt_len} tokens leave no room in the model's context of {context} tokens"
        )
    room = context - prompt_len
    if max_new_tokens is not None:
        new = check_int(new_name, max_new_tokens, low=1)
        assert new is not None
        if limit is not None and new > limit:
            raise ConfigError(f"{new_name}: {new} is over this server's limit of {limit} new tokens")
        if new > room:
            raise ConfigError(
                f"{new_name}: the prompt ({prompt_len} tokens) + {new} new tokens exceed the model's context "
                f"of {context} tokens (their sum exceeds max_position_embeddings ({context}))"
            )
        return Budget(new, new_name, prompt_len + new, new, None)
    caps = [(room, "max_position_embeddings")]
    if limit is not None:
        caps.append((limit, "max_tokens_limit"))
    if max_length is not None:
        ceiling = check_int("max_length", max_length, low=1)
        assert ceiling is not None
        if ceiling <= prompt_len:
            raise ConfigError(f"max_length: {ceiling} leaves no room after the {prompt_len}-token prompt")
        asked, param = ceiling - prompt_len, "max_length"
    else:
        asked, param = default, "default"
    cap, by = min(caps)
    new = min(asked, cap)
    requested = max_length if max_length is not None else None
    return Budget(new, param, prompt_len + new, requested, by if new < asked else None)
