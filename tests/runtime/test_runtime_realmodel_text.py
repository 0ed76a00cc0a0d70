"""SmolLM2-135M-Instruct, text in and text out, against transformers with the same tokenizer (``realmodel``).

Its tokenizer adds no bos (id 1 is ``<|im_start|>``), so a prompt must be exactly transformers'
``tokenizer(prompt)`` and a chat exactly ``apply_chat_template(messages, add_generation_prompt=True)``;
then 32 greedy tokens equal ``model.generate`` on every surface: the runtime's ``generate_text`` (three
prompts), ``radon generate --prompt`` / ``--chat`` on the artifact and the checkpoint, ``/v1/completions``
and ``/v1/chat/completions`` through the stock ``openai`` client (streamed too), and the Triton generate
model's ``messages``. The references are computed once; the model is converted and exported (fp32,
``ort``, no parity run) once per module.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from chat_testing import serving, smollm2_checkpoint, smollm2_hf_dir

from radon.cli import main

pytestmark = pytest.mark.realmodel

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,"]
CHAT = [{"role": "user", "content": "What is the capital of France?"}]
N = 32


@pytest.fixture(scope="module")
def hf_dir() -> Path:
    return smollm2_hf_dir()


@pytest.fixture(scope="module")
def reference(hf_dir: Path) -> SimpleNamespace:
    """transformers' tokenizer and greedy continuations: prompt -> (prompt ids, new ids, text)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()

    def greedy(ids: list[int]) -> tuple[list[int], list[int], str]:
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=N, do_sample=False, pad_token_id=tok.pad_token_id)[0, len(ids) :]  # fmt: skip
        return ids, out.tolist(), tok.decode(out, skip_special_tokens=True)

    prompts = {p: greedy(tok(p).input_ids) for p in PROMPTS}
    chat = greedy(tok.apply_chat_template(CHAT, add_generation_prompt=True, return_dict=False))
    assert chat[1][-1] == tok.eos_token_id  # the reply ends at <|im_end|>, inside the budget
    return SimpleNamespace(tok=tok, prompts=prompts, chat=chat)


@pytest.fixture(scope="module")
def ckpt(hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smollm2_checkpoint(hf_dir, tmp_path_factory.mktemp("smollm2") / "ckpt")


@pytest.fixture(scope="module")
def artifact(ckpt: Path) -> Path:
    from radon.export.exporter import export_onnx

    return export_onnx(ckpt, ckpt.parent / "ort", attention="ort", parity=False).path


@pytest.fixture(scope="module")
def gen(artifact: Path):
    import radon.runtime

    return radon.runtime.load(artifact)


def test_the_tokenizer_travels_and_equals_transformers(hf_dir, ckpt, artifact, gen, reference):
    from transformers import AutoTokenizer

    for folder in (ckpt / "tokenizer", artifact / "tokenizer"):
        assert (folder / "chat_template.jinja").read_bytes() == (hf_dir / "chat_template.jinja").read_bytes()
    tok = gen.tokenizer
    assert tok.type_name == "hf" and (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 2)
    for prompt, (ids, new, text) in reference.prompts.items():
        assert tok.encode_prompt(prompt) == ids and ids[0] != tok.bos_token_id  # no <|im_start|> in front
        assert tok.decode(new) == text
    assert tok.render_chat(CHAT) == reference.tok.apply_chat_template(
        CHAT, add_generation_prompt=True, tokenize=False
    )
    assert tok.apply_chat_template(CHAT) == reference.chat[0]
    loaded = AutoTokenizer.from_pretrained(
        artifact / "tokenizer"
    )  # the artifact's folder is a transformers folder
    assert loaded.chat_template == reference.tok.chat_template
    assert loaded(PROMPTS[0]).input_ids == reference.prompts[PROMPTS[0]][0]
    assert (
        loaded.apply_chat_template(CHAT, add_generation_prompt=True, return_dict=False) == reference.chat[0]
    )


def test_generate_text_equals_transformers(gen, reference):
    for prompt, (ids, new, text) in reference.prompts.items():
        ids_in, _ = gen.encode(prompt)
        assert ids_in[0].tolist() == ids
        done = gen.complete(prompt, N, temperature=0)[0]
        assert done.token_ids == new, prompt
        assert done.text == text
    assert gen.generate_text(PROMPTS[0], N, temperature=0) == reference.prompts[PROMPTS[0]][2]


def _cli(capsys, *args: str) -> dict:
    code = main(["generate", *args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_radon_generate_prompt_and_chat(artifact, ckpt, reference, capsys):
    ids, new, text = reference.prompts[PROMPTS[1]]
    result = _cli(capsys, str(artifact), "--prompt", PROMPTS[1], "--max-new-tokens", str(N))
    assert (result["prompt_tokens"], result["ids"], result["text"]) == (len(ids), new, text)
    ids, new, text = reference.chat
    for model in (artifact, ckpt):  # the runtime and the PyTorch reference
        result = _cli(capsys, str(model), "--chat", CHAT[0]["content"], "--max-new-tokens", str(N))
        assert (result["prompt_tokens"], result["ids"], result["text"]) == (len(ids), new, text), model


def test_openai_completions_and_chat(gen, reference):
    openai = pytest.importorskip("openai")
    pytest.importorskip("uvicorn")
    from radon.runtime.server import create_app

    with serving(create_app(gen, model_name="smollm2")) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
        ids, new, text = reference.prompts[PROMPTS[2]]
        out = client.completions.create(model="smollm2", prompt=PROMPTS[2], max_tokens=N, temperature=0)
        assert out.choices[0].text == text and out.usage.prompt_tokens == len(ids)
        ids, new, text = reference.chat
        out = client.chat.completions.create(model="smollm2", messages=CHAT, max_tokens=N, temperature=0)
        assert (
            out.choices[0].message.content == text and out.choices[0].finish_reason == "stop"
        )  # at <|im_end|>
        assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (len(ids), len(new))
        chunks = client.chat.completions.create(model="smollm2", messages=CHAT, temperature=0, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_triton_generate_model_chat(artifact, reference, tmp_path_factory):
    from radon.errors import RadonError
    from radon.model_repository import build_repository
    from radon.model_repository.client import generate_http
    from radon.model_repository.server import TritonServer, find_server

    try:
        install = find_server(prefer_path=False)
    except RadonError as exc:
        pytest.skip(f"no Triton server environment: {exc}")
    root = tmp_path_factory.mktemp("smollm2_triton")
    build_repository(artifact, root / "repo", decoder="python", max_batch=1)
    # the in-process decode loop needs only the generate and tokenizer models (not the decoder model's copy)
    with TritonServer(root / "repo", http_port=_free_port(), grpc_port=_free_port(), metrics_port=_free_port(),
                      install=install, log_file=root / "tritonserver.log",
                      models=["radon_tokenizer", "radon"]).start(timeout_s=300) as srv:  # fmt: skip
        address = f"127.0.0.1:{srv.http_port}"
        reply = generate_http(
            address, "radon", {"messages": json.dumps(CHAT), "max_tokens": N, "stream": False}
        )
        assert reply.text == reference.chat[2]
        ids, new, text = reference.prompts[PROMPTS[0]]
        reply = generate_http(address, "radon", {"text_input": PROMPTS[0], "max_tokens": N, "stream": False})
        assert reply.text == text
