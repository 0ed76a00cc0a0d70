"""The runtime's generation parameters: DESIGN.md's names, checked against what an artifact can honour.

The names and meanings are the reference's (``radon.generation.GenerationConfig``): ``max_new_tokens``
or ``max_length`` (prompt + new tokens), ``temperature`` (0 = greedy), ``top_k``, ``top_p``,
``min_p``, ``repetition_penalty``, ``seed``, ``stop`` (token-id sequences), ``use_cache``,
``sliding_window_size`` and ``use_flash_attention``. A parameter that an artifact cannot honour is
refused with a message naming it, never silently ignored (DESIGN.md, generation parameters):

- ``sliding_window_size`` other than the window the manifest records (the graph bakes its window in);
- ``use_flash_attention=True`` (the reference's FlexAttention path; an ONNX graph has its own kernels);
- a prompt plus new tokens beyond ``max_position_embeddings`` (rotary/position tables end there).

Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from radon.errors import ConfigError
from radon.runtime.manifest import Manifest

DEFAULT_MAX_NEW_TOKENS = 64  # the reference's default (radon.generation.DEFAULT_MAX_NEW_TOKENS)


@dataclass
class GenerationParams:
    """What one ``generate``/``stream`` call asks for (see the module docstring for each name)."""

    max_new_tokens: int | None = None
    max_length: int | None = None  # prompt + new tokens; max_new_tokens wins when both are given
    temperature: float = 0.0  # 0 = greedy; > 0 samples from softmax(logits / temperature)
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    min_p: float = 0.0  # 0 = off
    repetition_penalty: float = 1.0  # 1 = off
    seed: int | None = None
    stop: Sequence[Sequence[int]] = field(default_factory=list)  # token-id sequences that end a row
    use_cache: bool = True  # False recomputes the whole text every step (slow; a cross-check)
    sliding_window_size: int | None = None  # must equal the manifest's window when given
    use_flash_attention: bool | None = None  # True is refused: no FlexAttention in an ONNX graph
    ignore_eos: bool = False
    eos_token_id: int | None = None  # default: the manifest's
    pad_token_id: int | None = None  # default: the manifest's pad, else eos, else 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def validate(self) -> None:
        """Ranges, as the reference checks them; raises ConfigError naming the parameter."""
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        if self.max_length is not None and self.max_length < 1:
            raise ConfigError(f"max_length: must be >= 1, got {self.max_length}")
        if self.temperature < 0:
            raise ConfigError(f"temperature: must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ConfigError(f"top_k: must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p: must be in (0, 1], got {self.top_p}")
        if not 0 <= self.min_p < 1:
            raise ConfigError(f"min_p: must be in [0, 1), got {self.min_p}")
        if self.repetition_penalty <= 0:
            raise ConfigError(f"repetition_penalty: must be > 0, got {self.repetition_penalty}")
        if any(len(s) == 0 for s in self.stop):
            raise ConfigError("stop: an empty stop sequence would end every row at once")

    def check_artifact(self, manifest: Manifest) -> None:
        """Refuse what this artifact cannot honour (window, flash attention)."""
        window = manifest.architecture.sliding_window
        if self.sliding_window_size is not None and self.sliding_window_size != window:
            has = f"a sliding window of {window}" if window else "full attention (no sliding window)"
            raise ConfigError(
                f"sliding_window_size: this artifact was exported with {has}; the window is part of the "
                f"graph, so {self.sliding_window_size} cannot be honoured (re-export the checkpoint with "
                f"that window, or leave sliding_window_size unset)"
            )
        if self.use_flash_attention:
            raise ConfigError(
                "use_flash_attention: an ONNX artifact runs onnxruntime's own attention kernels "
                f"({manifest.lowering} lowering); FlexAttention belongs to the PyTorch reference "
                "(radon generate CHECKPOINT --use-flash-attention)"
            )

    def new_tokens(self, prompt_len: int, max_positions: int) -> int:
        """The number of tokens to generate after a ``prompt_len``-token prompt (checked against the context)."""
        if self.max_new_tokens is not None:
            new = self.max_new_tokens
        elif self.max_length is not None:
            new = self.max_length - prompt_len
            if new < 1:
                raise ConfigError(
                    f"max_length: {self.max_length} leaves no room after a {prompt_len}-token prompt"
                )
        else:
            new = DEFAULT_MAX_NEW_TOKENS
        if prompt_len + new > max_positions:
            raise ConfigError(
                f"max_new_tokens: prompt ({prompt_len}) + new tokens ({new}) exceeds "
                f"max_position_embeddings ({max_positions})"
            )
        return new


def make_params(**kwargs: object) -> GenerationParams:
    """``GenerationParams(**kwargs)``, with an unknown name refused by name (not a TypeError traceback)."""
    known = set(GenerationParams.names())
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a generation parameter (known: {', '.join(sorted(known))})")
    p = GenerationParams(**kwargs)  # type: ignore[arg-type]
    p.stop = [list(map(int, s)) for s in p.stop]
    p.validate()
    return p
