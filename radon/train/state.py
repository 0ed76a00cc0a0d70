"""Resumable training state inside a checkpoint folder, as safetensors + JSON (never pickle, never torch.save).

A checkpoint written by ``radon train`` holds, besides the model files of radon/checkpoint.py::

    training/optimizer.safetensors     AdamW's per-parameter tensors, "state.{i}.{exp_avg|exp_avg_sq|step}"
                                       and the RNG states ("rng.torch", "rng.cuda.{d}") as uint8 tensors
    training/state.json                the step, the recipe (TrainConfig), the optimizer's param groups,
                                       the GradScaler, the loss history and the data it was trained on
    training/token_counts.safetensors  "counts": (vocab,) int64 training-token counts (unigram baseline)

Everything is written into the temporary folder that ``save_checkpoint`` renames into place, so a crash
never leaves a half-written state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from radon.errors import IntegrityError, RadonError
from radon.integrity import read_json, write_json

STATE_DIR = "training"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
COUNTS_FILE = "token_counts.safetensors"
FORMAT = "radon-train-state/1"


def optimizer_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Flatten ``optimizer.state_dict()`` into named tensors plus JSON-ready param groups."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, per_param in sd["state"].items():
        for key, value in per_param.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{index}.{key}"] = t.detach().cpu().contiguous()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]
) -> None:
    """Inverse of ``optimizer_tensors``; raises IntegrityError if the state does not fit the model."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        if not name.startswith("state."):
            continue
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    fixed = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
    mine = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in fixed] != [len(g["params"]) for g in mine]:
        raise IntegrityError("the saved optimizer state does not match this model's parameters")
    try:
        optimizer.load_state_dict({"state": state, "param_groups": fixed})
    except (ValueError, KeyError) as exc:
        raise IntegrityError(f"the saved optimizer state does not load: {exc}") from None


def rng_tensors() -> dict[str, torch.Tensor]:
    out = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for d, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda.{d}"] = s
    return out


def restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])


def write_state(
    root: Path,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    token_counts: np.ndarray | None = None,
) -> None:
    """Write ``root/training/`` (``root`` is the checkpoint's temporary folder)."""
    from safetensors.torch import save_file

    folder = root / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tensors, groups = optimizer_tensors(optimizer)
    tensors.update(rng_tensors())
    save_file(tensors, str(folder / OPTIMIZER_FILE), metadata={"format": FORMAT})
    write_json(folder / STATE_FILE, {"format": FORMAT, **state, "param_groups": groups})
    if token_counts is not None:
        save_file({"counts": torch.from_numpy(token_counts.astype(np.int64))}, str(folder / COUNTS_FILE))


def write_state_json(root: Path, state: dict[str, Any], token_counts: np.ndarray | None = None) -> None:
    """``training/state.json`` and the token counts without the optimizer file: a sharded checkpoint keeps
    its optimizer state in ``training/shards/`` (radon/train/sharded.py)."""
    from safetensors.torch import save_file

    folder = root / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / STATE_FILE, {"format": FORMAT, **state})
    if token_counts is not None:
        save_file({"counts": torch.from_numpy(token_counts.astype(np.int64))}, str(folder / COUNTS_FILE))


def read_state(ckpt: Path) -> dict[str, Any]:
    """``training/state.json`` of a checkpoint; RadonError when the checkpoint cannot be resumed."""
    path = ckpt / STATE_DIR / STATE_FILE
    if not path.is_file():
        raise RadonError(
            f"{ckpt}: no training state ({STATE_DIR}/{STATE_FILE}); only checkpoints written by "
            "`radon train` can be resumed"
        )
    data = read_json(path, "training state")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IntegrityError(f"{path}: not a {FORMAT} file")
    return data


def read_optimizer_tensors(ckpt: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = ckpt / STATE_DIR / OPTIMIZER_FILE
    if not path.is_file():
        raise IntegrityError(f"{path}: missing (the optimizer state)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise IntegrityError(f"{path}: not a readable safetensors file: {exc}") from None


def read_token_counts(ckpt: Path) -> np.ndarray | None:
    """(vocab,) int64 counts of the tokens the checkpoint was trained on, or None if not recorded."""
    from safetensors.numpy import load_file

    path = ckpt / STATE_DIR / COUNTS_FILE
    if not path.is_file():
        return None
    return load_file(str(path))["counts"]
