"""Logits processing and token choice in numpy: the reference's semantics without torch.

``process_logits`` is ``radon.generation.process_logits`` line for line, which follows transformers'
processors (tests compare all three): repetition penalty (divide positive logits by the penalty,
multiply negative ones, over every id in the history, prompt and padding included, as transformers
does), OpenAI's frequency and presence penalties (``logit[j] -= count[j] * frequency_penalty +
(count[j] > 0) * presence_penalty`` over the *generated* tokens only, as OpenAI documents and vLLM
computes), bad words (``-inf`` for a sequence's last id when the history ends with the ones before
it: TensorRT-LLM's bad-words list), then, when sampling, temperature, top-k (drop logits below the k-th largest), top-p (sort
ascending, drop the tokens whose cumulative probability is <= 1 - p, always keep the most likely),
min-p (drop tokens whose probability is below ``min_p`` times the top probability). Greedy when the
temperature is 0: argmax of the penalised logits.

Sampling draws from ``numpy.random.Generator`` (PCG64), seeded per call, so a seed reproduces a run
of this runtime; it does not reproduce torch's ``multinomial`` stream (the distributions are the same,
which the tests check).
"""

from __future__ import annotations

import numpy as np

from radon.runtime.params import GenerationParams

NEG_INF = np.float32(-np.inf)


def apply_repetition_penalty(logits: np.ndarray, history: np.ndarray, penalty: float) -> np.ndarray:
    """(B, V) float32 logits with every id in ``history`` (B, L) int64 penalised (a new array)."""
    if penalty == 1.0 or history.shape[1] == 0:
        return logits
    out = logits.copy()
    rows = np.arange(logits.shape[0])[:, None]
    seen = out[rows, history]
    out[rows, history] = np.where(seen < 0, seen * np.float32(penalty), seen / np.float32(penalty))
    return out


def apply_openai_penalties(logits: np.ndarray, generated: np.ndarray, frequency: float,
                           presence: float) -> np.ndarray:  # fmt: skip
    """(B, V) logits minus ``count * frequency + (count > 0) * presence``, counts of each id in the
    generated tokens ``generated`` (B, G) (a new array; the logits as they are when both are 0)."""
    if (frequency == 0.0 and presence == 0.0) or generated.shape[1] == 0:
        return logits
    counts = np.zeros(logits.shape, np.float32)
    rows = np.repeat(np.arange(logits.shape[0]), generated.shape[1])
    np.add.at(counts, (rows, generated.reshape(-1)), np.float32(1))
    return logits - counts * np.float32(frequency) - (counts > 0) * np.float32(presence)


def ban_bad_words(logits: np.ndarray, history: np.ndarray, bad_words: list[list[int]]) -> np.ndarray:
    """(B, V) logits with ``-inf`` for every sequence's last id where ``history`` (B, L) ends with
    the ids before it (a one-id sequence is banned everywhere); a new array when anything is banned."""
    if not bad_words:
        return logits
    out = logits.copy()
    for words in bad_words:
        *head, last = words
        for b in range(out.shape[0]):
            if not head or (
                len(head) <= history.shape[1] and history[b, history.shape[1] - len(head) :].tolist() == head
            ):
                out[b, last] = NEG_INF
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (B, V) float32 logits; -inf entries get probability 0."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z, dtype=np.float32)
    return e / e.sum(axis=-1, keepdims=True)


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Drop (set to -inf) logits below each row's k-th largest; ties at the k-th value are kept."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = np.partition(logits, -k, axis=-1)[:, -k][:, None]
    return np.where(logits < kth, NEG_INF, logits)


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """Keep the smallest set of tokens whose probability reaches ``p`` (transformers' TopPLogitsWarper)."""
    if p >= 1.0:
        return logits
    order = np.argsort(logits, axis=-1, kind="stable")  # ascending
    sorted_logits = np.take_along_axis(logits, order, axis=-1)
    cum = np.cumsum(softmax(sorted_logits), axis=-1, dtype=np.float32)
    remove_sorted = cum <= np.float32(1 - p)
    remove_sorted[:, -1] = False  # always keep the most likely token
    remove = np.empty_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)
    return np.where(remove, NEG_INF, logits)


def min_p_filter(logits: np.ndarray, min_p: float) -> np.ndarray:
    """Drop tokens whose probability is below ``min_p`` times the row's top probability."""
    if min_p <= 0.0:
        return logits
    probs = softmax(logits)
    floor = np.float32(min_p) * probs.max(axis=-1, keepdims=True)
    return np.where(probs < floor, NEG_INF, logits)


def process_logits(logits: np.ndarray, history: np.ndarray, params: GenerationParams,
                   prompt_len: int = 0) -> np.ndarray:  # fmt: skip
    """Repetition penalty, frequency and presence penalties (over ``history[:, prompt_len:]``, the
    generated tokens), bad words, then (when sampling) temperature, top-k, top-p and min-p on (B, V)
    logits."""
    logits = np.asarray(logits, dtype=np.float32)
    logits = apply_repetition_penalty(logits, history, params.repetition_penalty)
    logits = apply_openai_penalties(logits, history[:, prompt_len:], params.frequency_penalty,
                                    params.presence_penalty)  # fmt: skip
    logits = ban_bad_words(logits, history, [list(w) for w in params.bad_words])
    if params.greedy:
        return logits
    if params.temperature != 1.0:
        logits = logits / np.float32(params.temperature)
    logits = top_k_filter(logits, params.top_k)
    logits = top_p_filter(logits, params.top_p)
    return min_p_filter(logits, params.min_p)


def pick(logits: np.ndarray, params: GenerationParams, rng: np.random.Generator | None) -> np.ndarray:
    """The next token per row (B,) int64: argmax, or one draw from softmax of the processed logits."""
    if params.greedy:
        return logits.argmax(axis=-1).astype(np.int64)
    probs = softmax(logits).astype(np.float64)
    cdf = np.cumsum(probs, axis=-1)
    rng = rng or np.random.default_rng()
    u = rng.random(logits.shape[0]) * cdf[:, -1]
    tokens = np.array([np.searchsorted(cdf[b], u[b], side="right") for b in range(logits.shape[0])])
    # a draw can never land on a removed token (probability 0 adds nothing to the cdf), but guard the
    # float edge u == cdf[-1] anyway: step back to the last token with mass
    tokens = np.minimum(tokens, logits.shape[-1] - 1)
    bad = probs[np.arange(len(tokens)), tokens] == 0
    for b in np.nonzero(bad)[0]:
        tokens[b] = int(np.nonzero(probs[b])[0][-1])
    return tokens.astype(np.int64)
