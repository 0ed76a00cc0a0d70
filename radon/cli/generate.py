"""``radon generate``: text from a checkpoint (PyTorch reference) or an ONNX artifact (edge runtime).

Both paths take the same flags. Sampling is on when ``--temperature`` is above 0; the default is greedy.
``--prompt`` gets the tokenizer's own special tokens (``Tokenizer.encode_prompt``: transformers'
``tokenizer(text)``); ``--chat`` renders a conversation through the model's chat template
(``Tokenizer.apply_chat_template``, ``radon.tokenizer.chat``) and prints only the reply.
"""

from __future__ import annotations

import json as jsonlib
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from radon.cli._app import Opt


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
        seed: random seed for sampling.
        stop: strings that end the generation (the text is cut before them).
        sliding_window_size: attention window; an artifact accepts only the window it was exported with.
        use_flash_attention: the fused attention path (FlexAttention) of the reference model.
        providers: onnxruntime execution providers for an artifact, comma-separated (default: CPU).
        threads: intra-op threads (onnxruntime for an artifact, torch for a checkpoint).
        stream: print text as it is generated.
        json: print a JSON object with the text, ids and timings.
    """
    from radon.errors import RadonError

    if sum(x is not None for x in (prompt, prompt_ids, chat)) != 1:
        raise RadonError("give exactly one of --prompt TEXT, --prompt-ids 'ID ID ...' or --chat MESSAGE")
    if prompt is not None and not prompt.strip():
        raise RadonError("--prompt: the prompt is empty")
    if system is not None and chat is None:
        raise RadonError("--system: goes with --chat MESSAGE")
    if chat is not None and not chat.strip():
        raise RadonError("--chat: the message is empty")
    messages = chat_messages(chat, system) if chat is not None else None
    params: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "min_p": min_p,
        "repetition_penalty": repetition_penalty,
        "seed": seed,
    }
    if (model / "radon_manifest.json").is_file():
        from radon.cli._generate_artifact import run_artifact

        return run_artifact(model, prompt, prompt_ids, params, stop or [], sliding_window_size,
                            use_flash_attention, stream, json, providers=providers, threads=threads,
                            messages=messages)  # fmt: skip
    if providers is not None:
        from radon.errors import RadonError

        raise RadonError(
            "--providers: only ONNX artifacts run on onnxruntime providers; this is a checkpoint"
        )
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return _run_checkpoint(model, prompt, prompt_ids, params, stop or [], sliding_window_size,
                           use_flash_attention, stream, json, messages)  # fmt: skip


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


def _run_checkpoint(
    ckpt: Path,
    prompt: str | None,
    prompt_ids: str | None,
    params: dict[str, Any],
    stop: list[str],
    window: int | None,
    flash: bool,
    stream: bool,
    as_json: bool,
    messages: list[dict[str, str]] | None = None,
) -> int:
    import torch

    from radon.checkpoint import load_model
    from radon.errors import RadonError

    model = load_model(ckpt)
    tokenizer = None
    if (ckpt / "tokenizer").is_dir():
        from radon.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(ckpt / "tokenizer")
    if (prompt is not None or messages is not None) and tokenizer is None:
        raise RadonError(f"{ckpt}: this checkpoint has no tokenizer/; use --prompt-ids")
    if messages is not None:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    elif prompt is not None:
        ids = tokenizer.encode_prompt(prompt)
    else:
        ids = parse_ids(prompt_ids or "")
    vocab = model.config.vocab_size
    if any(not 0 <= i < vocab for i in ids):
        raise RadonError(f"--prompt-ids: ids must be in [0, {vocab})")
    temperature = params.pop("temperature")
    kwargs = dict(params, do_sample=temperature > 0, temperature=temperature or 1.0,
                  sliding_window_size=window, use_flash_attention=flash or None)  # fmt: skip
    decoder = tokenizer.stream_decoder() if tokenizer is not None else None
    text, new_ids = "", []
    start = time.perf_counter()
    first = None
    for token in model.stream(torch.tensor([ids]), **kwargs):
        first = first or time.perf_counter()
        tid = int(token[0])
        new_ids.append(tid)
        piece = decoder.push(tid) if decoder is not None else f" {tid}"
        text, piece, hit = _apply_stop(text, piece, stop)
        if stream and piece:
            print(piece, end="", flush=True)
        if hit:
            break
    if decoder is not None:
        tail = decoder.flush()
        text, tail, _ = _apply_stop(text, tail, stop)
        if stream and tail:
            print(tail, end="", flush=True)
    elapsed = time.perf_counter() - start
    result = {
        "backend": "torch",
        "text": text.strip() if decoder is None else text,
        "prompt_tokens": len(ids),
        "new_tokens": len(new_ids),
        "ids": new_ids,
        "seconds": round(elapsed, 4),
        "time_to_first_token_s": round((first or time.perf_counter()) - start, 4),
        "tokens_per_second": round(len(new_ids) / elapsed, 2) if elapsed > 0 else None,
    }
    _emit(result, prompt, stream, as_json)
    return 0


def _apply_stop(text: str, piece: str, stop: list[str]) -> tuple[str, str, bool]:
    """Append ``piece``; if a stop string appears, cut the text before it. Returns (text, printable, hit)."""
    combined = text + piece
    cuts = [combined.find(s) for s in stop if s and s in combined]
    if not cuts:
        return combined, piece, False
    cut = min(cuts)
    return combined[:cut], combined[len(text) : cut] if cut > len(text) else "", True


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
