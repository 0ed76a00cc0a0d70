"""``radon eval``: token perplexity and bits per byte of a checkpoint, per file and per language.

The function is ``evaluate`` (``eval`` is a Python builtin); the CLI registers it as the verb "eval".
"""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated, Any

from radon.cli._app import Opt


def evaluate(
    checkpoint: Annotated[Path, Opt(metavar="CHECKPOINT")],
    *,
    text: Annotated[list[str], Opt(metavar="[LANG=]FILE")],
    context: int | None = None,
    stride: int | None = None,
    max_bytes: int = 0,
    batch_size: int = 8,
    baselines: bool = False,
    train_data: Annotated[str | None, Opt(metavar="ru=FILE,en=FILE,code=FILE|DIR")] = None,
    threads: int = 0,
    device: str = "cpu",
    json: bool = False,
) -> int:
    """Report token perplexity and bits per byte of held-out text, per file and per language.

    Bits per byte = total NLL in bits / UTF-8 bytes of the text, every byte counted once; long files
    are scored with a strided sliding window. The language of FILE is read from its name (ru_*, en_*,
    code_*) unless given as LANG=FILE.

    Args:
        checkpoint: a checkpoint folder with tokenizer/.
        text: held-out text files, e.g. ../shared/data/eval/ru_eval.txt or ru=notes.txt.
        context: tokens per window (default: the training context, else min(1024, max positions)).
        stride: tokens a window advances; each scored token sees >= context - stride tokens of
            context (default: context / 2).
        max_bytes: score only the first N bytes of each file, cut at a line end (0 = whole file).
        batch_size: windows per forward pass.
        baselines: also report gzip -9 and a unigram token-frequency model (fitted on the training tokens
            the checkpoint recorded, or on --train-data).
        train_data: training text to fit the unigram baseline on (never eval files): ru=FILE,... or a folder.
        threads: torch threads (0 = torch's default).
        device: cpu, cuda or cuda:N.
        json: print JSON instead of Markdown tables.
    """
    import torch

    from radon.checkpoint import load_model
    from radon.errors import RadonError
    from radon.evaluate import by_language, format_markdown, guess_lang, read_prefix, score_text
    from radon.tokenizer import load_tokenizer

    if threads:
        torch.set_num_threads(threads)
    if not checkpoint.is_dir():
        raise RadonError(f"{checkpoint}: no such checkpoint folder")
    if not (checkpoint / "tokenizer").is_dir():
        raise RadonError(f"{checkpoint}: the checkpoint has no tokenizer/; bits per byte need one")
    model = load_model(checkpoint, device=device)
    tokenizer = load_tokenizer(checkpoint / "tokenizer")
    context = context or _default_context(checkpoint, model.config.max_position_embeddings)
    if context > model.config.max_position_embeddings:
        raise RadonError(
            f"--context {context} is over the model's max_position_embeddings ({model.config.max_position_embeddings})"
        )
    stride = stride or max(1, context // 2)
    files = []
    for item in text:
        lang, sep, name = item.partition("=")
        path = Path(name if sep else item)
        files.append((lang if sep else guess_lang(path), path))
    bodies = [read_prefix(path, max_bytes) for _, path in files]  # every file is checked before scoring
    unigram, unigram_note = (
        _unigram(checkpoint, train_data, tokenizer, model.config.vocab_size) if baselines else (None, "")
    )
    scores = []
    for (lang, path), body in zip(files, bodies, strict=True):
        scores.append(
            score_text(
                model,
                tokenizer,
                body,
                name=str(path),
                lang=lang,
                context=context,
                stride=stride,
                batch_size=batch_size,
                bos_id=model.config.bos_token_id,
                unigram=unigram,
                gzip=baselines,
            )  # fmt: skip
        )
    langs = by_language(scores)
    settings = {"checkpoint": str(checkpoint), "context": context, "stride": stride, "max_bytes": max_bytes}
    if json:
        payload: dict[str, Any] = {
            **settings,
            "files": [s.to_dict() for s in scores],
            "languages": [s.to_dict() for s in langs],
        }
        if unigram_note:
            payload["unigram"] = unigram_note
        print(jsonlib.dumps(payload, ensure_ascii=False, indent=2))
        return 0
    note = f"context {context} tokens, stride {stride}" + (
        f", first {max_bytes:,} bytes of each file" if max_bytes else ""
    )
    if unigram_note:
        note += f"; unigram: {unigram_note}; gzip: gzip -9 of the same bytes"
    print(format_markdown(scores, langs, note))
    return 0


def _default_context(checkpoint: Path, max_positions: int) -> int:
    from radon.train.state import STATE_DIR, STATE_FILE

    path = checkpoint / STATE_DIR / STATE_FILE
    if path.is_file():
        try:
            return int(jsonlib.loads(path.read_text(encoding="utf-8"))["train_config"]["context"])
        except (KeyError, ValueError, TypeError):
            pass
    return min(1024, max_positions)


def _unigram(checkpoint: Path, train_data: str | None, tokenizer: Any, vocab_size: int) -> tuple[Any, str]:
    """The unigram baseline and a note on what it was fitted on."""
    from radon.baselines import UnigramModel
    from radon.train.sources import parse_data
    from radon.train.state import read_token_counts

    if train_data is not None:
        files = [p for paths in parse_data(train_data).values() for p in paths]
        model = UnigramModel.fit_files(tokenizer, files, vocab_size)
        return (
            model,
            f"add-one smoothed, fitted on {model.tokens:,} tokens of {', '.join(str(f) for f in files)}",
        )
    counts = read_token_counts(checkpoint)
    if counts is None:
        return None, "not reported (the checkpoint records no training tokens; pass --train-data)"
    model = UnigramModel(counts)
    return model, f"add-one smoothed, fitted on the {model.tokens:,} training tokens the checkpoint records"
