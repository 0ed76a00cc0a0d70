"""Chat templates with transformers' ``apply_chat_template`` semantics, rendered by jinja2 in a sandbox.

The template is the model's own Jinja source, found where transformers looks for it in a Hugging Face
folder (``read_chat_template``): ``chat_template.jinja``, else ``tokenizer_config.json``'s
``chat_template`` (a string, or a list of named templates whose ``default`` is used), else the legacy
``chat_template.json``. Rendering follows transformers 5.x (``utils/chat_template_utils.py``,
``_cached_compile_jinja_template`` and ``render_jinja_template``):

- ``ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`` with ``loopcontrols`` and the
  ``{% generation %}`` block (rendered as its body; transformers uses it to mask assistant tokens);
- the variables ``messages``, ``tools`` (None), ``documents`` (None), ``add_generation_prompt`` and the
  special tokens as strings (``bos_token``, ``eos_token``, ``unk_token``, ``sep_token``, ``pad_token``,
  ``cls_token``, ``mask_token``; the ones the tokenizer sets);
- ``raise_exception(msg)``, ``strftime_now(fmt)``, a ``tojson`` filter that does not escape HTML
  (``json.dumps(x, ensure_ascii=False, ...)``), and transformers' hardened ``dict`` and ``namespace``.

The rendered text is then tokenized *without* special tokens (the template writes them), as
transformers does. Messages are checked first (``check_messages``), so every surface (CLI, HTTP,
Triton) refuses a malformed conversation with the same message naming the field. Torch-free; jinja2
is imported when a template is first rendered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from radon.errors import IntegrityError, RadonError

CHAT_TEMPLATE_FILE = "chat_template.jinja"
LEGACY_CHAT_TEMPLATE_FILE = "chat_template.json"  # transformers' processors wrote {"chat_template": ...}
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = ("role", "content", "name")
# transformers' SPECIAL_TOKENS_ATTRIBUTES: the names a template sees the special tokens under
SPECIAL_TOKEN_NAMES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
NO_TEMPLATE = (
    "has no chat template (a Hugging Face folder carries it as chat_template.jinja, tokenizer_config.json's "
    "chat_template or chat_template.json); send a plain prompt instead"
)


class ChatError(RadonError):
    """A conversation or template the renderer refuses; ``param`` names the field (``messages[1].role``)."""

    def __init__(self, message: str, param: str | None = "messages") -> None:
        super().__init__(message)
        self.param = param


def _content(value: Any, where: str) -> str:
    """A message's content: a string, or OpenAI's list of text parts (joined with newlines, as vLLM does)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for i, part in enumerate(value):
            if not (
                isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)
            ):
                raise ChatError(
                    f"{where}[{i}]: only text parts ({{'type': 'text', 'text': ...}}) are supported"
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise ChatError(f"{where}: expected a string, got {type(value).__name__}")


def check_messages(messages: Any) -> list[dict[str, str]]:
    """The conversation as plain ``{"role", "content"[, "name"]}`` dicts, or a ChatError naming the field.

    Refused: anything but a non-empty list of objects, a missing or unknown ``role`` (``ROLES``), a missing
    or non-text ``content``, a key other than ``MESSAGE_KEYS`` (tool calls are not supported).
    """
    if not isinstance(messages, list):
        raise ChatError(f"messages: expected a list of messages, got {type(messages).__name__}")
    if not messages:
        raise ChatError("messages: the conversation is empty (send at least one message)")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise ChatError(
                f"{where}: expected an object with 'role' and 'content', got {type(message).__name__}"
            )
        extra = [k for k in message if k not in MESSAGE_KEYS and message[k] is not None]
        if extra:
            raise ChatError(f"{where}.{extra[0]}: not supported (a message has {', '.join(MESSAGE_KEYS)})")
        role = message.get("role")
        if role is None:
            raise ChatError(f"{where}.role: required")
        if role not in ROLES:
            raise ChatError(f"{where}.role: {role!r} is not one of {', '.join(ROLES)}")
        if message.get("content") is None:
            raise ChatError(f"{where}.content: required")
        plain = {"role": role, "content": _content(message["content"], f"{where}.content")}
        if message.get("name") is not None:
            if not isinstance(message["name"], str):
                raise ChatError(f"{where}.name: expected a string")
            plain["name"] = message["name"]
        out.append(plain)
    return out


def read_chat_template(files: Mapping[str, bytes]) -> str | None:
    """The default chat template of a Hugging Face tokenizer folder's files (name -> bytes), or None.

    transformers' order: ``chat_template.jinja`` wins over ``tokenizer_config.json``'s ``chat_template``;
    the legacy ``chat_template.json`` (a processor's file) is the last resort.
    """
    if CHAT_TEMPLATE_FILE in files:
        return files[CHAT_TEMPLATE_FILE].decode("utf-8")
    for name in (TOKENIZER_CONFIG_FILE, LEGACY_CHAT_TEMPLATE_FILE):
        if name not in files:
            continue
        try:
            value = json.loads(files[name].decode("utf-8")).get("chat_template")
        except (ValueError, AttributeError) as exc:
            raise IntegrityError(f"{name}: not a JSON object ({exc})") from None
        if isinstance(value, list):  # [{"name": ..., "template": ...}, ...]: transformers uses "default"
            named = {t.get("name"): t.get("template") for t in value if isinstance(t, Mapping)}
            if "default" not in named:
                raise IntegrityError(
                    f"{name}: chat_template lists {sorted(map(str, named))} but no 'default' template"
                )
            value = named["default"]
        if value is not None:
            if not isinstance(value, str):
                raise IntegrityError(f"{name}: chat_template must be a string, got {type(value).__name__}")
            return value
    return None


@lru_cache(maxsize=8)
def _compile(source: str) -> Any:
    """The template compiled in transformers' sandboxed environment (cached per source)."""
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    import jinja2.utils
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationBlock(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}`` renders its body (transformers' AssistantTracker tag)."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return caller()

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
               sort_keys: bool = False) -> str:  # fmt: skip
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    class TemplateDict:  # dict() without attribute access to the real type
        def __call__(self, *args: Any, **kwargs: Any) -> dict:
            return dict(*args, **kwargs)

        def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):  # namespaces refuse underscore attributes
        def __init__(*args: Any, **kwargs: Any) -> None:
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            TemplateNamespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"chat templates cannot set {name!r} on a namespace")

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now, dict=TemplateDict(),
                       namespace=TemplateNamespace)  # fmt: skip
    try:
        return env.from_string(source)
    except jinja2.exceptions.TemplateSyntaxError as exc:
        raise IntegrityError(
            f"chat template: Jinja syntax error at line {exc.lineno}: {exc.message}"
        ) from None


class ChatTemplate:
    """A model's chat template with the special-token strings it may use."""

    def __init__(self, source: str, special_tokens: Mapping[str, str | None] | None = None) -> None:
        self.source = source
        self.special_tokens = {k: v for k, v in (special_tokens or {}).items() if v is not None}

    def render(self, messages: Any, add_generation_prompt: bool = True, **variables: Any) -> str:
        """The conversation as text, as ``apply_chat_template(messages, tokenize=False, ...)`` renders it.

        ``variables`` reach the template beside the special tokens and override them (transformers'
        ``**kwargs``). A ``raise_exception`` in the template is a ChatError naming ``messages``.
        """
        import jinja2

        plain = check_messages(messages)
        template = _compile(self.source)
        try:
            return template.render(messages=plain, tools=None, documents=None,
                                   add_generation_prompt=add_generation_prompt,
                                   **{**self.special_tokens, **variables})  # fmt: skip
        except jinja2.exceptions.TemplateError as exc:
            raise ChatError(f"messages: the model's chat template refused them: {exc}") from None
