"""``HFTokenizer``: a Hugging Face ``tokenizer.json`` (GPT-2, Mistral, ...) behind RADON's interface.

A checkpoint converted from Hugging Face keeps that model's tokenizer and its own special ids
(DESIGN.md, contract 1). The ids are read as transformers reads them: the token strings of
``tokenizer_config.json`` / ``special_tokens_map.json`` first, then ``config.json``'s ``*_token_id``.
GPT-2 has bos = eos = 50256 and no pad, so pad falls back to eos. ``save_pretrained`` writes the
original files byte for byte, plus ``radon_tokenizer.json`` (type ``hf``) with their sha256, so the
folder also loads with ``transformers.AutoTokenizer.from_pretrained``.

A prompt gets exactly the special tokens the ``tokenizer.json`` post-processor adds
(``encode_prompt``; none for SmolLM2 or GPT-2, ``<s>`` for Llama-2 and Mistral): RADON never forces a bos
on it. The chat template travels in its own file (``chat_template.jinja``, ``tokenizer_config.json``
or ``chat_template.json``) and is rendered by ``radon.tokenizer.chat``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from radon.errors import IntegrityError, RadonError
from radon.tokenizer.base import DiffStreamDecoder, StreamDecoder, Tokenizer, as_id_list
from radon.tokenizer.chat import (
    CHAT_TEMPLATE_FILE,
    LEGACY_CHAT_TEMPLATE_FILE,
    SPECIAL_TOKEN_NAMES,
    read_chat_template,
)
from radon.tokenizer.folder import CONFIG_NAME, read_config, write_config

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
TOKEN_FILES = ("tokenizer_config.json", "special_tokens_map.json")  # special token strings, in this order
OPTIONAL_FILES = (*TOKEN_FILES, CHAT_TEMPLATE_FILE, LEGACY_CHAT_TEMPLATE_FILE)
ROLES = ("bos", "eos", "pad", "unk")


def _token_string(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or an AddedToken dict."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path}: malformed JSON ({exc})") from None
    if not isinstance(data, dict):
        raise IntegrityError(f"{path}: expected a JSON object")
    return data


def _load_tokenizers(text: str, source: Path) -> Any:
    from tokenizers import Tokenizer as HFTok

    try:
        return HFTok.from_str(text)
    except Exception as exc:  # tokenizers raises a plain Exception for an unreadable file
        raise IntegrityError(f"{source}: not a Hugging Face tokenizers file ({exc})") from None


def _special_strings(files: Mapping[str, bytes]) -> dict[str, str]:
    """The special tokens as transformers names them (``bos_token``, ...): ``tokenizer_config.json``
    first, then ``special_tokens_map.json``; what a chat template sees."""
    out: dict[str, str] = {}
    for name in TOKEN_FILES:
        if name not in files:
            continue
        try:
            data = json.loads(files[name].decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{name}: malformed JSON ({exc})") from None
        for key in SPECIAL_TOKEN_NAMES:
            token = _token_string(data.get(key)) if isinstance(data, dict) else None
            if token is not None:
                out.setdefault(key, token)
    return out


class HFTokenizer(Tokenizer):
    """A Hugging Face fast tokenizer (``tokenizers``) with the model's own special ids."""

    type_name = "hf"

    def __init__(
        self,
        tokenizer_json: str,
        special_ids: Mapping[str, int | None],
        extra_files: Mapping[str, bytes] | None = None,
    ) -> None:
        self._json = tokenizer_json
        self._tok = _load_tokenizers(tokenizer_json, Path(TOKENIZER_FILE))
        self._extra = dict(extra_files or {})
        self._ids = {role: special_ids.get(role) for role in ROLES}
        self._chat_template = read_chat_template(self._extra)
        self._special_strings = _special_strings(self._extra)
        if self._ids["pad"] is None:  # GPT-2 has no pad token: pad with eos, as transformers users do
            self._ids["pad"] = self._ids["eos"]
        n = self.vocab_size
        for role, i in self._ids.items():
            if i is not None and not 0 <= i < n:
                raise IntegrityError(
                    f"the {role} token id {i} is outside the tokenizer's vocabulary [0, {n})"
                )

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_hf_dir(cls, hf_dir: str | Path) -> HFTokenizer:
        """Wrap a Hugging Face model folder's ``tokenizer.json``, keeping the model's special ids."""
        hf_dir = Path(hf_dir)
        path = hf_dir / TOKENIZER_FILE
        if not path.is_file():
            raise RadonError(f"{hf_dir}: no {TOKENIZER_FILE} (only fast tokenizers are supported)")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise IntegrityError(
                f"{path}: not UTF-8 text (byte {exc.start}), so not a tokenizer.json"
            ) from None
        tok = _load_tokenizers(text, path)
        extra = {name: (hf_dir / name).read_bytes() for name in OPTIONAL_FILES if (hf_dir / name).is_file()}
        ids: dict[str, int | None] = dict.fromkeys(ROLES)
        for name in TOKEN_FILES:  # token strings, as transformers reads them
            if name not in extra:
                continue
            data = _read_json_object(hf_dir / name)
            for role in ROLES:
                token = _token_string(data.get(f"{role}_token"))
                if ids[role] is None and token is not None:
                    ids[role] = tok.token_to_id(token)
                    if ids[role] is None:
                        raise IntegrityError(
                            f"{hf_dir / name}: {role}_token {token!r} is not in {TOKENIZER_FILE}"
                        )
        if (hf_dir / "config.json").is_file():  # the model's own ids fill what the tokenizer files leave open
            model_cfg = _read_json_object(hf_dir / "config.json")
            for role in ("bos", "eos", "pad"):
                value = model_cfg.get(f"{role}_token_id")
                value = value[0] if isinstance(value, list) and value else value
                if isinstance(value, int):
                    if ids[role] is None:
                        ids[role] = value
                    elif ids[role] != value:
                        log.warning("%s: %s_token_id %d in config.json differs from the tokenizer's %d; keeping "
                                    "the tokenizer's", hf_dir, role, value, ids[role])  # fmt: skip
        return cls(text, ids, extra)

    # --- ids --------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def bos_token_id(self) -> int | None:
        return self._ids["bos"]

    @property
    def eos_token_id(self) -> int | None:
        return self._ids["eos"]

    @property
    def pad_token_id(self) -> int | None:
        return self._ids["pad"]

    @property
    def unk_token_id(self) -> int | None:
        return self._ids["unk"]

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, token_id: int) -> str:
        token = self._tok.id_to_token(int(token_id))
        if token is None:
            raise RadonError(
                f"token id {token_id} is outside this tokenizer's vocabulary [0, {self.vocab_size})"
            )
        return token

    # --- text -------------------------------------------------------------------------------------
    def encode_prompt(self, text: str) -> list[int]:
        # encode_batch_fast releases the GIL (encode holds it): a server tokenizing in a thread keeps its
        # event loop answering; the ids are the same
        return self._tok.encode_batch_fast([text], add_special_tokens=True)[0].ids

    @property
    def chat_template(self) -> str | None:
        return self._chat_template

    def chat_special_tokens(self) -> dict[str, str]:
        return dict(self._special_strings)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = self._tok.encode_batch_fast([text], add_special_tokens=False)[0].ids if text else []
        if add_bos:
            if self.bos_token_id is None:
                raise RadonError("add_bos: this tokenizer has no bos token")
            ids.insert(0, self.bos_token_id)
        if add_eos:
            if self.eos_token_id is None:
                raise RadonError("add_eos: this tokenizer has no eos token")
            ids.append(self.eos_token_id)
        return ids

    def decode(self, ids: Iterable[int] | np.ndarray, skip_special_tokens: bool = True) -> str:
        ids = as_id_list(ids)
        n = self.vocab_size
        bad = next((i for i in ids if not 0 <= i < n), None)
        if bad is not None:
            raise RadonError(f"token id {bad} is outside this tokenizer's vocabulary [0, {n})")
        return self._tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def stream_decoder(self, skip_special_tokens: bool = True) -> StreamDecoder:
        return DiffStreamDecoder(lambda ids: self.decode(ids, skip_special_tokens=skip_special_tokens))

    # --- files ------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / TOKENIZER_FILE).write_text(self._json, encoding="utf-8")
        for name, data in self._extra.items():
            (directory / name).write_bytes(data)
        config = {
            "type": self.type_name,
            "vocab_size": self.vocab_size,
            **{f"{role}_token_id": self._ids[role] for role in ("unk", "bos", "eos", "pad")},
            "split": {"hf": self.vocab_size},
        }
        write_config(directory, config, [TOKENIZER_FILE, *self._extra])
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> HFTokenizer:
        directory = Path(directory)
        return cls._load(directory, read_config(directory, cls.type_name))

    @classmethod
    def _load(cls, directory: Path, config: dict[str, Any]) -> HFTokenizer:
        if TOKENIZER_FILE not in config["files"]:
            raise IntegrityError(
                f"{directory / CONFIG_NAME}: an hf tokenizer must list {TOKENIZER_FILE} in 'files'"
            )
        extra = {name: (directory / name).read_bytes() for name in OPTIONAL_FILES if name in config["files"]}
        ids = {role: config.get(f"{role}_token_id") for role in ROLES}
        tok = cls((directory / TOKENIZER_FILE).read_text(encoding="utf-8"), ids, extra)
        if tok.vocab_size != config["vocab_size"]:
            raise IntegrityError(
                f"{directory / CONFIG_NAME}: vocab_size {config['vocab_size']} but {TOKENIZER_FILE} holds {tok.vocab_size}"
            )
        return tok
