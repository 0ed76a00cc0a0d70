"""Parity: how far a candidate (an ONNX artifact now; quantized and TensorRT ones later) is from the reference.

Modelled on llama.cpp's ``perplexity --kl-divergence`` (KL, top-1 agreement, perplexity of both and its
relative change) and Polygraphy's comparisons (max and mean absolute difference, a histogram of the
differences). Both models see the same tokens; the candidate runs through the same session wrapper the
runtime uses. Greedy continuations are compared tie-aware: the candidate's continuation is scored by
the reference, and a token counts as agreeing when its reference logit is within ``tie_margin`` of the
reference's best, so a near-tie resolved the other way is not mistaken for a wrong graph.

Each precision has named thresholds with a reason; ``gate`` raises ``QualityGateError`` (exit 1).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from radon.errors import QualityGateError, RadonError
from radon.export.parity_data import chunks, greedy_prompts, load_tokenizer, token_streams
from radon.host import host_summary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Thresholds:
    """Limits one precision must meet; ``None`` means reported but not gated."""

    max_abs_logit: float | None
    mean_abs_logit: float | None
    min_top1: float  # fraction of *decisive* positions whose argmax agrees (see decisive_margin)
    max_kl: float  # mean KL(reference || candidate) per token, nats
    max_ppl_change: float  # |ppl_candidate / ppl_reference - 1|
    min_greedy: float  # tie-aware greedy agreement, fraction of generated tokens
    tie_margin: float  # logit gap under which two tokens count as tied
    reason: str
    # A position is decisive when the reference's best logit leads its runner-up by at least this many
    # nats; top-1 agreement is gated there only. Near-ties flip with the last bits of a kernel's
    # arithmetic (AVX2 against AVX-512/VNNI/AMX), so top-1 over every position of a low-confidence model
    # moves between hosts and seeds while KL does not (docs/quantization.md, "Gates on every host").
    decisive_margin: float = 1.0


# fp32: the same arithmetic in another order; anything above float32 rounding is a lowering bug.
FP32 = Thresholds(1e-3, 1e-4, 0.999, 1e-5, 1e-4, 1.0, 1e-3,
                  "float32 on both sides: only summation order differs (~1e-6 relative), so 1e-3 absolute "
                  "catches a wrong mask, rotary or weight while leaving room for long fused reductions; top-1 counts "
                  "positions whose best logit leads by 2e-3, twice the |d logit| allowed", decisive_margin=2e-3)  # fmt: skip
# fp16: weights and activations keep 11 significant bits; logits move by ~1e-2 on unit-scale logits.
FP16 = Thresholds(1.0, 5e-2, 0.98, 1e-3, 1e-2, 0.95, 5e-2,
                  "float16 weights and activations: ~1e-3 relative error per layer; max |d| is heavy-tailed, "
                  "so it only guards against a broken graph (> 1 logit), while KL, top-1 and perplexity gate "
                  "quality; top-1 counts positions whose best logit leads by 0.1", decisive_margin=0.1)  # fmt: skip
# Quantized precisions. KL is the primary gate; top-1 is gated where the reference is decisive (its best
# logit leads by >= 1 nat), perplexity guards the scale of the whole distribution; max/mean |d logit| are
# reported but not gated (a quantized logit error is large where the softmax does not care). Measured on
# the demo model on both host kinds and on SmolLM2-135M (docs/quantization.md, "Gates on every host").
INT8 = Thresholds(None, None, 0.98, 2e-2, 3e-2, 0.95, 0.5,
                  "static Q/DQ (per-tensor int8 activations, for TensorRT): KL <= 0.02, top-1 >= 0.98 where the "
                  "reference leads by 1 nat, perplexity within 3%")  # fmt: skip
INT8_DYNAMIC = Thresholds(None, None, 0.99, 2e-2, 3e-2, 0.95, 0.5,
                          "the CPU default int8 (Q8_0-like blocks of 32, activations per block at run time): KL <= "
                          "0.02 (SmolLM2-135M: 0.005-0.008 per language, the demo model: 3e-4), top-1 >= 0.99 where "
                          "the reference leads by 1 nat (1.000 measured), perplexity within 3% (SmolLM2: 1.3% on "
                          "Russian); greedy agreement with a 0.5-logit tie margin")  # fmt: skip
INT4 = Thresholds(None, None, 0.95, 5e-2, 5e-2, 0.85, 1.0,
                  "block-wise 4-bit weights (llama.cpp Q4_K_M costs KL 0.032, 92% top-1 on Llama-3-8B): KL <= 0.05, "
                  "top-1 >= 0.95 where the reference leads by 1 nat, perplexity within 5%; the default recipe "
                  "meets it with mixed precision (auto-mixed KL budget 0.01), greedy agreement with a 1-logit "
                  "tie margin")  # fmt: skip
THRESHOLDS: dict[str, Thresholds] = {
    "fp32": FP32,
    "fp16": FP16,
    "int8": INT8,
    "int8-dynamic": INT8_DYNAMIC,
    "int4": INT4,
}

DEFAULT_CONTEXT = 256  # tokens per forward pass for perplexity
DEFAULT_MAX_TOKENS = 1024  # tokens per held-out text
DEFAULT_GREEDY_TOKENS = 16
# positions whose (vocab,) rows the accumulator works on at once: its dozen float64 temporaries are
# ROWS_PER_BLOCK x vocab x 8 bytes each (3 MB at vocab 49,152), not a whole chunk's (256 positions: 100 MB each)
ROWS_PER_BLOCK = 8
HIST_EDGES = np.concatenate([[0.0], np.logspace(-8, 2, 41)])  # |d logit|: an exact-zero bin, then log bins


class Candidate(Protocol):
    """What parity needs from a candidate: full-sequence logits and a greedy loop."""

    description: str
    precision: str

    def logits(self, ids: np.ndarray) -> np.ndarray: ...  # (T,) int64 -> (T, vocab) float32

    def greedy(self, ids: np.ndarray, new_tokens: int) -> np.ndarray: ...  # (T,) -> (new_tokens,)


class OnnxCandidate:
    """An ONNX artifact run by ``radon.runtime.session.DecoderSession`` (rolling buffer on)."""

    def __init__(
        self,
        artifact: str | Path,
        threads: int | None = None,
        session: Any = None,
        manifest: Any = None,
        name: str | None = None,
    ) -> None:
        """``name``: what reports call it (default: the folder's name; a quantizer's temporary folder
        passes the output's)."""
        from radon.runtime.session import DecoderSession

        self.session = session or DecoderSession(artifact, threads=threads, manifest=manifest)
        m = self.session.manifest
        self.precision = m.precision
        self.description = f"{name or Path(artifact).name} ({m.lowering}, {m.precision}, onnxruntime)"

    def logits(self, ids: np.ndarray) -> np.ndarray:
        return self.session.step(ids[None]).logits[0]

    def greedy(self, ids: np.ndarray, new_tokens: int) -> np.ndarray:
        return self.session.greedy(ids[None], new_tokens)[0, ids.size :]


class TorchReference:
    """The PyTorch reference model in float32."""

    def __init__(self, model: Any) -> None:
        self.model = model.float().eval()

    def logits(self, ids: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(ids[None]), use_cache=False).logits[0].float().numpy()

    def greedy(self, ids: np.ndarray, new_tokens: int) -> np.ndarray:
        import torch

        out = self.model.generate(
            torch.from_numpy(ids[None]), max_new_tokens=new_tokens, do_sample=False, ignore_eos=True
        )
        return out[0, ids.size :].numpy()


@dataclass
class ParityResult:
    """Everything parity measured, JSON-ready through ``to_dict``."""

    candidate: str
    reference: str
    precision: str
    token_source: str
    metrics: dict[str, float]
    per_text: list[dict[str, Any]]
    greedy: list[dict[str, Any]]
    thresholds: dict[str, Any]
    failures: list[str]
    warnings: list[str] = field(default_factory=list)
    histogram: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    host: str = field(default_factory=host_summary)  # the CPU both sides ran on (radon.host): kernels differ

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


class _Accumulator:
    """Running sums over (T, vocab) logit pairs; float64 for the probabilities."""

    def __init__(self, decisive_margin: float = 1.0) -> None:
        self.decisive_margin = decisive_margin
        self.decisive = self.top1_decisive = 0
        self.positions = self.nll_positions = 0
        self.abs_sum = self.max_abs = self.kl_sum = self.nll_ref = self.nll_cand = 0.0
        self.entries = self.top1 = 0
        self.hist = np.zeros(len(HIST_EDGES) - 1, np.int64)

    def add(self, ref: np.ndarray, cand: np.ndarray, ids: np.ndarray) -> None:
        """Positions (T, vocab) of one chunk, ``ROWS_PER_BLOCK`` positions at a time."""
        nxt = np.append(ids[1:], -1)  # the next token of each position; -1: none (the chunk's last)
        for lo in range(0, ref.shape[0], ROWS_PER_BLOCK):
            hi = lo + ROWS_PER_BLOCK
            self._add_rows(ref[lo:hi], cand[lo:hi], nxt[lo:hi])

    def _add_rows(self, ref: np.ndarray, cand: np.ndarray, nxt: np.ndarray) -> None:
        diff = np.abs(np.asarray(cand, np.float32) - np.asarray(ref, np.float32))
        self.max_abs = max(self.max_abs, float(diff.max()))
        self.abs_sum += float(diff.sum(dtype=np.float64))
        self.entries += diff.size
        self.hist += np.histogram(np.minimum(diff, HIST_EDGES[-1]), HIST_EDGES)[0]
        agree = ref.argmax(-1) == cand.argmax(-1)
        self.top1 += int(agree.sum())
        self.positions += ref.shape[0]
        best2 = np.partition(ref.astype(np.float64), -2, axis=-1)[:, -2:]
        decisive = best2[:, 1] - best2[:, 0] >= self.decisive_margin
        self.decisive += int(decisive.sum())
        self.top1_decisive += int(agree[decisive].sum())
        lr, lc = _log_softmax(ref), _log_softmax(cand)
        self.kl_sum += float((np.exp(lr) * (lr - lc)).sum())
        rows = np.flatnonzero(nxt >= 0)
        self.nll_ref -= float(lr[rows, nxt[rows]].sum())
        self.nll_cand -= float(lc[rows, nxt[rows]].sum())
        self.nll_positions += rows.size

    def metrics(self) -> dict[str, float]:
        ppl_ref = float(np.exp(self.nll_ref / max(self.nll_positions, 1)))
        ppl_cand = float(np.exp(self.nll_cand / max(self.nll_positions, 1)))
        return {
            "tokens": float(self.positions),
            "max_abs_logit": self.max_abs,
            "mean_abs_logit": self.abs_sum / max(self.entries, 1),
            "top1_agreement": self.top1 / max(self.positions, 1),
            # agreement where the reference leads by decisive_margin (1.0 when no position is decisive)
            "top1_decisive": self.top1_decisive / self.decisive if self.decisive else 1.0,
            "decisive_fraction": self.decisive / max(self.positions, 1),
            "kl_mean": self.kl_sum / max(self.positions, 1),
            "ppl_reference": ppl_ref,
            "ppl_candidate": ppl_cand,
            "ppl_change": ppl_cand / ppl_ref - 1.0,
        }


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _greedy_rows(reference: TorchReference, candidate: Candidate, prompts: list[np.ndarray], new_tokens: int,
                 margin: float) -> list[dict[str, Any]]:  # fmt: skip
    rows = []
    for prompt in prompts:
        ref = reference.greedy(prompt, new_tokens)
        cand = candidate.greedy(prompt, new_tokens)
        same = ref == cand
        prefix = int(np.argmin(same)) if not same.all() else new_tokens
        # score the candidate's own continuation with the reference: agreement up to near-ties
        scores = reference.logits(np.concatenate([prompt, cand]))[prompt.size - 1 : -1]
        chosen = scores[np.arange(new_tokens), cand]
        agree = chosen >= scores.max(-1) - margin
        rows.append({
            "prompt_tokens": int(prompt.size), "new_tokens": new_tokens, "exact": bool(same.all()),
            "matching_prefix": prefix, "agreement": float(agree.mean()),
        })  # fmt: skip
    return rows


@dataclass
class ParityPlan:
    """What ``compare`` feeds both sides: token streams cut into chunks, and the greedy prompts."""

    streams: list[Any]
    source: str
    chunks: list[list[np.ndarray]]  # per stream
    prompts: list[np.ndarray]
    new_tokens: int


def parity_plan(cfg: Any, texts: list[Path] | None, tokenizer_dir: Path | None, context: int = DEFAULT_CONTEXT,
                max_tokens: int = DEFAULT_MAX_TOKENS, greedy_tokens: int = DEFAULT_GREEDY_TOKENS) -> ParityPlan:  # fmt: skip
    """The inputs ``compare`` uses for a model of config ``cfg`` (a ``ModelConfig`` or an artifact's)."""
    context = min(context, cfg.max_position_embeddings)
    streams, source = token_streams(texts, load_tokenizer(tokenizer_dir), cfg.vocab_size, max_tokens)
    window = cfg.window_for(cfg.architectures[-1])
    new = min(greedy_tokens, cfg.max_position_embeddings - 2)
    prompts = greedy_prompts(streams, window, cfg.max_position_embeddings, new)
    return ParityPlan(streams, source, [chunks(s, context) for s in streams], prompts, new)


def compare(
    candidate: Candidate,
    reference: Any,
    *,
    texts: list[Path] | None = None,
    tokenizer_dir: Path | None = None,
    context: int = DEFAULT_CONTEXT,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    greedy_tokens: int = DEFAULT_GREEDY_TOKENS,
    precision: str | None = None,
    reference_name: str = "reference",
) -> ParityResult:
    """Measure ``candidate`` against the reference model (a ``HybridTransformerModel``)."""
    start = time.perf_counter()
    precision = precision or candidate.precision
    if precision not in THRESHOLDS:
        raise RadonError(
            f"parity: no thresholds for precision {precision!r} (known: {', '.join(THRESHOLDS)})"
        )
    limits = THRESHOLDS[precision]
    # a reference that already offers the candidate interface (the fp32 artifact behind a quantized one,
    # radon.export.quantize.reference) is used as it is; a model is wrapped for PyTorch
    ref = reference if callable(getattr(reference, "logits", None)) else TorchReference(reference)
    plan = parity_plan(reference.config, texts, tokenizer_dir, context, max_tokens, greedy_tokens)
    total = _Accumulator(limits.decisive_margin)
    per_text = []
    for stream, stream_chunks in zip(plan.streams, plan.chunks):
        acc = _Accumulator(limits.decisive_margin)
        for chunk in stream_chunks:
            r, c = ref.logits(chunk), candidate.logits(chunk)
            acc.add(r, c, chunk)
            total.add(r, c, chunk)
            del r, c  # before the next chunk's logits are made, not after
        per_text.append({"name": stream.name} | acc.metrics())
    metrics = total.metrics()
    new, source = plan.new_tokens, plan.source
    greedy = _greedy_rows(ref, candidate, plan.prompts, new, limits.tie_margin)
    produced = sum(g["new_tokens"] for g in greedy)
    metrics["greedy_agreement"] = sum(g["agreement"] * g["new_tokens"] for g in greedy) / max(produced, 1)
    metrics["greedy_exact"] = sum(g["exact"] for g in greedy) / max(len(greedy), 1)
    result = ParityResult(
        candidate=candidate.description, reference=reference_name, precision=precision, token_source=source,
        metrics=metrics, per_text=per_text, greedy=greedy, thresholds=asdict(limits),
        failures=check(metrics, limits),
        histogram={"edges": HIST_EDGES.tolist(), "counts": total.hist.astype(float).tolist()},
        seconds=time.perf_counter() - start,
    )  # fmt: skip
    log.info("parity %s: %s", "passed" if result.passed else "FAILED", metrics)
    return result


def check(metrics: dict[str, float], t: Thresholds) -> list[str]:
    """The gates ``metrics`` fail, each as a sentence naming the metric and the threshold."""
    fails = []
    if t.max_abs_logit is not None and metrics["max_abs_logit"] > t.max_abs_logit:
        fails.append(f"max |d logit| {metrics['max_abs_logit']:.3g} > {t.max_abs_logit:g}")
    if t.mean_abs_logit is not None and metrics["mean_abs_logit"] > t.mean_abs_logit:
        fails.append(f"mean |d logit| {metrics['mean_abs_logit']:.3g} > {t.mean_abs_logit:g}")
    if metrics["top1_decisive"] < t.min_top1:
        fails.append(
            f"top-1 agreement {metrics['top1_decisive']:.4f} < {t.min_top1:g} where the reference leads by "
            f"{t.decisive_margin:g} (all positions: {metrics['top1_agreement']:.4f})"
        )
    if metrics["kl_mean"] > t.max_kl:
        fails.append(f"mean KL {metrics['kl_mean']:.3g} > {t.max_kl:g}")
    if abs(metrics["ppl_change"]) > t.max_ppl_change:
        fails.append(f"perplexity change {metrics['ppl_change']:+.3%} beyond ±{t.max_ppl_change:.2%}")
    if metrics["greedy_agreement"] < t.min_greedy:
        fails.append(f"greedy agreement {metrics['greedy_agreement']:.3f} < {t.min_greedy:g}")
    return fails


def gate(result: ParityResult) -> None:
    """Raise QualityGateError (exit 1) when any threshold is exceeded."""
    if result.failures:
        raise QualityGateError(
            f"parity failed for {result.candidate} at {result.precision} thresholds: "
            + "; ".join(result.failures)
        )


def run_parity(
    candidate: str | Path,
    reference: str | Path,
    *,
    texts: list[Path] | None = None,
    threads: int | None = None,
    **kwargs: Any,
) -> ParityResult:
    """Load an artifact and a checkpoint and compare them (``radon parity`` without the report).

    The artifact runs first and is closed before the checkpoint is loaded (``parity_record.compare_in_turn``).
    """
    from radon.checkpoint import checkpoint_digest, load_config, load_model
    from radon.export.parity_record import compare_in_turn
    from radon.runtime.contract import read_manifest
    from radon.runtime.session import DecoderSession, tool_prepacking

    candidate, reference = Path(candidate), Path(reference)
    manifest = read_manifest(candidate)  # verifies every file's sha256
    cfg = load_config(reference)
    tok = reference / "tokenizer"

    def open_candidate() -> OnnxCandidate:  # hashes were checked just above
        session = DecoderSession(candidate, manifest=manifest, threads=threads,
                                 prepacking=tool_prepacking(manifest))  # fmt: skip
        return OnnxCandidate(candidate, session=session)

    result = compare_in_turn(open_candidate, lambda: load_model(reference), cfg, texts=texts,
                             tokenizer_dir=tok if tok.is_dir() else None, reference_name=str(reference), **kwargs)  # fmt: skip
    if manifest.source.get("checkpoint_sha256") != checkpoint_digest(reference):
        result.warnings.append(
            f"the candidate was exported from a different checkpoint ({manifest.source.get('checkpoint_name')}, "
            f"sha256 {str(manifest.source.get('checkpoint_sha256'))[:12]}...) than the reference"
        )
    return result
