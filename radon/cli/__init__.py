"""The ``radon`` command: one verb per typed function, imported only when it runs.

``radon --help`` reads the table below and imports nothing else, so it needs neither torch nor any
optional extra. A verb's module is imported when the verb is invoked; heavy imports live inside the
verb functions, so ``radon <verb> --help`` is fast too.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

# verb -> (module:function, one-line summary). Two-word verbs are groups: "tokenizer train".
VERBS: dict[str, tuple[str, str]] = {
    "info": (
        "radon.cli.info:info",
        "parameters, weight memory per dtype, KV-cache memory at a context length",
    ),
    "tokenizer train": (
        "radon.cli.tokenizer:train",
        "train the hybrid (SentencePiece ru + byte-level BPE en/code) tokenizer",
    ),
    "tokenizer stats": (
        "radon.cli.tokenizer:stats",
        "fertility, bytes per token, unknown rate, round trip, speed",
    ),
    "tokenizer encode": ("radon.cli.tokenizer:encode", "encode text and print the ids and pieces"),
    "train": (
        "radon.cli.train:train",
        "train a model on a weighted ru/en/code mixture (resumable checkpoints)",
    ),
    "checkpoint consolidate": (
        "radon.cli.checkpoint:consolidate",
        "merge a sharded checkpoint written under torchrun into model.safetensors",
    ),
    "eval": ("radon.cli.eval:evaluate", "perplexity and bits per byte per file and language, with baselines"),
    "generate": ("radon.cli.generate:generate", "generate text from a checkpoint or an ONNX artifact"),
    "convert": (
        "radon.cli.convert:convert",
        "Hugging Face GPT-2/Mistral/Llama/Qwen2 folders in and out, GGUF in",
    ),
    "export onnx": ("radon.cli.export:onnx", "export a checkpoint to ONNX (portable or ort attention)"),
    "export trt": ("radon.cli.export_trt:trt", "build a TensorRT engine from an fp16 or Q/DQ ONNX artifact"),
    "calibrate": ("radon.cli.quantize:calibrate", "collect activation ranges on real text for static INT8"),
    "quantize": (
        "radon.cli.quantize:quantize",
        "quantize an ONNX artifact to int8, int8-dynamic or int4, gated by parity",
    ),
    "serve": (
        "radon.cli.serve:serve",
        "serve an ONNX artifact over HTTP (seed API, OpenAI completions and chat, SSE)",
    ),
    "parity": ("radon.cli.parity:parity", "compare an artifact with the PyTorch reference on held-out text"),
    "triton build": (
        "radon.cli.triton:build",
        "generate a Triton model repository from an artifact's manifest",
    ),
    "triton serve": (
        "radon.cli.triton:serve",
        "run a real tritonserver on a model repository (loopback by default)",
    ),
    "client": ("radon.cli.triton:client", "talk to a Triton generate model over HTTP or gRPC (tritonclient)"),
    "bench": (
        "radon.cli.bench:bench",
        "runtime speed of an artifact against peers, or --architectures A B in PyTorch",
    ),
    "demo": (
        "radon.cli.demo:demo",
        "the whole pipeline on a small model, ending in text and a parity report",
    ),
}


def _usage() -> str:
    lines = ["usage: radon <verb> [options]   (radon <verb> --help for a verb's options)", "", "verbs:"]
    width = max(len(v) for v in VERBS)
    for verb, (_, summary) in VERBS.items():
        lines.append(f"  {verb:<{width}}  {summary}")
    return "\n".join(lines)


def _resolve(argv: list[str]) -> tuple[str, list[str]] | None:
    if len(argv) >= 2 and f"{argv[0]} {argv[1]}" in VERBS:
        return f"{argv[0]} {argv[1]}", argv[2:]
    if argv and argv[0] in VERBS:
        return argv[0], argv[1:]
    return None


def main(argv: list[str] | None = None) -> int:
    """``radon``'s entry point. A reader that closes the pipe early (``radon --help | head``) ends the
    command quietly, as ``head`` expects of any Unix tool, instead of with a traceback."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # further writes (the interpreter flushing stdout at exit) would raise again: point stdout at null
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the signal


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from radon import __version__

        print(f"radon {__version__}")
        return 0
    resolved = _resolve(argv)
    if resolved is None:
        group = [v for v in VERBS if v.startswith(argv[0] + " ")]
        if group:
            print(
                f"radon {argv[0]}: choose one of: {', '.join(v.split()[1] for v in group)}", file=sys.stderr
            )
        else:
            print(f"radon: unknown verb '{argv[0]}'\n\n{_usage()}", file=sys.stderr)
        return 2
    verb, rest = resolved
    logging.basicConfig(
        level=os.environ.get("RADON_LOG", "WARNING").upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    from radon.cli._app import call
    from radon.errors import RadonError

    target, _, fname = VERBS[verb][0].partition(":")
    try:
        fn = getattr(importlib.import_module(target), fname)
    except ModuleNotFoundError as exc:
        if exc.name == target:
            print(f"radon {verb}: not available in this build of RADON", file=sys.stderr)
            return 2
        raise
    try:
        return call(fn, f"radon {verb}", rest)
    except ModuleNotFoundError as exc:  # an optional dependency imported inside a verb
        from radon._extras import EXTRA_FOR_MODULE

        top = (exc.name or "").split(".")[0]
        if top not in EXTRA_FOR_MODULE:
            raise
        print(f"radon {verb}: needs '{top}', which is not installed: pip install 'radon[{EXTRA_FOR_MODULE[top]}]'",
              file=sys.stderr)  # fmt: skip
        return 2
    except RadonError as exc:
        print(f"radon {verb}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a read-only folder, a full disk, a file that vanished: one line naming the path
        if exc.filename is None:
            raise
        print(f"radon {verb}: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"radon {verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
