"""A thin onnxruntime session over a RADON artifact: contract-4 IO bound by name, numpy in and out.

Polygraphy's runner shape: load once, then ``step()`` per forward pass. Inputs and outputs are found by
the names the manifest records, never by position. The first step feeds a past of length 0; with a
window, ``trim`` keeps the last W - 1 positions between steps (contract 3's rolling buffer) and the
mask is cut to the same slots. ``greedy`` is the plain greedy loop that parity and the tests use; the
runtime's generator (sampling, stop strings, batching) builds on ``step`` and ``trim``.

``ForwardSession`` is the same session over a backend that only runs a step, ``forward(feeds, wanted)
-> outputs`` by name: a TensorRT engine (``radon.export.trt.parity_candidate``) or a Business Logic
Scripting call to Triton's decoder model (``radon.model_repository.decoder``). So the decode loop,
greedy and the generator are written once, here and in ``generator.py``, for every backend.

Torch-free: numpy and onnxruntime only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radon.errors import RadonError
from radon.runtime.contract import LOGITS_TO_KEEP, Manifest, read_manifest

log = logging.getLogger(__name__)
NP_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32}
Past = list[tuple[np.ndarray, np.ndarray]]  # per layer: key, value (B, kv heads, positions, head_dim)
Forward = Callable[[dict[str, np.ndarray], list[str]], dict[str, np.ndarray]]  # feeds, wanted -> outputs


@dataclass
class StepOutput:
    """One forward pass: logits (B, T, vocab) float32 and every layer's present key/value."""

    logits: np.ndarray
    presents: Past


def positions_from_mask(attention_mask: np.ndarray) -> np.ndarray:
    """Absolute positions of a left-padded prompt: count real tokens, 0 on padding (transformers' rule)."""
    return np.clip(np.cumsum(attention_mask, axis=-1) - 1, 0, None).astype(np.int64)


