"""How much the model's next-token distribution cares about each unit's output: diagonal Fisher, one pass.

A unit quantized to 4 bits moves its output ``y = x W`` by ``δy = x ΔW``. To second order the KL of the
model's next-token distribution that this causes is ``½ E[δyᵀ F δy]``, ``F`` the Fisher information of
that distribution with respect to ``y``. Kept to its diagonal, per output channel ``c``:
``KL ≈ ½ Σ_c F_c · E[δy_c²]``, the channel's mean squared gradient times its mean squared output error
(``sensitivity.estimate``; the error comes from GPTQ's Hessians, ``gptq.solve``). This is the Fisher
ranking of HAWQ (Dong et al., 2019) and SqueezeLLM (Kim et al., 2023) at the granularity of a unit.

``F_c`` is measured once for every unit: the PyTorch reference model is rebuilt from the artifact's own
float32 weights (zero-copy views of the arrays ``stream.Source`` reads; no checkpoint needed; its layers
read theirs as they run, so the pass holds about one layer, not the model: ``reference_model``), each
calibration sample runs forward, a next token is drawn at every position from the model's own
distribution (the true Fisher of the KL, not the empirical one of the text's tokens), and the backward
pass of the sum of their log-likelihoods leaves the gradient at every unit's output, squared and summed
per channel. The weights need no gradient, so only activations are kept for the backward pass.

``radon quantize`` runs the pass in a child process (``fisher_in_child``), so that torch never loads
into the quantize process: the later stages then hold the artifact's weights beside onnxruntime alone.
On SmolLM2-135M this and the streamed layers took the default int4's peak from 2.46x the fp32 weights
to 1.80x (docs/quantization.md, "Memory").
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from radon.errors import RadonError
from radon.export.quantize.graph import EMBED_UNIT, LM_HEAD_UNIT, Unit

log = logging.getLogger(__name__)

SEED = 1234  # the generator of the sampled next tokens


def reference_model(artifact: Path, manifest: Any, src: Any) -> Any:
    """The artifact's model as a ``HybridTransformerModel`` (eval mode) on its own float32 weights, with
    its decoder layers *streamed*: each layer reads its weights when it runs and drops them after.

    ``src`` is the artifact's ``stream.Source``: ``src.array(initializer)`` reads one weight, and its graph
    says which weights a ``MatMul`` reads as ``(in, out)`` (``stored_transposed``: by the graph, not by
    shape, since a square Linear has the same shape either way). The config comes from the artifact's
    ``config.json`` (written by every export, docs/export.md). The embedding, the final norm and the LM
    head stay loaded (views of those arrays, transposed back to PyTorch's ``(out, in)``); the layers stay
    on the meta device between runs. Each layer runs under non-reentrant activation checkpointing, so the
    backward pass recomputes it, reading its weights once more, instead of keeping its activations. The
    model computes what the loaded model computes, op for op, holding the embedding and one layer's
    weights instead of all of them (SmolLM2: the pass peaked at 765,856 KiB against 1,388,524 KiB loaded whole;
    docs/quantization.md, "Memory").
    """
    import torch

    from radon.checkpoint import check_tensors, meta_model
    from radon.hf_config import config_from_hf

    path = artifact / "config.json"
    if not path.is_file():
        raise RadonError(f"{artifact}: no config.json; the sensitivity estimate needs the model's config")
    cfg = config_from_hf(json.loads(path.read_text(encoding="utf-8")), str(path))
    model = meta_model(cfg)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_tensors(cfg, {k: shapes.get(k, ()) for k in manifest.weights}, str(artifact), model)

    transposed = stored_transposed(src.model)

    def tensor(name: str) -> torch.Tensor:
        onnx_name = manifest.weights[name][0]
        t = torch.from_numpy(src.array(onnx_name))
        t = t.T if onnx_name in transposed else t
        if tuple(t.shape) != shapes[name]:
            raise RadonError(f"fisher: {onnx_name} has shape {tuple(t.shape)}, {name} needs {shapes[name]}")
        return t

    layer_prefix = f"{model.active}.layers."
    model.load_state_dict(
        {k: tensor(k) for k in manifest.weights if not k.startswith(layer_prefix)}, strict=False, assign=True
    )
    model.tie_weights()
    for i, block in enumerate(model.stack.layers):
        _stream(block, f"{layer_prefix}{i}.", tensor)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def stored_transposed(model: Any) -> set[str]:
    """The initializers the graph multiplies as ``(in, out)``: a ``MatMul``'s B, a ``Gemm``'s B without
    ``transB``. PyTorch's Linear stores ``(out, in)``."""
    out = set()
    for node in model.graph.node:
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        if node.op_type == "MatMul" or (node.op_type == "Gemm" and not trans_b):
            out.add(node.input[1])
    return out


def _stream(block: Any, prefix: str, tensor: Callable[[str], Any]) -> None:
    """Make ``block`` read its weights (``tensor(prefix + name)``) for each run, checkpointed, and go
    back to the meta device after; the autograd graph keeps what its backward pass needs."""
    from torch.utils.checkpoint import checkpoint

    empty = dict(block.state_dict())  # the meta tensors
    forward = block.forward

    def run(*args: Any) -> Any:
        block.load_state_dict({n: tensor(prefix + n) for n in empty}, assign=True)
        try:
            return forward(*args)
        finally:
            block.load_state_dict(empty, assign=True)

    def streamed(x: Any, rope: Any, mask: Any, cache: Any, layer: int, need_weights: bool) -> Any:
        if cache is not None or need_weights:
            raise RadonError("fisher: the streamed reference model runs without a cache or attention weights")
        return checkpoint(run, x, rope, mask, None, layer, False, use_reentrant=False)

    block.forward = streamed


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
                # squared in float32, summed in float64: no float64 copy of the (tokens, vocab) gradient
                sq = g.detach().reshape(-1, g.shape[-1]).pow(2).sum(0, dtype=torch.float64)
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


CHILD = "radon.export.quantize.fisher"  # ``python -m CHILD JOB_DIR`` runs the pass (fisher_in_child)


def fisher_in_child(artifact: Path, names: list[str], samples: list[np.ndarray], *, untie: bool,
                    threads: int | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """``fisher_diagonals`` of the units ``names`` on the artifact's reference model, run in a child process.

    The quantize process then never imports torch: torch, its kernels and the pass's activations live and
    die with the child, and the stages after it (the Hessian passes, parity) hold the artifact's weights
    beside onnxruntime alone. The job goes through files (the samples as ``.npz``, the unit names as
    JSON), the result comes back as an ``.npz`` read without pickle. ``untie``: the parent's
    ``stream.Source`` untied the LM head (``Source.untie_lm_head``), so the unit names include ``lm_head``.
    """
    with tempfile.TemporaryDirectory(prefix="radon-fisher-") as tmp:
        job = Path(tmp)
        arrays: dict[str, Any] = {f"s{i}": np.asarray(s, np.int64) for i, s in enumerate(samples)}
        np.savez(job / "samples.npz", **arrays)
        spec = {"artifact": str(artifact), "units": names, "samples": len(samples),
                "untie": untie, "threads": threads}  # fmt: skip
        (job / "job.json").write_text(json.dumps(spec), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", CHILD, str(job)], capture_output=True, text=True)
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            raise RadonError(
                f"fisher: the Fisher pass failed: {lines[-1] if lines else f'exit {proc.returncode}'}"
            )
        with np.load(job / "fisher.npz", allow_pickle=False) as z:
            return {name: z[name] for name in z.files}


def _run_job(job: Path) -> None:
    from radon.export.quantize.graph import units_of
    from radon.export.quantize.stream import Source
    from radon.runtime.contract import read_manifest
    from radon.runtime.memory import compact_heap

    compact_heap()  # as in the parent: the pass's MiB-sized tensors go back to the OS when freed
    spec = json.loads((job / "job.json").read_text(encoding="utf-8"))
    artifact = Path(spec["artifact"])
    manifest = read_manifest(artifact, verify=False)  # the parent verified it
    src = Source(artifact / manifest.model_file)
    if spec["untie"]:
        src.untie_lm_head()
    wanted = set(spec["units"])
    units = [u for u in units_of(src.model) if u.name in wanted]
    if len(units) != len(wanted):
        raise RadonError(f"fisher: {artifact} has no unit {sorted(wanted - {u.name for u in units})[0]}")
    with np.load(job / "samples.npz", allow_pickle=False) as z:
        samples = [z[f"s{i}"] for i in range(spec["samples"])]
    model = reference_model(artifact, manifest, src)
    out: dict[str, Any] = fisher_diagonals(model, manifest, units, samples, threads=spec["threads"])
    np.savez(job / "fisher.npz", **out)


if __name__ == "__main__":
    try:
        _run_job(Path(sys.argv[1]))
    except RadonError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
