"""The KV cache between decode steps: a growing past, then (with a window) a ring of W - 1 slots.

Contract 3: before a decode step the buffer holds at most W - 1 past positions; with the new token
that makes W keys, all inside the window. Two facts make a *ring* possible instead of a shifting
buffer, so a decode step never copies the cache on the host:

- keys are cached *after* rotary (position_ids are absolute and applied to the new key before it
  enters ``present``; GPT-2's positions are in the embedding), so a key carries its own position;
- in a one-token decode step with W - 1 past slots, every slot is inside the band (``i - j < W`` for
  all of them), so the banded mask is all ones and only ``attention_mask`` (padding) tells slots
  apart. Attention is a softmax-weighted sum over slots: it does not depend on their order.

So the runtime overwrites the *oldest* slot with the newest key and value (one (B, H, D) copy per
layer per step) and keeps the slot's mask entry beside it. llama.cpp's ring KV cache and
onnxruntime-genai's ``past_present_share_buffer`` do the same job; RADON keeps contract 4's graphs
(present = past + new) unchanged.

``RingBuffers`` holds the numpy arrays that onnxruntime reads and writes through IO binding:
``past`` (B, H, W - 1, D) per layer and key/value, and ``present`` (B, H, W, D) into which the graph
writes ``concat(past, new)``. Without a window (full attention) the past grows up to
``max_position_embeddings``, the stated maximum; the prompt and the request are checked against it
before anything runs. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CacheGeometry:
    """The shape of one layer's cache: (batch, kv heads, positions, head_dim) in ``dtype``."""

    num_layers: int
    num_kv_heads: int
    head_dim: int
    dtype: type
    keep: int | None  # W - 1 with a window, None without

    def bytes_per_position(self, batch: int = 1) -> int:
        """Bytes that one position costs across all layers, keys and values."""
        itemsize = np.dtype(self.dtype).itemsize
        return 2 * self.num_layers * batch * self.num_kv_heads * self.head_dim * itemsize

    def empty(self, batch: int) -> list[np.ndarray]:
        """A past of length 0 for every layer, keys and values interleaved (k0, v0, k1, v1, ...)."""
        shape = (batch, self.num_kv_heads, 0, self.head_dim)
        return [np.zeros(shape, self.dtype) for _ in range(2 * self.num_layers)]


class RingBuffers:
    """W - 1 past slots per layer, rolled by overwriting the oldest slot; the slot mask goes with them.

    ``past[j]`` is tensor j of the past (k0, v0, k1, v1, ...), shape (B, H, W - 1, D); ``present[j]``
    is (B, H, W, D), where the graph writes ``concat(past, new)``, so the new position is slot W - 1
    of ``present``. ``mask`` (B, W - 1) int64 says which slots hold real tokens (0 = padding).
    """

    def __init__(self, geometry: CacheGeometry, batch: int) -> None:
        if geometry.keep is None or geometry.keep < 1:
            raise ValueError("RingBuffers needs a sliding window (kv_cache.keep = W - 1 >= 1)")
        self.geometry = geometry
        self.batch = batch
        self.slots: int = geometry.keep
        g = geometry
        past_shape = (batch, g.num_kv_heads, self.slots, g.head_dim)
        present_shape = (batch, g.num_kv_heads, self.slots + 1, g.head_dim)
        self.past: list[np.ndarray] = [np.zeros(past_shape, g.dtype) for _ in range(2 * g.num_layers)]
        self.present: list[np.ndarray] = [np.zeros(present_shape, g.dtype) for _ in range(2 * g.num_layers)]
        self.mask = np.zeros((batch, self.slots), np.int64)
        self.oldest = 0  # the slot the next position overwrites

    def fill(self, tensors: list[np.ndarray], mask: np.ndarray) -> None:
        """Start the ring from a longer past: keep its last W - 1 positions (slot 0 = the oldest)."""
        n = self.slots
        for dst, src in zip(self.past, tensors):
            np.copyto(dst, src[:, :, src.shape[2] - n :])
        np.copyto(self.mask, mask[:, mask.shape[1] - n :])
        self.oldest = 0

    def feed_mask(self) -> np.ndarray:
        """``attention_mask`` for a one-token step: the slots' mask plus 1 for the new token, (B, W)."""
        return np.concatenate([self.mask, np.ones((self.batch, 1), np.int64)], axis=1)

    def roll(self) -> None:
        """After a step: move the new position (present slot W - 1) into the oldest past slot."""
        s = self.oldest
        for dst, src in zip(self.past, self.present):
            dst[:, :, s] = src[:, :, self.slots]
        self.mask[:, s] = 1
        self.oldest = (s + 1) % self.slots

    def ordered(self) -> tuple[list[np.ndarray], np.ndarray]:
        """The past in position order (oldest first) and its mask: for tests and inspection only."""
        order = (np.arange(self.slots) + self.oldest) % self.slots
        return [t[:, :, order] for t in self.past], self.mask[:, order]

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.past) + sum(t.nbytes for t in self.present)


