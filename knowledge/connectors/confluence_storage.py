"""Confluence storage format (XHTML with `ac:` and `ri:` macros) to Markdown text.

Structure survives as Markdown because chunking follows it: headings become `#` lines,
lists stay lists (nested ones indented), tables become pipe tables, code macros become
fenced code, and info/note/warning panels keep their words behind a label. Links keep
their text; macros without text (table of contents, Jira issues, images, emoticons) and
macro parameters disappear.

Confluence only saves well-formed XHTML, so the body is parsed strictly as XML (with the
HTML named entities Confluence writes; the body is wrapped in an element, so it can't carry
a DOCTYPE or entity declarations): a body that is not well-formed is damaged, and
`StorageError` says so instead of indexing half a page.
"""
from __future__ import annotations

import html.entities
import re
import xml.etree.ElementTree as ET

from knowledge import sanitize

BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "pre", "blockquote", "div", "hr",
          "section", "article", "li", "ac:layout", "ac:layout-section", "ac:layout-cell", "ac:task-list",
          "ac:rich-text-body", "ac:adf-extension", "ac:structured-macro", "ac:macro"}
HIDDEN = {"ac:parameter", "ac:placeholder", "ac:image", "ac:emoticon", "ac:task-id", "ac:task-status",
          "ac:adf-attribute", "colgroup", "col", "script", "style"}
INLINE_MACROS = {"status", "anchor", "jira", "mention", "footnote"}
CODE_MACROS = {"code", "noformat"}
PANELS = {"info": "Info", "note": "Note", "warning": "Warning", "tip": "Tip", "panel": "", "expand": "",
          "success": "Success", "error": "Error"}
ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
PREFIX = re.compile(r"</?([A-Za-z_][\w.-]*):[\w.-]|\s([A-Za-z_][\w.-]*):[\w.-]+\s*=")
XML_ENTITIES = {"lt", "gt", "amp", "quot", "apos"}


class StorageError(ValueError):
    """Raised when a page body is not well-formed storage format (it can't be read as XHTML)."""


def to_markdown(storage: str) -> str:
    """The text of a storage-format body as Markdown (empty for a page with no text)."""
    return "\n\n".join(b for b in _blocks(_parse(storage)) if b.strip()).strip()


def _parse(storage: str) -> ET.Element:
    prefixes = {p for pair in PREFIX.findall(storage) for p in pair if p and p not in ("xml", "xmlns")}
    declared = "".join(f' xmlns:{p}="urn:{p}"' for p in sorted(prefixes))
    try:
        return ET.fromstring(f"<body{declared}>{ENTITY.sub(_entity, storage)}</body>")
    except ET.ParseError as exc:
        raise StorageError(f"not well-formed XHTML ({exc})") from None


def _entity(match: re.Match) -> str:
    """HTML named entities as character references (XML itself knows only five)."""
    name = match.group(1)
    chars = None if name in XML_ENTITIES else html.entities.html5.get(f"{name};")
    return "".join(f"&#{ord(c)};" for c in chars) if chars else match.group(0)


def _name(el: ET.Element) -> str:
    """`ac:structured-macro` for `{urn:ac}structured-macro`: the names storage format uses."""
    tag = el.tag if isinstance(el.tag, str) else ""
    return f"{tag[5:tag.index('}')]}:{tag[tag.index('}') + 1:]}" if tag.startswith("{urn:") else tag.lower()


def _attr(el: ET.Element, name: str) -> str:
    prefix, _, local = name.partition(":")
    return el.get(f"{{urn:{prefix}}}{local}" if local else name) or ""


def _child(el: ET.Element, name: str, **attrs: str) -> ET.Element | None:
    return next((c for c in el if _name(c) == name and all(_attr(c, k.replace("_", ":")) == v
                                                           for k, v in attrs.items())), None)


def _param(macro: ET.Element, name: str) -> str:
    param = _child(macro, "ac:parameter", ac_name=name)
    return "".join(param.itertext()).strip() if param is not None else ""


def _is_block(el: ET.Element) -> bool:
    name = _name(el)
    if name in ("ac:structured-macro", "ac:macro"):
        return _attr(el, "ac:name") not in INLINE_MACROS
    return name in BLOCKS


# --- blocks -----------------------------------------------------------------------------

def _blocks(el: ET.Element) -> list[str]:
    """Markdown blocks of `el`'s content: runs of inline content become paragraphs."""
    out: list[str] = []
    run: list[str] = [_space(el.text)]
    for child in el:
        if _is_block(child):
            out += _paragraph(run)
            out += _block(child)
        else:
            run.append(_inline(child))
        run.append(_space(child.tail))
    return out + _paragraph(run)


def _paragraph(run: list[str]) -> list[str]:
    text = "\n".join(line.strip() for line in "".join(run).split("\n")).strip()
    run.clear()
    return [text] if text else []


def _block(el: ET.Element) -> list[str]:
    name = _name(el)
    if sanitize.hides(el.attrib.items()):
        return [hidden] if (hidden := sanitize.hidden_text("".join(el.itertext()))) else []
    if re.fullmatch(r"h[1-6]", name):
        text = _inline_children(el).replace("\n", " ").strip()
        return [f"{'#' * int(name[1])} {text}"] if text else []
    if name in ("ul", "ol"):
        return [text] if (text := _list(el, ordered=name == "ol")) else []
    if name == "table":
        return [text] if (text := _table(el)) else []
    if name == "pre":
        return [_fence("".join(el.itertext()), "")]
    if name == "blockquote":
        return ["\n".join(f"> {line}".rstrip() for line in "\n\n".join(_blocks(el)).split("\n"))]
    if name in ("ac:structured-macro", "ac:macro"):
        return _macro(el)
    if name == "ac:task-list":
        return [_tasks(el)]
    if name == "ac:adf-extension":
        return _adf(el)
    if name == "hr":
        return []
    return _blocks(el)  # containers: div, section, layouts, rich-text bodies, stray <li>


