"""Where training text and the tokenizer come from: the ``--data`` forms and a tokenizer trained on the fly.

``--data`` takes ``ru=FILE,en=FILE,code=FILE`` (a language may repeat), a folder laid out like
``../shared/data`` (its ``ru.txt``, ``en.txt``, ``code.txt`` and, where present, ``ru_modern.txt``,
``en_modern.txt``, ``code_modern.txt``, one stream per corpus, mixed by ``--mixture`` as
radon/data/mixture.py says; never its ``eval/``), or one file (the
seed's ``--data_path``), whose language is read from its name (``ru*``, ``en*``, ``code*``) or is
``text``. With no ``--data``, ``../shared/data`` (or ``$RADON_DATA``) is used when present.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from radon.errors import RadonError

log = logging.getLogger(__name__)

TOKENIZER_SAMPLE_BYTES = 2_000_000  # per language, for a tokenizer trained on the fly


def parse_data(spec: str | None) -> dict[str, list[Path]]:
    """The ``--data`` value as {stream: [files]}; RadonError names a missing file or folder.

    A stream is a language (``ru``) or, for a data folder, a corpus (``ru_modern``).
    """
    from radon.data import find_data_dir
    from radon.evaluate import guess_lang

    if spec is None:
        folder = find_data_dir(None)
        if folder is None:
            raise RadonError(
                "--data: no data folder found (../shared/data or $RADON_DATA); pass --data ru=FILE,en=FILE,code=FILE"
            )
        return _folder_streams(folder)
    spec = spec.strip()
    if not spec:
        raise RadonError("--data: empty")
    if "=" not in spec and "," not in spec and Path(spec).is_dir():
        folder = find_data_dir(spec)
        assert folder is not None
        return _folder_streams(folder)
    out: dict[str, list[Path]] = {}
    for part in spec.split(","):
        lang, sep, name = part.partition("=")
        if not sep:
            name, lang = lang, ""
        path = Path(name.strip())
        if not path.is_file():
            raise RadonError(f"--data: {path}: no such file")
        if not lang:
            lang = guess_lang(path)
            lang = "text" if lang == "other" else lang
        out.setdefault(lang.strip(), []).append(path)
    return out


def _folder_streams(folder: Path) -> dict[str, list[Path]]:
    """One stream per training corpus of a data folder: the classics and, where present, the modern text."""
    from radon.data import corpus_files
    from radon.data.mixture import corpus_paths

    corpus_files(folder)  # refuses a folder without ru.txt, en.txt, code.txt
    return {corpus: [path] for corpus, path in corpus_paths(folder).items()}


def auto_tokenizer(
    files: Mapping[str, Sequence[Path]], vocab_size: int, report: Callable[[str], None] | None = None
) -> Any:
    """Train a tokenizer of ``vocab_size`` ids on a sample of the training files (never eval text).

    The hybrid (Unigram ru + BPE en/code) when Russian and other text are present, else one BPE.
    """
    from radon.data import sample_text
    from radon.data.mixture import language_of
    from radon.tokenizer import train_bpe, train_hybrid

    say = report or log.info
    by_lang: dict[str, list[Path]] = {}
    for stream, paths in files.items():  # ru and ru_modern share the Russian sample
        by_lang.setdefault(language_of(stream), []).extend(paths)
    texts = {
        lang: "".join(sample_text(p, TOKENIZER_SAMPLE_BYTES // len(paths)) for p in paths)
        for lang, paths in by_lang.items()
    }
    if "ru" in texts and len(texts) > 1:
        en = texts.get("en", "") + "".join(t for k, t in texts.items() if k not in ("ru", "en", "code"))
        say(f"no --tokenizer: training a hybrid tokenizer of {vocab_size} ids on a sample of the data")
        return train_hybrid(texts["ru"], en, texts.get("code", ""), vocab_size)
    say(f"no --tokenizer: training a byte-level BPE of {vocab_size} ids on a sample of the data")
    return train_bpe(list(texts.values()), vocab_size)
