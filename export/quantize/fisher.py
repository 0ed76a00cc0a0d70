"""How much the model's next-token distribution cares about each unit's output: diagonal Fisher, one pass.

A unit quantized to 4 bits moves its output ``y = x W`` by ``δy = x ΔW``. To second order the KL of the
model's next-token distribution that this causes is ``½ E[δyᵀ F δy]``, ``F`` the Fisher information of
that distribution with respect to ``y``. Kept to its diagonal, per output channel ``c``:
``KL ≈ ½ Σ_c F_c · E[δy_c²]``, the channel's mean squared gradient times its mean squared output error
(``sensitivity.estimate``; the error comes from GPTQ's Hessians, ``gptq.solve``). This is the Fisher
ranking of HAWQ (Dong et al., 2019) and SqueezeLLM (Kim et al., 2023) at the granularity of a unit.

``F_c`` is measured once for every unit: the PyTorch reference model is rebuilt from the artifact's own
float32 weights (zero-copy views of the arrays ``stream.Source`` reads; no checkpoint needed), each
calibration sample runs forward, a next token is drawn at every position from the model's own
distribution (the true Fisher of the KL, not the empirical one of the text's tokens), and the backward
pass of the sum of their log-likelihoods leaves the gradient at every unit's output, squared and summed
per channel. The weights need no gradient, so only activations are kept for the backward pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from radon.errors import RadonError
from radon.export.quantize.graph import EMBED_UNIT, LM_HEAD_UNIT, Unit

log = logging.getLogger(__name__)

SEED = 1234  # the generator of the sampled next tokens


def reference_model(artifact: Path, manifest: Any, array: Callable[[str], np.ndarray]) -> Any:
    """The artifact's model as a ``HybridTransformerModel`` (eval mode) on its own float32 weights.

    ``array(initializer)`` reads one weight (``stream.Source.array``); the config comes from the
    artifact's ``config.json`` (written by every export, docs/export.md). The tensors are views of those
    arrays, transposed back where the graph stores a Linear as ``(in, out)``.
    """
    import torch

    from radon.checkpoint import build_from_state_dict, meta_model
    from radon.hf_config import config_from_hf

    path = artifact / "config.json"
    if not path.is_file():
        raise RadonError(f"{artifact}: no config.json; the sensitivity estimate needs the model's config")
    cfg = config_from_hf(json.loads(path.read_text(encoding="utf-8")), str(path))
    shapes = {k: tuple(v.shape) for k, v in meta_model(cfg).state_dict().items()}
    sd = {}
    for ckpt_name, onnx_names in manifest.weights.items():
        t = torch.from_numpy(array(onnx_names[0]))
        want = shapes.get(ckpt_name)
        sd[ckpt_name] = t.T if want is not None and t.dim() == 2 and tuple(t.shape) != want else t
    model = build_from_state_dict(cfg, sd, str(artifact))
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def module_names(model: Any, manifest: Any, units: list[Unit]) -> dict[str, str]:
    """unit -> the ``nn.Module`` path that computes it (``mistral.layers.3.attn.qkv``, ``lm_head``)."""
    by_weight = {names[0]: ckpt for ckpt, names in manifest.weights.items()}
    out = {}
    for u in units:
        if u.name == LM_HEAD_UNIT:
            out[u.name] = "lm_head"
        else:
            out[u.name] = by_weight[u.weight].removesuffix(".weight")
    modules = dict(model.named_modules())
    missing = [m for m in out.values() if m not in modules]
    if missing:
        raise RadonError(f"fisher: the reference model has no module {missing[0]} (please report)")
    return out


def fisher_diagonals(
    model: Any,
    manifest: Any,
    units: list[Unit],
    samples: list[np.ndarray],
    progress: Any = None,
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """unit -> (out_features,) float64: the mean over token positions of the squared gradient of the
    sampled tokens' log-likelihood at each output channel of the unit (the embedding: each hidden unit
    of the looked-up row)."""
    import torch

    names = module_names(model, manifest, units)
    sums: dict[str, torch.Tensor] = {}
    handles = []

    def watch(unit: str, is_embedding: bool) -> Callable[..., Any]:
        def forward_hook(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            if is_embedding:  # the first activation: from here on everything is differentiable
                output = output.detach().requires_grad_(True)

            def grad_hook(g: torch.Tensor) -> None:
                sq = g.detach().double().pow(2).reshape(-1, g.shape[-1]).sum(0)
                sums[unit] = sums[unit] + sq if unit in sums else sq

            output.register_hook(grad_hook)
            return output

        return forward_hook

    modules = dict(model.named_modules())
    embed_module = modules["embed_tokens"]
    if not any(u.name == EMBED_UNIT for u in units):
        handles.append(embed_module.register_forward_hook(lambda _m, _i, o: o.detach().requires_grad_(True)))
    for u in units:
        handles.append(modules[names[u.name]].register_forward_hook(watch(u.name, u.name == EMBED_UNIT)))
    generator = torch.Generator().manual_seed(SEED)
    positions = 0
    before = torch.get_num_threads()
    if threads:  # torch's threads spin at each barrier: on a loaded host, fewer are faster
        torch.set_num_threads(threads)
    try:
        with torch.enable_grad():
            for ids in samples:
                x = torch.from_numpy(np.asarray(ids, np.int64))[None]
                logits = model(x, use_cache=False).logits[0].float()
                logp = torch.log_softmax(logits, -1)
                drawn = torch.multinomial(logp.detach().exp(), 1, generator=generator)[:, 0]
                logp.gather(-1, drawn[:, None]).sum().backward()
                positions += x.shape[1]
                if progress is not None:
                    progress()
    finally:
        for h in handles:
            h.remove()
        torch.set_num_threads(before)
    return {u: (s / max(positions, 1)).numpy() for u, s in sums.items()}
