"""A writer for protobuf text format, enough for Triton's ``config.pbtxt`` (``model_config.proto``).

Triton reads a model's configuration as a ``ModelConfig`` message in protobuf text format
(``docs/user_guide/model_configuration.md``). Configs are built here as plain dicts and written with
``to_pbtxt``, so generating one needs no protobuf package; the tests parse every generated file back
with ``tritonclient.grpc.model_config_pb2`` and ``google.protobuf.text_format``, which checks every
field name, type and enum value against Triton's own schema.

Mapping: a dict is a message (``key { ... }``); a list of dicts is a repeated message field
(``key [ {...}, {...} ]``; protobuf map fields such as ``parameters`` are repeated entries, so
``[{"key": k, "value": {...}}]``); a list of scalars is a repeated scalar (``dims: [ -1, 64 ]``);
``Enum("TYPE_FP32")`` is an enum value (unquoted); str is quoted; bool is ``true``/``false``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

INDENT = "  "


class Enum(str):
    """An enum value, written without quotes (``data_type: TYPE_FP32``)."""


def _scalar(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    raise TypeError(f"config.pbtxt: cannot write a {type(value).__name__} ({value!r})")


def _message(fields: Mapping[str, Any], depth: int) -> list[str]:
    pad = INDENT * depth
    lines: list[str] = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            lines.append(f"{pad}{key} {{")
            lines += _message(value, depth + 1)
            lines.append(f"{pad}}}")
        elif isinstance(value, Sequence) and not isinstance(value, str):
            items = list(value)
            if items and all(isinstance(v, Mapping) for v in items):
                lines.append(f"{pad}{key} [")
                for n, item in enumerate(items):
                    lines.append(f"{pad}{INDENT}{{")
                    lines += _message(item, depth + 2)
                    lines.append(f"{pad}{INDENT}}}" + ("," if n + 1 < len(items) else ""))
                lines.append(f"{pad}]")
            elif items:
                lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in items)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return lines


def to_pbtxt(config: Mapping[str, Any]) -> str:
    """``config`` (a ModelConfig as nested dicts and lists) in protobuf text format."""
    return "\n".join(_message(config, 0)) + "\n"


def parameters(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A ``parameters`` map field: ``{k: v}`` -> ``[{key: k, value: {string_value: str(v)}}]``."""
    return [{"key": k, "value": {"string_value": str(v)}} for k, v in values.items()]
