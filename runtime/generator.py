"""The edge runtime's generator: batched, left-padded generation from an artifact with numpy only.

The loop is onnxruntime-genai's generator shape (prefill, then one token per step with the KV cache,
logits processed and a token picked on the host) over RADON's contract-4 graphs, with the reference's
semantics (``radon.generation``): the same parameters, the same processors (``sampling``), rows that
finish (eos, a stop sequence, a stop string) yield the pad id afterwards, and ``generate`` returns the
ids with the prompt. Past the window the cache is a ring of W - 1 slots (``kv_cache``, ``engine``),
so memory stays flat however long the text.

``load(artifact)`` checks the manifest's hashes, opens the session on the chosen providers and the
artifact's tokenizer when it carries one. Torch-free: numpy, onnxruntime and the tokenizer libraries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radon.errors import ConfigError, RadonError
from radon.runtime.engine import DEFAULT_PREFILL_CHUNK, default_engine, make_engine
from radon.runtime.params import GenerationParams, make_params
from radon.runtime.providers import resolve_providers
from radon.runtime.sampling import pick, process_logits
from radon.runtime.session import DecoderSession, positions_from_mask
from radon.runtime.stream import RowText, TextPiece

log = logging.getLogger(__name__)
STOP, LENGTH, CANCELLED = "stop", "length", "cancelled"  # finish reasons (OpenAI's names, plus cancelled)


@dataclass
class StepEvent:
    """One decode step of a batch: the token of every row and what it finished."""

    step: int  # 0 for the token chosen from the prompt's logits
    tokens: np.ndarray  # (B,) int64; the pad id for rows that finished earlier
    finished: list[str | None]  # per row: the finish reason if the row ended at this step
    pieces: list[str] | None  # per row: text released by this step (None without a tokenizer)
    time: float  # time.perf_counter() when the tokens were chosen


@dataclass
class Completion:
    """One row of a finished generation, with the numbers the CLI and the server report."""

    token_ids: list[int]  # generated ids (stop tokens included, no padding)
    text: str | None  # the generated text (cut before a stop string); None without a tokenizer
    finish_reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int  # real tokens of the prompt (padding excluded)
    prefill_s: float  # the prompt's forward pass
    time_to_first_token_s: float  # from the call to the first token of this row
    total_s: float  # from the call to this row's last token

    @property
    def new_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Tokens after the first over the time after the first token (llama-bench's tg)."""
        span = self.total_s - self.time_to_first_token_s
        return (self.new_tokens - 1) / span if self.new_tokens > 1 and span > 0 else None


@dataclass
class _Rows:
    """Per-row state of one batch."""

    budgets: list[int]  # new tokens allowed per row
    done: np.ndarray  # (B,) bool
    generated: list[list[int]] = field(default_factory=list)  # each row's ids so far (stop checks)
    live: list[int] = field(default_factory=list)  # rows not done, in order


