"""GPTQ for the 4-bit Linears: the same ``MatMulNBits`` blocks as round-to-nearest, with rounding chosen
on calibration text.

Round-to-nearest rounds every weight on its own. GPTQ (Frantar et al., 2022, "GPTQ: Accurate
Post-Training Quantization for Generative Pre-trained Transformers") rounds the input rows of a
Linear one at a time and spreads each row's rounding error over the rows not yet rounded, weighted by
the inverse of ``H = X^T X`` (the layer's input activations on calibration text), so that the
layer's *outputs* on that text move as little as possible. The result is stored exactly as onnxruntime's
symmetric round-to-nearest stores it: 4-bit values with an implicit zero point of 8, one float scale per
block of ``block_size`` inputs of an output column (``scale = the block's largest-magnitude weight / -8``,
onnxruntime's rule, taken on the error-updated weights when the block starts). So the artifact runs on
the same kernel at the same speed; only the rounding differs.

onnxruntime's quantizer builds the nodes (``MatMulNBitsQuantizer``, round-to-nearest), then ``apply``
overwrites each GPTQ unit's ``<weight>_Q4`` and ``<weight>_scales`` initializers. onnxruntime's own GPTQ
(``neural_compressor.gptq_quantize``) is not used: on the symmetric scheme it re-derives every block's
scale from the already rounded weights (``2 * max / 15`` instead of the scale it rounded with), which
rescales each block by 14/15 or 16/15.

The Hessians come from the float model's activations (every Linear's input, on the prefill of each
calibration sample), not from a partly quantized model. One pass over the text serves every unit whose
Hessians fit in ``HESSIAN_BYTES`` together (float32, K x K per distinct input; SmolLM2-135M's are 405 MB);
a larger model takes more passes instead of more memory (a 7B Mistral's would need 32 GB at once).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from radon.errors import RadonError
from radon.export.quantize.graph import Unit

log = logging.getLogger(__name__)

DAMP = 0.01  # fraction of the mean Hessian diagonal added to it (the paper's 1%)
LAZY_ROWS = 128  # rows rounded between whole-matrix updates (the lazy batch); every block size divides it
# Inputs per band: a Linear wider than this (a large model's down projection) is solved as independent
# bands of about equal width, each with its own diagonal block of the Hessian, so that inverting the
# Hessian costs K x BAND² instead of K³ and the stage's time stays linear in the parameter count; the
# error of a row is then compensated within its band only (docs/quantization.md, "GPTQ's time").
# Every layer of SmolLM2-135M and of 7B-class attention projections fits one band.
BAND = 4096
ZERO_POINT = 8  # symmetric 4-bit: stored values 0..15 stand for -8..7
HESSIAN_BYTES = 1 << 29  # float32 Hessians held at once; past this, another pass over the calibration text
# radon quantize's share: Hessians held at once per byte of fp32 weights, beside the onnxruntime session that
# maps those weights (docs/export.md, "Memory"); the number of passes stays about the same at any size (a
# layer's Hessians grow with its weights), so time stays linear. SmolLM2-135M's 404 MB of Hessians make
# two passes of 202 MB at 0.45 (three of 135 MB at 0.3 until 2026-12-07: the passes run 15 + 30 layers
# instead of 10 + 20 + 30, 9 s less of the default INT4's 3 minutes, for a peak 27 MB higher)
HESSIAN_SHARE = 0.45
# unit -> (packed (N, K/bs, bs/2) uint8, scales (N, K/bs) float32[, zero points (N, ceil(K/bs/2)) uint8])
Solved = dict[str, tuple[np.ndarray, ...]]


# ---- storage: onnxruntime's MatMulNBits layout ---------------------------------------------------------
def pack(q: np.ndarray, block_size: int) -> np.ndarray:
    """Values ``q`` (K, N) in 0..15 as ``MatMulNBits``' B: (N, K / block_size, block_size / 2) uint8, two
    values a byte, the lower input index in the low nibble."""
    k, n = q.shape
    blocks = q.T.reshape(n, k // block_size, block_size // 2, 2).astype(np.uint8)
    return blocks[..., 0] | (blocks[..., 1] << 4)


def unpack(b: np.ndarray) -> np.ndarray:
    """``pack``'s inverse: B (N, blocks, bytes) -> values (K, N) in 0..15."""
    n = b.shape[0]
    return np.stack([b & 15, b >> 4], axis=-1).reshape(n, -1).T


