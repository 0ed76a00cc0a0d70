"""``radon demo``: the whole pipeline on a small model, as an ordered list of steps.

Each step is a function of one shared ``DemoContext``; it does its work, records its outputs (paths
printed in the final summary) and facts (numbers other steps and the summary use), and returns a
one-line result. ``run_demo`` times every step and prints where each output is. Later stages (export,
quantize, parity, serve, Triton) join the pipeline with ``register(Step(...), after="generate")``.

Data: with ``../shared/data`` (or ``--data DIR``) the demo trains on those corpora and its quality is
compared with the gzip and unigram baselines; on a fresh clone it writes the built-in corpus
(radon.data.builtin_corpus) and says plainly that the run is a smoke run with no quality claim.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radon.errors import RadonError

log = logging.getLogger(__name__)

LANGS = ("ru", "en", "code")
PROMPTS = {
    "ru": "Однажды вечером",
    "en": "It was a dark and stormy night",
    "code": 'def fibonacci(n):\n    """',
}


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
    say: Callable[[str], None] = print

    @property
    def quality_claim(self) -> bool:
        return not self.smoke and not self.quick


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    run: Callable[[DemoContext], str]  # returns a one-line result


STEPS: list[Step] = []


def register(step: Step, *, after: str | None = None, before: str | None = None) -> None:
    """Add a step to the pipeline (at the end, or after/before a named step); names are unique."""
    if any(s.name == step.name for s in STEPS):
        raise ValueError(f"demo step {step.name!r} is already registered")
    names = [s.name for s in STEPS]
    anchor = after or before
    if anchor is None:
        STEPS.append(step)
        return
    if anchor not in names:
        raise ValueError(f"demo step {anchor!r} is not registered (steps: {', '.join(names)})")
    STEPS.insert(names.index(anchor) + (1 if after else 0), step)


@dataclass
class StepTiming:
    name: str
    title: str
    seconds: float
    result: str


