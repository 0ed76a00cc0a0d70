"""Chat templates and prompt special tokens against transformers, on small local folders (no network).

``radon.tokenizer.chat`` must render exactly what transformers' ``apply_chat_template(..., tokenize=False)``
renders (ChatML as SmolLM2 ships it; a Llama-2-style template with ``bos_token``, ``raise_exception`` and a
system message; one that uses ``tojson``, ``namespace``, ``loop controls`` and ``{% generation %}``), the ids
must equal ``apply_chat_template(...)``'s, and a prompt must get exactly the special tokens transformers'
``tokenizer(text)`` adds: none from a GPT-2 post-processor, ``<s>`` from a Llama-style one, and bos for
RADON's own hybrid (it was trained that way; the golden ids are unchanged).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radon.errors import RadonError
from radon.tokenizer import HFTokenizer, load_tokenizer
from radon.tokenizer.chat import ChatError, ChatTemplate, check_messages, read_chat_template

CHATML = (  # SmolLM2-135M-Instruct's chat_template.jinja
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA2 = (  # Llama-2-chat's template: bos_token, eos_token, raise_exception, a system message
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
FEATURES = """{%- set ns = namespace(n=0) -%}
{% for message in messages %}
    {% if message['role'] == 'assistant' %}
        {% generation %}{{ message | tojson }}{% endgeneration %}
    {% else %}
        {% set ns.n = ns.n + 1 %}
        [{{ ns.n }}] {{ message['role'] | upper }}: {{ message['content'] }}
    {% endif %}
    {% if loop.index >= 4 %}{% break %}{% endif %}
{% endfor %}
{{ dict(a=1) | tojson }} {{ unk_token }}{% if add_generation_prompt %}>>>{% endif %}"""
CONVERSATIONS = [
    [{"role": "user", "content": "Hi there"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Привет, мир! <&>"},
     {"role": "assistant", "content": " A reply. "}, {"role": "user", "content": "And then?"}],
]  # fmt: skip
TEXT = ["Hello world, this is a small test. Привет, мир!", "def f(x):\n    return x"] * 40


def _folder(
    folder: Path, template: str | None, *, llama_post: bool = False, jinja_file: bool = False
) -> Path:
    """A byte-level BPE folder with ChatML's and Llama's specials; ``llama_post`` adds ``<s>`` to every
    text in the post-processor (as Llama and Mistral ship it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>"]
    trainer = trainers.BpeTrainer(vocab_size=420, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=specials, show_progress=False)  # fmt: skip
    tok.train_from_iterator(TEXT, trainer)
    if llama_post:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", tok.token_to_id("<s>"))])  # fmt: skip
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    bos, eos = ("<s>", "</s>") if llama_post else ("<|im_start|>", "<|im_end|>")
    config = {"bos_token": bos, "eos_token": eos, "unk_token": "<|endoftext|>", "pad_token": eos}
    if template is not None and not jinja_file:
        config["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    if template is not None and jinja_file:
        (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    return folder


def _reference(folder: Path):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(folder))


@pytest.mark.parametrize("template", [CHATML, LLAMA2, FEATURES], ids=["chatml", "llama2", "features"])
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_render_matches_transformers(tmp_path: Path, template: str, generation_prompt: bool) -> None:
    folder = _folder(tmp_path / "tok", template, llama_post=template is LLAMA2)
    ref, tok = _reference(folder), HFTokenizer.from_hf_dir(folder)
    assert tok.chat_template == ref.chat_template == template
    for messages in CONVERSATIONS:
        want = ref.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        assert tok.render_chat(messages, add_generation_prompt=generation_prompt) == want
        want_ids = ref.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, return_dict=False
        )
        assert tok.apply_chat_template(messages, add_generation_prompt=generation_prompt) == want_ids


def test_raise_exception_is_a_chat_error(tmp_path: Path) -> None:
    import jinja2

    folder = _folder(tmp_path / "tok", LLAMA2, llama_post=True)
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(jinja2.TemplateError, match="must alternate"):
        _reference(folder).apply_chat_template(bad, tokenize=False)
    with pytest.raises(ChatError, match="template refused them: Conversation roles must alternate") as info:
        HFTokenizer.from_hf_dir(folder).render_chat(bad)
    assert info.value.param == "messages"


def test_prompt_special_tokens_follow_the_post_processor(tmp_path: Path) -> None:
    for name, llama in (("bytelevel", False), ("llama", True)):
        folder = _folder(tmp_path / name, CHATML, llama_post=llama)
        ref, tok = _reference(folder), HFTokenizer.from_hf_dir(folder)
        for text in ("Hello world", "Привет, мир!", "<|im_start|>user"):
            assert tok.encode_prompt(text) == ref(text).input_ids, (name, text)
            assert tok.encode(text) == ref(text, add_special_tokens=False).input_ids
        ids, mask = tok.encode_batch(["a", "Hello world"], add_special_tokens=True)
        assert ids[1].tolist() == ref("Hello world").input_ids and mask[0].sum() == len(ref("a").input_ids)
    assert tok.encode_prompt("x")[0] == tok.token_to_id("<s>")


def test_hybrid_prompt_keeps_its_bos(hybrid) -> None:
    text = "Привет, мир! Hello, world."
    assert hybrid.encode_prompt(text) == [hybrid.bos_token_id, *hybrid.encode(text)]
    ids, _ = hybrid.encode_batch([text], add_special_tokens=True)
    assert ids[0].tolist() == hybrid.encode_prompt(text)
    with pytest.raises(RadonError, match="exclusive"):
        hybrid.encode_batch([text], add_bos=True, add_special_tokens=True)
    with pytest.raises(ChatError, match="no chat template") as info:
        hybrid.apply_chat_template(CONVERSATIONS[0])
    assert "chat_template.jinja" in str(info.value)


def test_template_travels_with_the_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "hf", CHATML, jinja_file=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = "{{ 'old' }}"  # chat_template.jinja wins over the config's, as in transformers
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    ref, tok = _reference(folder), HFTokenizer.from_hf_dir(folder)
    assert tok.chat_template == ref.chat_template == CHATML
    saved = tok.save_pretrained(tmp_path / "ckpt" / "tokenizer")
    assert (saved / "chat_template.jinja").read_bytes() == (folder / "chat_template.jinja").read_bytes()
    assert "chat_template.jinja" in json.loads((saved / "radon_tokenizer.json").read_text())["files"]
    loaded = load_tokenizer(saved)
    assert loaded.render_chat(CONVERSATIONS[1]) == ref.apply_chat_template(CONVERSATIONS[1], tokenize=False,
                                                                           add_generation_prompt=True)  # fmt: skip
    again = _reference(saved)  # the saved folder is still a transformers tokenizer folder
    assert again.chat_template == CHATML and again("Hello").input_ids == ref("Hello").input_ids


def test_template_sources() -> None:
    config = {"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}
    assert read_chat_template({"tokenizer_config.json": json.dumps(config).encode()}) == "D"
    assert read_chat_template({"chat_template.json": b'{"chat_template": "L"}'}) == "L"
    assert (
        read_chat_template({"tokenizer_config.json": b"{}", "chat_template.json": b'{"chat_template": "L"}'})
        == "L"
    )
    assert read_chat_template({"tokenizer_config.json": b"{}"}) is None
    with pytest.raises(RadonError, match="no 'default' template"):
        read_chat_template({"tokenizer_config.json": b'{"chat_template": [{"name": "x", "template": "X"}]}'})


def test_no_template_names_it(tmp_path: Path) -> None:
    tok = HFTokenizer.from_hf_dir(_folder(tmp_path / "plain", None))
    assert tok.chat_template is None
    with pytest.raises(ChatError, match="this hf tokenizer has no chat template"):
        tok.apply_chat_template(CONVERSATIONS[0])


@pytest.mark.parametrize(
    "messages, param",
    [
        ({"role": "user", "content": "x"}, "messages: expected a list"),
        ([], "messages: the conversation is empty"),
        (["hi"], r"messages\[0\]: expected an object"),
        ([{"content": "x"}], r"messages\[0\]\.role: required"),
        ([{"role": "user", "content": "x"}, {"role": "wizard", "content": "x"}], r"messages\[1\]\.role: 'wizard' is not one of"),
        ([{"role": "user"}], r"messages\[0\]\.content: required"),
        ([{"role": "user", "content": 3}], r"messages\[0\]\.content: expected a string"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], r"messages\[0\]\.content\[0\]: only text parts"),
        ([{"role": "user", "content": "x", "tool_calls": []}], r"messages\[0\]\.tool_calls: not supported"),
    ],
)  # fmt: skip
def test_bad_messages_name_the_field(messages, param: str) -> None:
    with pytest.raises(ChatError, match=param):
        ChatTemplate(CHATML).render(messages)


def test_text_parts_and_none_fields() -> None:
    content = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert check_messages([{"role": "user", "content": content, "name": None}]) == [
        {"role": "user", "content": "a\nb"}
    ]


def test_sandbox_refuses_unsafe_templates() -> None:
    escape = "{{ messages.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}"
    with pytest.raises(ChatError, match="refused"):
        ChatTemplate(escape).render(CONVERSATIONS[0])
    with pytest.raises(ChatError, match="refused"):
        ChatTemplate("{% set ns = namespace(_x=1) %}").render(CONVERSATIONS[0])
