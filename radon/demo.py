"""``radon demo``: the whole pipeline on a small model, as one ordered table of steps (``PIPELINE``).

Each step is a function of one shared ``DemoContext`` (``Callable[[DemoContext], str]``); it does its
work, records its outputs (paths printed in the final summary) and facts (numbers other steps and the
summary use), and returns a one-line result. ``run_demo`` times every step and prints where each output
is. The step functions live beside the stage they show (radon/demo_steps.py for training,
``radon.export``, ``radon.export.quantize``, ``radon.runtime``, ``radon.model_repository``) and import
their heavy packages inside the function, so this module stays light; every number a run depends on is
a field of ``DemoRecipe``.

Data: with ``../shared/data`` (or ``--data DIR``) the demo trains on those corpora and its quality is
compared with the gzip and unigram baselines; on a fresh clone it writes the built-in corpus
(radon.data.builtin_corpus) and says plainly that the run is a smoke run with no quality claim.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radon.demo_realmodel import step_realmodel
from radon.demo_steps import step_eval, step_generate, step_parity, step_tokenizer, step_train
from radon.export.demo_step import step_export_onnx
from radon.export.quantize.demo_step import step_quantize_int4, step_quantize_int8
from radon.model_repository.demo_step import step_triton
from radon.runtime.demo_step import step_serve

LANGS = ("ru", "en", "code")
PROMPTS = {
    "ru": "Однажды вечером",
    "en": "It was a dark and stormy night",
    "code": 'def fibonacci(n):\n    """',
}
CHAT_PROMPT = "What is the capital of France? Answer in one sentence."  # the real model's chat message


@dataclass(frozen=True)
class DemoRecipe:
    """Everything that decides the demo model: deterministic (steps-based), so its quality is reproducible."""

    model_config: str  # preset name in configs/
    vocab_size: int  # the hybrid tokenizer's ids (== the config's vocab_size)
    ru_share: float  # share of the ids given to the Russian (Unigram) part of the tokenizer
    tokenizer_bytes: int  # text per language the tokenizer is trained on (a spread sample of the train files)
    train: dict[str, Any]  # radon.train.TrainConfig fields
    eval_bytes: int  # prefix of each eval file the demo scores (radon eval scores whole files)
    new_tokens: int  # generated tokens per prompt
    seconds_per_step: float  # measured on a quiet 2-core CPU; for the time estimate only
    parity_tokens: int  # tokens per held-out text in each artifact's parity run
    quant_samples: int  # calibration samples (INT4's GPTQ)
    sensitivity_samples: int  # samples that rank INT4's units for mixed precision
    serve_tokens: int  # new tokens of the served request (radon serve, Triton); the prompt is PROMPTS["en"]
    chat_tokens: int  # the real model's chat answer, at most (greedy; it stops at <|im_end|>)
    realmodel_parity_tokens: int | None  # per held-out text, the real model's export parity; None: no parity

    def estimate(self) -> str:
        steps = self.train["steps"]
        return f"about {steps * self.seconds_per_step / 60:.1f} min on a quiet 2-core CPU"


# The demo model (docs/training.md gives the measurements behind each choice): a 3.1M-parameter Mistral,
# a 4k hybrid vocabulary with 40% of it for Russian (code and English get longer tokens), small batches
# (more updates for the same tokens), and three times as much code as English in the mixture.
RECIPE = DemoRecipe(
    model_config="demo",
    vocab_size=4096,
    ru_share=0.4,
    tokenizer_bytes=1_000_000,
    train=dict(
        steps=800,
        batch_size=8,
        context=256,
        lr=3e-3,
        warmup_steps=30,
        min_lr_ratio=0.1,
        weight_decay=0.1,
        mixture={"ru": 0.75, "en": 1.0, "code": 3.0},
        eval_every=200,
        seed=1337,
    ),
    eval_bytes=48_000,
    new_tokens=48,
    seconds_per_step=0.33,
    parity_tokens=1024,
    quant_samples=64,
    sensitivity_samples=16,
    serve_tokens=48,
    chat_tokens=48,
    realmodel_parity_tokens=256,
)
# --quick (CI): every step, much less work; no quality claim.
QUICK_RECIPE = DemoRecipe(
    model_config="demo_quick",
    vocab_size=1024,
    ru_share=0.4,
    tokenizer_bytes=150_000,
    train=dict(
        steps=40,
        batch_size=8,
        context=128,
        lr=3e-3,
        warmup_steps=5,
        mixture={"ru": 0.75, "en": 1.0, "code": 3.0},
        eval_every=20,
        seed=1337,
    ),
    eval_bytes=8_000,
    new_tokens=24,
    seconds_per_step=0.1,
    parity_tokens=256,
    quant_samples=16,
    sensitivity_samples=8,
    serve_tokens=16,
    chat_tokens=16,
    realmodel_parity_tokens=None,  # --quick: fetch, convert, export (validated), one chat answer
)


