"""``radon tokenizer train | stats | encode``: train the hybrid tokenizer, measure it, look inside it."""

from __future__ import annotations

import json as jsonlib
import sys
from pathlib import Path
from typing import Annotated, Literal

from radon.cli._app import Opt

# Every id gets a table entry (reserved ones too), so a size past any real vocabulary (the largest are
# ~262k) would only allocate gigabytes of placeholders before anything fails.
MAX_VOCAB = 1 << 21


def _training_files(
    ru: Path | None, en: Path | None, code: Path | None, data: Path | None, scratch: Path
) -> tuple[dict[str, Path], str]:
    """The three training files and where they came from: flags, a data folder, or the built-in corpus."""
    from radon.data import builtin_corpus, corpus_files, find_data_dir
    from radon.errors import RadonError

    flags = {"ru": ru, "en": en, "code": code}
    given = {k: Path(v) for k, v in flags.items() if v is not None}
    if given:
        missing = [f"--{k}" for k in flags if k not in given]
        if missing:
            raise RadonError(f"give all three of --ru, --en, --code (missing {', '.join(missing)})")
        for k, v in given.items():
            if not v.is_file():
                raise RadonError(f"--{k} {v}: no such file")
            if v.stat().st_size == 0:
                raise RadonError(f"--{k} {v}: the file is empty")
        return given, "the given files"
    folder = find_data_dir(data)
    if folder is not None:
        files = corpus_files(folder)
        for path in files.values():
            if path.stat().st_size == 0:
                raise RadonError(f"{path}: the file is empty (in the data folder {folder})")
        return files, f"the data folder {folder}"
    return builtin_corpus(scratch), "the built-in corpus (smoke run: no ../shared/data, RADON_DATA or --data)"


def _check_text(text: str, flag: str) -> str:
    """``text`` from the command line: bytes that were not UTF-8 reach Python as lone surrogates."""
    from radon.errors import RadonError

    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RadonError(f"{flag}: not UTF-8 text (at character {exc.start})") from None
    return text


def _check_writable_target(out: Path) -> None:
    """Refuse an --out that cannot become a folder, before minutes of training."""
    from radon.errors import RadonError

    if out.exists() and not out.is_dir():
        raise RadonError(f"--out {out}: is a file, not a folder")
    above = out.parent
    while not above.exists():
        above = above.parent
    if not above.is_dir():
        raise RadonError(f"--out {out}: cannot write here ({above} is a file, not a folder)")


