"""The built-in fallback corpus, for a fresh clone without ``../shared/data`` (DESIGN.md, "Demo data").

Everything in it is text the project can produce itself:

- ``ru``: ``builtin_ru.txt``, Russian prose written for RADON and shipped with the package;
- ``en``: ``builtin_en.txt``, English prose written for RADON, plus docstrings of the running
  interpreter's standard library;
- ``code``: the running interpreter's standard-library ``.py`` files, in sorted order.

``builtin_corpus(out)`` writes it laid out like ``../shared/data`` (training files plus a held-out
``eval/``), so every consumer of a data folder works on it unchanged. A run on it is a smoke run:
the corpus is small, and its code and docstrings depend on the Python version.
"""

from __future__ import annotations

import ast
import logging
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

from radon.errors import RadonError
from radon.integrity import write_json

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
RU_FILE = HERE / "builtin_ru.txt"
EN_FILE = HERE / "builtin_en.txt"
EVAL_EVERY = 10  # every 10th paragraph / docstring / file is held out for eval
MIN_DOCSTRING_CHARS = 80
DEFAULT_CODE_BYTES = 2_000_000
DEFAULT_DOC_BYTES = 1_000_000


def stdlib_dir() -> Path:
    """The running interpreter's standard-library folder (``Lib/`` in CPython's source tree)."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_sources() -> list[Path]:
    """Top-level ``.py`` files of the standard library, sorted by name (a deterministic selection)."""
    folder = stdlib_dir()
    files = sorted(p for p in folder.glob("*.py") if p.is_file())
    if not files:
        raise RadonError(f"{folder}: no Python sources in the standard library (is this a zipped stdlib?)")
    return files


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _docstrings(source: str) -> Iterator[str]:
    """Module, class and function docstrings of ``source`` (ast.walk order: deterministic)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc and len(doc) >= MIN_DOCSTRING_CHARS and doc.isascii():
                yield doc


def _split(items: list[str]) -> tuple[list[str], list[str]]:
    """(train, eval): every ``EVAL_EVERY``-th item is held out."""
    train = [x for i, x in enumerate(items) if i % EVAL_EVERY != EVAL_EVERY - 1]
    held = [x for i, x in enumerate(items) if i % EVAL_EVERY == EVAL_EVERY - 1]
    return train, held


def _paragraphs(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [p.strip("\n") for p in text.split("\n\n") if p.strip()]


def _take(items: Iterable[str], max_bytes: int) -> list[str]:
    """Items in order until the next one would pass ``max_bytes`` (lazy: stops reading there)."""
    out: list[str] = []
    total = 0
    for item in items:
        size = len(item.encode())
        if out and total + size > max_bytes:
            break
        out.append(item)
        total += size
    return out


def builtin_texts(
    code_bytes: int = DEFAULT_CODE_BYTES, doc_bytes: int = DEFAULT_DOC_BYTES
) -> dict[str, tuple[str, str]]:
    """``{lang: (train_text, eval_text)}`` for ru, en and code, built from shipped text and the stdlib."""
    files = stdlib_sources()
    sources = [(p.name, s) for p in files if (s := _read(p)) is not None]
    code_items = _take((f"# {name}\n{s.rstrip()}\n" for name, s in sources), code_bytes)
    docs = _take((d for _, s in sources for d in _docstrings(s)), doc_bytes)
    ru_train, ru_eval = _split(_paragraphs(RU_FILE))
    en_train, en_eval = _split(_paragraphs(EN_FILE) + docs)
    code_train, code_eval = _split(code_items)
    return {
        "ru": ("\n\n".join(ru_train) + "\n", "\n\n".join(ru_eval) + "\n"),
        "en": ("\n\n".join(en_train) + "\n", "\n\n".join(en_eval) + "\n"),
        "code": ("\n".join(code_train), "\n".join(code_eval)),
    }


def builtin_corpus(
    out_dir: str | Path, *, code_bytes: int = DEFAULT_CODE_BYTES, doc_bytes: int = DEFAULT_DOC_BYTES
) -> dict[str, Path]:
    """Write the fallback corpus to ``out_dir`` laid out like ``../shared/data``; returns the training files.

    ``out_dir/{ru,en,code}.txt`` are for training, ``out_dir/eval/{lang}_eval.txt`` are held out, and
    ``out_dir/SOURCES.json`` records where each came from. Deterministic for a given Python version.
    """
    out = Path(out_dir)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    texts = builtin_texts(code_bytes, doc_bytes)
    paths: dict[str, Path] = {}
    for lang, (train, held) in texts.items():
        paths[lang] = out / f"{lang}.txt"
        paths[lang].write_text(train, encoding="utf-8")
        (out / "eval" / f"{lang}_eval.txt").write_text(held, encoding="utf-8")
    write_json(
        out / "SOURCES.json",
        {
            "smoke": True,
            "ru": "radon/data/builtin_ru.txt: Russian prose written for RADON (Apache-2.0)",
            "en": "radon/data/builtin_en.txt (written for RADON, Apache-2.0) + docstrings of the Python "
            f"standard library (PSF-2.0), Python {sysconfig.get_python_version()}",
            "code": f"top-level .py files of the Python {sysconfig.get_python_version()} standard library (PSF-2.0)",
            "eval": f"every {EVAL_EVERY}th paragraph, docstring or file, held out",
        },
    )
    log.info("wrote the built-in corpus to %s", out)
    return paths
