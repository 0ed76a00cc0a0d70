"""Build an argparse parser from a typed function, litgpt-style: the signature is the CLI.

A verb is a plain function. Parameters without a default are positional; keyword-only parameters are
``--flags`` (underscores become dashes). The docstring's first paragraph is the description, and its
``Args:`` section gives each flag's help. ``Annotated[T, Opt(...)]`` adds aliases (the seed's
``--model_config``) or a metavar. Supported types: str, int, float, Path, bool, Literal[...],
``X | None`` and ``list[X]``. ``Opt(ge=, gt=, le=, lt=)`` bounds a number (pydantic's names); a bounded float
must also be finite. A value out of range is refused before the verb runs, in one line naming the flag.
"""

from __future__ import annotations

import argparse
import inspect
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin


@dataclass(frozen=True)
class Opt:
    """Extra argparse settings for one parameter, attached with ``Annotated[T, Opt(...)]``."""

    aliases: tuple[str, ...] = ()
    metavar: str | None = None
    help: str | None = None
    ge: float | None = None  # value >= ge
    gt: float | None = None  # value > gt
    le: float | None = None  # value <= le
    lt: float | None = None  # value < lt

    @property
    def bounded(self) -> bool:
        return any(b is not None for b in (self.ge, self.gt, self.le, self.lt))


def _out_of_bounds(value: float, opt: Opt) -> str | None:
    """What is wrong with ``value`` under ``opt``'s bounds, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if opt.ge is not None and not value >= opt.ge:
        return f"must be >= {_number(opt.ge)}"
    if opt.gt is not None and not value > opt.gt:
        return f"must be > {_number(opt.gt)}"
    if opt.le is not None and not value <= opt.le:
        return f"must be <= {_number(opt.le)}"
    if opt.lt is not None and not value < opt.lt:
        return f"must be < {_number(opt.lt)}"
    return None


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def check_bounds(fn: Callable[..., Any], values: dict[str, Any]) -> None:
    """Refuse a flag whose value is outside its ``Opt`` bounds, naming the flag (one line, exit 2)."""
    from radon.errors import RadonError

    hints = typing.get_type_hints(fn, include_extras=True)
    for name, value in values.items():
        _, opt = _unwrap(hints.get(name, str))
        if not opt.bounded or value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            problem = _out_of_bounds(item, opt)
            if problem:
                raise RadonError(f"--{name.replace('_', '-')}: {problem}, got {item}")


def _doc_sections(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {arg: help})."""
    doc = inspect.cleandoc(doc or "")
    head, _, rest = doc.partition("\nArgs:\n")
    helps: dict[str, str] = {}
    current = None
    for line in rest.splitlines():
        if re.match(r"^\S", line):  # a new section (Returns:, Raises:) ends Args
            break
        m = re.match(r"^\s{2,4}(\w+)(?: \([^)]*\))?:\s*(.*)$", line)
        if m:
            current = m.group(1)
            helps[current] = m.group(2).strip()
        elif current and line.strip():
            helps[current] += " " + line.strip()
    return head.strip(), helps


def _unwrap(tp: Any) -> tuple[Any, Opt]:
    opt = Opt()
    if get_origin(tp) is typing.Annotated:
        tp, *meta = get_args(tp)
        for m in meta:
            if isinstance(m, Opt):
                opt = m
    return tp, opt


def _strip_optional(tp: Any) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _add_param(parser: argparse.ArgumentParser, p: inspect.Parameter, tp: Any, help_text: str) -> None:
    tp, opt = _unwrap(tp)
    tp = _strip_optional(tp)
    text = opt.help or help_text
    # argparse expands %-formats in help: a literal "%" in a docstring would crash --help
    kwargs: dict[str, Any] = {"help": text.replace("%", "%%") if text else None}
    positional = p.default is inspect.Parameter.empty and p.kind is not inspect.Parameter.KEYWORD_ONLY
    if not positional:
        kwargs["default"] = None if p.default is inspect.Parameter.empty else p.default
        if p.default is inspect.Parameter.empty:
            kwargs["required"] = True
    origin = get_origin(tp)
    if tp is bool:
        # True, or None (decided later, "by default"): --flag and --no-flag; False: --flag alone
        kwargs["action"] = argparse.BooleanOptionalAction if p.default in (True, None) else "store_true"
    elif origin is Literal:
        choices = list(get_args(tp))
        kwargs["choices"] = choices
        kwargs["type"] = type(choices[0])
    elif origin in (list, tuple):
        (item,) = get_args(tp)[:1]
        kwargs["nargs"] = "+" if positional or p.default is inspect.Parameter.empty else "*"
        kwargs["type"] = _strip_optional(item)
        if get_origin(item) is Literal:
            kwargs["choices"] = list(get_args(item))
            kwargs["type"] = type(kwargs["choices"][0])
    else:
        kwargs["type"] = tp if tp in (str, int, float, Path) else str
    if opt.bounded and kwargs.get("type") not in (int, float):
        raise TypeError(f"{p.name}: Opt bounds apply to int and float flags only")
    if opt.metavar:
        kwargs["metavar"] = opt.metavar
    if kwargs.get("help") and "default" in kwargs and kwargs["default"] not in (None, False, [], ()):
        kwargs["help"] += " (default: %(default)s)"
    if positional:
        kwargs.pop("default", None)
        parser.add_argument(p.name, **kwargs)
    else:
        flag = "--" + p.name.replace("_", "-")
        names = [flag, *[a for a in opt.aliases if a != flag]]
        parser.add_argument(*names, dest=p.name, **kwargs)


def build_parser(fn: Callable[..., Any], prog: str) -> argparse.ArgumentParser:
    """An ArgumentParser whose arguments are ``fn``'s parameters."""
    description, helps = _doc_sections(fn.__doc__ or "")
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    hints = typing.get_type_hints(fn, include_extras=True)
    for p in inspect.signature(fn).parameters.values():
        _add_param(parser, p, hints.get(p.name, str), helps.get(p.name, ""))
    return parser


def call(fn: Callable[..., Any], prog: str, argv: list[str]) -> int:
    """Parse ``argv`` for ``fn`` and call it; returns the exit status."""
    ns = build_parser(fn, prog).parse_args(argv)
    check_bounds(fn, vars(ns))
    result = fn(**vars(ns))
    return int(result or 0)