def _list(el: ET.Element, ordered: bool) -> str:
    lines: list[str] = []
    number = int(el.get("start") or 1) if (el.get("start") or "1").isdigit() else 1
    for item in (c for c in el if _name(c) == "li"):
        marker = f"{number}. " if ordered else "- "
        number += 1
        first, *rest = "\n".join(_blocks(item)).split("\n")
        lines.append((marker + first).rstrip())
        lines += [" " * len(marker) + line if line.strip() else "" for line in rest]
    return "\n".join(lines)


def _table(el: ET.Element) -> str:
    rows = [[text for c in row if _name(c) in ("th", "td") for text in [_cell(c)] + [""] * (_span(c) - 1)]
            for row in _rows(el)]
    rows = [r for r in rows if r]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join([lines[0], "| " + " | ".join(["---"] * width) + " |", *lines[1:]])


def _rows(el: ET.Element) -> list[ET.Element]:
    rows = []
    for child in el:
        if _name(child) == "tr":
            rows.append(child)
        elif _name(child) in ("thead", "tbody", "tfoot"):
            rows += [r for r in child if _name(r) == "tr"]
    return rows


def _span(cell: ET.Element) -> int:
    span = cell.get("colspan") or "1"
    return min(int(span), 50) if span.isdigit() and int(span) > 0 else 1


def _cell(cell: ET.Element) -> str:
    lines = [re.sub(r"^#{1,6} ", "", line.strip()) for b in _blocks(cell) for line in b.split("\n")]
    return " ".join(line for line in lines if line).replace("|", "\\|")


def _fence(code: str, language: str) -> str:
    code = code.strip("\n")
    longest = max((len(m) for m in re.findall(r"`{3,}", code)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code}\n{fence}"


def _macro(el: ET.Element) -> list[str]:
    name = _attr(el, "ac:name")
    if name in CODE_MACROS:
        body = _child(el, "ac:plain-text-body")
        code = "".join(body.itertext()) if body is not None else ""
        return [_fence(code, re.sub(r"\W", "", _param(el, "language")))] if code.strip() else []
    body = _child(el, "ac:rich-text-body")
    if body is None:
        return []  # toc, children, jira, attachments, include...: no text of their own
    blocks = _blocks(body)
    label = " – ".join(part for part in (PANELS.get(name, ""), _param(el, "title")) if part)
    return _labelled(label, blocks) if name in PANELS else blocks


def _labelled(label: str, blocks: list[str]) -> list[str]:
    if not label or not blocks:
        return blocks
    if re.match(r"(#|- |\d+\. |\||```|>)", blocks[0]):
        return [f"{label}:", *blocks]
    return [f"{label}: {blocks[0]}", *blocks[1:]]


def _tasks(el: ET.Element) -> str:
    lines = []
    for task in (c for c in el if _name(c) == "ac:task"):
        status = _child(task, "ac:task-status")
        done = status is not None and "".join(status.itertext()).strip() == "complete"
        body = _child(task, "ac:task-body")
        text = _inline_children(body).replace("\n", " ").strip() if body is not None else ""
        lines.append(f"- [{'x' if done else ' '}] {text}".rstrip())
    return "\n".join(lines)


def _adf(el: ET.Element) -> list[str]:
    """Cloud's `ac:adf-extension` (new-editor panels): the node's content, else its fallback."""
    node = _child(el, "ac:adf-node")
    content = _child(node, "ac:adf-content") if node is not None else None
    if content is None:
        fallback = _child(el, "ac:adf-fallback")
        return _blocks(fallback) if fallback is not None else []
    kind = _child(node, "ac:adf-attribute", key="panel-type")
    label = PANELS.get("".join(kind.itertext()).strip(), "") if kind is not None else ""
    return _labelled(label, _blocks(content))


# --- inline -----------------------------------------------------------------------------

def _space(text: str | None) -> str:
    return re.sub(r"\s+", " ", text) if text else ""


def _inline_children(el: ET.Element) -> str:
    return _space(el.text) + "".join(_inline(c) + _space(c.tail) for c in el)


def _inline(el: ET.Element) -> str:
    name = _name(el)
    if name in HIDDEN or name.startswith("ri:"):
        return ""
    if sanitize.hides(el.attrib.items()):  # display:none, white text…: kept marked, for sanitize.clean
        return sanitize.hidden_text("".join(el.itertext()))
    if name == "br":
        return "\n"
    if name == "code":
        text = _inline_children(el).strip()
        return f"`{text}`" if text else ""
    if name == "time":
        return el.get("datetime") or _inline_children(el)
    if name == "ac:link":
        return _link(el)
    if name in ("ac:structured-macro", "ac:macro"):
        return _param(el, "title") if _attr(el, "ac:name") == "status" else ""
    if name in ("ac:plain-text-body", "ac:plain-text-link-body"):
        return _space("".join(el.itertext()))
    return _inline_children(el)


def _link(el: ET.Element) -> str:
    """A Confluence link's words: its body, else the title of what it points at."""
    for name in ("ac:link-body", "ac:plain-text-link-body"):
        body = _child(el, name)
        if body is not None and (text := _inline(body) if name.endswith("plain-text-link-body")
                                 else _inline_children(body)).strip():
            return text
    for child in el:
        target = _attr(child, "ri:content-title") or _attr(child, "ri:filename")
        if target:
            return target
    return ""
