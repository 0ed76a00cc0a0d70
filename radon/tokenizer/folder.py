"""The tokenizer folder: ``radon_tokenizer.json`` beside the model files, with their sha256.

``radon_tokenizer.json`` records the type (``hybrid`` | ``bpe`` | ``hf``), ``vocab_size``, the special
ids, the split of the id space, ``files`` ({name: sha256}) and whatever the type needs. The loader
checks every hash before it reads a model file and refuses a mismatch, naming the file; it never
guesses a type or falls back to another one (the seed's bare ``except`` did).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radon.errors import IntegrityError, RadonError
from radon.integrity import hash_files, read_json, verify_files, write_json

if TYPE_CHECKING:  # pragma: no cover
    from radon.tokenizer.base import Tokenizer

CONFIG_NAME = "radon_tokenizer.json"
FORMAT_VERSION = 1
TYPES = ("hybrid", "bpe", "hf")
REQUIRED_KEYS = ("format_version", "type", "vocab_size", "files")


def write_config(directory: Path, config: Mapping[str, Any], files: list[str]) -> Path:
    """Write ``radon_tokenizer.json`` for ``config`` plus the sha256 of ``files`` (already written)."""
    data = {"format_version": FORMAT_VERSION, **config, "files": hash_files(directory, files)}
    path = directory / CONFIG_NAME
    write_json(path, data)
    return path


def read_config(directory: str | Path, expected_type: str | None = None) -> dict[str, Any]:
    """Read and check ``radon_tokenizer.json`` and the hashes of the files it lists.

    Raises IntegrityError for a missing or malformed config, a missing file or a sha256 mismatch, and
    RadonError when the folder holds another type than ``expected_type``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise RadonError(f"{directory}: not a tokenizer folder (no such directory)")
    config = read_json(directory / CONFIG_NAME, "the tokenizer config")
    if not isinstance(config, dict):
        raise IntegrityError(f"{directory / CONFIG_NAME}: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise IntegrityError(f"{directory / CONFIG_NAME}: missing key(s) {', '.join(missing)}")
    if config["format_version"] != FORMAT_VERSION:
        raise IntegrityError(
            f"{directory / CONFIG_NAME}: format_version {config['format_version']!r} is not supported "
            f"(this RADON reads {FORMAT_VERSION})"
        )
    kind = config["type"]
    if kind not in TYPES:
        raise IntegrityError(
            f"{directory / CONFIG_NAME}: unknown tokenizer type {kind!r} (expected one of {TYPES})"
        )
    if expected_type is not None and kind != expected_type:
        raise RadonError(
            f"{directory}: holds a {kind!r} tokenizer, not {expected_type!r}; load it with "
            "radon.tokenizer.load_tokenizer(dir)"
        )
    if not isinstance(config["files"], dict) or not config["files"]:
        raise IntegrityError(f"{directory / CONFIG_NAME}: 'files' must map file names to sha256")
    verify_files(directory, config["files"], what="tokenizer")
    return config


def require_int(config: Mapping[str, Any], key: str, directory: Path) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise IntegrityError(f"{directory / CONFIG_NAME}: {key!r} must be an integer, got {value!r}")
    return value


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Load any RADON tokenizer folder; the type comes from ``radon_tokenizer.json``, never a guess."""
    directory = Path(directory)
    config = read_config(directory)
    kind = config["type"]
    if kind == "hybrid":
        from radon.tokenizer.hybrid import HybridTokenizer

        return HybridTokenizer._load(directory, config)
    if kind == "bpe":
        from radon.tokenizer.bpe import BPETokenizer

        return BPETokenizer._load(directory, config)
    from radon.tokenizer.hf import HFTokenizer

    return HFTokenizer._load(directory, config)
