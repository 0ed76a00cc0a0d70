"""Token ids to text pieces for streaming, with stop strings that may span pieces.

Each generated row gets a ``RowText``: the tokenizer's stream decoder (complete UTF-8 characters
only; a character split across byte-level tokens is released when its last byte arrives) followed by
a stop-string matcher. The matcher holds back the longest tail of the text that could still grow
into a stop string, as text-generation-inference and vLLM do, so a streamed client never receives
the beginning of a stop string that then has to be taken back. When a stop string completes, the
text is cut before it and the row is finished.

The concatenation of the pieces a row emits is always the final text. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class StopMatcher:
    """Releases text that cannot be part of a stop string; reports the first complete one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""  # text held back: a suffix that is a prefix of some stop string
        self.hit: str | None = None

    def push(self, piece: str) -> str:
        """Add decoded text; return what may be emitted now ("" once a stop string was hit)."""
        if self.hit is not None:
            return ""
        text = self.pending + piece
        if not self.stops:
            self.pending = ""
            return text
        cuts = [(text.find(s), s) for s in self.stops if s in text]
        if cuts:
            cut, stop = min(cuts)
            self.hit, self.pending = stop, ""
            return text[:cut]
        hold = 0
        for s in self.stops:  # longest suffix of text that is a proper prefix of s
            for n in range(min(len(s) - 1, len(text)), hold, -1):
                if text.endswith(s[:n]):
                    hold = n
                    break
        self.pending = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold]

    def flush(self) -> str:
        """End of the row: the held-back text was not a stop string after all."""
        out, self.pending = ("" if self.hit is not None else self.pending), ""
        return out


class RowText:
    """One row's text: tokenizer stream decoder + stop matcher. ``text`` is everything emitted."""

    def __init__(self, tokenizer: Any, stops: Sequence[str]) -> None:
        self.decoder = tokenizer.stream_decoder()
        self.matcher = StopMatcher(stops)
        self.text = ""

    @property
    def stopped(self) -> bool:
        return self.matcher.hit is not None

    def push(self, token_id: int) -> str:
        piece = self.matcher.push(self.decoder.push(int(token_id)))
        self.text += piece
        return piece

    def finish(self) -> str:
        """The row ended: release what the decoder and the matcher still hold."""
        tail = self.matcher.push(self.decoder.flush()) if not self.stopped else ""
        tail += self.matcher.flush()
        self.text += tail
        return tail


@dataclass
class TextPiece:
    """One streamed piece of a single-prompt generation: the token and the text it released."""

    token_id: int | None  # None for the final flush (text only)
    text: str
    finish_reason: str | None = None  # set on the last piece: "stop", "length" or "cancelled"