def train(
    *,
    out: Path,
    vocab_size: Annotated[int, Opt(ge=1, le=MAX_VOCAB)],
    ru: Path | None = None,
    en: Path | None = None,
    code: Path | None = None,
    data: Path | None = None,
    ru_share: float | None = None,
    mixture: Annotated[str | None, Opt(metavar="CORPUS=W,...")] = None,
    sample_mb: Annotated[float, Opt(ge=0)] = 4.0,
    type: Literal["hybrid", "bpe"] = "hybrid",
    ru_model: Literal["bpe", "unigram"] = "bpe",
    force: bool = False,
    quiet: bool = False,
) -> int:
    """Train a tokenizer with exactly --vocab-size ids and write it to --out (deterministic).

    The hybrid gives a --ru-share of the ids to a SentencePiece model (BPE, or Unigram with --ru-model) for
    Cyrillic runs and the rest to a byte-level BPE for everything else. Without --ru/--en/--code it trains on --data, then
    RADON_DATA, then ../shared/data, then the built-in corpus (a smoke run). A data folder's classics and
    modern corpora are mixed as --mixture says.

    Args:
        out: tokenizer folder to write (refused if it exists, unless --force).
        vocab_size: total ids, specials included (at most 2,097,152); must equal the model's vocab_size.
        ru: Russian training text (UTF-8).
        en: English training text (UTF-8).
        code: source-code training text (UTF-8).
        data: a folder laid out like ../shared/data (ru.txt, en.txt, code.txt, and ru_modern.txt, en_modern.txt, code_modern.txt where present), used when the files are not given.
        ru_share: fraction of the non-special ids given to the SentencePiece (Russian) part (default: 0.55 at 8k ids, +0.05 per doubling, at most 0.65; docs/tokenizer.md).
        mixture: how each language's sample is shared among the data folder's corpora, e.g. ru=1,ru_modern=1,en=1,en_modern=1,code=1,code_modern=1 (the default: half classics, half modern text; docs/tokenizer.md).
        sample_mb: MB read per language, in evenly spaced windows; 0 reads whole files.
        type: hybrid (SentencePiece ru + byte-level BPE) or bpe (one byte-level BPE, the baseline).
        ru_model: the hybrid's SentencePiece model type for Russian: bpe (the default) or unigram (RADON's type before; 0.94x the single BPE's tokens on modern Russian at 32k ids, where bpe takes 0.89x).
        force: replace --out if it exists.
        quiet: no progress display.
    """
    import tempfile

    from radon.data import sample_text
    from radon.data.mixture import parse_corpus_mixture, sample_mixture
    from radon.errors import RadonError
    from radon.integrity import atomic_directory, sha256_file
    from radon.tokenizer import BPETokenizer, HybridTokenizer, train_bpe, train_hybrid

    if ru_share is not None and not 0 < ru_share < 1:  # before any text is read; NaN fails here too
        raise RadonError(f"--ru-share: must be between 0 and 1 (exclusive), got {ru_share}")
    if ru_share is not None and type == "bpe":
        raise RadonError("--ru-share applies to --type hybrid only")
    if ru_model != "bpe" and type == "bpe":
        raise RadonError("--ru-model applies to --type hybrid only")
    weights = parse_corpus_mixture(mixture) if mixture is not None else None
    if weights is not None and any(v is not None for v in (ru, en, code)):
        raise RadonError("--mixture shares a data folder's corpora; it does not apply with --ru/--en/--code")
    _check_writable_target(out)
    if out.exists() and not force:
        raise RadonError(f"{out}: already exists (use --force to replace it)")
    max_bytes = None if sample_mb == 0 else int(sample_mb * 1e6)
    with tempfile.TemporaryDirectory(prefix="radon-corpus-") as scratch:
        files, origin = _training_files(ru, en, code, data, Path(scratch))
        folder = files["ru"].parent
        if origin.startswith("the data folder"):  # a corpus mixture: classics + modern text
            texts, used = sample_mixture(folder, weights, max_bytes)
            sources: dict[str, dict[str, object]] = {
                corpus: {**info, "sha256": sha256_file(folder / str(info["file"]))}
                for corpus, info in used.items()
            }
        else:
            if weights is not None and "built-in" in origin:
                raise RadonError(
                    "--mixture: no data folder found, and the built-in corpus has no modern text"
                )
            texts = {lang: sample_text(path, max_bytes) for lang, path in files.items()}
            sources = {
                lang: {
                    "file": path.name,
                    "sha256": sha256_file(path),
                    "bytes_used": len(texts[lang].encode()),
                }
                for lang, path in files.items()
            }
        if not quiet:
            print(f"training a {type} tokenizer ({vocab_size} ids) on {origin}", file=sys.stderr)
        tok: HybridTokenizer | BPETokenizer
        if type == "hybrid":
            tok = train_hybrid(texts["ru"], texts["en"], texts["code"], vocab_size, ru_share,
                               progress=not quiet, sources=sources, sp_options={"model_type": ru_model})  # fmt: skip
        else:
            tok = train_bpe(list(texts.values()), vocab_size, progress=not quiet, sources=sources)
    with atomic_directory(out, overwrite=force) as tmp:
        tok.save_pretrained(tmp)
    split = ", ".join(f"{k} {v}" for k, v in tok.split.items())
    print(f"wrote {out}: {type} tokenizer, {tok.vocab_size} ids ({split})")
    return 0


