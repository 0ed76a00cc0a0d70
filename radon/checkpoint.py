"""The checkpoint directory (DESIGN.md contract 1): config.json, model.safetensors, generation_config.json,
tokenizer/ when the model has one, and radon_checkpoint.json with the sha256 of every file.

Loading follows gpt-fast: the model is built on the meta device and the safetensors tensors are
assigned into it, so no memory is spent on a random init. Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from radon import __version__
from radon.config import ModelConfig
from radon.errors import IntegrityError, RadonError
from radon.integrity import atomic_directory, digest_of, list_files, read_json, verify_files, write_json
from radon.model import HybridTransformerModel

HASHES_FILE = "radon_checkpoint.json"
FORMAT = "radon-checkpoint/1"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def default_generation_config(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "max_new_tokens": 64,
        "do_sample": False,
        "temperature": 1.0,
        "top_k": 0,
        "top_p": 1.0,
        "repetition_penalty": 1.0,
    }


def state_dict_for_save(model: HybridTransformerModel) -> dict[str, torch.Tensor]:
    """Contiguous tensors, without the LM head when it is tied to the embedding."""
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    return sd


def save_checkpoint(
    model: HybridTransformerModel,
    out: str | Path,
    *,
    tokenizer: Any = None,
    generation_config: dict[str, Any] | None = None,
    overwrite: bool = False,
    write_extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write a checkpoint folder atomically; ``write_extra(tmp_dir)`` may add files (optimizer state)."""
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        write_files(tmp, model.config, state_dict_for_save(model), tokenizer, generation_config, write_extra)
    return out


def write_files(
    root: Path,
    config: ModelConfig,
    state_dict: dict[str, torch.Tensor] | None,
    tokenizer: Any = None,
    generation_config: dict[str, Any] | None = None,
    write_extra: Callable[[Path], None] | None = None,
) -> None:
    """The checkpoint's files into ``root`` (a temporary folder), hashes last. ``state_dict`` None: no
    ``model.safetensors`` (a sharded training checkpoint, radon/train/sharded.py, before consolidation)."""
    from safetensors.torch import save_file

    config.to_json(root / "config.json")
    if state_dict is not None:
        save_file(state_dict, str(root / "model.safetensors"), metadata={"format": "pt"})
    write_json(root / "generation_config.json", generation_config or default_generation_config(config))
    if tokenizer is not None:
        tokenizer.save_pretrained(root / "tokenizer")
    if write_extra is not None:
        write_extra(root)
    write_hashes(root)


def consolidate(src: str | Path, out: str | Path | None = None, *, force: bool = False) -> Path:
    """Merge a sharded training checkpoint's model shards into ``model.safetensors``, with fresh hashes.

    ``out`` None: in place (the folder stays resumable: its training/ state is kept). Otherwise a new
    checkpoint folder with the model files and tokenizer only.
    """
    import shutil

    from radon.train.sharded import full_model_state, is_sharded

    src = Path(src)
    if not src.is_dir():
        raise RadonError(f"{src}: no such checkpoint folder")
    if not is_sharded(src):
        raise RadonError(f"{src}: not a sharded checkpoint (no training/shards/); it needs no consolidation")
    in_place = out is None or Path(out).resolve() == src.resolve()
    dest = src if in_place else Path(out)  # type: ignore[arg-type]
    if not in_place and dest.exists() and not force:  # before reading the shards, not after
        raise RadonError(f"{dest}: already exists (use --force to replace it)")
    verify_checkpoint(src)
    cfg = load_config(src)
    full = full_model_state(src, cfg)
    model = build_from_state_dict(cfg, full, str(src))
    gen = read_json(src / "generation_config.json", "generation config")

    def copy_rest(tmp: Path) -> None:
        for name in ("tokenizer", "training") if in_place else ("tokenizer",):
            if (src / name).is_dir():
                shutil.copytree(src / name, tmp / name)

    return save_checkpoint(
        model, dest, generation_config=gen, overwrite=in_place or force, write_extra=copy_rest
    )


def write_hashes(root: Path) -> dict[str, str]:
    from radon.integrity import hash_files

    hashes = hash_files(root, list_files(root, exclude=[HASHES_FILE]))
    write_json(root / HASHES_FILE, {"format": FORMAT, "radon_version": __version__, "files": hashes})
    return hashes


