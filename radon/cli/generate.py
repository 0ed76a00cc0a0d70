"""``radon generate``: text from a checkpoint (PyTorch reference) or an ONNX artifact (edge runtime).

Both paths take the same flags. Sampling is on when ``--temperature`` is above 0; the default is greedy.
``--prompt`` gets the tokenizer's own special tokens (``Tokenizer.encode_prompt``: transformers'
``tokenizer(text)``); ``--chat`` renders a conversation through the model's chat template
(``Tokenizer.apply_chat_template``, ``radon.tokenizer.chat``) and prints only the reply.

One decode loop (``decode``) serves both: the backends (``radon.cli._generate_artifact``) only turn
text into ids and yield token ids; the text comes out through the runtime's streaming path
(``radon.runtime.stream``), so ``--stream`` never prints the beginning of a stop string. Every flag is
checked by ``radon.runtime.params`` (the validation the servers and Triton share): NaN or infinite
floats, out-of-range values, a negative seed and text that is not UTF-8 (bytes on the command line
that do not decode) are refused with a message naming the flag, exit 2.
"""

from __future__ import annotations

import json as jsonlib
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from radon.cli._app import Opt

if TYPE_CHECKING:
    from radon.cli._generate_artifact import Backend
    from radon.runtime.params import GenerationParams


def generate(
    model: Annotated[Path, Opt(metavar="ARTIFACT|CHECKPOINT")],
    *,
    prompt: str | None = None,
    prompt_ids: Annotated[str | None, Opt(metavar="'ID ID ...'")] = None,
    chat: Annotated[str | None, Opt(metavar="MESSAGE")] = None,
    system: Annotated[str | None, Opt(metavar="MESSAGE")] = None,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    repetition_penalty: float = 1.0,
    seed: int | None = None,
    stop: list[str] | None = None,
    sliding_window_size: int | None = None,
    use_flash_attention: bool = False,
    providers: str | None = None,
    threads: int | None = None,
    stream: bool = False,
    json: bool = False,
) -> int:
    """Generate a continuation of a prompt.

    A folder with radon_manifest.json runs on onnxruntime (radon.runtime, no torch); a checkpoint
    folder runs on the PyTorch reference. Sampling is on when --temperature is above 0.

    Args:
        model: an ONNX artifact folder or a checkpoint folder.
        prompt: the prompt text (needs the model's tokenizer), with the tokenizer's own special tokens.
        prompt_ids: the prompt as space-separated token ids, for models without a tokenizer.
        chat: a user message, turned into the prompt by the model's chat template; prints the reply.
        system: a system message before --chat's user message.
        max_new_tokens: tokens to generate at most.
        temperature: 0 for greedy decoding; above 0 samples from softmax(logits / temperature).
        top_k: keep the k most likely tokens (0 = off).
        top_p: keep the smallest set of tokens whose probability reaches p (1 = off).
        min_p: drop tokens below min_p times the most likely token's probability (0 = off).
        repetition_penalty: above 1 discourages tokens already in the text.
        seed: random seed for sampling, in [0, 2**63).
        stop: strings that end the generation (the text is cut before them).
        sliding_window_size: attention window; an artifact accepts only the window it was exported with.
        use_flash_attention: the fused attention kernel: on a checkpoint flash-attn on CUDA, else
            FlexAttention; an artifact's ort lowering (GroupQueryAttention) is fused, a portable one
            refuses it.
        providers: onnxruntime execution providers for an artifact, comma-separated (default: CPU).
        threads: intra-op threads (onnxruntime for an artifact, torch for a checkpoint).
        stream: print text as it is generated.
        json: print a JSON object with the text, ids and timings.
    """
    from radon.cli._generate_artifact import artifact_backend, checkpoint_backend
    from radon.errors import RadonError
    from radon.runtime.params import check_text, make_params

    if sum(x is not None for x in (prompt, prompt_ids, chat)) != 1:
        raise RadonError("give exactly one of --prompt TEXT, --prompt-ids 'ID ID ...' or --chat MESSAGE")
    for flag, text in (("--prompt", prompt), ("--chat", chat), ("--system", system)):
        if text is not None:
            check_text(flag, text)  # bytes that are not UTF-8 arrive as lone surrogates
    stops = [check_text(f"--stop[{i}]", s) for i, s in enumerate(stop or [])]
    if any(not s for s in stops):
        raise RadonError("--stop: a stop string is empty")
    if prompt is not None and not prompt.strip():
        raise RadonError("--prompt: the prompt is empty")
    if system is not None and chat is None:
        raise RadonError("--system: goes with --chat MESSAGE")
    if chat is not None and not chat.strip():
        raise RadonError("--chat: the message is empty")
    params = make_params(
        max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
        repetition_penalty=repetition_penalty, seed=seed, sliding_window_size=sliding_window_size,
        use_flash_attention=use_flash_attention or None,
    )  # fmt: skip
    if (model / "radon_manifest.json").is_file():
        backend = artifact_backend(model, providers=providers, threads=threads)
    elif providers is not None:
        raise RadonError(
            "--providers: only ONNX artifacts run on onnxruntime providers; this is a checkpoint"
        )
    else:
        backend = checkpoint_backend(model, threads=threads)
    if stops and backend.tokenizer is None:
        raise RadonError(f"--stop: stop strings need the model's tokenizer/, which {model} does not have")
    if chat is not None:
        ids = backend.encode_chat(chat_messages(chat, system))
    elif prompt is not None:
        ids = backend.encode(prompt)
    else:
        ids = parse_ids(prompt_ids or "")
        if any(not 0 <= i < backend.vocab_size for i in ids):
            raise RadonError(f"--prompt-ids: ids must be in [0, {backend.vocab_size})")
    result = decode(backend, ids, params, stops, stream=stream)
    _emit(result, prompt, stream, json)
    return 0


