"""The training stage of ``radon demo``: tokenizer, model, evaluation, generation, and the parity summary.

Each is a step of ``radon.demo.PIPELINE``: a function of the run's ``DemoContext`` that does its work,
records its outputs and facts, and returns a one-line result. Heavy packages (torch, the tokenizer
trainers) are imported inside the functions, so ``import radon.demo`` stays light.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from radon.errors import RadonError

if TYPE_CHECKING:
    from radon.demo import DemoContext

log = logging.getLogger(__name__)


def step_tokenizer(ctx: DemoContext) -> str:
    from radon.data.mixture import sample_mixture
    from radon.tokenizer import train_hybrid

    n = ctx.recipe.tokenizer_bytes
    # each language's sample: half classics, half modern text where the data has it (radon.data.mixture)
    texts, used = sample_mixture(ctx.data_dir, None, n)
    tok = train_hybrid(
        texts["ru"], texts["en"], texts["code"], ctx.recipe.vocab_size, ru_share=ctx.recipe.ru_share
    )
    path = tok.save_pretrained(ctx.out / "tokenizer")
    ctx.facts["tokenizer"] = {"vocab_size": tok.vocab_size, "sample_bytes_per_language": n, "corpora": used}
    ctx.outputs["tokenizer"] = Path(path)
    return (
        f"hybrid tokenizer, {tok.vocab_size} ids, trained on {n / 1e6:.2f} MB per language "
        f"({', '.join(used)}) -> {path}"
    )


def step_train(ctx: DemoContext) -> str:
    from radon.config import ModelConfig
    from radon.tokenizer import load_tokenizer
    from radon.train import TrainConfig, train
    from radon.train.sources import parse_data

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
    # one stream per corpus (the classics, *_modern.txt); a language's weight is shared by its corpora
    files = parse_data(str(ctx.data_dir))
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
    from radon.data import heldout_files
    from radon.data.mixture import language_of
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
    for corpus, path in heldout_files(ctx.data_dir).items():
        text = read_prefix(path, ctx.recipe.eval_bytes)
        scores.append(score_text(model, tok, text, name=path.name, lang=language_of(corpus), context=context,
                                 stride=context // 2, unigram=unigram, gzip=True))  # fmt: skip
    langs = by_language(scores)
    wins = beats_baselines(scores)  # per held-out file: the modern Russian file is not hidden in "ru"
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
        "files": {s.name: s.to_dict() for s in scores},
        "beats_baselines": wins,
    }
    for line in table.splitlines()[: len(scores) + 2]:
        ctx.say("      " + line)
    cells = ", ".join(
        f"{s.name.removesuffix('_eval.txt')} {s.bpb:.2f}"
        + (f" (unigram {s.baseline_bpb('unigram'):.2f}, gzip {s.baseline_bpb('gzip'):.2f})"
           if "unigram" in s.baseline_bits else "")
        for s in scores
    )  # fmt: skip
    if not ctx.quality_claim:
        why = "smoke run" if ctx.smoke else "--quick"
        return f"bits/byte {cells} [{why}: no quality claim]"
    verdict = (
        "beats both baselines on every held-out file"
        if all(wins.values())
        else ("DOES NOT beat both baselines on: " + ", ".join(k for k, v in wins.items() if not v))
    )
    if not all(wins.values()):
        log.warning("the demo model %s", verdict)
    return f"bits/byte {cells}: {verdict}"


def step_generate(ctx: DemoContext) -> str:
    import torch

    from radon.checkpoint import load_model
    from radon.demo import PROMPTS
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
