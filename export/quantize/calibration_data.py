"""Calibration tokens: real text from the *training* corpora, cut into fixed-length samples.

Calibration must see the distribution the model was trained on and must never see the held-out text
that parity measures on, so the default sources are the training corpora ``{ru,en,code}.txt`` under
``$RADON_DATA`` or the repository's sibling ``../shared/data`` (never ``eval/``), else the built-in
training text (``radon.data.builtin``), else, for an artifact without a tokenizer, deterministic
synthetic ids. Each file is read in evenly spaced windows (not whole: 64 samples need kilobytes, not
18 MB), so the samples cover the file rather than its first page.

The set records the sha256 of every file and of the exact token ids used (``sha256``), which the
quantized artifact's manifest carries: the same ids give the same calibration.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radon.errors import RadonError
from radon.export.parity_data import default_text_files, encode, repo_root
from radon.integrity import sha256_file

log = logging.getLogger(__name__)

TRAINING_FILES = ("ru.txt", "en.txt", "code.txt")
DEFAULT_SAMPLES = 64
DEFAULT_SEQ_LEN = 128
MIN_SAMPLE_TOKENS = 8  # a window shorter than this is not worth a forward pass
WINDOW_CHARS_PER_TOKEN = 8  # read this many characters per wanted token (Russian text: ~3-4 per token)
SYNTHETIC_SEED = 4321


@dataclass
class CalibrationSet:
    """Token samples for calibration and sensitivity, and where they came from."""

    samples: list[np.ndarray]  # each (seq_len,) int64, or shorter at a file's end
    source: str  # a sentence: which files or which fallback
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of the whole file
    seq_len: int = DEFAULT_SEQ_LEN

    @property
    def tokens(self) -> int:
        return int(sum(s.size for s in self.samples))

    @property
    def sha256(self) -> str:
        """sha256 of the token ids used, sample by sample (int64 little-endian, length-prefixed)."""
        h = hashlib.sha256()
        for s in self.samples:
            h.update(np.int64(s.size).tobytes())
            h.update(s.astype("<i8").tobytes())
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "files": self.files, "samples": len(self.samples), "seq_len": self.seq_len,
            "tokens": self.tokens, "sha256": self.sha256,
        }  # fmt: skip


def default_calibration_files() -> list[Path]:
    """The training corpora ``{ru,en,code}.txt`` under ``$RADON_DATA`` or ``<repo>/../shared/data``."""
    roots = [Path(os.environ["RADON_DATA"])] if os.environ.get("RADON_DATA") else []
    roots.append(repo_root().parent / "shared" / "data")
    for root in roots:
        files = [root / f for f in TRAINING_FILES if (root / f).is_file()]
        if files:
            return files
    return []


def check_not_held_out(files: list[Path]) -> None:
    """Refuse held-out evaluation text: calibrating on it would leak into the parity that gates the result."""
    held = {p.resolve() for p in default_text_files()}
    for f in files:
        p = Path(f)
        if p.resolve() in held or p.name.endswith("_eval.txt") or p.parent.name == "eval":
            raise RadonError(
                f"--calibration-data: {p} is held-out evaluation text; calibrate on training text "
                f"({', '.join(TRAINING_FILES)}) so that parity measures on text calibration never saw"
            )


def _decode_window(path: Path, data: bytes) -> str:
    """A window of bytes as UTF-8 text; a window may cut a character at either end, nothing else."""
    head = 0
    while head < min(3, len(data)) and 0x80 <= data[head] <= 0xBF:  # continuation bytes of a cut char
        head += 1
    try:  # an incremental decoder leaves a character cut at the end undecoded instead of failing
        return codecs.getincrementaldecoder("utf-8")("strict").decode(data[head:], final=False)
    except UnicodeDecodeError as exc:
        raise RadonError(f"--calibration-data: {path} is not UTF-8 text ({exc.reason})") from None


def _windows(path: Path, count: int, chars: int) -> list[str]:
    """``count`` windows of about ``chars`` characters, evenly spaced over the file."""
    size = path.stat().st_size
    want = chars * 4  # bytes: up to 4 per character in UTF-8
    out = []
    with open(path, "rb") as f:
        starts = np.linspace(0, max(size - want, 0), num=count).astype(np.int64) if count > 1 else [0]
        for start in dict.fromkeys(int(s) for s in starts):
            f.seek(start)
            text = _decode_window(path, f.read(want))
            if start:  # drop the partial first line
                text = text.split("\n", 1)[-1]
            out.append(text[:chars])
    return out


def load_calibration_set(
    files: list[Path] | None,
    tokenizer: Any | None,
    *,
    samples: int = DEFAULT_SAMPLES,
    seq_len: int = DEFAULT_SEQ_LEN,
    vocab_size: int,
) -> CalibrationSet:
    """``samples`` samples of ``seq_len`` tokens, spread evenly over the files (round robin).

    ``files`` None means the default training corpora; an empty file, or text that yields no sample,
    is an error naming the file. Without a tokenizer (and without files) the samples are synthetic ids.
    """
    if samples < 1:
        raise RadonError(f"--samples: must be >= 1, got {samples}")
    if seq_len < MIN_SAMPLE_TOKENS:
        raise RadonError(f"--seq-len: must be >= {MIN_SAMPLE_TOKENS}, got {seq_len}")
    if tokenizer is None:
        if files:
            raise RadonError(
                "--calibration-data: the artifact has no tokenizer/, so text cannot be tokenized; drop "
                "--calibration-data to calibrate on synthetic ids"
            )
        rng = np.random.default_rng(SYNTHETIC_SEED)
        ids = [rng.integers(4, vocab_size, size=seq_len, dtype=np.int64) for _ in range(samples)]
        return CalibrationSet(ids, f"synthetic ids: the artifact has no tokenizer ({samples} x {seq_len}, "
                              f"seed {SYNTHETIC_SEED}); not real text", {}, seq_len)  # fmt: skip
    explicit = bool(files)
    paths = [Path(f) for f in files] if files else default_calibration_files()
    if explicit:
        check_not_held_out(paths)
    texts: dict[str, list[str]] = {}
    hashes: dict[str, str] = {}
    per_file = -(-samples // max(len(paths), 1))
    for p in paths:
        if not p.is_file():
            raise RadonError(f"--calibration-data: {p}: no such file")
        if p.stat().st_size == 0:
            raise RadonError(f"--calibration-data: {p} is empty; calibration needs real text")
        hashes[p.name] = sha256_file(p)
        texts[p.name] = _windows(p, per_file, seq_len * WINDOW_CHARS_PER_TOKEN)
    if not paths:
        from radon.data.builtin import builtin_texts

        built = builtin_texts(code_bytes=200_000, doc_bytes=100_000)
        for lang, (train, _) in built.items():
            name = f"builtin_{lang}"
            hashes[name] = hashlib.sha256(train.encode()).hexdigest()
            step = max(len(train) // per_file, 1)
            texts[name] = [
                train[i : i + seq_len * WINDOW_CHARS_PER_TOKEN] for i in range(0, len(train), step)
            ][:per_file]
        source = (
            "built-in training text (no training corpora found: pass --calibration-data or set RADON_DATA)"
        )
    else:
        source = f"training text: {', '.join(p.name for p in paths)}"
    per_source: dict[str, list[np.ndarray]] = {}
    for name, windows in texts.items():
        got = []
        for w in windows:
            ids = np.array(encode(tokenizer, w)[:seq_len], np.int64)
            if ids.size >= MIN_SAMPLE_TOKENS:
                got.append(ids)
        if not got and explicit:
            raise RadonError(f"--calibration-data: {name} yields no sample of {MIN_SAMPLE_TOKENS}+ tokens; "
                             "calibration needs real text")  # fmt: skip
        per_source[name] = got
    chosen: list[np.ndarray] = []
    k = 0
    while len(chosen) < samples and any(k < len(v) for v in per_source.values()):
        chosen += [v[k] for v in per_source.values() if k < len(v)][: samples - len(chosen)]
        k += 1
    if not chosen:
        raise RadonError("calibration: the calibration text is empty (no sample of "
                         f"{MIN_SAMPLE_TOKENS}+ tokens); pass --calibration-data FILE with real text")  # fmt: skip
    log.info(
        "calibration set: %d samples, %d tokens from %s", len(chosen), sum(c.size for c in chosen), source
    )
    return CalibrationSet(chosen, source, hashes, seq_len)
