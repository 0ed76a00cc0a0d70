"""The decoder behind Triton's generate model: in-process onnxruntime, or one BLS call per step.

Two decode loops, chosen by the generate model's ``decode_loop`` parameter (docs/triton.md):

- ``in_process``: the generate model's stub opens the artifact with ``radon.runtime.load`` and runs the
  whole loop itself (the ring KV cache, IO binding): no Triton round trip per token;
- ``bls``: every forward pass is a Business Logic Scripting request to the decoder model
  (``onnxruntime_onnx``, ``tensorrt_plan`` or the python-backend decoder), carrying
  ``input_ids``, ``attention_mask``, ``position_ids`` and the past in, ``logits`` and the presents out
  (Triton's python_backend README, "Business Logic Scripting"). ``RemoteDecoderSession`` is the
  runtime's ``ForwardSession`` (``radon.runtime.session``) over such a ``forward`` function, so the
  runtime's generator, sampling and copy-engine cache (the past cut to W - 1 between steps) run
  unchanged.

``run_decoder`` is the python-backend decoder's whole job (one forward pass per request), and
``GenerateSettings`` reads the generate model's config parameters. Torch-free, Triton-free: the
``forward`` function is the only thing the model.py adapter supplies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from radon.errors import ConfigError, RadonError
from radon.runtime.contract import Manifest, read_manifest
from radon.runtime.session import NP_DTYPES, DecoderSession, Forward, ForwardSession

log = logging.getLogger(__name__)
DECODE_LOOPS = ("in_process", "bls")


class RemoteDecoderSession(ForwardSession):
    """The runtime's ``ForwardSession`` whose forward pass is a BLS call to the decoder model."""

    def __init__(self, manifest: Manifest, forward: Forward, *, artifact: str | Path = ".",
                 provider: str = "triton-bls") -> None:  # fmt: skip
        super().__init__(manifest, forward, artifact=artifact, provider=provider)


def run_decoder(session: DecoderSession, feeds: Mapping[str, np.ndarray],
                wanted: Sequence[str] | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """One forward pass of the python-backend decoder: every manifest input by name, the ``wanted``
    outputs (default: all) back by name. Raises RadonError naming a missing or misshapen input."""
    manifest = session.manifest
    missing = [n for n in manifest.input_names if n not in feeds]
    if missing:
        raise RadonError(f"{missing[0]}: required input of the decoder")
    names = list(wanted) if wanted else manifest.output_names
    unknown = [n for n in names if n not in manifest.output_names]
    if unknown:
        raise RadonError(f"{unknown[0]}: not an output of the decoder ({', '.join(manifest.output_names)})")
    arrays = {}
    for spec in manifest.inputs:
        value = np.asarray(feeds[spec.name])
        if value.ndim != len(spec.shape):
            raise RadonError(
                f"{spec.name}: expected {len(spec.shape)} dims {list(spec.shape)}, got {list(value.shape)}"
            )
        arrays[spec.name] = np.ascontiguousarray(value, dtype=NP_DTYPES[spec.dtype])
    check_decoder_values(manifest, arrays)
    try:
        outs = session.session.run(names, arrays)
    except Exception as exc:  # onnxruntime's own exception types; name the shapes that were fed
        shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in arrays.items() if not k.startswith("past"))
        raise RadonError(f"decoder: onnxruntime failed on {shapes}: {exc}") from None
    return dict(zip(names, outs))


