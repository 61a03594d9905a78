"""Tools: typed, documented functions the model may call (OpenAI tools protocol).

A tool is a plain function (or method) marked with `@tool`: its docstring's first paragraph
is the description the model reads, its annotations become the JSON schema of its
arguments (str, int, float, bool, Literal[...] and lists of those; a default makes an
argument optional), and an `Args:` section in the docstring describes each argument. Its
first parameter is the `ToolContext` of the conversation, which the model never sees.

`@tool(acting=True, confirm="<strings key>", done="<strings key>")` marks a tool with side
effects: the engine asks the user first (Yes / No, the question rendered from the validated
arguments by bot/tools/consent.py) and runs it only on Yes, once, within the profile's limits
(bot/tools/limits.py); `done` is the summary the user then sees, formatted with the result's
fields. Read-only tools run at once.

The model sees personal data as placeholders (bot/pii.py); a tool's arguments get back the
values the user typed, so an order is looked up by the customer's own email. A tool that
writes where people read later (a ticket, a comment) says `reveal=()`: what it writes keeps
the placeholders, like the conversation's memory and events.

A tool reports trouble in one of three ways: it returns a result the model can explain
(e.g. "no order with that number"); it raises `ToolError` when the service failed (the
user is told and the conversation may go to a person, reason `tool_failure`); or it raises
`NeedsHuman` when a person must take over. `Toolbox` holds the tools a process has, and
validates a call's arguments against the schema before anything runs.
"""
from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

from bot import strings
from bot.types import User

DEFAULT_TIMEOUT = 20.0


class ToolError(Exception):
    """Raised by a tool whose service failed, refused or timed out. The message goes to the
    log and the event record, never to the user (who gets a fixed apology)."""


class NeedsHuman(Exception):
    """Raised by a tool when a person must take over; the engine escalates the conversation."""


class ArgumentError(ValueError):
    """A call's arguments don't match the tool's schema (sent back to the model to fix)."""


@dataclass
class ToolContext:
    """What a tool may know about the conversation it acts for."""

    conversation: str
    channel: str
    user: User
    profile: str
    private: bool = True
    link: str = ""  # a link back to the conversation's thread, where the channel has one
    options: Mapping[str, Any] = field(default_factory=dict)  # the profile's [tool_options]
    notes: dict[str, Any] = field(default_factory=dict)  # kept in the conversation (e.g. ticket keys)
    tally: Callable[..., typing.Awaitable[int]] | None = None  # Memory.tally(key, window, hits), for rate limits
    transcript: tuple[tuple[str, str], ...] = ()  # (role, text) of the conversation so far
    # The model sees personal data as placeholders (bot/pii.py): `reveal` gives a tool's arguments
    # back the values the user typed, `conceal` masks what a tool returns before the model reads it.
    reveal: Callable[[Any], Any] = lambda value: value
    conceal: Callable[[Any], Any] = lambda value: value