def read_hashes(ckpt: str | Path) -> dict[str, str]:
    ckpt = Path(ckpt)
    if not ckpt.is_dir():
        raise RadonError(f"{ckpt}: no such checkpoint folder")
    data = read_json(ckpt / HASHES_FILE, "the checkpoint's file hashes")
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), dict):
        raise IntegrityError(f"{ckpt / HASHES_FILE}: not a {FORMAT} hashes file")
    return data["files"]


def verify_checkpoint(ckpt: str | Path) -> None:
    """Raise IntegrityError naming the first file whose sha256 does not match."""
    verify_files(ckpt, read_hashes(ckpt), what="checkpoint")


def checkpoint_digest(ckpt: str | Path) -> str:
    """One sha256 naming a checkpoint's exact contents (recorded in artifact manifests)."""
    return digest_of(read_hashes(ckpt))


def load_config(ckpt: str | Path) -> ModelConfig:
    ckpt = Path(ckpt)
    if not ckpt.is_dir():
        raise RadonError(f"{ckpt}: no such checkpoint folder")
    return ModelConfig.from_json(ckpt / "config.json")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise IntegrityError(f"{path}: missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise IntegrityError(
            f"{path}: not a readable safetensors file (truncated or corrupted?): {exc}"
        ) from None


@contextlib.contextmanager
def _skip_init() -> Iterator[None]:
    """``torch.nn.init``'s in-place initializers as no-ops (transformers' ``no_init_weights``).

    A model built on the meta device is assigned every tensor afterwards, so its init is wasted work,
    and not free: the first init op on a meta tensor imports torch's decompositions (about 900 modules,
    145 MiB of RSS), a fifth of SmolLM2-135M's weights.
    """
    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    for n in names:
        setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(torch.nn.init, n, fn)


def meta_model(cfg: ModelConfig) -> HybridTransformerModel:
    """``HybridTransformerModel(cfg)`` on the meta device, uninitialized: shapes only, no memory."""
    with torch.device("meta"), _skip_init():
        return HybridTransformerModel(cfg)


def check_tensors(cfg: ModelConfig, shapes: dict[str, tuple[int, ...]], source: str,
                  model: HybridTransformerModel | None = None) -> None:  # fmt: skip
    """Raise IntegrityError unless ``shapes`` (tensor name -> shape) are exactly the config's tensors.

    ``model``: the config's model on the meta device, when the caller has built one already.
    """
    if model is None:
        model = meta_model(cfg)
    expected = set(state_dict_for_save(model))
    missing, unexpected = sorted(expected - set(shapes)), sorted(set(shapes) - expected)
    if missing or unexpected:
        raise IntegrityError(
            f"{source}: tensors do not match the config (missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''})"
        )
    reference = model.state_dict()
    for name, shape in shapes.items():
        if tuple(shape) != tuple(reference[name].shape):
            raise IntegrityError(
                f"{source}: {name} has shape {tuple(shape)}, the config needs {tuple(reference[name].shape)}"
            )


def build_from_state_dict(
    cfg: ModelConfig, sd: dict[str, torch.Tensor], source: str, dtype: torch.dtype | None = None
) -> HybridTransformerModel:
    """Assign ``sd`` into a model built on the meta device; key sets and shapes must match exactly."""
    model = meta_model(cfg)
    check_tensors(cfg, {k: tuple(v.shape) for k, v in sd.items()}, source, model)
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    model.load_state_dict(sd, strict=False, assign=True)
    model.tie_weights()
    return model.eval()


def load_model(
    checkpoint_dir: str | Path, *, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None,
    verify: bool = True,
) -> HybridTransformerModel:  # fmt: skip
    """Load a checkpoint in eval mode. ``verify`` checks every file's sha256 first."""
    ckpt = Path(checkpoint_dir)
    if not ckpt.is_dir():
        raise RadonError(f"{ckpt}: no such checkpoint folder")
    if verify:
        verify_checkpoint(ckpt)
    cfg = load_config(ckpt)
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise RadonError(f"dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")
        dtype = DTYPES[dtype]
    if not (ckpt / "model.safetensors").is_file() and (ckpt / "training" / "shards").is_dir():
        raise RadonError(
            f"{ckpt}: a sharded training checkpoint without model.safetensors; "
            f"run `radon checkpoint consolidate {ckpt}` first"
        )
    model = build_from_state_dict(cfg, load_state_dict(ckpt / "model.safetensors"), str(ckpt), dtype)
    return model.to(device)