class SharedRing:
    """One buffer of W slots per past tensor, read as the past and written as the present (``ort`` lowering).

    onnxruntime's GroupQueryAttention shares past and present when both are bound to the same memory
    (onnxruntime-genai's ``past_present_share_buffer``): it writes the new key and value at slot
    ``seqlens_k`` (= the fed mask's length - 1) and attends over slots ``[0, seqlens_k]``, the
    ``attention_bias`` masking padding, instead of writing ``concat(past, new)`` into a new present.
    So the cache is never copied by the graph either:

    - growing (``used`` < W - 1 positions): slots ``[0, used)`` hold the past in position order, the
      fed mask is ``mask[:, :used] + [1]``, and the new position lands in slot ``used``;
    - full: slots ``[0, W - 1)`` are the ring, the fed mask has W entries, the new position lands in
      slot W - 1 (scratch) and ``advance`` moves it into the oldest ring slot, as ``RingBuffers`` does.

    ``buffers[j]`` is tensor j (k0, v0, k1, v1, ...), shape (B, H, W, D); ``mask`` (B, W - 1) int64.
    """

    def __init__(self, geometry: CacheGeometry, batch: int) -> None:
        if geometry.keep is None or geometry.keep < 1:
            raise ValueError("SharedRing needs a sliding window (kv_cache.keep = W - 1 >= 1)")
        g = geometry
        self.geometry, self.batch = g, batch
        self.slots: int = geometry.keep
        shape = (batch, g.num_kv_heads, self.slots + 1, g.head_dim)
        self.buffers: list[np.ndarray] = [np.zeros(shape, g.dtype) for _ in range(2 * g.num_layers)]
        # the fed attention_mask lives in one (B, W) buffer, so a step builds nothing: ``mask`` is its
        # first W - 1 columns (the slots' mask) and column W - 1 is the scratch slot's token, always 1
        self.feed = np.zeros((batch, self.slots + 1), np.int64)
        self.feed[:, self.slots] = 1
        self.mask = self.feed[:, : self.slots]
        self.used = 0  # past positions held (== slots once the ring is full)
        self.oldest = 0  # while full: the ring slot the next position overwrites

    def fill(self, tensors: list[np.ndarray], mask: np.ndarray) -> None:
        """Start from a prefill's presents (position order): the last W - 1 positions at most."""
        n = min(self.slots, tensors[0].shape[2])
        for dst, src in zip(self.buffers, tensors):
            np.copyto(dst[:, :, :n], src[:, :, src.shape[2] - n :])
        self.mask[:, :n] = mask[:, mask.shape[1] - n :]
        self.used, self.oldest = n, 0

    def feed_mask(self) -> np.ndarray:
        """``attention_mask`` for a one-token step: the held slots' mask plus 1 for the new token.

        Once the ring is full it is ``feed`` itself, the same array every step, so the engine binds it
        once; while the past grows it is a view of ``feed`` (a copy at batch > 1, whose rows are not
        contiguous), one column longer each step."""
        if self.used == self.slots:
            return self.feed
        self.feed[:, self.used] = 1  # the new token's slot (``advance`` counts it)
        return np.ascontiguousarray(self.feed[:, : self.used + 1])

    def advance(self) -> None:
        """After a step: count the new position, or (full) move it from the scratch slot into the oldest."""
        if self.used < self.slots:
            self.feed[:, self.used] = 1
            self.used += 1
            return
        s = self.oldest
        for t in self.buffers:
            t[:, :, s] = t[:, :, self.slots]
        self.mask[:, s] = 1
        self.oldest = (s + 1) % self.slots

    def ordered(self) -> tuple[list[np.ndarray], np.ndarray]:
        """The held past in position order (oldest first) and its mask: for tests and inspection only."""
        if self.used < self.slots:
            return [t[:, :, : self.used] for t in self.buffers], self.mask[:, : self.used]
        order = (np.arange(self.slots) + self.oldest) % self.slots
        return [t[:, :, order] for t in self.buffers], self.mask[:, order]

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.buffers)