@dataclass(frozen=True)
class Tool:
    """A registered tool: what the model sees and what runs."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    function: Callable[..., Any]
    acting: bool = False
    confirm: str = ""  # bot/strings.py key of the consent question, formatted with the arguments
    timeout: float = DEFAULT_TIMEOUT
    done: str = ""  # bot/strings.py key of what the user sees after the action, formatted with its result
    reveal: tuple[str, ...] | None = None  # arguments given the user's own values back (None: all)

    def revealed(self, arguments: Mapping[str, Any], reveal: Callable[[Any], Any]) -> dict[str, Any]:
        """`arguments` with `reveal` (placeholders → the user's values) applied to the ones it may see."""
        return {k: reveal(v) if self.reveal is None or k in self.reveal else v for k, v in arguments.items()}

    def schema(self) -> dict[str, Any]:
        """The tool as the OpenAI `tools` parameter lists it."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": dict(self.parameters)}}

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments checked against the schema (ArgumentError says what is wrong)."""
        return validate(self.parameters, arguments)


@dataclass(frozen=True)
class _Mark:
    acting: bool
    confirm: str
    timeout: float
    name: str
    done: str = ""
    reveal: tuple[str, ...] | None = None


def tool(function: Callable | None = None, *, acting: bool = False, confirm: str = "",
         timeout: float = DEFAULT_TIMEOUT, name: str = "", done: str = "",
         reveal: tuple[str, ...] | None = None) -> Any:
    """Mark a function as a tool (see the module docstring)."""
    if acting and not confirm:
        raise ValueError("an acting tool needs a `confirm` question (a bot/strings.py key)")

    for key in (confirm, done):
        if key and key not in strings.STRINGS:
            raise ValueError(f"no string {key!r} in bot/strings.py for this tool")

    def mark(fn: Callable) -> Callable:
        fn.__tool__ = _Mark(acting, confirm, timeout, name or fn.__name__, done, reveal)  # type: ignore[attr-defined]
        return fn
    return mark(function) if function is not None else mark


class Toolbox:
    """The tools a process has, by name. Profiles choose among them."""

    def __init__(self) -> None:
        self.tools: dict[str, Tool] = {}

    def register(self, *providers: Any) -> "Toolbox":
        """Add every `@tool` function of each provider (a function, or an object's methods)."""
        for provider in providers:
            candidates = [provider] if callable(provider) and hasattr(provider, "__tool__") else [
                getattr(provider, n) for n in dir(provider) if not n.startswith("_")]
            for fn in candidates:
                mark = getattr(fn, "__tool__", None)
                if isinstance(mark, _Mark):
                    if mark.name in self.tools:
                        raise ValueError(f"two tools are named {mark.name!r}")
                    self.tools[mark.name] = describe(fn, mark)
        return self

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def allowed(self, names: typing.Iterable[str]) -> list[Tool]:
        """The tools among `names` that this process has, in the given order."""
        return [self.tools[n] for n in names if n in self.tools]

    def __contains__(self, name: str) -> bool:
        return name in self.tools


def describe(fn: Callable, mark: _Mark) -> Tool:
    """Build a `Tool` from a marked function: docstring → description, annotations → schema."""
    doc = inspect.getdoc(fn) or ""
    summary, arg_docs = _parse_doc(doc)
    if not summary:
        raise ValueError(f"tool {mark.name} needs a docstring: it is the model's description")
    hints = typing.get_type_hints(fn)
    parameters = list(inspect.signature(fn).parameters.values())[1:]  # the first is the ToolContext
    properties, required = {}, []
    for p in parameters:
        if p.name not in hints:
            raise ValueError(f"tool {mark.name}: argument {p.name} needs a type annotation")
        prop = _json_type(hints[p.name], f"{mark.name}.{p.name}")
        if p.name in arg_docs:
            prop["description"] = arg_docs[p.name]
        properties[p.name] = prop
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
    schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return Tool(mark.name, summary, schema, fn, mark.acting, mark.confirm, mark.timeout, mark.done, mark.reveal)


def _parse_doc(doc: str) -> tuple[str, dict[str, str]]:
    parts = re.split(r"\n\s*Args:\s*\n", doc, maxsplit=1)
    summary = " ".join(parts[0].split("\n\n")[0].split())
    args: dict[str, str] = {}
    if len(parts) == 2:
        current = ""
        for line in parts[1].splitlines():
            match = re.match(r"\s*(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
            if match and not line.startswith(" " * 8):
                current = match.group(1)
                args[current] = match.group(2).strip()
            elif current and line.strip():
                args[current] += " " + line.strip()
    return summary, args


_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _json_type(hint: Any, where: str) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if origin is Literal:
        values = list(typing.get_args(hint))
        return {"type": _SCALARS[type(values[0])], "enum": values}
    if origin in (list, tuple) or hint in (list, tuple):
        (item,) = typing.get_args(hint)[:1] or (str,)
        return {"type": "array", "items": _json_type(item, where)}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) == 1:
            return _json_type(options[0], where)
    raise ValueError(f"tool argument {where}: unsupported annotation {hint!r}")


def validate(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Check `arguments` against one of our generated object schemas."""
    if not isinstance(arguments, Mapping):
        raise ArgumentError("arguments must be a JSON object")
    properties = schema.get("properties", {})
    unknown = sorted(set(arguments) - set(properties))
    if unknown:
        raise ArgumentError(f"unknown argument(s): {', '.join(unknown)}")
    missing = [n for n in schema.get("required", ()) if n not in arguments]
    if missing:
        raise ArgumentError(f"missing required argument(s): {', '.join(missing)}")
    return {name: _check(value, properties[name], name) for name, value in arguments.items()}


def _check(value: Any, prop: Mapping[str, Any], name: str) -> Any:
    kind = prop.get("type")
    ok = {"string": lambda v: isinstance(v, str),
          "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "boolean": lambda v: isinstance(v, bool),
          "array": lambda v: isinstance(v, list)}[kind]
    if not ok(value):
        raise ArgumentError(f"argument {name} must be of type {kind}, not {type(value).__name__}")
    if "enum" in prop and value not in prop["enum"]:
        raise ArgumentError(f"argument {name} must be one of {', '.join(map(str, prop['enum']))}")
    if kind == "array":
        return [_check(item, prop["items"], f"{name}[{i}]") for i, item in enumerate(value)]
    return value