def chat_messages(chat: str, system: str | None) -> list[dict[str, str]]:
    """The conversation of ``--chat`` (and ``--system``) in OpenAI's and transformers' shape."""
    head = [{"role": "system", "content": system}] if system is not None else []
    return [*head, {"role": "user", "content": chat}]


def parse_ids(text: str) -> list[int]:
    from radon.errors import RadonError

    try:
        ids = [int(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise RadonError(f"--prompt-ids: expected space-separated integers, got {text!r}") from None
    if not ids:
        raise RadonError("--prompt-ids: the prompt is empty")
    return ids


def decode(backend: Backend, ids: list[int], params: GenerationParams, stops: list[str], *,
           stream: bool) -> dict[str, Any]:  # fmt: skip
    """The one decode loop of ``radon generate``, for either backend: token ids become text through the
    runtime's streaming path (``radon.runtime.stream.RowText``: whole UTF-8 characters only, and the
    beginning of a stop string held back until it is known not to be one), printed as it comes when
    ``stream``. Returns the output record (text, ids, finish reason, timings)."""
    from radon.runtime.stream import RowText

    row = RowText(backend.tokenizer, stops) if backend.tokenizer is not None else None
    kwargs = {k: v for k, v in asdict(params).items() if k != "stop"}
    text, new_ids, reason = "", [], "length"
    start = time.perf_counter()
    first = None
    for tid in backend.tokens(ids, kwargs):
        first = first or time.perf_counter()
        new_ids.append(tid)
        piece = row.push(tid) if row is not None else f" {tid}"
        _print(piece, stream)
        if row is not None and row.stopped:
            reason = "stop"
            break
    else:
        eos = backend.eos_token_id
        if new_ids and eos is not None and not params.ignore_eos and new_ids[-1] == eos:
            reason = "stop"
    if row is not None:
        _print(row.finish(), stream)
        text = row.text
    else:
        text = "".join(f" {t}" for t in new_ids).strip()
    elapsed = time.perf_counter() - start
    return backend.report | {
        "text": text,
        "prompt_tokens": len(ids),
        "new_tokens": len(new_ids),
        "ids": new_ids,
        "finish_reason": reason,
        "seconds": round(elapsed, 4),
        "time_to_first_token_s": round((first or time.perf_counter()) - start, 4),
        "tokens_per_second": round(len(new_ids) / elapsed, 2) if elapsed > 0 else None,
    }


def _print(piece: str, stream: bool) -> None:
    if stream and piece:
        print(piece, end="", flush=True)


def _emit(result: dict[str, Any], prompt: str | None, streamed: bool, as_json: bool) -> None:
    if as_json:
        print(jsonlib.dumps(result, ensure_ascii=False))
        return
    if streamed:
        print()
    else:
        print((prompt or "") + result["text"])
    print(
        f"[{result['backend']}] {result['prompt_tokens']} prompt + {result['new_tokens']} new tokens, "
        f"{result['tokens_per_second']} tok/s",
        file=sys.stderr,
    )
    sys.stdout.flush()
