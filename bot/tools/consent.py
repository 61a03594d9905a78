"""What the user reads about an action: the Yes / No question before it, the summary after it.

Both are rendered here, on the server, from fixed translated templates (bot/strings.py, or the
profile's own wording of the same keys) and from data we checked: the call's arguments as
validated against the tool's schema, or the fields of the tool's result. The model's free text
never reaches them. Every value is made inert before it goes into a template: one line,
shortened, its URLs and domain names defanged (`https[:]//evil[.]example`, which no chat client
turns into a link) and every Markdown marker escaped, so `[click](https://…)`, `![x](…)`, `<b>`
or `**` show as typed: the question can't carry a link, an image or markup. A template field
the call didn't fill shows as "—".
"""
from __future__ import annotations

import re
import string
from typing import Any, Callable, Mapping

from bot import strings

FIELD_CHARS = 200  # a value longer than this is cut (the question shows its start, then …)
EMPTY = "—"
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*):/+")
_DOT = re.compile(r"(?i)(?<=[a-z0-9-])\.(?=[a-z0-9-]*[a-z])")  # the dots of names like evil.example
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>!~|&#])")

Text = Callable[..., str]  # (strings key, **values) → the template in the reply's language, formatted


def inert(value: Any, limit: int = FIELD_CHARS) -> str:
    """`value` as one shortened line of Markdown that renders literally, without links."""
    flat = " ".join(str(value).split())
    if len(flat) > limit:
        flat = flat[:limit].rstrip() + "…"
    if not flat:
        return EMPTY
    flat = _DOT.sub("[.]", _SCHEME.sub(r"\1[:]//", flat))
    return _MARKDOWN.sub(r"\\\1", flat)


def fields(key: str) -> set[str]:
    """The names a template uses, in any of its languages."""
    return {name for template in strings.STRINGS[key].values()
            for _, name, _, _ in string.Formatter().parse(template) if name}


def question(confirm: str, arguments: Mapping[str, Any], text: Text) -> str:
    """The Yes / No question for an action, from its validated arguments."""
    return text(confirm, **{name: inert(arguments.get(name, "")) for name in fields(confirm)})


def summary(done: str, result: Any, text: Text) -> str:
    """What an action did, from its result ("" when the result doesn't show it was done)."""
    if not done or not isinstance(result, Mapping) or result.get("error"):
        return ""
    names = fields(done)
    if any(result.get(name) in (None, "") for name in names):
        return ""
    return text(done, **{name: inert(result[name]) for name in names})