def run_demo(ctx: DemoContext, steps: list[Step] | None = None) -> list[StepTiming]:
    """Run ``steps`` (default: the registered pipeline) in order, timing each; prints the summary."""
    steps = STEPS if steps is None else steps
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
    summary = ctx.out / "demo.json"
    summary.write_text(
        json.dumps(_jsonable(ctx.facts), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    ctx.outputs.setdefault("summary", summary)
    say(f"\ndone in {total:.0f} s" + (" (--quick)" if ctx.quick else ""))
    width = max(len(t.name) for t in timings)
    for t in timings:
        say(f"  {t.name:<{width}}  {t.seconds:6.1f} s  {t.result}")
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


# ---- the steps ------------------------------------------------------------------------------------
def step_tokenizer(ctx: DemoContext) -> str:
    from radon.data import corpus_files, sample_text
    from radon.tokenizer import train_hybrid

    files = corpus_files(ctx.data_dir)
    n = ctx.recipe.tokenizer_bytes
    texts = {lang: sample_text(files[lang], n) for lang in LANGS}
    tok = train_hybrid(
        texts["ru"], texts["en"], texts["code"], ctx.recipe.vocab_size, ru_share=ctx.recipe.ru_share
    )
    path = tok.save_pretrained(ctx.out / "tokenizer")
    ctx.facts["tokenizer"] = {"vocab_size": tok.vocab_size, "sample_bytes_per_language": n}
    ctx.outputs["tokenizer"] = Path(path)
    return f"hybrid tokenizer, {tok.vocab_size} ids, trained on {n / 1e6:.2f} MB per language -> {path}"


def step_train(ctx: DemoContext) -> str:
    from radon.config import ModelConfig
    from radon.data import corpus_files
    from radon.tokenizer import load_tokenizer
    from radon.train import TrainConfig, train

    recipe = ctx.recipe
    cfg = ModelConfig.from_json(recipe.model_config)
    tok = load_tokenizer(ctx.outputs["tokenizer"])
    if cfg.vocab_size != tok.vocab_size:
        raise RadonError(
            f"demo recipe: config {recipe.model_config} has vocab {cfg.vocab_size}, tokenizer {tok.vocab_size}"
        )
    tcfg = TrainConfig(**recipe.train)
    from radon.info import count_parameters

    ctx.say(
        f"      {recipe.model_config}: {cfg.model_type}, {count_parameters(cfg).total / 1e6:.2f}M parameters, "
        f"{tcfg.steps} steps x {tcfg.tokens_per_step:,} tokens ({recipe.estimate()})"
    )
    files = {lang: [p] for lang, p in corpus_files(ctx.data_dir).items()}
    result = train(
        cfg, tcfg, files, tok, ctx.out / "checkpoint", force=ctx.force, report=lambda m: ctx.say("      " + m)
    )
    final_val = result.val_losses.get(str(result.step), {})
    ctx.facts["train"] = {
        "config": recipe.model_config, "parameters": count_parameters(cfg).total, "steps": result.step,
        "tokens": result.tokens, "seconds": round(result.seconds, 1),
        "compile_seconds": round(result.compile_seconds, 1), "tokens_per_second": round(result.tokens_per_second),
        "final_loss": result.losses[-1], "val_loss": final_val,
    }  # fmt: skip
    ctx.outputs["checkpoint"] = ctx.out / "checkpoint"
    return (
        f"{result.step} steps, loss {result.losses[0]:.2f} -> {result.losses[-1]:.2f}, "
        f"{result.tokens_per_second:,.0f} tok/s -> {ctx.out / 'checkpoint'} (with tokenizer/)"
    )


def step_eval(ctx: DemoContext) -> str:
    from radon.baselines import UnigramModel
    from radon.checkpoint import load_model
    from radon.data import eval_files
    from radon.evaluate import beats_baselines, by_language, format_markdown, read_prefix, score_text
    from radon.tokenizer import load_tokenizer
    from radon.train.state import read_token_counts

    ckpt = ctx.outputs["checkpoint"]
    model = load_model(ckpt)
    tok = load_tokenizer(ckpt / "tokenizer")
    counts = read_token_counts(ckpt)
    unigram = UnigramModel(counts) if counts is not None else None
    context = int(ctx.recipe.train["context"])
    scores = []
    for lang, path in eval_files(ctx.data_dir).items():
        text = read_prefix(path, ctx.recipe.eval_bytes)
        scores.append(score_text(model, tok, text, name=path.name, lang=lang, context=context,
                                 stride=context // 2, unigram=unigram, gzip=True))  # fmt: skip
    langs = by_language(scores)
    wins = beats_baselines(langs)
    note = (
        f"First {ctx.recipe.eval_bytes:,} bytes of each held-out file (`radon eval` scores whole files); "
        f"context {context}, stride {context // 2}. Unigram: add-one smoothed token frequencies of the "
        "training tokens; gzip: gzip -9 of the same bytes."
    )
    table = format_markdown(scores, langs, note)
    report = ctx.out / "eval.md"
    report.write_text(f"# Demo model: bits per byte on held-out text\n\n{table}\n", encoding="utf-8")
    ctx.outputs["eval"] = report
    ctx.facts["eval"] = {
        "bytes_per_file": ctx.recipe.eval_bytes,
        "languages": {s.lang: s.to_dict() for s in langs},
        "beats_baselines": wins,
    }
    for line in table.splitlines()[: len(scores) + 2]:
        ctx.say("      " + line)
    cells = ", ".join(
        f"{s.lang} {s.bpb:.2f} (unigram {s.baseline_bpb('unigram'):.2f}, gzip {s.baseline_bpb('gzip'):.2f})"
        if "unigram" in s.baseline_bits
        else f"{s.lang} {s.bpb:.2f}"
        for s in langs
    )
    if not ctx.quality_claim:
        why = "smoke run" if ctx.smoke else "--quick"
        return f"bits/byte {cells} [{why}: no quality claim]"
    verdict = (
        "beats both baselines on every language"
        if all(wins.values())
        else ("DOES NOT beat both baselines on: " + ", ".join(k for k, v in wins.items() if not v))
    )
    if not all(wins.values()):
        log.warning("the demo model %s", verdict)
    return f"bits/byte {cells}: {verdict}"


def step_generate(ctx: DemoContext) -> str:
    import torch

    from radon.checkpoint import load_model
    from radon.tokenizer import load_tokenizer

    ckpt = ctx.outputs["checkpoint"]
    model = load_model(ckpt)
    tok = load_tokenizer(ckpt / "tokenizer")
    lines = ["# Demo model: greedy continuations (repetition penalty 1.3)", ""]
    samples = {}
    for lang, prompt in PROMPTS.items():
        ids = torch.tensor([tok.encode_prompt(prompt)])
        out = model.generate(ids, max_new_tokens=ctx.recipe.new_tokens, do_sample=False,
                             repetition_penalty=1.3, ignore_eos=True)  # fmt: skip
        text = tok.decode(out[0, ids.shape[1] :].tolist())
        samples[lang] = prompt + text
        ctx.say(f"      [{lang}] {(prompt + text)!r}")
        lines += [f"## {lang}", "", "```", prompt + text, "```", ""]
    # the KV cache (rolling past the window) must give what a full recompute gives
    ids = torch.tensor([tok.encode_prompt(PROMPTS["code"])])
    cached = model.generate(ids, max_new_tokens=ctx.recipe.new_tokens, ignore_eos=True)
    full = model.generate(ids, max_new_tokens=ctx.recipe.new_tokens, ignore_eos=True, use_cache=False)
    same = bool(torch.equal(cached, full))
    if not same:
        raise RadonError(
            "generate: the KV-cache path and the full recompute disagree (a reference-model bug)"
        )
    path = ctx.out / "samples.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    ctx.outputs["samples"] = path
    ctx.facts["samples"] = samples
    return f"{len(PROMPTS)} prompts x {ctx.recipe.new_tokens} tokens (KV cache == full recompute) -> {path}"


for _step in (
    Step("tokenizer", "train the tokenizer", step_tokenizer),
    Step("train", "train the model", step_train),
    Step("eval", "evaluate: bits per byte against gzip and a unigram model", step_eval),
    Step("generate", "generate: a Russian, an English and a code prompt", step_generate),
):
    register(_step)


def step_parity(ctx: DemoContext) -> str:
    """Gather every artifact's parity into ``DIR/parity.md`` (each step already gated on its own)."""
    from radon.demo_parity import write_parity_summary

    held_out = (
        ", ".join(p.name for p in sorted((ctx.data_dir / "eval").glob("*_eval.txt"))) or "synthetic ids"
    )
    source = f"{held_out} ({'built-in smoke corpus' if ctx.smoke else ctx.data_dir})"
    path = write_parity_summary(ctx.out, ctx.facts, source)
    ctx.outputs["parity report"] = path
    return f"fp32, int8 and int4 against the PyTorch reference -> {path}"


def _register_pipeline_stages() -> None:
    """The stages after generation: export, quantize, parity, serve, triton (each module imports its extras lazily)."""
    from radon.export.demo_step import register_demo_step as export_stage
    from radon.export.quantize.demo_step import register_demo_step as quantize_stage
    from radon.model_repository.demo_step import register_demo_step as triton_stage
    from radon.runtime.demo_step import step_serve

    export_stage(register, Step)
    quantize_stage(register, Step)
    register(Step("parity", "parity: every artifact against the reference -> DIR/parity.md", step_parity))
    register(Step("serve", "serve: start radon serve on DIR/onnx, send one request, stop it", step_serve))
    triton_stage(register, Step)


_register_pipeline_stages()
