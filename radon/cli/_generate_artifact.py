"""The two backends of ``radon generate``: an ONNX artifact (edge runtime, no torch) or a checkpoint.

``radon.cli.generate`` has the one decode loop; a ``Backend`` gives it what differs: how a prompt or
a chat becomes ids, and the stream of token ids for one prompt. Parameters reach both backends already
checked (``radon.runtime.params.make_params``); what an artifact cannot honour (another window, flash
attention on a lowering without a fused kernel) is refused by the runtime with a message. The output
records the backend, and for an artifact the providers that ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Backend:
    """What the decode loop needs from a model: text in, token ids out, and what to report."""

    tokenizer: Any  # radon.tokenizer.Tokenizer, or None (prompts as ids only)
    vocab_size: int
    eos_token_id: int | None
    encode: Callable[[str], list[int]]  # a prompt with the tokenizer's own special tokens
    encode_chat: Callable[[list[dict[str, str]]], list[int]]  # through the model's chat template
    tokens: Callable[[list[int], dict[str, Any]], Iterator[int]]  # one prompt's new ids, as produced
    report: dict[str, Any] = field(default_factory=dict)  # "backend" and what else the output records


def _no_tokenizer(folder: Path, what: str) -> Callable[..., list[int]]:
    def refuse(*_: Any) -> list[int]:
        from radon.errors import RadonError

        raise RadonError(f"{folder}: this {what} has no tokenizer/; use --prompt-ids")

    return refuse


def artifact_backend(artifact: Path, *, providers: str | None, threads: int | None) -> Backend:
    """An ONNX artifact on onnxruntime (``radon.runtime.load``)."""
    import numpy as np

    from radon.runtime import load

    gen = load(artifact, providers=providers, threads=threads)

    def tokens(ids: list[int], params: dict[str, Any]) -> Iterator[int]:
        for event in gen.stream(np.array([ids], np.int64), **params):
            yield int(event.tokens[0])

    def encode(text: str) -> list[int]:
        return [int(i) for i in gen.encode(text)[0][0]]

    has_tok = gen.tokenizer is not None
    return Backend(
        tokenizer=gen.tokenizer, vocab_size=gen.vocab_size, eos_token_id=gen.eos_token_id,
        encode=encode if has_tok else _no_tokenizer(artifact, "artifact"),
        encode_chat=gen.encode_chat if has_tok else _no_tokenizer(artifact, "artifact"),
        tokens=tokens,
        report={"backend": f"onnxruntime ({', '.join(gen.providers)})", "providers": gen.providers,
                "artifact": {"lowering": gen.manifest.lowering, "precision": gen.manifest.precision}},
    )  # fmt: skip


def checkpoint_backend(ckpt: Path, *, threads: int | None) -> Backend:
    """A checkpoint on the PyTorch reference (``radon.load_model``)."""
    import torch

    from radon.checkpoint import load_model

    if threads is not None:
        torch.set_num_threads(threads)
    model = load_model(ckpt)
    tok = None
    if (ckpt / "tokenizer").is_dir():
        from radon.tokenizer import load_tokenizer

        tok = load_tokenizer(ckpt / "tokenizer")

    def tokens(ids: list[int], params: dict[str, Any]) -> Iterator[int]:
        for token in model.stream(torch.tensor([ids]), **params):
            yield int(token[0])

    def encode_chat(messages: list[dict[str, str]]) -> list[int]:
        return tok.apply_chat_template(messages, add_generation_prompt=True)

    return Backend(
        tokenizer=tok, vocab_size=model.config.vocab_size, eos_token_id=model.config.eos_token_id,
        encode=tok.encode_prompt if tok is not None else _no_tokenizer(ckpt, "checkpoint"),
        encode_chat=encode_chat if tok is not None else _no_tokenizer(ckpt, "checkpoint"),
        tokens=tokens, report={"backend": "torch"},
    )  # fmt: skip