def dequantize(b: np.ndarray, scales: np.ndarray, block_size: int) -> np.ndarray:
    """The float weights (K, N) that B and its scales (N, K / block_size) stand for."""
    q = unpack(b).astype(np.float32) - ZERO_POINT
    return q * np.repeat(scales.T, block_size, axis=0)


def block_scale(rows: np.ndarray) -> np.ndarray:
    """onnxruntime's symmetric scale of one block per column: its largest-magnitude value over -8 (so that
    value is stored exactly, as -8); 1 for an all-zero block."""
    idx = np.abs(rows).argmax(axis=0)
    peak = rows[idx, np.arange(rows.shape[1])]
    return np.where(peak != 0, peak / -ZERO_POINT, 1.0).astype(np.float32)


def round_to(w: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Stored values (0..15) of weights ``w`` at ``scale`` (broadcast), as onnxruntime rounds them."""
    return np.clip(np.rint(w / scale) + ZERO_POINT, 0, 15)


def rtn(weight: np.ndarray, block_size: int, symmetric: bool = True) -> np.ndarray:
    """Round-to-nearest 4-bit blocks of ``block_size`` along K of ``weight`` (K, N), dequantized: what
    onnxruntime's quantizer stores (symmetric: ``block_scale``; asymmetric: the block's range, widened to
    hold 0, over 15 levels with an integer zero point)."""
    k, n = weight.shape
    blocks = weight.reshape(k // block_size, block_size, n)
    if symmetric:
        scale = np.stack([block_scale(b) for b in blocks])[:, None]
        return ((round_to(blocks, scale) - ZERO_POINT) * scale).reshape(k, n).astype(np.float32)
    lo = np.minimum(blocks.min(1, keepdims=True), 0.0)
    hi = np.maximum(blocks.max(1, keepdims=True), 0.0)
    scale = np.where(hi > lo, (hi - lo) / 15.0, 1.0)
    zp = np.clip(np.rint(-lo / scale), 0, 15)
    q = np.clip(np.rint(blocks / scale) + zp, 0, 15)
    return ((q - zp) * scale).reshape(k, n).astype(np.float32)


# ---- the algorithm -----------------------------------------------------------------------------------
def gptq(
    weight: np.ndarray, hessian: np.ndarray, block_size: int, damp: float = DAMP
) -> tuple[np.ndarray, np.ndarray]:
    """GPTQ of one Linear stored (K inputs, N outputs) with ``hessian`` = X^T X (K, K) of its inputs, in
    symmetric blocks. Returns the stored values (K, N) uint8 in 0..15 and the scales (K / block_size, N)."""
    q, scales, _ = gptq_blocks(weight, hessian, block_size, damp, symmetric=True)
    return q, scales


def asymmetric_block(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime's asymmetric 4-bit block per column: the range of ``rows`` widened to hold 0, over 15
    levels, and the integer zero point that puts 0 on a level. Returns (scale, zero point) per column."""
    lo = np.minimum(rows.min(0), 0.0)
    hi = np.maximum(rows.max(0), 0.0)
    scale = np.where(hi > lo, (hi - lo) / 15.0, 1.0).astype(np.float32)
    return scale, np.clip(np.rint(-lo / scale), 0, 15)


SEARCH_SHRINK = np.linspace(1.0, 0.7, 13)  # the fractions of a block's range tried by ``searched_block``