def session_options(threads: int | None = None, spinning: bool = False, prepacking: bool = True) -> Any:
    """onnxruntime's ``SessionOptions`` as every RADON session sets them (``DecoderSession``'s arguments);
    also for the tools' probe graphs, which are not artifacts (``export/quantize/gptq.py``)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not prepacking:
        opts.add_session_config_entry("session.disable_prepacking", "1")
    opts.log_severity_level = int(os.environ.get("RADON_ORT_LOG_LEVEL", "3"))
    return opts


# Precisions whose Linears are MatMulNBits: its decode kernels read prepacked weights, and without them a
# decode step of SmolLM2-135M int4 took 20x as long (16 greedy tokens: 8.7 s against 0.45 s; a 256-token
# prefill 1.45 s against 0.91 s); their packed copy is small (0.2-0.3x the fp32 weights)
PREPACK_PRECISIONS = ("int4", "int8-dynamic")


def tool_prepacking(manifest: Manifest) -> bool:
    """Whether a tool's session on this artifact should prepack: off for float and static int8 weights (one
    copy of the weights, docs/export.md "Memory"), on for MatMulNBits (``PREPACK_PRECISIONS``)."""
    return manifest.precision in PREPACK_PRECISIONS


class DecoderSession:
    """An onnxruntime session on ``artifact/model.onnx`` described by its manifest.

    ``threads`` sets onnxruntime's intra-op threads (default: onnxruntime's choice); ``spinning`` lets
    idle intra-op threads spin-wait (onnxruntime's default). It is off here: on a 2-core machine shared
    with other work, spinning threads compete for the cores and a decode step took twice as long
    (docs/export.md). ``providers`` defaults to the CPU. ``verify`` checks every file's sha256.

    ``logits_to_keep`` N > 0: ``step`` returns the logits of the last N positions only, (B, min(T, N),
    vocab), all a generator samples from. Where the manifest says the graph has the ``logits_to_keep``
    initializer (``options.logits_to_keep``: the ``ort`` lowering), onnxruntime builds the session with
    N in its place (``SessionOptions.add_initializer``), so the LM head runs on those positions only;
    otherwise the logits are cut on the host. 0, the default: every position, as contract 4 says
    (parity, calibration, the Triton decoder).

    ``prepacking=False`` turns off onnxruntime's weight prepacking (``session.disable_prepacking``): the
    session keeps the weights as the file holds them, and with external data it maps the data file
    instead of copying it: one copy of the weights (fp32 SmolLM2-135M inline: 528 MiB held, 635 MiB at
    load, against 783 MiB with prepacking), for slower MatMuls on small batches. The export and quantize
    tools, which run a few hundred steps, turn it off (docs/export.md, "Memory").
    """

    logits_to_keep: int = 0

    def __init__(
        self,
        artifact: str | Path,
        *,
        manifest: Manifest | None = None,
        threads: int | None = None,
        spinning: bool = False,
        providers: list[str] | None = None,
        verify: bool = True,
        logits_to_keep: int = 0,
        prepacking: bool = True,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise RadonError(f"onnxruntime is not installed: pip install 'radon[runtime]' ({exc})") from exc
        self.artifact = Path(artifact)
        self.manifest = manifest or read_manifest(self.artifact, verify=verify)
        opts = session_options(threads=threads, spinning=spinning, prepacking=prepacking)
        if logits_to_keep < 0:
            raise RadonError(f"logits_to_keep: expected 0 (every position) or more, got {logits_to_keep}")
        self.logits_to_keep = logits_to_keep
        if logits_to_keep and self.manifest.options.get(LOGITS_TO_KEEP):
            # "initializer", or True in artifacts whose graph took it as an optional input (an initializer
            # that is also a graph input): add_initializer replaces the value in both. onnxruntime reads
            # the buffer for the session's lifetime, so the array and its OrtValue live as long as self.
            self._keep = np.array([logits_to_keep], np.int64)
            self._keep_value = ort.OrtValue.ortvalue_from_numpy(self._keep)
            opts.add_initializer(LOGITS_TO_KEEP, self._keep_value)
        path = self.artifact / self.manifest.model_file
        try:
            self.session = ort.InferenceSession(
                str(path), opts, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types; report the file
            raise RadonError(f"{path}: onnxruntime cannot load it: {exc}") from None
        graph_inputs = {i.name for i in self.session.get_inputs()}
        graph_outputs = {o.name for o in self.session.get_outputs()}
        for name in self.manifest.input_names:
            if name not in graph_inputs:
                raise RadonError(f"{path}: the manifest's input {name} is not an input of the graph")
        for name in self.manifest.output_names:
            if name not in graph_outputs:
                raise RadonError(f"{path}: the manifest's output {name} is not an output of the graph")
        kv = self.manifest.kv_cache
        self.num_layers = self.manifest.architecture.num_layers
        self.kv_dtype = NP_DTYPES[kv.dtype]
        self._present_names = [n for i in range(self.num_layers) for n in kv.names(i)[2:]]
        self._past_names = [n for i in range(self.num_layers) for n in kv.names(i)[:2]]

    # ---- cache ------------------------------------------------------------------------------
    @property
    def keep(self) -> int | None:
        """Past positions kept between steps: W - 1 with a window, None (all) without."""
        return self.manifest.kv_cache.keep

    def empty_past(self, batch: int) -> Past:
        """A past of length 0 for the first step."""
        a = self.manifest.architecture
        shape = (batch, a.num_kv_heads, 0, a.head_dim)
        return [
            (np.zeros(shape, self.kv_dtype), np.zeros(shape, self.kv_dtype)) for _ in range(self.num_layers)
        ]

    @staticmethod
    def trim(past: Past, keep: int | None) -> Past:
        """The last ``keep`` positions of every layer (the rolling buffer); ``None`` keeps everything."""
        if keep is None or past[0][0].shape[2] <= keep:
            return past
        return [(k[:, :, k.shape[2] - keep :], v[:, :, v.shape[2] - keep :]) for k, v in past]

    # ---- forward ----------------------------------------------------------------------------
    def step(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray | None = None,
        position_ids: np.ndarray | None = None,
        past: Past | None = None,
    ) -> StepOutput:
        """One forward pass on ``input_ids`` (B, T) int64.

        ``attention_mask`` (B, past + T) covers the past's slots plus the new tokens (default: all ones);
        ``position_ids`` (B, T) are absolute and required once there is a past, whose buffer may have
        rolled. ``past`` defaults to length 0. The logits are (B, T, vocab), or the last N positions'
        for a session built with ``logits_to_keep`` N.
        """
        ids = np.asarray(input_ids, dtype=np.int64)
        if ids.ndim != 2:
            raise RadonError(f"input_ids: expected (batch, sequence), got shape {ids.shape}")
        batch, new = ids.shape
        past = past if past is not None else self.empty_past(batch)
        if len(past) != self.num_layers:
            raise RadonError(f"past: expected {self.num_layers} layers, got {len(past)}")
        held = past[0][0].shape[2]
        mask = (
            np.ones((batch, held + new), np.int64)
            if attention_mask is None
            else np.asarray(attention_mask, np.int64)
        )
        if mask.shape != (batch, held + new):
            raise RadonError(
                f"attention_mask: expected shape {(batch, held + new)} (past + new), got {mask.shape}"
            )
        if position_ids is None:
            if held:
                raise RadonError("position_ids: pass the absolute positions once there is a past")
            position_ids = positions_from_mask(mask)
        if self.manifest.lowering == "ort" and batch > 1 and new > 1 and held:
            limit = self.manifest.limits.get(
                "multi_token_steps", "a multi-token step with a past needs batch_size 1"
            )
            raise RadonError(f"{self.artifact}: {limit}")
        feeds: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": np.asarray(position_ids, dtype=np.int64),
        }
        for i, (k, v) in enumerate(past):
            feeds[self._past_names[2 * i]] = np.ascontiguousarray(k, dtype=self.kv_dtype)
            feeds[self._past_names[2 * i + 1]] = np.ascontiguousarray(v, dtype=self.kv_dtype)
        try:
            outs = self.session.run(["logits", *self._present_names], feeds)
        except Exception as exc:  # onnxruntime's own types; say what was fed
            raise RadonError(
                f"{self.artifact}: onnxruntime failed on input_ids {ids.shape}, past {held} positions: {exc}"
            ) from None
        presents = [(outs[1 + 2 * i], outs[2 + 2 * i]) for i in range(self.num_layers)]
        logits = outs[0]
        keep = self.logits_to_keep
        if keep and logits.shape[1] > keep:  # a graph without the initializer (portable), or one not replaced
            logits = logits[:, -keep:]
        return StepOutput(logits=logits, presents=presents)

    # ---- greedy -----------------------------------------------------------------------------
    def greedy(
        self, input_ids: np.ndarray, max_new_tokens: int, *, attention_mask: np.ndarray | None = None,
        rolling: bool = True,
    ) -> np.ndarray:  # fmt: skip
        """Greedy continuation (B, T + max_new_tokens), prompt included; no stopping at eos.

        ``rolling`` keeps only the last W - 1 positions between steps (the runtime's buffer);
        ``rolling=False`` lets the past grow, as optimum's loop does.
        """
        ids = np.asarray(input_ids, dtype=np.int64)
        mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask, np.int64)
        keep = self.keep if rolling else None
        out = self.step(ids, mask, positions_from_mask(mask))
        next_pos = positions_from_mask(mask)[:, -1:] + 1
        tokens = [ids]
        for n in range(max_new_tokens):
            tok = out.logits[:, -1].argmax(-1)[:, None].astype(np.int64)
            tokens.append(tok)
            if n + 1 == max_new_tokens:
                break
            past = self.trim(out.presents, keep)
            mask = np.concatenate([mask[:, mask.shape[1] - past[0][0].shape[2] :], np.ones_like(tok)], axis=1)
            out = self.step(tok, mask, next_pos, past)
            next_pos = next_pos + 1
        return np.concatenate(tokens, axis=1)


class _ForwardRunner:
    """Looks like an onnxruntime session to ``DecoderSession.step``: ``run`` and ``get_providers``."""

    def __init__(self, forward: Forward, provider: str) -> None:
        self.forward, self.provider = forward, provider

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        outs = self.forward(feeds, list(output_names))
        missing = [n for n in output_names if n not in outs]
        if missing:
            raise RadonError(f"{self.provider}: the decoder did not return {', '.join(missing)}")
        logits = outs.get("logits")
        if logits is not None and logits.dtype != np.float32:  # an fp16 engine returns fp16 logits
            outs = {**outs, "logits": np.asarray(logits, np.float32)}
        return [outs[n] for n in output_names]

    def get_providers(self) -> list[str]:
        return [self.provider]


class ForwardSession(DecoderSession):
    """A ``DecoderSession`` whose forward pass is ``forward(feeds, output_names)`` on another backend.

    Feeds and outputs are contract 4's, bound by name: ``input_ids``, ``attention_mask``,
    ``position_ids`` (B, T) int64 and ``past_key_values.{i}.key/value`` (B, kv heads, past, head_dim)
    in the manifest's KV dtype; ``logits`` (B, T, vocab), cast to float32 here, and
    ``present.{i}.key/value``. ``step``, ``trim``, ``greedy`` and the runtime's generator run unchanged.
    """

    def __init__(self, manifest: Manifest, forward: Forward, *, artifact: str | Path = ".",
                 provider: str = "forward") -> None:  # fmt: skip
        # No super().__init__(): that opens onnxruntime. These are the attributes step() and the
        # engines read (see DecoderSession.__init__).
        self.artifact = Path(artifact)
        self.manifest = manifest
        kv = manifest.kv_cache
        self.num_layers = manifest.architecture.num_layers
        self.kv_dtype = NP_DTYPES[kv.dtype]
        self._present_names = [n for i in range(self.num_layers) for n in kv.names(i)[2:]]
        self._past_names = [n for i in range(self.num_layers) for n in kv.names(i)[:2]]
        self.session = _ForwardRunner(forward, provider)
        self.logits_to_keep = 0  # the backend returns contract 4's logits (B, T, vocab)