def stats(
    directory: Annotated[Path, Opt(metavar="DIR")],
    *,
    text: Annotated[list[str] | None, Opt(metavar="[LANG=]FILE")] = None,
    data: Path | None = None,
    max_mb: Annotated[float, Opt(ge=0)] = 0.0,
    repeats: Annotated[int, Opt(ge=1)] = 1,
    json: bool = False,
) -> int:
    """Per language: tokens per word (fertility), chars and bytes per token, unknown rate, round trip, speed.

    Each --text file is one row, labelled LANG when given as LANG=FILE, else by its name (ru_eval.txt is
    ru). Without --text, the held-out eval files of --data (or RADON_DATA, or ../shared/data) are used.
    Exits 1 if any round trip fails.

    Args:
        directory: a tokenizer folder (radon_tokenizer.json + model files).
        text: one or more text files, optionally labelled: ru=a.txt en=b.txt.
        data: a data folder whose eval/ files to measure when --text is not given.
        max_mb: read at most this many MB of each file (0: all).
        repeats: encode passes for the throughput figure; the best is kept.
        json: print JSON instead of a Markdown table.
    """
    from radon.data import eval_files, find_data_dir, sample_text
    from radon.errors import RadonError
    from radon.tokenizer import load_tokenizer
    from radon.tokenizer.stats import format_table, iter_labels, measure, total

    if text and data is not None:
        raise RadonError("--data measures a data folder's eval/ files; it does not apply with --text")
    tok = load_tokenizer(directory)
    if text:
        pairs = []
        for item in text:
            label, sep, name = item.partition("=")
            path = Path(name if sep else item)
            if sep and not (label.strip() and name):
                raise RadonError(f"--text {item}: expected LANG=FILE or FILE")
            if path.is_file() and path.stat().st_size == 0:
                raise RadonError(f"--text {path}: the file is empty")
            pairs.append((label if sep else next(iter_labels([path.name])), path))
    else:
        folder = find_data_dir(data)
        if folder is None:
            raise RadonError("no --text given and no data folder found (--data, RADON_DATA, ../shared/data)")
        pairs = list(eval_files(folder).items())
    max_bytes = int(max_mb * 1e6) if max_mb else None
    rows = [
        measure(tok, sample_text(path, max_bytes, spread=False), label, repeats=repeats)
        for label, path in pairs
    ]
    if len(rows) > 1:
        rows.append(total(rows))
    if json:
        report = {"tokenizer": str(directory), "type": tok.type_name, "vocab_size": tok.vocab_size,
                  "texts": [r.as_dict() for r in rows]}  # fmt: skip
        print(jsonlib.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"{directory}: {tok.type_name} tokenizer, {tok.vocab_size} ids\n")
        print(format_table(rows))
    return 0 if all(r.round_trip for r in rows) else 1


def encode(
    directory: Annotated[Path, Opt(metavar="DIR")],
    *,
    text: str,
    add_bos: bool = False,
    add_eos: bool = False,
    json: bool = False,
) -> int:
    """Encode text and print its ids, then one line per token: id, part, piece and the text it stands for.

    Args:
        directory: a tokenizer folder (radon_tokenizer.json + model files).
        text: the text to encode (quote it; use $'...' in bash for tabs and newlines).
        add_bos: prepend the bos token.
        add_eos: append the eos token.
        json: print JSON (ids, pieces, decoded text, round trip) instead of a listing.
    """
    from radon.tokenizer import HybridTokenizer, load_tokenizer

    text = _check_text(text, "--text")
    tok = load_tokenizer(directory)
    ids = tok.encode(text, add_bos=add_bos, add_eos=add_eos)
    pieces = [tok.id_to_token(i) for i in ids]
    texts: list[str | bytes] = []
    for i in ids:  # a byte-level piece may hold part of a character: show its bytes then
        piece_text = tok.decode([i], skip_special_tokens=False)
        texts.append(
            tok.token_bytes(i) if "\ufffd" in piece_text and hasattr(tok, "token_bytes") else piece_text
        )
    parts = [tok.part_of(i) for i in ids] if isinstance(tok, HybridTokenizer) else [tok.type_name] * len(ids)
    decoded = tok.decode(ids)
    if json:
        print(jsonlib.dumps({"ids": ids, "pieces": pieces, "parts": parts, "decoded": decoded,
                             "round_trip": decoded == text}, ensure_ascii=False, indent=2))  # fmt: skip
        return 0
    print(
        f"{len(ids)} tokens, {len(text.encode())} bytes, round trip {'exact' if decoded == text else 'FAILED'}"
    )
    print("ids:", " ".join(map(str, ids)))
    width = len(str(max(ids, default=0)))
    for i, part, piece, shown in zip(ids, parts, pieces, texts):
        print(f"{i:>{width}}  {part:<8} {piece!r:<24} {shown!r}")
    return 0
