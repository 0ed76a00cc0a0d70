"""The hybrid tokenizer's router: split text into Cyrillic runs (Unigram side) and the rest (BPE side).

The rules (docs/tokenizer.md, "The router"):

- A *word* is a Cyrillic letter followed by Cyrillic letters and combining marks (U+0300-U+036F, for
  stress accents such as ``а́``, and the combining letters of Cyrillic Extended-A). Cyrillic means the
  Unicode blocks Cyrillic, Cyrillic Supplement, Extended-B and Extended-C.
- A *Unigram run* (it goes to the SentencePiece part, BPE or Unigram; the name is kept) is one or
  more words joined by spaces (U+0020 only) and punctuation (Unicode category P*), with at most one
  space and up to three punctuation marks before the first word and any punctuation after the last
  word. So ``Привет, мир!`` is one run, and the space before a Russian word travels with it (as
  SentencePiece's ``▁``), the way GPT-2's BPE keeps `` the``.
- Everything else goes to the byte-level BPE side: Latin and other scripts, digits, newlines, tabs,
  other spaces (NBSP, ideographic), symbols, emoji, a run's trailing spaces, and any character the
  trained SentencePiece model does not hold in its alphabet (so SentencePiece never sees an unknown
  character and needs no byte fallback).

The runs partition the text: concatenating them gives the text back exactly, which is what makes
the hybrid's round trip exact. At training time the router uses the full character classes; a
trained model's router keeps only the characters of its SentencePiece alphabet
(``Router.from_alphabet``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

ROUTER_VERSION = 1

CYRILLIC_RANGES: tuple[tuple[int, int], ...] = (
    (0x0400, 0x04FF),  # Cyrillic
    (0x0500, 0x052F),  # Cyrillic Supplement
    (0x1C80, 0x1C8F),  # Cyrillic Extended-C
    (0x2DE0, 0x2DFF),  # Cyrillic Extended-A (combining letters)
    (0xA640, 0xA69F),  # Cyrillic Extended-B
)
# Combining Diacritical Marks (stress accents, breve) and Cyrillic Extended-A (combining letters):
# they continue a word but never start one.
MARK_RANGES: tuple[tuple[int, int], ...] = ((0x0300, 0x036F), (0x2DE0, 0x2DFF))
SPACE = " "
MAX_LEADING_PUNCT = 3  # bounded, so a long line of "=====" cannot make the regex quadratic


def is_cyrillic(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CYRILLIC_RANGES)


def is_mark(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in MARK_RANGES)


def is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


@lru_cache(maxsize=1)
def _all_punct() -> str:
    # the Basic Multilingual Plane holds every punctuation mark that Russian text uses
    return "".join(chr(c) for c in range(0x10000) if unicodedata.category(chr(c)).startswith("P"))


def _char_class(chars: Iterable[str]) -> str:
    """A regex character class body for ``chars`` (each escaped), sorted for a stable pattern."""
    return "".join(re.escape(c) for c in sorted(set(chars)))


def _range_class(ranges: Iterable[tuple[int, int]]) -> str:
    return "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in ranges)


class Router:
    """Splits text into ``(is_unigram, run)`` pieces whose concatenation is the text.

    ``letters``, ``marks`` and ``punct`` are regex class bodies; ``space`` says whether U+0020 may
    join words. Build one with :meth:`default` (training) or :meth:`from_alphabet` (a trained model).
    """

    def __init__(self, letters: str, marks: str, punct: str, space: bool) -> None:
        if not letters:
            raise ValueError("the router needs at least one Cyrillic letter")
        word = f"[{letters}][{letters}{marks}]*" if marks else f"[{letters}]+"
        lead = (" ?" if space else "") + (f"[{punct}]{{0,{MAX_LEADING_PUNCT}}}" if punct else "")
        joiner = "[" + (" " if space else "") + punct + "]*" if (space or punct) else ""
        tail = f"[{punct}]*" if punct else ""
        self.pattern = f"{lead}{word}(?:{joiner}{word})*{tail}"
        self._run = re.compile(self.pattern)
        self._letter = re.compile(f"[{letters}]")

    @classmethod
    def default(cls) -> Router:
        """The training-time router: every Cyrillic letter, combining mark and punctuation mark."""
        return _default_router()

    @classmethod
    def from_alphabet(cls, alphabet: Iterable[str]) -> Router:
        """A router that sends to the Unigram side only characters in ``alphabet`` (its single-char pieces).

        ``alphabet`` holds characters as they appear in text; SentencePiece's ``▁`` stands for U+0020.
        """
        chars = {" " if c == "\u2581" else c for c in alphabet if len(c) == 1}
        letters = [c for c in chars if is_cyrillic(c) and not is_mark(c)]
        if not letters:
            raise ValueError("the SentencePiece alphabet holds no Cyrillic letter")
        return cls(
            _char_class(letters),
            _char_class(c for c in chars if is_mark(c)),
            _char_class(c for c in chars if is_punct(c)),
            SPACE in chars,
        )

    def has_unigram_run(self, text: str) -> bool:
        """True when ``text`` holds a letter that would go to the Unigram side."""
        return self._letter.search(text) is not None

    def split(self, text: str) -> list[tuple[bool, str]]:
        """``[(is_unigram, run), ...]`` in order; ``"".join(runs) == text``; no run is empty."""
        if not text:
            return []
        if self._letter.search(text) is None:
            return [(False, text)]
        out: list[tuple[bool, str]] = []
        pos = 0
        for m in self._run.finditer(text):
            start, end = m.span()
            if start > pos:
                out.append((False, text[pos:start]))
            out.append((True, m.group()))
            pos = end
        if pos < len(text):
            out.append((False, text[pos:]))
        return out

    def unigram_runs(self, text: str) -> list[str]:
        return [r for u, r in self.split(text) if u]


@lru_cache(maxsize=1)
def _default_router() -> Router:
    letters = _range_class(r for r in CYRILLIC_RANGES if r not in MARK_RANGES)
    return Router(letters, _range_class(MARK_RANGES), _char_class(_all_punct()), True)
