"""Finding and sampling RADON's corpora (no torch).

A data folder is laid out like ``../shared/data`` (DESIGN.md, "Data"): ``ru.txt``, ``en.txt`` and
``code.txt`` for training, and held-out ``eval/ru_eval.txt``, ``eval/en_eval.txt``,
``eval/code_eval.txt`` for measurement only. It is found, in order, from an explicit folder (a
``--data`` flag), the ``RADON_DATA`` environment variable, or ``../shared/data`` beside the
repository. Corpora are read where they are, never copied into the project.
"""

from __future__ import annotations

import os
from pathlib import Path

from radon.errors import RadonError

LANGS: tuple[str, ...] = ("ru", "en", "code")
ENV_VAR = "RADON_DATA"
SAMPLE_CHUNKS = 16  # sample_text reads this many evenly spaced windows
_SLACK = 1 << 16  # bytes read past a window to find the next newline


def _missing(folder: Path, names: list[str]) -> list[str]:
    return [n for n in names if not (folder / n).is_file()]


def _train_names() -> list[str]:
    return [f"{lang}.txt" for lang in LANGS]


def _eval_names() -> list[str]:
    return [f"eval/{lang}_eval.txt" for lang in LANGS]


def repo_data_dir() -> Path:
    """``<repository>/../shared/data``, where developers' machines and CI keep the corpora."""
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def find_data_dir(explicit: str | Path | None = None) -> Path | None:
    """The data folder to use, or None when there is none (a fresh clone: use ``builtin_corpus``).

    An explicit folder, or one named by ``RADON_DATA``, must hold ``ru.txt``, ``en.txt`` and
    ``code.txt``; otherwise RadonError names what is missing.
    """
    for source, value in (("--data", explicit), (ENV_VAR, os.environ.get(ENV_VAR) or None)):
        if value is None:
            continue
        folder = Path(value)
        if not folder.is_dir():
            raise RadonError(f"{source} {folder}: no such folder")
        missing = _missing(folder, _train_names())
        if missing:
            raise RadonError(f"{source} {folder}: not a data folder (missing {', '.join(missing)})")
        return folder
    folder = repo_data_dir()
    if not _missing(folder, _train_names()):
        return folder.resolve()
    return None


def corpus_files(data_dir: str | Path) -> dict[str, Path]:
    """``{"ru": .../ru.txt, "en": .../en.txt, "code": .../code.txt}``; raises if one is missing."""
    folder = Path(data_dir)
    missing = _missing(folder, _train_names())
    if missing:
        raise RadonError(f"{folder}: missing {', '.join(missing)}")
    return {lang: folder / f"{lang}.txt" for lang in LANGS}


def eval_files(data_dir: str | Path) -> dict[str, Path]:
    """The held-out files ``{"ru": .../eval/ru_eval.txt, ...}``: for measurement, never training."""
    folder = Path(data_dir)
    missing = _missing(folder, _eval_names())
    if missing:
        raise RadonError(f"{folder}: missing held-out file(s) {', '.join(missing)}")
    return {lang: folder / "eval" / f"{lang}_eval.txt" for lang in LANGS}


def heldout_files(data_dir: str | Path) -> dict[str, Path]:
    """Every held-out file of the folder, by corpus: ``eval_files`` and any other ``eval/*_eval.txt``.

    ``{"ru": .../ru_eval.txt, "en": ..., "code": ..., "ru_modern": .../ru_modern_eval.txt}``.
    """
    out = eval_files(data_dir)
    for path in sorted((Path(data_dir) / "eval").glob("*_eval.txt")):
        out.setdefault(path.name.removesuffix("_eval.txt"), path)
    return out


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RadonError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def sample_text(path: str | Path, max_bytes: int | None, *, spread: bool = True) -> str:
    """About ``max_bytes`` of ``path``, cut at line boundaries; the whole file when it is smaller.

    ``spread=True`` reads ``SAMPLE_CHUNKS`` evenly spaced windows, so a sample of a corpus made of
    many books sees many of them; ``spread=False`` reads the first ``max_bytes``. Deterministic.
    """
    path = Path(path)
    if not path.is_file():
        raise RadonError(f"{path}: no such file")
    size = path.stat().st_size
    if max_bytes is None or size <= max_bytes:
        return _decode(path.read_bytes(), path)
    if max_bytes <= 0:
        raise RadonError(f"sample size must be positive, got {max_bytes}")
    chunks = SAMPLE_CHUNKS if spread else 1
    per = max(1, max_bytes // chunks)
    step = size // chunks
    parts: list[bytes] = []
    with open(path, "rb") as f:
        for k in range(chunks):
            f.seek(k * step)
            block = f.read(per + _SLACK)
            if k > 0:  # start on a line boundary
                nl = block.find(b"\n")
                block = block[nl + 1 :] if nl >= 0 else b""
            end = block.find(b"\n", per)
            parts.append(block[: end + 1] if end >= 0 else _whole_chars(block[:per]))
    return _decode(b"".join(parts), path)


def _whole_chars(block: bytes) -> bytes:
    """``block`` without a trailing partial UTF-8 character (a window cut inside a very long line)."""
    for back in range(1, min(4, len(block)) + 1):
        lead = block[-back]
        if lead & 0xC0 != 0x80:  # not a continuation byte: the last character starts here
            need = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
            return block if need <= back else block[:-back]
    return block
