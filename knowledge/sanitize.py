"""What a document shows a reader is knowledge; what it hides is not (OWASP LLM01).

Every document passes through `clean` once, in knowledge/ingest.py before chunking, whatever
its connector. Hidden content is stripped and counted per kind:
- `html_comment` (`<!-- … -->`, an unclosed one runs to the end) and `markdown_comment`
  (`[//]: # (…)`, `[comment]: <> (…)`);
- `hidden_html`: elements styled `display:none`, `visibility:hidden`, white text,
  `font-size:0`, `opacity:0`, or with a `hidden` or `aria-hidden="true"` attribute;
- `details_ai`: a folded `<details>` section whose text addresses an AI (other folded
  text is ordinary knowledge and stays);
- `invisible`: zero-width and bidi control characters and Unicode tag characters
  (U+E0000 block; the ASCII they spell is kept aside as hidden text);
- `base64`: long base64 runs, always dropped; what they decode to, when it is text, is
  kept aside as hidden text.
Then the visible text loses its instructions to an AI (knowledge/injection.py), counted as
`instruction`. Hidden text that holds an instruction is a finding too: someone planted it.
The document keeps its clean remainder, answerable as before; its findings (`Flag`s) put
it in quarantine for a person to review (`Index.flagged`, shown by `switchboard sources`).

`RULES` names this version of the rules (a hash of every pattern, weight and threshold, and
`REVISION`): the index stores it with each document (knowledge/ingest.py), so a document
cleaned under older rules is cleaned again at the next sync, not trusted forever.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import html
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from knowledge import injection

HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
MARKDOWN_COMMENT = re.compile(r"^[ \t]{0,3}\[[^\]\n]*\]:[ \t]*(?:#|<>)(?:[ \t]+(?:\(.*?\)|\".*?\"|'.*?'))?[ \t]*$", re.M)
TAG = re.compile(r"<(/?)([a-zA-Z][\w:-]*)((?:\"[^\"]*\"|'[^']*'|[^'\">])*)>")
HIDING = re.compile(
    r"(?:display\s*:\s*none|visibility\s*:\s*hidden|(?<![-\w])color\s*:\s*(?:#fff(?:fff)?\b|white\b|rgba?\(\s*255\s*,\s*255\s*,\s*255)"
    r"|font-size\s*:\s*0(?![.\d]*[1-9])|opacity\s*:\s*0(?![.\d]*[1-9]))"
    r"|(?:^|\s)hidden(?=\s|=|/|$)|aria-hidden\s*=\s*[\"']?true|(?:^|\s)color\s*=\s*[\"']?(?:#fff(?:fff)?\b|white\b)", re.I)
VOID = {"img", "br", "hr", "input", "meta", "link", "source", "wbr", "area", "col", "embed"}
DETAILS = re.compile(r"<details\b[^>]*>(.*?)</details\s*>", re.I | re.S)
INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]")
BASE64 = re.compile(r"(?<![\w+/=.:-])[A-Za-z0-9+/]{32,}={0,2}(?![\w+/=])")
HIDDEN_KEPT = 20  # hidden texts looked at for instructions, per document
REVISION = 1  # bump when `clean`'s code (not a pattern) changes what it strips: RULES follows


def _rules() -> str:
    """A short hash of everything that decides what `clean` removes: every pattern here and in
    knowledge/injection.py, each rule's weight, the threshold and `REVISION`. Editing a rule
    changes it by itself, so no one has to remember to bump a number."""
    patterns = (HTML_COMMENT, MARKDOWN_COMMENT, TAG, HIDING, DETAILS, INVISIBLE, BASE64, injection.PSEUDO_TAG,
                injection.ROLE_START, injection.SENTENCE, injection.TABLE_ROW)
    parts = [str(REVISION), str(HIDDEN_KEPT), str(injection.THRESHOLD), ",".join(sorted(VOID)),
             *(p.pattern for p in patterns),
             *(f"{r.name}:{r.weight}:{r.opens}:" + "\x1e".join(p.pattern for p in r.patterns) for r in injection.RULES)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]


RULES = _rules()


def hides(attrs: Iterable[tuple[str, str | None]]) -> bool:
    """Whether an element with these attributes is hidden from readers (the HIDING rules:
    display:none, white text, font-size 0, `hidden`…). Converters of HTML to Markdown drop
    attributes, so they ask this first and keep what it hides as `hidden_text`."""
    return bool(HIDING.search(" " + " ".join(f'{k}="{v}"' if v is not None else k for k, v in attrs)))


def hidden_text(text: str) -> str:
    """A hidden element's text as a converter keeps it in its Markdown: marked hidden, so that
    `clean` strips it, counts it and checks it for instructions like any hidden HTML."""
    return f"<span hidden>{html.escape(text, quote=False)}</span>" if text.strip() else ""


class Hiding:
    """For an HTMLParser-based converter: whether it is inside a hidden element, and that
    element's text. Feed it every start tag, end tag and text before the converter's own rules."""

    def __init__(self) -> None:
        self.depth = 0
        self._text: list[str] = []

    def start(self, tag: str, attrs: Iterable[tuple[str, str | None]]) -> bool:
        """True when the tag is inside (or opens) a hidden element: not the converter's."""
        if self.depth:
            self.depth += tag not in VOID
            return True
        if tag not in VOID and hides(attrs):
            self.depth = 1
            return True
        return False

    def end(self, tag: str) -> str | None:
        """None outside a hidden element; else "" while inside, and the `hidden_text` when it closes."""
        if not self.depth:
            return None
        if tag not in VOID:
            self.depth -= 1
        if self.depth:
            return ""
        text, self._text = "".join(self._text), []
        return hidden_text(text)

    def data(self, data: str) -> bool:
        if self.depth:
            self._text.append(data)
        return bool(self.depth)


