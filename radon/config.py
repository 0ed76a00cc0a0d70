"""The model config: the seed's schema as one validated dataclass (DESIGN.md contract 2).

litgpt's rule: derived fields are filled in ``__post_init__``, and a bad combination raises a
``ConfigError`` (a ``ValueError``) whose message names the key. An unknown key is an error, never
dropped. ``to_json`` writes the resolved config, so a checkpoint's ``config.json`` states every number.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radon.errors import ConfigError

ARCHITECTURES = ("gpt2", "mistral", "hybrid", "llama", "qwen2")
# Families that run the rotary stack (RoPE, RMSNorm, SwiGLU, GQA), named "mistral" in tensor names; llama
# and qwen2 differ from mistral only by switches (biases, rope_scaling), for checkpoints imported from them.
ROTARY_FAMILIES = ("mistral", "llama", "qwen2")
# rope_scaling: transformers' rope_type "llama3" (Llama 3.1+), the only scaling RADON implements
ROPE_SCALING_KEYS: dict[str, type] = {
    "rope_type": str, "factor": float, "low_freq_factor": float, "high_freq_factor": float,
    "original_max_position_embeddings": int,
}  # fmt: skip
ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu", "silu", "relu")
DTYPES = ("float32", "float16", "bfloat16")
# Keys the seed's configs use; the rest are RADON's extensions (documented in docs/model.md).
SEED_KEYS = (
    "model_type", "vocab_size", "hidden_size", "num_layers", "num_attention_heads", "num_kv_heads",
    "intermediate_size", "max_position_embeddings", "sliding_window", "rope_theta", "rms_norm_eps",
    "dropout", "attention_dropout", "activation_function", "layer_norm_eps", "initializer_range",
    "use_cache", "torch_dtype", "pad_token_id", "bos_token_id", "eos_token_id", "output_attentions",
    "output_hidden_states",
)  # fmt: skip
DERIVED = (
    "num_kv_heads", "intermediate_size", "activation_function", "head_dim", "tie_word_embeddings",
    "attention_bias", "attention_out_bias", "mlp_bias",
)  # fmt: skip
PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"
# 10 T parameters: past any model RADON's formats and tools handle (Llama 3.1 405B is 4e11), so a config
# beyond it is a typo; it is refused when the config is read, before anything is allocated
MAX_PARAMETERS = 10**13
# sizes of the largest public models, to name the key a too-large estimate comes from
SIZE_KEYS = {"hidden_size": 16384, "intermediate_size": 65536, "vocab_size": 262144, "num_layers": 128,
             "max_position_embeddings": 1 << 20}  # fmt: skip


@dataclass
class ModelConfig:
    """A GPT-2, Mistral (or Llama / Qwen2) or hybrid decoder. ``None`` fields are derived from the others."""

    model_type: str = "mistral"
    vocab_size: int = 32000
    hidden_size: int = 256
    num_layers: int = 6
    num_attention_heads: int = 8
    num_kv_heads: int | None = None  # default: num_attention_heads (no GQA)
    intermediate_size: int | None = None  # default: 4 * hidden (GPT-2), 8/3 * hidden to 256 (Mistral)
    max_position_embeddings: int = 2048
    sliding_window: int | None = None  # W keys per query, itself included (contract 3); Mistral only
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_function: str | None = None  # default: gelu_new (GPT-2), silu (Mistral's SwiGLU)
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    use_cache: bool = True
    torch_dtype: str = "float32"
    pad_token_id: int | None = 3
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    output_attentions: bool = False
    output_hidden_states: bool = False
    # RADON's extensions
    head_dim: int | None = None  # default: hidden_size // num_attention_heads
    tie_word_embeddings: bool | None = None  # default: True for GPT-2, False otherwise
    attention_bias: bool | None = None  # q/k/v biases; default: True for GPT-2 and qwen2
    attention_out_bias: bool | None = None  # default: True for GPT-2, False for qwen2, else attention_bias
    mlp_bias: bool | None = None  # MLP biases; default: True for GPT-2, False otherwise
    rope_scaling: dict | None = None  # Llama 3's {"rope_type": "llama3", "factor", ...}; None: plain RoPE
    gradient_checkpointing: bool = False
    use_flash_attention: bool = False  # flash-attn on CUDA where it applies, else FlexAttention (radon.flash)
    name: str | None = field(default=None)
    # fields that were left to be derived; validate() derives them afresh after a mutation
    _derived: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._derived = frozenset(k for k in DERIVED if getattr(self, k) is None)
        self.validate()

    # ---- validation -------------------------------------------------------------------------
    def validate(self) -> None:
        """Fill derived fields and raise ConfigError naming the first bad key.

        Called again by the model's constructor, since the seed's API mutates configs
        (``config.model_type = "hybrid"``) after they are built.
        """
        for key in self._derived:
            setattr(self, key, None)
        _check_types(self)
        if self.model_type not in ARCHITECTURES:
            raise ConfigError(
                f"model_type: must be one of {', '.join(ARCHITECTURES)}, got {self.model_type!r}"
            )
        for key in (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_attention_heads",
            "max_position_embeddings",
        ):
            _positive(self, key)
        if self.num_kv_heads is None:
            self.num_kv_heads = self.num_attention_heads
        _positive(self, "num_kv_heads")
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads:
                raise ConfigError(
                    f"hidden_size: {self.hidden_size} is not divisible by num_attention_heads "
                    f"({self.num_attention_heads})"
                )
            self.head_dim = self.hidden_size // self.num_attention_heads
        _positive(self, "head_dim")
        if self.head_dim % 2 and self.model_type != "gpt2":
            raise ConfigError(f"head_dim: rotary embeddings need an even head_dim, got {self.head_dim}")
        if self.num_attention_heads % self.num_kv_heads:
            raise ConfigError(
                f"num_kv_heads: num_attention_heads ({self.num_attention_heads}) is not divisible by "
                f"num_kv_heads ({self.num_kv_heads})"
            )
        if self.model_type == "hybrid" and self.head_dim * self.num_attention_heads != self.hidden_size:
            raise ConfigError(
                "head_dim: a hybrid's GPT-2 stack needs head_dim * num_attention_heads == hidden_size"
            )
        if self.model_type == "gpt2":
            if self.num_kv_heads != self.num_attention_heads:
                raise ConfigError(
                    "num_kv_heads: GPT-2 has no grouped-query attention; it must equal num_attention_heads"
                )
            if self.sliding_window is not None:
                raise ConfigError(
                    "sliding_window: GPT-2 uses full causal attention; set it to null or use mistral"
                )
            if self.head_dim * self.num_attention_heads != self.hidden_size:
                raise ConfigError("head_dim: GPT-2 needs head_dim * num_attention_heads == hidden_size")
        if self.sliding_window is not None and self.sliding_window < 1:
            raise ConfigError(
                f"sliding_window: must be a positive number of keys or null, got {self.sliding_window}"
            )
        if self.intermediate_size is None:
            if self.model_type == "gpt2":
                self.intermediate_size = 4 * self.hidden_size
            else:  # Llama's rule: 2/3 of 4h, rounded up to a multiple of 256
                self.intermediate_size = 256 * math.ceil(8 * self.hidden_size / 3 / 256)
        _positive(self, "intermediate_size")
        if self.activation_function is None:
            self.activation_function = "gelu_new" if self.model_type == "gpt2" else "silu"
        if self.activation_function not in ACTIVATIONS:
            raise ConfigError(
                f"activation_function: must be one of {', '.join(ACTIVATIONS)}, got {self.activation_function!r}"
            )
        if self.tie_word_embeddings is None:
            self.tie_word_embeddings = self.model_type == "gpt2"
        self._validate_family()
        for key in ("dropout", "attention_dropout"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{key}: must be in [0, 1), got {value}")
        for key in ("rope_theta", "rms_norm_eps", "layer_norm_eps", "initializer_range"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: must be positive, got {getattr(self, key)}")
        if self.torch_dtype not in DTYPES:
            raise ConfigError(f"torch_dtype: must be one of {', '.join(DTYPES)}, got {self.torch_dtype!r}")
        for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, key)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ConfigError(f"{key}: {value} is outside the vocabulary [0, {self.vocab_size})")
        if self.num_parameters() > MAX_PARAMETERS:
            raise ConfigError(self._size_message(f"past the {MAX_PARAMETERS:.0e} parameters RADON accepts"))

    # ---- size --------------------------------------------------------------------------------
    def num_parameters(self) -> int:
        """Parameters of ``HybridTransformerModel(self)``, computed, not allocated (``radon.info``)."""
        from radon.info import count_parameters

        return count_parameters(self).total

    def _size_message(self, why: str, dtype_bytes: int = 4) -> str:
        key = max(SIZE_KEYS, key=lambda k: getattr(self, k) / SIZE_KEYS[k])
        n = self.num_parameters()
        return (
            f"{key}: {getattr(self, key)} gives an estimated {n:.3g} parameters, {n * dtype_bytes / 1e9:,.1f} GB "
            f"of float32 weights, {why}"
        )

    def check_memory(self, available: int | None = None) -> None:
        """Refuse, before allocating, a model whose float32 weights exceed ``available`` bytes (default:
        this machine's physical memory), naming the key that makes it large and the estimate."""
        if available is None:
            available = physical_memory()
        if available and 4 * self.num_parameters() > available:
            raise ConfigError(
                self._size_message(f"more than this machine's {available / 1e9:,.1f} GB of memory")
            )

    def _validate_family(self) -> None:
        """Biases and rope scaling: derive the family's defaults, refuse what the family cannot hold."""
        gpt2, qwen2 = self.model_type == "gpt2", self.model_type == "qwen2"
        if self.attention_bias is None:
            self.attention_bias = gpt2 or qwen2
        if self.attention_out_bias is None:
            self.attention_out_bias = gpt2 or (self.attention_bias and not qwen2)
        if self.mlp_bias is None:
            self.mlp_bias = gpt2
        if gpt2:
            for key in ("attention_bias", "attention_out_bias", "mlp_bias"):
                if not getattr(self, key):
                    raise ConfigError(f"{key}: GPT-2's layers always have biases; it must be true or null")
        if self.model_type in ("llama", "qwen2") and self.sliding_window is not None:
            raise ConfigError(
                f"sliding_window: RADON's {self.model_type} models attend to the whole context "
                "(as transformers' do here); use model_type mistral for a sliding window"
            )
        if self.rope_scaling is None:
            return
        if gpt2:
            raise ConfigError("rope_scaling: GPT-2 has learned positions, not RoPE; set it to null")
        given, known = set(self.rope_scaling), list(ROPE_SCALING_KEYS)
        unknown, missing = sorted(given - set(known)), [k for k in known if k not in given]
        if unknown:
            raise ConfigError(
                f"rope_scaling.{unknown[0]}: unknown key (llama3 scaling takes {', '.join(known)})"
            )
        if self.rope_scaling.get("rope_type") != "llama3":
            raise ConfigError(
                f"rope_scaling.rope_type: only 'llama3' is supported, got {self.rope_scaling.get('rope_type')!r}"
            )
        if missing:
            raise ConfigError(f"rope_scaling.{missing[0]}: missing (llama3 scaling needs {', '.join(known)})")
        scaling: dict[str, Any] = {}
        for key, kind in ROPE_SCALING_KEYS.items():
            value = self.rope_scaling[key]
            if kind is str:
                scaling[key] = value
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or (kind is int and not isinstance(value, int)) or not value > 0:
                raise ConfigError(f"rope_scaling.{key}: must be a positive {kind.__name__}, got {value!r}")
            scaling[key] = kind(value)
        if not scaling["high_freq_factor"] > scaling["low_freq_factor"]:
            raise ConfigError(
                f"rope_scaling.high_freq_factor: must exceed low_freq_factor ({scaling['low_freq_factor']}), "
                f"got {scaling['high_freq_factor']}"
            )
        self.rope_scaling = scaling

    # ---- derived quantities -----------------------------------------------------------------
    @property
    def architectures(self) -> tuple[str, ...]:
        """The stacks this config holds: one, or both for ``hybrid``. llama and qwen2 run the rotary
        stack, named ``mistral``."""
        if self.model_type == "hybrid":
            return ("gpt2", "mistral")
        return ("gpt2",) if self.model_type == "gpt2" else ("mistral",)

    def biases_for(self, arch: str) -> tuple[bool, bool, bool]:
        """(q/k/v, output projection, MLP) biases of one stack; GPT-2's stack always has all three."""
        if arch == "gpt2":
            return True, True, True
        return bool(self.attention_bias), bool(self.attention_out_bias), bool(self.mlp_bias)

    @property
    def q_size(self) -> int:
        assert self.head_dim is not None  # __post_init__ derives it
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        assert self.num_kv_heads is not None and self.head_dim is not None  # derived in __post_init__
        return self.num_kv_heads * self.head_dim

    def kv_heads_for(self, arch: str) -> int:
        """GPT-2 has no grouped-query attention: its stack in a hybrid uses one kv head per head."""
        assert self.num_kv_heads is not None  # __post_init__ derives it
        return self.num_attention_heads if arch == "gpt2" else self.num_kv_heads

    def window_for(self, arch: str) -> int | None:
        """The sliding window of one stack: GPT-2 always attends to the whole context."""
        return None if arch == "gpt2" else self.sliding_window

    def activation_for(self, arch: str) -> str:
        """GPT-2's stack keeps GELU in a hybrid; ``activation_function`` is the gated MLP's otherwise."""
        if self.model_type == "hybrid" and arch == "gpt2":
            return "gelu_new"
        assert self.activation_function is not None  # __post_init__ derives it
        return self.activation_function

    # ---- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.init and not (f.name == "name" and self.name is None)
        }

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ModelConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        for key in data:
            if key not in known:
                near = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                raise ConfigError(f"{key}: unknown key in {source}{hint}")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in {source})") from None

    @classmethod
    def from_json(cls, path: str | Path) -> ModelConfig:
        """Load a config file, or a named preset from ``configs/`` (``mistral_7b``, ``demo``, ...)."""
        path = resolve_config_path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}), so not a JSON config") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        return cls.from_dict(data, source=str(path))


