"""``radon generate ARTIFACT``: the artifact half of the verb, on the edge runtime (no torch).

``radon.cli.generate`` dispatches a folder with ``radon_manifest.json`` here, with the same flags as
for a checkpoint. Parameters the artifact cannot honour (another sliding window, flash attention) are
refused by the runtime with a message. The output records the backend and the providers that ran.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from radon.cli.generate import _emit, parse_ids


def run_artifact(
    artifact: Path,
    prompt: str | None,
    prompt_ids: str | None,
    params: dict[str, Any],
    stop: list[str],
    sliding_window_size: int | None,
    use_flash_attention: bool,
    stream: bool,
    as_json: bool,
    *,
    providers: str | None = None,
    threads: int | None = None,
    messages: list[dict[str, str]] | None = None,
) -> int:
    """Generate from ``artifact`` and print the text (or JSON); returns the exit status."""
    from radon.errors import RadonError
    from radon.runtime import load

    gen = load(artifact, providers=providers, threads=threads)
    if (prompt is not None or messages is not None) and gen.tokenizer is None:
        raise RadonError(f"{artifact}: this artifact has no tokenizer/; use --prompt-ids")
    if messages is not None:
        ids = gen.encode_chat(messages)
    elif prompt is not None:
        ids, _ = gen.encode(prompt)
        ids = ids[0].tolist()
    else:
        ids = parse_ids(prompt_ids or "")
    if stop and gen.tokenizer is None:
        raise RadonError("--stop: stop strings need the artifact's tokenizer/")
    kwargs = dict(params, sliding_window_size=sliding_window_size,
                  use_flash_attention=use_flash_attention or None, stop_strings=stop)  # fmt: skip
    new_ids: list[int] = []
    text = ""
    start = time.perf_counter()
    first = None
    reason = None
    for piece in gen.stream_text(ids, **kwargs):
        first = first or time.perf_counter()
        new_ids.append(piece.token_id) if piece.token_id is not None else None
        chunk = piece.text if gen.tokenizer is not None else f" {piece.token_id}"
        text += chunk
        if stream and chunk:
            print(chunk, end="", flush=True)
        reason = piece.finish_reason or reason
    elapsed = time.perf_counter() - start
    ttft = (first or time.perf_counter()) - start
    result = {
        "backend": f"onnxruntime ({', '.join(gen.providers)})",
        "providers": gen.providers,
        "artifact": {"lowering": gen.manifest.lowering, "precision": gen.manifest.precision},
        "text": text.strip() if gen.tokenizer is None else text,
        "prompt_tokens": len(ids),
        "new_tokens": len(new_ids),
        "ids": new_ids,
        "finish_reason": reason,
        "seconds": round(elapsed, 4),
        "time_to_first_token_s": round(ttft, 4),
        "tokens_per_second": round(len(new_ids) / elapsed, 2) if elapsed > 0 else None,
    }
    _emit(result, prompt, stream, as_json)
    sys.stdout.flush()
    return 0
