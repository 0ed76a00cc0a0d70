"""Forward passes with a cache: prefill, then one-token decode steps, for one batch at a time.

Two engines share one interface (``prefill``, ``decode``, ``past_shapes``):

- ``BoundEngine`` (the default on the CPU): onnxruntime IO binding. While the past is shorter than
  W - 1 it grows, and each step's ``present`` OrtValues are bound as the next step's past without
  passing through numpy. Once it reaches W - 1 positions it becomes a ring (``kv_cache.RingBuffers``):
  the past and present tensors are numpy arrays bound once, onnxruntime reads the past and writes
  ``concat(past, new)`` into them in place, and the runtime moves the new position into the oldest
  slot: (B, H, D) per layer per step instead of copying the whole cache.
- ``CopyEngine``: ``session.run`` with numpy in and out, and the past cut to its last W - 1 positions
  every step (``DecoderSession.trim``): one copy of the cache per step. It is the baseline that the
  benchmark compares with, and the engine for providers whose memory is not the host's (CUDA,
  TensorRT), where binding numpy buffers would copy across devices each step anyway.

Both follow contract 3: absolute ``position_ids``, ``attention_mask`` over the past's slots plus the
new tokens, a prefill of any length (the graph's banded mask handles prompts longer than W).
Torch-free.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from radon.errors import RadonError
from radon.runtime.kv_cache import CacheGeometry, RingBuffers, SharedRing
from radon.runtime.session import DecoderSession

log = logging.getLogger(__name__)


class Engine(Protocol):
    """Prefill then decode, one batch; logits come back as (B, vocab) float32 for the last position."""

    def prefill(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray
    ) -> np.ndarray: ...

    def decode(self, tokens: np.ndarray, position_ids: np.ndarray) -> np.ndarray: ...

    def past_shapes(self) -> list[tuple[int, ...]]: ...


def geometry_of(session: DecoderSession) -> CacheGeometry:
    a = session.manifest.architecture
    return CacheGeometry(a.num_layers, a.num_kv_heads, a.head_dim, session.kv_dtype, session.keep)


class BoundEngine:
    """IO binding with a growing past, then a ring of W - 1 slots (see the module docstring)."""

    def __init__(self, session: DecoderSession, prefill_chunk: int | None = None) -> None:
        import onnxruntime as ort

        self._ort = ort
        self.prefill_chunk = prefill_chunk
        self.session = session
        self.geometry = geometry_of(session)
        self._sess = session.session
        self._io = self._sess.io_binding()
        self._past_names = session._past_names
        self._present_names = session._present_names
        self._past: list[Any] = []  # OrtValues while growing
        self._mask = np.zeros((0, 0), np.int64)  # (B, past) while growing
        self.ring: RingBuffers | None = None
        self._logits: np.ndarray | None = None  # (B, 1, V) bound while in the ring
        self._keep_alive: list[np.ndarray] = []  # small inputs bound for the current run

    # ---- binding helpers ----------------------------------------------------------------------
    def _bind_small(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray) -> None:
        self._keep_alive = [np.ascontiguousarray(ids, np.int64), np.ascontiguousarray(mask, np.int64),
                            np.ascontiguousarray(positions, np.int64)]  # fmt: skip
        for name, arr in zip(("input_ids", "attention_mask", "position_ids"), self._keep_alive):
            self._io.bind_cpu_input(name, arr)

    def _run(self, what: str) -> None:
        try:
            self._sess.run_with_iobinding(self._io)
        except Exception as exc:  # onnxruntime's own exception types
            raise RadonError(
                f"{self.session.artifact}: onnxruntime failed on the {what} step: {exc}"
            ) from None

    def _bind_grow_outputs(self) -> None:
        self._io.clear_binding_outputs()
        self._io.bind_output("logits", "cpu")
        for name in self._present_names:
            self._io.bind_output(name, "cpu")

    # ---- steps --------------------------------------------------------------------------------
    def prefill(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray
    ) -> np.ndarray:
        """Run the prompt (B, T) with an empty past; returns the last position's logits (B, V)."""
        if chunked(self.session, input_ids, self.prefill_chunk):
            self.ring = None
            logits, presents, mask = prefill_in_chunks(self.session, input_ids, attention_mask, position_ids,
                                                       self.prefill_chunk or 0)  # fmt: skip
            self._absorb(presents, mask)
            return logits
        self.ring = None
        batch = input_ids.shape[0]
        self._io.clear_binding_inputs()
        self._bind_small(input_ids, attention_mask, position_ids)
        empty = self.geometry.empty(batch)
        self._keep_alive += empty
        for name, arr in zip(self._past_names, empty):
            self._io.bind_cpu_input(name, arr)
        self._bind_grow_outputs()
        self._run("prefill")
        outs = self._io.get_outputs()
        # (B, 1, V) from a session built with logits_to_keep=1 on an ort graph, (B, T, V) otherwise
        logits = outs[0].numpy()[:, -1].copy()
        self._absorb(list(outs)[1:], np.asarray(attention_mask, np.int64))
        return logits

    def decode(self, tokens: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """One token per row (B,) at absolute positions (B,); returns (B, V) logits."""
        ids = np.asarray(tokens, np.int64).reshape(-1, 1)
        pos = np.asarray(position_ids, np.int64).reshape(-1, 1)
        if self.ring is not None:
            self._bind_small(ids, self.ring.feed_mask(), pos)
            self._run("decode")
            self.ring.roll()
            assert self._logits is not None
            return self._logits[:, 0].copy()
        mask = np.concatenate([self._mask, np.ones_like(ids)], axis=1)
        self._bind_small(ids, mask, pos)
        for name, value in zip(self._past_names, self._past):
            self._io.bind_ortvalue_input(name, value)
        self._bind_grow_outputs()
        self._run("decode")
        outs = self._io.get_outputs()
        logits = outs[0].numpy()[:, 0].copy()
        self._absorb(list(outs)[1:], mask)
        return logits

    def _absorb(self, presents: list[Any], mask: np.ndarray) -> None:
        """Keep the presents (OrtValues or numpy) as the next past, or start the ring past W - 1 positions."""
        keep = self.geometry.keep
        if keep is None or mask.shape[1] <= keep:
            as_ort = self._ort.OrtValue.ortvalue_from_numpy
            self._past = [
                as_ort(np.ascontiguousarray(p)) if isinstance(p, np.ndarray) else p for p in presents
            ]
            self._mask = mask
            return
        ring = RingBuffers(self.geometry, mask.shape[0])
        ring.fill([p if isinstance(p, np.ndarray) else p.numpy() for p in presents], mask)
        self._past, self._mask = [], np.zeros((0, 0), np.int64)
        self._enter_ring(ring)

    def _enter_ring(self, ring: RingBuffers) -> None:
        ort = self._ort
        self.ring = ring
        self._io.clear_binding_inputs()
        self._io.clear_binding_outputs()
        vocab = self.session.manifest.architecture.vocab_size
        self._logits = np.zeros((ring.batch, 1, vocab), np.float32)
        self._io.bind_ortvalue_output("logits", ort.OrtValue.ortvalue_from_numpy(self._logits))
        for name, arr in zip(self._past_names, ring.past):
            self._io.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr))
        for name, arr in zip(self._present_names, ring.present):
            self._io.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(arr))

    def past_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the past tensors the next decode step feeds (k0, v0, k1, v1, ...)."""
        if self.ring is not None:
            return [t.shape for t in self.ring.past]
        return [tuple(v.shape()) for v in self._past]


class SharedEngine(BoundEngine):
    """The ``ort`` lowering with a window: past and present bound to one buffer of W slots per tensor.

    GroupQueryAttention writes the new position into the shared buffer in place (``kv_cache.SharedRing``),
    so no step copies the cache, in the graph or on the host, and nothing is allocated after the
    prefill: the buffers, the logits and the bindings are made once. The ``portable`` lowering's
    Concat cannot share, so it keeps ``BoundEngine``.
    """

    def __init__(self, session: DecoderSession, prefill_chunk: int | None = None) -> None:
        super().__init__(session, prefill_chunk)
        self.shared: SharedRing | None = None

    def _absorb(self, presents: list[Any], mask: np.ndarray) -> None:
        shared = SharedRing(self.geometry, mask.shape[0])
        shared.fill([p if isinstance(p, np.ndarray) else p.numpy() for p in presents], mask)
        self.shared = shared
        ort = self._ort
        self._io.clear_binding_inputs()
        self._io.clear_binding_outputs()
        vocab = self.session.manifest.architecture.vocab_size
        self._logits = np.zeros((shared.batch, 1, vocab), np.float32)
        self._io.bind_ortvalue_output("logits", ort.OrtValue.ortvalue_from_numpy(self._logits))
        values = [ort.OrtValue.ortvalue_from_numpy(t) for t in shared.buffers]
        for past, present, value in zip(self._past_names, self._present_names, values):
            self._io.bind_ortvalue_input(past, value)
            self._io.bind_ortvalue_output(present, value)
        # the token and position arrays are bound once and written in place; the mask is rebound only
        # when the array that holds it changes (every step while growing, never once the ring is full)
        self._ids = np.zeros((shared.batch, 1), np.int64)
        self._positions = np.zeros((shared.batch, 1), np.int64)
        self._io.bind_ortvalue_input("input_ids", ort.OrtValue.ortvalue_from_numpy(self._ids))
        self._io.bind_ortvalue_input("position_ids", ort.OrtValue.ortvalue_from_numpy(self._positions))
        self._fed_mask: np.ndarray | None = None

    def decode(self, tokens: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        assert self.shared is not None and self._logits is not None, "decode before prefill"
        self._ids[:, 0] = tokens
        self._positions[:, 0] = position_ids
        mask = self.shared.feed_mask()
        if mask is not self._fed_mask:
            self._io.bind_ortvalue_input("attention_mask", self._ort.OrtValue.ortvalue_from_numpy(mask))
            self._fed_mask = mask  # onnxruntime reads it in place: keep it alive while bound
        self._run("decode")
        self.shared.advance()
        return self._logits[:, 0].copy()

    def past_shapes(self) -> list[tuple[int, ...]]:
        """The past the next step attends: ``used`` positions of each (B, H, W, D) buffer."""
        assert self.shared is not None
        return [(*t.shape[:2], self.shared.used, t.shape[3]) for t in self.shared.buffers]


class CopyEngine:
    """``session.run`` with numpy, the past trimmed to W - 1 positions by a copy every step."""

    def __init__(self, session: DecoderSession, prefill_chunk: int | None = None) -> None:
        self.session = session
        self.prefill_chunk = prefill_chunk
        self.geometry = geometry_of(session)
        self._past: list[tuple[np.ndarray, np.ndarray]] = []
        self._mask = np.zeros((0, 0), np.int64)

    def prefill(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray
    ) -> np.ndarray:
        if chunked(self.session, input_ids, self.prefill_chunk):
            logits, presents, mask = prefill_in_chunks(self.session, input_ids, attention_mask, position_ids,
                                                       self.prefill_chunk or 0)  # fmt: skip
            self._keep([(presents[2 * i], presents[2 * i + 1]) for i in range(len(presents) // 2)], mask)
            return logits
        out = self.session.step(input_ids, attention_mask, position_ids)
        self._keep(out.presents, np.asarray(attention_mask, np.int64))
        return out.logits[:, -1]

    def decode(self, tokens: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(tokens, np.int64).reshape(-1, 1)
        mask = np.concatenate([self._mask, np.ones_like(ids)], axis=1)
        out = self.session.step(ids, mask, np.asarray(position_ids, np.int64).reshape(-1, 1), self._past)
        self._keep(out.presents, mask)
        return out.logits[:, 0]

    def _keep(self, presents: list[tuple[np.ndarray, np.ndarray]], mask: np.ndarray) -> None:
        self._past = DecoderSession.trim(presents, self.geometry.keep)
        self._mask = mask[:, mask.shape[1] - self._past[0][0].shape[2] :]

    def past_shapes(self) -> list[tuple[int, ...]]:
        return [t.shape for kv in self._past for t in kv]


def chunked(session: DecoderSession, input_ids: np.ndarray, chunk: int | None) -> bool:
    """Whether a prompt is prefilled in chunks: longer than ``chunk``, and a multi-token step with a
    past is allowed (the ``ort`` lowering takes it at batch 1 only)."""
    batch, length = input_ids.shape
    return bool(chunk) and length > chunk and (batch == 1 or session.manifest.lowering != "ort")


def prefill_in_chunks(session: DecoderSession, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray,
                      chunk: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:  # fmt: skip
    """Prefill ``chunk`` tokens at a time (llama.cpp's ubatch), so the logits and activations held at
    once are those of one chunk. The past stays in position order, cut to W - 1 between chunks: the
    banded mask of a multi-token step reads slot order. Returns (last logits (B, V), presents
    k0, v0, ... in order, their mask)."""
    past = None
    held = np.zeros((ids.shape[0], 0), np.int64)
    logits = np.zeros((0,))
    for start in range(0, ids.shape[1], chunk):
        part = slice(start, min(start + chunk, ids.shape[1]))
        step_mask = np.concatenate([held, mask[:, part]], axis=1)
        out = session.step(ids[:, part], step_mask, positions[:, part], past)
        logits = out.logits[:, -1].copy()
        past = DecoderSession.trim(out.presents, session.keep)
        held = step_mask[:, step_mask.shape[1] - past[0][0].shape[2] :]
    assert past is not None
    return logits, [t for kv in past for t in kv], held


DEFAULT_PREFILL_CHUNK = (
    128  # tokens per prefill step: pp512 held its peak RSS at the load peak, same speed (docs/runtime.md)
)
ENGINES: dict[str, Callable[[DecoderSession, int | None], Engine]] = {
    "ring": BoundEngine,
    "shared": SharedEngine,
    "copy": CopyEngine,
}


def shares_buffers(session: DecoderSession) -> bool:
    """Whether past and present can be one buffer: the ``ort`` lowering (GroupQueryAttention) with a window."""
    return session.manifest.lowering == "ort" and session.keep is not None


def default_engine(session: DecoderSession, provider: str) -> str:
    """``shared`` where the graph allows it on the CPU, else ``ring`` on the CPU, else ``copy``."""
    if provider != "CPUExecutionProvider":
        return "copy"
    return "shared" if shares_buffers(session) else "ring"


def make_engine(
    session: DecoderSession, kind: str, prefill_chunk: int | None = DEFAULT_PREFILL_CHUNK
) -> Engine:
    """``shared`` (IO binding, CPU, past and present one buffer: ``shares_buffers``), ``ring`` (IO binding,
    CPU, any lowering), ``copy`` (numpy, any provider); ``prefill_chunk`` None = one step."""
    if kind not in ENGINES:
        raise RadonError(f"cache: expected one of {', '.join(ENGINES)}, got {kind!r}")
    if kind == "shared" and not shares_buffers(session):
        raise RadonError(
            f"cache 'shared' needs the ort lowering with a sliding window; {session.artifact} has the "
            f"{session.manifest.lowering} lowering{'' if session.keep else ' and no window'}: use 'ring'"
        )
    return ENGINES[kind](session, prefill_chunk)
