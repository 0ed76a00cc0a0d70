"""The reference model's KV cache: per-layer key/value tensors, a rolling buffer under a sliding window.

Contract 3 of DESIGN.md: with window W, a query attends to the W keys i - W < j <= i. After a step the
buffer keeps only the last W - 1 positions, so that the next token's W keys are exactly those W - 1
plus itself; memory stops growing at the window. Without a window the buffer grows with the text.
The padding mask travels with the buffer (``mask`` holds one column per stored slot).
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values for every layer, ``[B, num_kv_heads, S, head_dim]`` each, S <= W - 1 with a window."""

    def __init__(self, num_layers: int, window: int | None) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window must be positive, got {window}")
        self.window = window
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.mask: torch.Tensor | None = None  # [B, S] int64: 1 real token, 0 padding
        self.seen = 0  # tokens processed so far, including those that rolled out of the buffer

    @property
    def length(self) -> int:
        """Positions held now (the ``past_sequence_length`` of the next step)."""
        k = self.keys[0]
        return 0 if k is None else k.shape[2]

    @property
    def capacity(self) -> int | None:
        """The most positions held between steps: W - 1 with a window, unbounded without."""
        return None if self.window is None else self.window - 1

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's ``k, v`` (B, nkv, T, hd); return past + new for attention, keep the tail."""
        past_k, past_v = self.keys[layer], self.values[layer]
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        keep = k.shape[2] if self.capacity is None else min(k.shape[2], self.capacity)
        # .contiguous() on the slice copies it, so the dropped head of the buffer is freed.
        self.keys[layer] = k[:, :, k.shape[2] - keep :].contiguous()
        self.values[layer] = v[:, :, v.shape[2] - keep :].contiguous()
        return k, v

    def advance(self, new_tokens: int, step_mask: torch.Tensor) -> None:
        """Record a finished step: ``step_mask`` [B, past + new] covers the keys this step attended to."""
        self.seen += new_tokens
        self.mask = step_mask[:, step_mask.shape[1] - self.length :]

    def nbytes(self) -> int:
        """Bytes held by the key and value buffers."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values) if t is not None)

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows ``index`` of the batch (for dropping finished sequences)."""
        self.keys = [None if k is None else k.index_select(0, index) for k in self.keys]
        self.values = [None if v is None else v.index_select(0, index) for v in self.values]
        if self.mask is not None:
            self.mask = self.mask.index_select(0, index)