@dataclass(frozen=True)
class Flag:
    """Why a document is in quarantine: where the instruction was (`instruction` for the
    visible text, else the hidden kind it hid in), the rule that caught it, the snippet."""

    kind: str
    rule: str
    snippet: str


@dataclass(frozen=True)
class Cleaned:
    """A document text with its hidden content and instructions removed, and what went."""

    text: str
    stripped: Mapping[str, int]
    flags: tuple[Flag, ...]


def clean(text: str) -> Cleaned:
    """`text` as knowledge: hidden content stripped, instructions removed; counts and flags."""
    stripped: Counter[str] = Counter()
    hidden: list[tuple[str, str]] = []
    text = _strip_invisible(text, stripped, hidden)
    text = _sub(HTML_COMMENT, "html_comment", text, stripped, hidden)
    text = _sub(MARKDOWN_COMMENT, "markdown_comment", text, stripped, hidden)
    text = _strip_hidden_html(text, stripped, hidden)
    text = _sub(DETAILS, "details_ai", text, stripped, hidden, when=lambda m: bool(injection.addresses_ai(m.group(1))))
    text = _strip_base64(text, stripped, hidden)
    flags = [Flag(kind, found.rule, found.snippet) for kind, body in hidden[:HIDDEN_KEPT]
             if (found := injection.addresses_ai(body))]
    scan = injection.scan(text)
    if scan.findings:
        stripped["instruction"] += len(scan.findings)
        flags += [Flag("instruction", f.rule, f.snippet) for f in scan.findings]
    return Cleaned(re.sub(r"\n{3,}", "\n\n", scan.text).strip(), dict(stripped), tuple(flags))


def _sub(pattern: re.Pattern, kind: str, text: str, stripped: Counter, hidden: list,
         when: Callable[[re.Match], bool] | None = None) -> str:
    def drop(match: re.Match) -> str:
        if when and not when(match):
            return match.group(0)
        stripped[kind] += 1
        hidden.append((kind, match.group(0)))
        return ""
    return pattern.sub(drop, text)


def _strip_invisible(text: str, stripped: Counter, hidden: list) -> str:
    found = INVISIBLE.findall(text)
    if not found:
        return text
    stripped["invisible"] += len(found)
    spelled = "".join(chr(ord(c) - 0xE0000) for c in found if 0xE0020 <= ord(c) <= 0xE007E)
    if spelled.strip():  # tag characters spell ASCII no one sees
        hidden.append(("invisible", spelled))
    return INVISIBLE.sub("", text)


def _strip_hidden_html(text: str, stripped: Counter, hidden: list) -> str:
    start = 0
    while match := _next_hiding(text, start):
        end = match.end() if match.group(1) or match.group(2).lower() in VOID or match.group(3).rstrip().endswith("/") \
            else _closing(text, match)
        stripped["hidden_html"] += 1
        hidden.append(("hidden_html", text[match.start():end]))
        text, start = text[:match.start()] + text[end:], match.start()
    return text


def _next_hiding(text: str, start: int) -> re.Match | None:
    return next((m for m in TAG.finditer(text, start) if not m.group(1) and HIDING.search(m.group(3))), None)


def _closing(text: str, opening: re.Match) -> int:
    """Where the element `opening` starts ends: its matching closing tag, else the paragraph."""
    name, depth = opening.group(2).lower(), 1
    for tag in TAG.finditer(text, opening.end()):
        if tag.group(2).lower() != name:
            continue
        depth += -1 if tag.group(1) else 1
        if depth == 0:
            return tag.end()
    blank = re.compile(r"\n[ \t]*\n").search(text, opening.end())
    return blank.start() if blank else len(text)


def _strip_base64(text: str, stripped: Counter, hidden: list) -> str:
    def drop(match: re.Match) -> str:
        blob = match.group(0)
        if re.fullmatch(r"[0-9a-fA-F]+", blob) or not all(re.search(c, blob) for c in ("[a-z]", "[A-Z]", "[0-9+/=]")):
            return blob  # a hex digest or a long camelCase word, not base64
        stripped["base64"] += 1
        decoded = _decoded(blob)
        if decoded:
            hidden.append(("base64", decoded))
        return ""
    return BASE64.sub(drop, text)


def _decoded(blob: str) -> str:
    """The text a base64 run spells, or "" when it isn't text."""
    try:
        data = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        decoded = data.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""
    printable = sum(c.isprintable() or c.isspace() for c in decoded)
    return decoded if decoded and printable / len(decoded) > 0.95 else ""