def presets() -> dict[str, Path]:
    """Named configs shipped in ``configs/``: ``model_config_<name>.json`` -> ``<name>``."""
    root = PRESET_DIR if PRESET_DIR.is_dir() else Path(__file__).resolve().parent / "configs"
    if not root.is_dir():  # installed non-editable: configs live in the radon.configs package
        import radon.configs as pkg

        root = Path(next(iter(pkg.__path__)))
    return {p.stem.removeprefix("model_config_"): p for p in sorted(root.glob("model_config_*.json"))}


def resolve_config_path(path: str | Path) -> Path:
    """A file path, a checkpoint folder (its config.json), or a preset name."""
    p = Path(path)
    if p.is_dir() and (p / "config.json").is_file():
        return p / "config.json"
    if p.is_file():
        return p
    if p.is_dir():
        raise ConfigError(
            f"{p}: a folder without config.json: not a checkpoint, artifact or Hugging Face folder"
        )
    named = presets()
    if str(path) in named:
        return named[str(path)]
    raise ConfigError(
        f"{path}: no such config file, checkpoint folder or preset (presets: {', '.join(named)})"
    )


# ---- helpers -------------------------------------------------------------------------------------
def physical_memory() -> int:
    """Bytes of physical memory (0 where the OS does not say)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _positive(cfg: ModelConfig, key: str) -> None:
    value = getattr(cfg, key)
    if value is None or value < 1:
        raise ConfigError(f"{key}: must be a positive integer, got {value}")


def _check_types(cfg: ModelConfig) -> None:
    """JSON gives us ints, floats, bools, strings and nulls; reject the wrong one by key."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        value = getattr(cfg, f.name)
        tp = hints[f.name]
        allowed = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
        if value is None:
            if type(None) not in allowed:
                raise ConfigError(f"{f.name}: must not be null")
            continue
        if bool in allowed:
            ok = isinstance(value, bool)
        elif int in allowed:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif float in allowed:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                setattr(cfg, f.name, float(value))
        elif dict in allowed:
            ok = isinstance(value, dict)
        else:
            ok = isinstance(value, str)
        if not ok:
            want = "/".join(t.__name__ for t in allowed if t is not type(None))
            raise ConfigError(f"{f.name}: expected {want}, got {type(value).__name__} {value!r}")
