"""What a decoder graph must look like: architecture numbers, contract-4 IO, and its weights by name.

The IO names, dtypes and symbolic axes come from the one contract module (``radon.runtime.contract``),
shared by the lowerings, the manifest, the session wrapper and the validation. Weights are numpy arrays keyed by their ONNX
initializer names; ``weight_names`` maps each checkpoint tensor to the initializer(s) built from it,
so quantization can point from a graph node back to a checkpoint tensor. The arrays are made when
the graph builder reads them (``WeightTable``), one at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from radon.config import ModelConfig
from radon.errors import RadonError
from radon.runtime.contract import Architecture, decoder_io


@dataclass(frozen=True, kw_only=True)
class DecoderSpec(Architecture):
    """The manifest's ``contract.Architecture`` (``ModelConfig``'s field names) of the one stack a graph
    runs (GPT-2 or the rotary stack), plus what only the graph builder needs.

    ``arch`` is the stack (llama and qwen2 run the rotary one, "mistral"); ``model_type`` is the family
    the checkpoint came from. ``rope_theta`` is the config's even for GPT-2 (the manifest records None
    there: learned positions). Biases need no switch here: ``extract_weights`` exports every bias the
    checkpoint has, and each Linear adds the one it finds.
    """

    arch: str  # "gpt2" | "mistral"
    activation_function: str
    bos_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int | None

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> DecoderSpec:
        if cfg.model_type == "hybrid":
            raise RadonError(
                "export: a hybrid checkpoint holds two stacks; an ONNX decoder runs one. "
                "Save a gpt2 or mistral checkpoint of the stack you want and export that"
            )
        arch = cfg.architectures[0]
        qkv_bias, out_bias, mlp_bias = cfg.biases_for(arch)
        return cls(
            arch=arch,
            num_layers=cfg.num_layers,
            hidden_size=cfg.hidden_size,
            num_attention_heads=cfg.num_attention_heads,
            num_kv_heads=cfg.num_kv_heads,  # type: ignore[arg-type]
            head_dim=cfg.head_dim,  # type: ignore[arg-type]
            intermediate_size=cfg.intermediate_size,  # type: ignore[arg-type]
            vocab_size=cfg.vocab_size,
            max_position_embeddings=cfg.max_position_embeddings,
            sliding_window=cfg.window_for(arch),
            rope_theta=cfg.rope_theta,
            norm_eps=cfg.layer_norm_eps if arch == "gpt2" else cfg.rms_norm_eps,
            activation_function=cfg.activation_for(arch),
            tie_word_embeddings=bool(cfg.tie_word_embeddings),
            bos_token_id=cfg.bos_token_id,
            eos_token_id=cfg.eos_token_id,
            pad_token_id=cfg.pad_token_id,
            model_type=cfg.model_type,
            rope_scaling=cfg.rope_scaling,
            attention_bias=qkv_bias,
            attention_out_bias=out_bias,
            mlp_bias=mlp_bias,
        )

    def architecture(self) -> Architecture:
        """The manifest's record: the ``Architecture`` fields of this spec, GPT-2 without a rope_theta."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(Architecture)}
        return Architecture(**shared | {"rope_theta": None if self.arch == "gpt2" else self.rope_theta})

    @property
    def q_size(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def kv_keep(self) -> int | None:
        """Past positions the runtime keeps between steps: W - 1 with a window, all without."""
        return None if self.sliding_window is None else self.sliding_window - 1


def io_table(
    spec: DecoderSpec, float_dtype: str, logits_dtype: str = "float32"
) -> dict[str, list[dict[str, Any]]]:
    """Contract 4's inputs and outputs (``contract.decoder_io``) as ``{"inputs": [{name, dtype, shape}], ...}``."""
    inputs, outputs = decoder_io(
        spec.num_layers, spec.num_kv_heads, spec.head_dim, spec.vocab_size, float_dtype, logits_dtype
    )
    return {"inputs": [t.to_dict() for t in inputs], "outputs": [t.to_dict() for t in outputs]}


class WeightTable:
    """float32 weights keyed by ONNX initializer name, each made from its checkpoint tensor when read.

    Nothing is converted up front: ``table[name]`` reads the tensor from the source (a checkpoint's
    safetensors or a model in memory, ``weights_source``), transposes it when planned, and returns a
    fresh array that the graph builder writes out and drops. Arrays set by a lowering (rotary tables)
    are held as they are.
    """

    def __init__(self, tensors: Mapping[str, np.ndarray]) -> None:
        self._tensors = tensors
        self._plan: dict[str, tuple[str, bool]] = {}  # initializer -> (checkpoint tensor, transpose)
        self._held: dict[str, np.ndarray] = {}

    def plan(self, onnx_name: str, ckpt_name: str, transpose: bool = False) -> None:
        self._plan[onnx_name] = (ckpt_name, transpose)

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._held:
            return self._held[name]
        ckpt_name, transpose = self._plan[name]
        array = self._tensors[ckpt_name]
        return np.ascontiguousarray(array.T if transpose else array, dtype=np.float32)

    def __setitem__(self, name: str, array: np.ndarray) -> None:
        self._held[name] = array

    def __contains__(self, name: object) -> bool:
        return name in self._plan or name in self._held

    def keys(self) -> list[str]:
        return [*self._plan, *self._held]

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """Every weight, made one at a time."""
        for name in self.keys():
            yield name, self[name]


def extract_weights(model: Any, spec: DecoderSpec) -> tuple[WeightTable, dict[str, list[str]]]:
    """float32 weights keyed by ONNX initializer name (made when read), and checkpoint name -> initializer names.

    ``model``: a ``HybridTransformerModel`` or a ``weights_source.CheckpointTensors`` (the safetensors
    file, read a tensor at a time). Linear weights are stored transposed, (in, out), so each Linear is
    ``MatMul(x, W)``. A tied LM head has no initializer of its own: the graph reads the embedding table
    the Gather reads.
    """
    from radon.export.weights_source import tensors_of

    prefix = f"{spec.arch}."
    tensors = tensors_of(model)
    weights = WeightTable(tensors)
    names: dict[str, list[str]] = {}

    def put(ckpt_name: str, onnx_name: str, transpose: bool = False) -> None:
        weights.plan(onnx_name, ckpt_name, transpose)
        names.setdefault(ckpt_name, []).append(onnx_name)

    put("embed_tokens.weight", "embed_tokens.weight")
    if spec.arch == "gpt2":
        put("gpt2.wpe.weight", "wpe.weight")
    linears = ("attn.qkv", "attn.out", "mlp.fc_in", "mlp.fc_out")
    norms = ("attn_norm", "mlp_norm")
    for i in range(spec.num_layers):
        for part in linears:
            src = f"{prefix}layers.{i}.{part}"
            put(f"{src}.weight", f"layers.{i}.{part}.weight", transpose=True)
            if f"{src}.bias" in tensors:
                put(f"{src}.bias", f"layers.{i}.{part}.bias")
        for part in norms:
            src = f"{prefix}layers.{i}.{part}"
            put(f"{src}.weight", f"layers.{i}.{part}.weight")
            if f"{src}.bias" in tensors:
                put(f"{src}.bias", f"layers.{i}.{part}.bias")
    put(f"{prefix}norm.weight", "norm.weight")
    if f"{prefix}norm.bias" in tensors:
        put(f"{prefix}norm.bias", "norm.bias")
    if (
        not spec.tie_word_embeddings
    ):  # a tied head reads embed_tokens.weight itself (lowering_common.tied_head)
        put("lm_head.weight", "lm_head.weight", transpose=True)
    return weights, names


def rotary_tables(spec: DecoderSpec) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin of shape (max_positions, head_dim / 2), float32, from ``radon.model.rotary_cos_sin``.

    The reference's own function computes them, so rotary angles agree bit for bit at large positions;
    with ``rope_scaling`` they come from the scaled inverse frequencies, as in the reference.
    """
    import torch

    from radon.model import rotary_cos_sin

    positions = torch.arange(spec.max_position_embeddings)[None]
    cos, sin = rotary_cos_sin(positions, spec.head_dim, spec.rope_theta, torch.float32, spec.rope_scaling)
    half = spec.head_dim // 2
    return cos[0, :, :half].numpy().copy(), sin[0, :, :half].numpy().copy()