def check_decoder_values(manifest: Manifest, arrays: Mapping[str, np.ndarray]) -> None:
    """What onnxruntime would take silently or refuse in its own words, refused naming the input:
    ``input_ids`` outside the vocabulary (ONNX Gather wraps a negative index), ``position_ids`` not shaped
    as ``input_ids`` or outside the model's positions, an ``attention_mask`` that does not cover the
    past plus the new tokens (contract 3) or holds values other than 0 and 1."""
    a = manifest.architecture
    ids, pos, mask = arrays.get("input_ids"), arrays.get("position_ids"), arrays.get("attention_mask")
    if ids is not None and ids.size and (ids.min() < 0 or ids.max() >= a.vocab_size):
        bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
        raise RadonError(f"input_ids: ids must be in [0, {a.vocab_size}), got {bad}")
    if ids is not None and pos is not None:
        if pos.shape != ids.shape:
            raise RadonError(
                f"position_ids: expected the shape of input_ids {list(ids.shape)}, got {list(pos.shape)}"
            )
        if pos.size and (pos.min() < 0 or pos.max() >= a.max_position_embeddings):
            bad = int(pos.min()) if pos.min() < 0 else int(pos.max())
            raise RadonError(f"position_ids: must be in [0, {a.max_position_embeddings}), got {bad}")
    past = next((v for k, v in arrays.items() if k.startswith("past_key_values.")), None)
    if ids is not None and mask is not None and past is not None:
        want = past.shape[2] + ids.shape[1]  # past [batch, kv_heads, past_len, head_dim]
        if mask.shape != (ids.shape[0], want):
            raise RadonError(
                f"attention_mask: expected [{ids.shape[0]}, {want}] (the past's {past.shape[2]} slots + "
                f"{ids.shape[1]} new tokens), got {list(mask.shape)}"
            )
        if mask.size and not np.isin(mask, (0, 1)).all():
            raise RadonError("attention_mask: values must be 0 or 1")


@dataclass(frozen=True)
class GenerateSettings:
    """The generate model's config.pbtxt ``parameters`` (all strings there), typed."""

    decode_loop: str = "in_process"  # "in_process" | "bls"
    artifact: str = "radon_decoder/1"  # the decoder's folder (manifest, tokenizer/), from the repository root
    decoder_model: str = "radon_decoder"
    tokenizer_model: str = "radon_tokenizer"
    max_batch: int = 8  # rows per generation batch (the dynamic batcher's max_batch_size)
    max_tokens_limit: int = 1024  # the most new tokens one request may ask for
    threads: int = 0  # onnxruntime intra-op threads for the in-process loop (0: onnxruntime's choice)
    prefill_chunk: int = 128  # prompt tokens per prefill step (0: the whole prompt in one step)
    max_prompt_tokens: int = 0  # the longest prompt (0: the context); an engine's prefill profile

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> GenerateSettings:
        """From config.pbtxt parameters: ``{key: "value"}`` or the python backend's
        ``{key: {"string_value": "value"}}``; an unknown key or a bad value is a ConfigError naming it."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in parameters.items():
            if isinstance(value, Mapping):
                value = value.get("string_value", "")
            if key not in known:
                raise ConfigError(f"{key}: not a parameter of the generate model ({', '.join(known)})")
            if known[key].type in ("int", int):
                try:
                    kwargs[key] = int(value)
                except ValueError:
                    raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
            else:
                kwargs[key] = str(value)
        settings = cls(**kwargs)
        if settings.decode_loop not in DECODE_LOOPS:
            raise ConfigError(
                f"decode_loop: expected one of {', '.join(DECODE_LOOPS)}, got {settings.decode_loop!r}"
            )
        return settings

    def to_parameters(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


def open_generator(settings: GenerateSettings, repository: str | Path, forward: Forward | None = None) -> Any:
    """The generate model's ``Generator``: ``radon.runtime.load`` on the decoder's folder for the
    in-process loop, or the runtime's generator over a ``RemoteDecoderSession(forward)`` for ``bls``."""
    from radon.runtime.generator import Generator, load

    folder = Path(repository) / settings.artifact
    chunk = settings.prefill_chunk or None
    if settings.decode_loop == "in_process":
        # spinning off: the server and the other models' stubs share the cores (docs/runtime.md, "Threads")
        return load(folder, threads=settings.threads or None, prefill_chunk=chunk, spinning=False)
    if forward is None:
        raise ConfigError("decode_loop: bls needs a forward function (the BLS call to the decoder model)")
    manifest = read_manifest(folder, verify=False)  # the decoder model owns (and checks) its files
    if not manifest.tokenizer:
        raise ConfigError(f"{folder}: no tokenizer/ in the manifest; the generate model serves text")
    from radon.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(folder / manifest.tokenizer)
    session = RemoteDecoderSession(
        manifest, forward, artifact=folder, provider=f"triton:{settings.decoder_model}"
    )
    log.info("generate: BLS decode loop over %s", settings.decoder_model)
    return Generator(session, tokenizer, cache="copy", prefill_chunk=chunk)