def searched_block(
    rows: np.ndarray, importance: np.ndarray, symmetric: bool
) -> tuple[np.ndarray, np.ndarray]:
    """A block's scale (and zero point) per column chosen by weighted squared error instead of taken from
    its range: the range is shrunk by each of ``SEARCH_SHRINK``, the block rounded at each, and the one
    whose ``importance``-weighted error (one weight per row, the Hessian's diagonal: how much each input
    fires) is least kept, as llama.cpp's k-quants and imatrix do. Clipping a rare large weight buys finer
    steps for all the others. Asymmetric blocks shrink their two ends one after the other (coordinate
    descent, per column: the top end with the bottom kept, then the bottom at the top's best), 25 trials
    where the 7 x 7 grid of both ends took 49 (on SmolLM2: gate KL 0.076 against 0.074, 40 s less).
    Returns (scale, zero point) per column."""
    imp = importance[:, None]
    best_err = np.full(rows.shape[1], np.inf)
    best_scale = best_zero = np.ones(rows.shape[1], np.float32)

    def trial(scale: np.ndarray, zero: np.ndarray) -> np.ndarray:
        nonlocal best_err, best_scale, best_zero
        q = np.clip(np.rint(rows / scale) + zero, 0, 15)
        err = (imp * (rows - (q - zero) * scale) ** 2).sum(0)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_scale = np.where(better, scale, best_scale)
        best_zero = np.where(better, zero, best_zero)
        return better

    if symmetric:
        base = block_scale(rows)
        for c in SEARCH_SHRINK:
            trial(base * c, np.full_like(base, ZERO_POINT))
        return best_scale.astype(np.float32), best_zero
    lo = np.minimum(rows.min(0), 0.0)
    hi = np.maximum(rows.max(0), 0.0)

    def ends(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        span = hi * b - lo * a
        scale = np.where(span > 0, span / 15.0, 1.0).astype(np.float32)
        return scale, np.clip(np.rint(-lo * a / scale), 0, 15)

    one = np.ones_like(hi)
    top = one.copy()
    for c in SEARCH_SHRINK:  # the top end, the bottom at its range
        top = np.where(trial(*ends(one, one * c)), c, top)
    for c in SEARCH_SHRINK[1:]:  # then the bottom end, the top at its best
        trial(*ends(one * c, top))
    return best_scale.astype(np.float32), best_zero


def gptq_blocks(
    weight: np.ndarray,
    hessian: np.ndarray,
    block_size: int,
    damp: float = DAMP,
    symmetric: bool = True,
    search: bool = False,
    act_order: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """GPTQ in symmetric blocks (zero point 8, ``block_scale``) or asymmetric ones (``asymmetric_block``,
    a 4-bit zero point per block, ``MatMulNBits``' fourth input), each block's scale taken on the
    error-updated weights when the block starts. Returns values (K, N) in 0..15, scales
    (K / block_size, N) and, asymmetric, zero points (K / block_size, N) in 0..15.

    ``act_order``: the inputs are rounded in order of decreasing Hessian diagonal (the paper's
    "act-order": the inputs that fire most first, while the most inputs remain to absorb their error),
    with every block's scale fixed beforehand on the original weights ("static groups", as AutoGPTQ's
    ``static_groups``), so that the blocks stay contiguous in the stored order and the kernel is the same."""
    k, n = weight.shape
    if k % block_size or LAZY_ROWS % block_size:
        raise RadonError(f"gptq: block size {block_size} must divide the input dimension {k} and {LAZY_ROWS}")
    bands = band_edges(k)
    if len(bands) > 1:  # independent problems, one per band of inputs (``BAND``)
        parts = [
            gptq_blocks(weight[a:b], hessian[a:b, a:b], block_size, damp, symmetric, search, act_order)
            for a, b in bands
        ]
        zeros = [z for _, _, z in parts if z is not None]
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            (np.concatenate(zeros) if zeros else None),
        )
    w = weight.astype(np.float32, copy=True)
    h = hessian.astype(np.float64, copy=True)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[dead] = 0.0  # an input that never fires: its weights cannot matter
    h[np.diag_indices(k)] += damp * np.mean(np.diag(h))
    importance = np.diag(h).astype(np.float32)  # searched scales weigh each input by how much it fires

    def choose(rows: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:  # a block's scale, zero point
        if search:
            return searched_block(rows, importance[first : first + block_size], symmetric)
        if symmetric:
            return block_scale(rows), np.full(n, ZERO_POINT, np.float32)
        return asymmetric_block(rows)

    q = np.zeros((k, n), np.uint8)
    scales = np.zeros((k // block_size, n), np.float32)
    zeros = np.full((k // block_size, n), ZERO_POINT, np.float32)
    if act_order:  # static blocks: every scale from the original weights, before any row moves
        order = np.argsort(-np.diag(h), kind="stable")
        for j, first in enumerate(range(0, k, block_size)):
            scales[j], zeros[j] = choose(w[first : first + block_size], first)
        w, h = w[order], h[np.ix_(order, order)]
    else:
        order = np.arange(k)
    try:  # the upper Cholesky factor of H^-1: row i holds what rounding input i does to the inputs after it
        hinv = np.linalg.cholesky(np.linalg.inv(h)).T.astype(np.float32)
    except np.linalg.LinAlgError:
        raise RadonError(
            "gptq: the calibration Hessian is not positive definite; use more --samples"
        ) from None
    for start in range(0, k, LAZY_ROWS):
        stop = min(start + LAZY_ROWS, k)
        part = w[start:stop]  # a view: updated in place as rows are rounded
        errors = np.zeros_like(part)
        local = hinv[start:stop, start:stop]
        for i in range(stop - start):
            row = order[start + i]  # the stored input this is
            j = row // block_size
            if not act_order and row % block_size == 0:  # the block's scale on its error-updated rows
                scales[j], zeros[j] = choose(part[i : i + block_size], row)
            s, z = scales[j], zeros[j]
            q[row] = np.clip(np.rint(part[i] / s) + z, 0, 15)
            err = (part[i] - (q[row].astype(np.float32) - z) * s) / local[i, i]
            part[i + 1 :] -= np.outer(local[i, i + 1 :], err)
            errors[i] = err
        w[stop:] -= hinv[start:stop, stop:].T @ errors
    return q, scales, None if symmetric else zeros.astype(np.uint8)


def band_edges(k: int, band: int | None = None) -> list[tuple[int, int]]:
    """The input rows ``[start, stop)`` that GPTQ solves together: one band up to ``BAND`` inputs, else
    the fewest bands of about equal width, each a multiple of ``LAZY_ROWS`` (so of every block size)."""
    band = BAND if band is None else band
    if k <= band or k % LAZY_ROWS:
        return [(0, k)]
    count = -(-k // band)
    width = -(-k // count // LAZY_ROWS) * LAZY_ROWS
    return [(a, min(a + width, k)) for a in range(0, k, width)]


def pack_zero_points(zeros: np.ndarray) -> np.ndarray:
    """Zero points (blocks, N) in 0..15 as ``MatMulNBits`` stores them: (N, ceil(blocks / 2)) uint8, the
    lower block in the low nibble."""
    z = zeros.T.astype(np.uint8)
    if z.shape[1] % 2:
        z = np.pad(z, ((0, 0), (0, 1)))
    return z[:, 0::2] | (z[:, 1::2] << 4)


def dequantize_asymmetric(
    b: np.ndarray, scales: np.ndarray, zero_points: np.ndarray, block_size: int
) -> np.ndarray:
    """The float weights (K, N) that asymmetric B, its scales (N, blocks) and packed zero points stand for."""
    q = unpack(b).astype(np.float32)
    z = np.stack([zero_points & 15, zero_points >> 4], -1).reshape(zero_points.shape[0], -1)[
        :, : scales.shape[1]
    ]
    return (q - np.repeat(z.T, block_size, axis=0)) * np.repeat(scales.T, block_size, axis=0)


# ---- Hessians from calibration text ------------------------------------------------------------------
def hessians(model: Any, units: list[Unit], manifest: Any, samples: list[np.ndarray],
             threads: int | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """X^T X (float32) of every unit's MatMul input over the prefill of each sample, keyed by the input's
    name. ``model``: the float ModelProto, or a ``stream.Source`` (its weights streamed to the probe's file).

    The probe graph ends at those inputs (``graph.probe``): a pass over the first layers runs and maps
    only them, and no pass runs the LM head's MatMul."""
    import onnxruntime as ort

    from radon.export.quantize.graph import probe as probe_graph
    from radon.export.quantize.reader import prefill_feed_for
    from radon.runtime.session import session_options

    if not samples:
        raise RadonError("gptq: no calibration samples")
    graph = _graph_of(model)
    consumers = {n.name: n for n in graph.graph.node}
    inputs = sorted({consumers[u.node].input[0] for u in units})
    probe = probe_graph(graph, inputs)
    sums: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="radon-gptq-") as tmp:
        path = Path(tmp) / manifest.model_file
        if isinstance(model, onnx.ModelProto):
            onnx.save_model(probe, str(path))
        else:
            model.write(Path(tmp), manifest.model_file, model=probe)
        del probe
        session = ort.InferenceSession(str(path), session_options(threads, prepacking=False),
                                       providers=["CPUExecutionProvider"])  # fmt: skip
        wanted = {i.name for i in session.get_inputs()}  # the probe reads only its layers' pasts
        for ids in samples:
            feed = {k: v for k, v in prefill_feed_for(manifest, ids).items() if k in wanted}
            acts = session.run(inputs, feed)
            for name, x in zip(inputs, acts):
                x = x.reshape(-1, x.shape[-1]).astype(np.float32)
                if name in sums:
                    sums[name] += x.T @ x
                else:
                    sums[name] = x.T @ x
            del acts
        del session
    return sums


def _graph_of(model: Any) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else model.model


def _reader(model: Any) -> Any:
    """name -> float32 array of a weight, from a ModelProto or a ``stream.Source``."""
    if isinstance(model, onnx.ModelProto):
        weights = {t.name: t for t in model.graph.initializer}
        return lambda name: numpy_helper.to_array(weights[name])
    return model.array


def output_error(weight: np.ndarray, approx: np.ndarray, hessian: np.ndarray, tokens: int) -> np.ndarray:
    """(N,) float64: each output channel's mean squared error over the calibration tokens when the
    weights (K, N) become ``approx``: ``diag(ΔWᵀ H ΔW) / tokens``, H = XᵀX (K, K); on inputs wider than
    ``BAND``, over GPTQ's bands (``band_edges``: H's diagonal blocks, each band's own error), so that its
    cost too stays linear in the parameter count."""
    delta = (approx - weight).astype(np.float32)
    out = np.zeros(delta.shape[1], np.float64)
    for a, b in band_edges(delta.shape[0]):
        out += ((hessian[a:b, a:b].astype(np.float32) @ delta[a:b]) * delta[a:b]).sum(0, dtype=np.float64)
    return out / max(tokens, 1)


def split_passes(groups: list[list[Unit]], sizes: list[int], budget: int) -> list[list[Unit]]:
    """``groups`` (in graph order) cut into as few contiguous passes as ``budget`` allows, of about equal
    Hessian bytes: ``ceil(total / budget)`` passes, cut where the running total crosses each multiple of
    ``total / passes``. A pass holds at most ``budget`` plus one group's Hessian (SmolLM2-135M: three
    passes of 135 MB against a budget of 134.5 MB, where filling each pass to the budget took a fourth
    pass for the LM head's 1.3 MB). Passes are probes that end at their last group's layer (``hessians``),
    so the early ones are also the cheap ones."""
    total = sum(sizes)
    if not groups:
        return []
    count = max(1, -(-total // max(budget, 1)))
    passes: list[list[Unit]] = [[] for _ in range(count)]
    running = 0
    for group, size in zip(groups, sizes):
        index = min(count - 1, running * count // total) if total else 0
        passes[index].extend(group)
        running += size
    return [p for p in passes if p]


def solve(model: Any, units: list[Unit], manifest: Any, samples: list[np.ndarray], block_size: int,
          threads: int | None = None, progress: Any = None, budget: int = HESSIAN_BYTES,
          symmetric: bool = True, errors: dict[str, np.ndarray] | None = None,
          round_weights: bool = True, search: bool = False, act_order: bool = False,
          errors_only: frozenset[str] = frozenset()) -> Solved:  # fmt: skip
    """GPTQ's stored blocks for every MatMul unit of ``units``, from the float ``model`` (a ModelProto or
    a ``stream.Source``, whose weights are read one at a time).

    Units are grouped by their input (units reading one tensor share its Hessian), and the groups into
    passes of about ``budget`` bytes of Hessians (``split_passes``); each pass runs the calibration text
    once, through the layers it needs.
    ``symmetric`` False: asymmetric blocks (``gptq_blocks``), with zero points. ``search``: each block's
    scale chosen by weighted error (``searched_block``). ``act_order``: rows rounded by decreasing Hessian
    diagonal, block scales fixed first (``gptq_blocks``). ``errors``, when given,
    receives each unit's per-channel mean squared output error on that text (``output_error``), what
    ``sensitivity`` weighs by the Fisher information. ``round_weights`` False: no GPTQ, only the errors of
    round-to-nearest blocks (``--algorithm rtn``; ``hqq``'s own scales are not modelled). ``errors_only``:
    units that are only measured that way and not solved, because the recipe keeps them wider whatever
    their estimate says (``sensitivity.KEEP_FIRST``); the LM head's 4-bit solve alone took 10 of 112 s
    on SmolLM2-135M.
    """
    graph = _graph_of(model)
    consumers = {n.name: n for n in graph.graph.node}
    by_input: dict[str, list[Unit]] = {}
    for u in units:
        if u.op_type == "MatMul":
            by_input.setdefault(consumers[u.node].input[0], []).append(u)
    position = {n.name: i for i, n in enumerate(graph.graph.node)}
    groups = sorted(by_input.values(), key=lambda g: min(position[u.node] for u in g))
    passes = split_passes(groups, [g[0].shape[0] ** 2 * 4 for g in groups], budget)
    array = _reader(model)
    out: Solved = {}
    tokens = int(sum(s.size for s in samples))
    for part in [p for p in passes if p]:
        hs = hessians(model, part, manifest, samples, threads)
        for u in part:
            w = array(u.weight)
            h = hs[consumers[u.node].input[0]]
            if round_weights and u.name not in errors_only:
                q, scales, zeros = gptq_blocks(
                    w, h, block_size, symmetric=symmetric, search=search, act_order=act_order
                )
                blocks = (pack(q, block_size), np.ascontiguousarray(scales.T))
                out[u.name] = blocks if zeros is None else (*blocks, pack_zero_points(zeros))
                zp = ZERO_POINT if zeros is None else np.repeat(zeros, block_size, 0)
                approx = (q.astype(np.float32) - zp) * np.repeat(scales, block_size, 0)
            else:
                approx = rtn(w, block_size, symmetric)
            if errors is not None:
                errors[u.name] = output_error(w, approx, h, tokens)
            del w, approx
            if progress is not None:
                progress(u.name)
        del hs
    log.info("gptq: %d units from %d calibration samples in %d passes", len(out), len(samples), len(passes))
    return out


def apply(model: onnx.ModelProto, units: list[Unit], solved: Solved) -> None:
    """Overwrite the round-to-nearest blocks onnxruntime's quantizer wrote for ``units`` with GPTQ's, in place."""
    nodes = {n.input[1]: n for n in model.graph.node if n.op_type == "MatMulNBits"}
    inits = {t.name: t for t in model.graph.initializer}
    for u in units:
        node = nodes.get(f"{u.weight}_Q4")
        if node is None or u.name not in solved:
            raise RadonError(f"gptq: no 4-bit MatMulNBits for {u.name} (please report)")
        blocks = solved[u.name]
        if len(blocks) != len(node.input) - 1:
            raise RadonError(
                f"gptq: {u.name}'s zero points differ between the graph and the solve (please report)"
            )
        for name, value in zip(node.input[1:], blocks):
            old = inits[name]
            if int(np.prod(old.dims)) == value.size and len(old.dims) != value.ndim:
                value = value.reshape(tuple(old.dims))  # the quantizer may store zero points flat
            if tuple(old.dims) != value.shape:
                raise RadonError(
                    f"gptq: {name} is {tuple(old.dims)} in the graph, {value.shape} solved (please report)"
                )
            old.CopyFrom(numpy_helper.from_array(value, name))