@dataclass
class DemoContext:
    out: Path
    quick: bool
    recipe: DemoRecipe
    data_dir: Path  # a folder laid out like ../shared/data
    smoke: bool  # True on the built-in corpus: no quality claim
    force: bool = True
    outputs: dict[str, Path] = field(default_factory=dict)  # label -> path, printed at the end
    facts: dict[str, Any] = field(default_factory=dict)  # results steps share (and demo.json records)
    answers: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (asked, answered), printed
    say: Callable[[str], None] = print

    @property
    def quality_claim(self) -> bool:
        return not self.smoke and not self.quick


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    run: Callable[[DemoContext], str]  # returns a one-line result


# The pipeline, in order (the CLI's VERBS table is the model): name (demo.json's key), title, step.
PIPELINE: tuple[Step, ...] = (
    Step("tokenizer", "train the tokenizer", step_tokenizer),
    Step("train", "train the model", step_train),
    Step("eval", "evaluate: bits per byte against gzip and a unigram model", step_eval),
    Step("generate", "generate: a Russian, an English and a code prompt", step_generate),
    Step("export", "export: ONNX (ort lowering), validation and parity", step_export_onnx),
    Step("quantize-int8", "quantize: int8-dynamic with its quality gate", step_quantize_int8),
    Step("quantize-int4", "quantize: int4 with its quality gate", step_quantize_int4),
    Step("parity", "parity: every artifact against the reference -> DIR/parity.md", step_parity),
    Step("serve", "serve: start radon serve on DIR/onnx, send one request, stop it", step_serve),
    Step("triton", "triton: build the repository, start tritonserver, one request, stop", step_triton),
    Step("realmodel", "real model: SmolLM2-135M-Instruct, GGUF -> checkpoint -> ONNX -> radon serve, one chat",
         step_realmodel),
)  # fmt: skip


@dataclass
class StepTiming:
    name: str
    title: str
    seconds: float
    result: str


def run_demo(ctx: DemoContext, steps: Sequence[Step] = PIPELINE) -> list[StepTiming]:
    """Run ``steps`` (default: ``PIPELINE``) in order, timing each; prints the summary."""
    say = ctx.say
    ctx.out.mkdir(parents=True, exist_ok=True)
    timings: list[StepTiming] = []
    start = time.perf_counter()
    for i, step in enumerate(steps, 1):
        say(f"\n[{i}/{len(steps)}] {step.title}")
        t = time.perf_counter()
        result = step.run(ctx)
        timings.append(StepTiming(step.name, step.title, time.perf_counter() - t, result))
        say(f"      {result}  ({timings[-1].seconds:.1f} s)")
    total = time.perf_counter() - start
    ctx.facts["timings"] = {t.name: round(t.seconds, 2) for t in timings}
    ctx.facts["total_seconds"] = round(total, 2)
    ctx.facts["answers"] = {label: {"asked": q, "answer": a} for label, (q, a) in ctx.answers.items()}
    summary = ctx.out / "demo.json"
    summary.write_text(
        json.dumps(_jsonable(ctx.facts), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    ctx.outputs.setdefault("summary", summary)
    say(f"\ndone in {total:.0f} s" + (" (--quick)" if ctx.quick else ""))
    width = max(len(t.name) for t in timings)
    for t in timings:
        say(f"  {t.name:<{width}}  {t.seconds:6.1f} s  {t.result}")
    if ctx.answers:
        say("\nanswers:")
        for label, (asked, answered) in ctx.answers.items():
            say(f"  {label}\n      {asked!r} -> {answered!r}")
    say("\noutputs:")
    width = max(len(k) for k in ctx.outputs)
    for label, path in ctx.outputs.items():
        say(f"  {label:<{width}}  {path}")
    if ctx.smoke:
        say(
            "\nThis was a smoke run on the built-in corpus (no ../shared/data): the numbers make no quality claim."
        )
    return timings


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def resolve_data(explicit: Path | None, out: Path, say: Callable[[str], None]) -> tuple[Path, bool]:
    """(data folder, smoke): ``--data``, $RADON_DATA or ../shared/data, else the built-in corpus."""
    from radon.data import builtin_corpus, eval_files, find_data_dir

    folder = find_data_dir(explicit)
    if folder is not None:
        eval_files(folder)  # the held-out files must be there too
        say(f"data: {folder}")
        return folder, False
    folder = out / "data"
    builtin_corpus(folder)
    say(
        f"data: no ../shared/data here, so the demo trains on the built-in corpus ({folder}): "
        "a smoke run, with no quality claim"
    )
    return folder, True