class Generator:
    """Generation from one artifact; made by ``load``. Not thread-safe: one call at a time."""

    def __init__(self, session: DecoderSession, tokenizer: Any = None, *, cache: str | None = None,
                 prefill_chunk: int | None = DEFAULT_PREFILL_CHUNK) -> None:  # fmt: skip
        self.session = session
        self.prefill_chunk = prefill_chunk
        self.manifest = session.manifest
        self.tokenizer = tokenizer
        self.providers: list[str] = list(session.session.get_providers())
        self.cache = cache or default_engine(session, self.providers[0])
        arch = self.manifest.architecture
        self.max_positions = arch.max_position_embeddings
        self.window = arch.sliding_window
        self.vocab_size = arch.vocab_size
        special = self.manifest.special_ids
        self.eos_token_id: int | None = special.get("eos")
        self.pad_token_id: int | None = special.get("pad")
        self.bos_token_id: int | None = special.get("bos")
        self.last_engine: Any = None  # the engine of the latest call (tests read its cache shapes)

    @property
    def name(self) -> str:
        return self.session.artifact.resolve().name

    # ---- ids --------------------------------------------------------------------------------
    def _check_ids(self, input_ids: Any, attention_mask: Any) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(input_ids)
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or ids.shape[1] == 0 or ids.shape[0] == 0:
            raise ConfigError(f"input_ids: expected a non-empty (batch, length) array, got shape {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise ConfigError(f"input_ids: expected integer ids, got {ids.dtype}")
        ids = ids.astype(np.int64)
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise ConfigError(f"input_ids: ids must be in [0, {self.vocab_size})")
        mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask).astype(np.int64)
        if mask.shape != ids.shape:
            raise ConfigError(f"attention_mask: expected shape {ids.shape}, got {mask.shape}")
        if not np.isin(mask, (0, 1)).all():
            raise ConfigError("attention_mask: expected 0 (padding) and 1 (token) only")
        if (mask[:, -1] == 0).any() or (np.diff(mask, axis=1) < 0).any():
            raise ConfigError(
                "attention_mask: rows must be left-padded (zeros before the first token, none after); "
                f"{self.manifest.limits.get('padding', '')}".rstrip("; ")
            )
        return ids, mask

    # ---- the loop ---------------------------------------------------------------------------
    def stream(
        self,
        input_ids: Any,
        max_new_tokens: int | None = None,
        *,
        attention_mask: Any = None,
        stop_strings: Sequence[str] | None = None,
        row_budgets: Sequence[int] | None = None,
        row_stop_strings: Sequence[Sequence[str]] | None = None,
        cancelled: Callable[[int], bool] | None = None,
        **params: Any,
    ) -> Iterator[StepEvent]:
        """Yield one ``StepEvent`` per decode step for ``input_ids`` (B, T), left-padded by ``attention_mask``.

        ``params`` are ``GenerationParams`` names (temperature, top_k, top_p, min_p, repetition_penalty,
        seed, stop, max_length, use_cache, sliding_window_size, use_flash_attention, ignore_eos, ...).
        ``stop_strings`` end a row when its text contains one (needs the tokenizer; the text is cut
        before it); ``row_budgets`` and ``row_stop_strings`` set them per row (the server's batches);
        ``cancelled(row)`` is asked after every step and ends a row with reason ``cancelled``.
        """
        p = make_params(max_new_tokens=max_new_tokens, **params)
        p.check_artifact(self.manifest)
        ids, mask = self._check_ids(input_ids, attention_mask)
        batch, prompt_len = ids.shape
        budget = p.new_tokens(prompt_len, self.max_positions)
        budgets = np.full(batch, budget, np.int64)
        if row_budgets is not None:
            budgets = np.asarray(row_budgets, np.int64)
            if budgets.shape != (batch,) or (budgets < 1).any():
                raise ConfigError(f"row_budgets: expected {batch} values >= 1, got {list(budgets)}")
            make_params(max_new_tokens=int(budgets.max())).new_tokens(prompt_len, self.max_positions)
        stops = (
            [list(stop_strings or [])] * batch
            if row_stop_strings is None
            else [list(s) for s in row_stop_strings]
        )
        if len(stops) != batch:
            raise ConfigError(f"row_stop_strings: expected {batch} lists, got {len(stops)}")
        if any(stops) and self.tokenizer is None:
            raise ConfigError("stop_strings: this artifact has no tokenizer/; use stop (token ids) instead")
        yield from self._loop(ids, mask, p, budgets, stops, cancelled)

    def _loop(self, ids: np.ndarray, mask: np.ndarray, p: GenerationParams, budgets: np.ndarray,
              stops: list[list[str]], cancelled: Callable[[int], bool] | None) -> Iterator[StepEvent]:  # fmt: skip
        batch, prompt_len = ids.shape
        steps = int(budgets.max())
        eos = self.eos_token_id if p.eos_token_id is None else p.eos_token_id
        pad = next(x for x in (p.pad_token_id, self.pad_token_id, eos, 0) if x is not None)
        rng = np.random.default_rng(p.seed)
        history = np.zeros((batch, prompt_len + steps), np.int64)  # for the penalties and bad words
        history[:, :prompt_len] = ids
        rows = _Rows(budgets.tolist(), np.zeros(batch, bool), [[] for _ in range(batch)], list(range(batch)))
        texts = [RowText(self.tokenizer, s) for s in stops] if self.tokenizer is not None else None
        positions = positions_from_mask(mask)
        engine = make_engine(self.session, self.cache, self.prefill_chunk) if p.use_cache else None
        self.last_engine = engine
        logits = (
            engine.prefill(ids, mask, positions) if engine else self._recompute(history[:, :prompt_len], mask)
        )
        next_pos = positions[:, -1] + 1
        # greedy without a penalty leaves the logits as they are: skip the call (the host work between
        # two decode steps runs on caches that the step's weights have just flushed: docs/runtime.md)
        processed = not (p.greedy and p.plain_logits)
        for step in range(steps):
            if processed:
                logits = process_logits(logits, history[:, : prompt_len + step], p, prompt_len)
            tokens = pick(logits, p, rng)
            if len(rows.live) < batch:
                tokens = np.where(rows.done, pad, tokens)
            history[:, prompt_len + step] = tokens
            now = time.perf_counter()
            finished: list[str | None] = [None] * batch
            pieces = [""] * batch if texts is not None else None
            ids_now = tokens.tolist()
            for b in list(rows.live):
                tok = ids_now[b]
                rows.generated[b].append(tok)
                if texts is not None and pieces is not None:
                    pieces[b] = texts[b].push(tok)
                reason = self._finish_reason(b, tok, rows, p, eos, texts, cancelled)
                if reason is not None:
                    rows.done[b], finished[b] = True, reason
                    rows.live.remove(b)
                    if texts is not None and pieces is not None:
                        pieces[b] += texts[b].finish()
            yield StepEvent(step, tokens, finished, pieces, now)
            if not rows.live:
                break
            if engine is not None:
                logits = engine.decode(tokens, next_pos)
            else:
                seen = history[:, : prompt_len + step + 1]
                logits = self._recompute(
                    seen, np.concatenate([mask, np.ones((batch, step + 1), np.int64)], 1)
                )
            next_pos = next_pos + 1

    @staticmethod
    def _finish_reason(b: int, tok: int, rows: _Rows, p: GenerationParams, eos: int | None,
                       texts: list[RowText] | None, cancelled: Callable[[int], bool] | None) -> str | None:  # fmt: skip
        gen = rows.generated[b]
        if eos is not None and not p.ignore_eos and tok == eos:
            return STOP
        if any(len(gen) >= len(s) and gen[-len(s) :] == list(s) for s in p.stop):
            return STOP
        if texts is not None and texts[b].stopped:
            return STOP
        if len(gen) >= rows.budgets[b]:
            return LENGTH
        if cancelled is not None and cancelled(int(b)):
            return CANCELLED
        return None

    def _recompute(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``use_cache=False``: the whole text through the graph with an empty past; last logits (B, V)."""
        return self.session.step(ids, mask, positions_from_mask(mask)).logits[:, -1]

    # ---- ids in, ids out --------------------------------------------------------------------
    def generate(self, input_ids: Any, max_new_tokens: int | None = None, *, attention_mask: Any = None,
                 **params: Any) -> np.ndarray:  # fmt: skip
        """All ids (B, T + steps) int64, prompt included; rows that stop early are padded with pad_token_id."""
        ids = np.asarray(input_ids, dtype=np.int64)
        ids = ids[None] if ids.ndim == 1 else ids
        steps = [e.tokens for e in self.stream(ids, max_new_tokens, attention_mask=attention_mask, **params)]
        return np.concatenate([ids, np.stack(steps, axis=1)], axis=1) if steps else ids

    # ---- text -------------------------------------------------------------------------------
    def _need_tokenizer(self) -> Any:
        if self.tokenizer is None:
            raise ConfigError(f"{self.session.artifact}: this artifact has no tokenizer/; pass token ids")
        return self.tokenizer

    def encode(self, prompts: str | Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Left-padded ``(input_ids, attention_mask)`` int64 (B, T) for one or more prompt strings, with
        the tokenizer's own special tokens (``Tokenizer.encode_prompt``: transformers' ``tokenizer(text)``)."""
        tok = self._need_tokenizer()
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or any(not p for p in prompts):
            raise ConfigError("prompt: the prompt is empty")
        return tok.encode_batch(prompts, add_special_tokens=True)

    def encode_chat(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        """Prompt ids of a conversation through the model's chat template (``Tokenizer.apply_chat_template``
        with the generation prompt); a ChatError names a malformed message or the missing template."""
        return self._need_tokenizer().apply_chat_template(messages, add_generation_prompt=True)

    def complete(
        self,
        prompts: str | Sequence[str] | np.ndarray,
        max_new_tokens: int | None = None,
        *,
        attention_mask: Any = None,
        on_step: Callable[[StepEvent], None] | None = None,
        **kwargs: Any,
    ) -> list[Completion]:
        """Generate for prompt strings (or ids) and return one ``Completion`` per row, with timings.

        ``kwargs`` are ``stream``'s (stop_strings, row_budgets, row_stop_strings, cancelled) and the
        generation parameters. ``on_step`` sees every ``StepEvent`` (for streaming front ends).
        """
        if isinstance(prompts, str) or (
            isinstance(prompts, Sequence) and prompts and isinstance(prompts[0], str)
        ):
            ids, mask = self.encode(prompts)
        else:
            ids, mask = np.asarray(prompts, np.int64), attention_mask
            ids = ids[None] if ids.ndim == 1 else ids
            mask = np.ones_like(ids) if mask is None else np.asarray(mask, np.int64)
        start = time.perf_counter()
        batch = ids.shape[0]
        first: list[float | None] = [None] * batch
        ended: list[float] = [start] * batch
        generated: list[list[int]] = [[] for _ in range(batch)]
        texts = [""] * batch
        reasons: list[str] = [LENGTH] * batch
        prefill_s = 0.0
        done = [False] * batch
        for event in self.stream(ids, max_new_tokens, attention_mask=mask, **kwargs):
            if event.step == 0:
                prefill_s = event.time - start
            for b in range(batch):
                if done[b]:
                    continue
                first[b] = first[b] or event.time
                generated[b].append(int(event.tokens[b]))
                if event.pieces is not None:
                    texts[b] += event.pieces[b]
                ended[b] = event.time
                reason = event.finished[b]
                if reason is not None:
                    done[b], reasons[b] = True, reason
            if on_step is not None:
                on_step(event)
        real = np.asarray(mask).sum(axis=1)
        return [
            Completion(generated[b], texts[b] if self.tokenizer is not None else None, reasons[b], int(real[b]),
                       prefill_s, (first[b] or start) - start, ended[b] - start)
            for b in range(batch)
        ]  # fmt: skip

    def generate_text(self, prompts: str | Sequence[str], max_new_tokens: int | None = None,
                      **kwargs: Any) -> str | list[str]:  # fmt: skip
        """The generated text (prompt excluded) for one prompt string, or a list for a list of prompts."""
        done = self.complete(prompts, max_new_tokens, **kwargs)
        texts = [c.text or "" for c in done]
        return texts[0] if isinstance(prompts, str) else texts

    def stream_text(self, prompt: str | Sequence[int], max_new_tokens: int | None = None,
                    **kwargs: Any) -> Iterator[TextPiece]:  # fmt: skip
        """One prompt (text, or ids): a ``TextPiece`` per generated token; the last carries the finish reason."""
        if isinstance(prompt, str):
            ids, mask = self.encode(prompt)
        else:
            ids = np.asarray(prompt, np.int64).reshape(1, -1)
            mask = np.ones_like(ids)
        for event in self.stream(ids, max_new_tokens, attention_mask=mask, **kwargs):
            text = event.pieces[0] if event.pieces is not None else ""
            yield TextPiece(int(event.tokens[0]), text, event.finished[0])
            if event.finished[0] is not None:
                return


def load(
    artifact: str | Path,
    *,
    providers: str | Sequence[str] | None = None,
    threads: int | None = None,
    spinning: bool = True,
    verify: bool = True,
    cache: str | None = None,
    tokenizer: bool = True,
    compact_heap: bool = True,
    huge_pages: bool = True,
    prefill_chunk: int | None = DEFAULT_PREFILL_CHUNK,
) -> Generator:
    """Open an artifact folder: manifest (sha256 of every file checked), session, tokenizer.

    ``providers``: names or short names (``cpu``, ``cuda``, ``tensorrt``; comma-separated or a list),
    checked against this onnxruntime (default: the CPU). ``threads``: onnxruntime's intra-op threads
    (default: onnxruntime's choice, one per physical core). ``spinning``: let idle threads spin-wait
    between operators (onnxruntime's, onnxruntime-genai's and llama.cpp's default, 1.2-1.4x faster
    decode on an idle machine; pass False on a machine shared with other work, where spinning threads
    steal the cores: docs/runtime.md, "Threads"). ``huge_pages``: back the weights with transparent huge
    pages once the session is built (``radon.runtime.memory.huge_pages``; CPU only). ``cache``:
    ``shared`` (IO binding, past and present one buffer: the CPU default for the ``ort`` lowering with a
    window), ``ring`` (IO binding, the CPU default otherwise) or ``copy`` (numpy, the default elsewhere).
    ``tokenizer``: load ``tokenizer/`` when the artifact carries one (the text API needs it).
    ``compact_heap``: fix glibc's mmap threshold so that what onnxruntime frees while building the
    session goes back to the OS (``radon.runtime.memory``; process-wide, hence the switch).
    ``prefill_chunk``: prompt tokens per prefill step (None: the whole prompt in one step), which
    bounds the logits and activations a long prompt holds at once.
    """
    from radon.runtime.contract import read_manifest

    artifact = Path(artifact)
    manifest = read_manifest(artifact, verify=verify)
    names = resolve_providers(providers)
    if compact_heap:
        from radon.runtime.memory import compact_heap as _compact

        _compact()
    # the generator samples from the last position only: the LM head runs there alone (DecoderSession)
    session = DecoderSession(
        artifact, manifest=manifest, threads=threads, spinning=spinning, providers=names, logits_to_keep=1
    )
    if huge_pages and names[0] == "CPUExecutionProvider":
        from radon.runtime.memory import huge_pages as _huge

        _huge()
    tok = None
    if tokenizer and manifest.tokenizer:
        from radon.tokenizer import load_tokenizer

        try:
            tok = load_tokenizer(artifact / manifest.tokenizer)
        except RadonError as exc:
            raise RadonError(f"{artifact}: its tokenizer cannot be loaded: {exc}") from None
    gen = Generator(session, tok, cache=cache, prefill_chunk=prefill_chunk)
    log.info(
        "loaded %s (%s, %s) on %s", artifact, manifest.lowering, manifest.precision, ", ".join(gen.providers)
    )
    return gen
