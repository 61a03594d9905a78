"""Notion JSON to Markdown: rich text, blocks (recursively) and database row properties.

Pure functions over the API's JSON shapes. The connector passes `children_of`, which lists
a block's children (paginated API calls), so nothing here talks HTTP and tests feed it
recorded JSON. Headings stay Markdown `#` lines so chunking follows the page's structure;
list items keep their nesting by indentation; a table becomes a pipe table. Child pages and
child databases are their own documents, so a parent shows only their titles. Blocks with
no text worth indexing (images, files, embeds of apps, tables of contents) are skipped.
"""
from __future__ import annotations

import textwrap
from typing import Any, Callable, Iterable

Block = dict[str, Any]
Children = Callable[[str], Iterable[Block]]

LIST_ITEMS = {"bulleted_list_item", "numbered_list_item", "to_do"}
CONTAINERS = {"column_list", "column", "synced_block"}  # no text of their own, only children
SKIPPED_PROPERTIES = {"created_by", "last_edited_by", "created_time", "last_edited_time", "relation",
                      "rollup", "files", "button", "verification"}


class BlockError(ValueError):
    """Raised when a block or property is not of the shape its type requires (the page then
    becomes a `Failure`, and the rest of the batch goes on)."""


# ---- rich text ----------------------------------------------------------------------------------

def plain(items: Any) -> str:
    """The plain text of a rich text array (titles, property values, code)."""
    return "".join(_text_of(item) for item in _items(items))


def rich_text(items: Any) -> str:
    """A rich text array as Markdown: bold and inline code kept, links as `[text](url)`."""
    return "".join(_markup(item) for item in _items(items))


def _items(items: Any) -> list[dict]:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise BlockError(f"rich text must be a list of objects, not {type(items).__name__}")
    return items


def _text_of(item: dict) -> str:
    if isinstance(item.get("plain_text"), str):
        return item["plain_text"]
    if item.get("type") == "text":
        return str(item["text"]["content"])
    if item.get("type") == "equation":
        return str(item["equation"]["expression"])
    return ""


def _markup(item: dict) -> str:
    text = _text_of(item)
    core = text.strip()
    if not core:
        return text
    annotations = item.get("annotations") or {}
    if annotations.get("code"):
        core = f"`{core}`"
    if annotations.get("bold"):
        core = f"**{core}**"
    if item.get("href"):
        core = f"[{core}]({item['href']})"
    lead, trail = text[:len(text) - len(text.lstrip())], text[len(text.rstrip()):]
    return f"{lead}{core}{trail}"


# ---- pages and properties -----------------------------------------------------------------------

def page_title(page: dict) -> str:
    """The text of the page's title property ("Untitled" when empty, as Notion shows it)."""
    for prop in (page.get("properties") or {}).values():
        if isinstance(prop, dict) and prop.get("type") == "title":
            return plain(prop.get("title")).strip() or "Untitled"
    return "Untitled"


def properties(page: dict) -> dict[str, str]:
    """Non-empty property values as text, by property name, the title first."""
    props = page.get("properties") or {}
    ordered = sorted(props.items(), key=lambda kv: (kv[1] or {}).get("type") != "title")
    values = {name: property_text(prop) for name, prop in ordered}
    return {name: value for name, value in values.items() if value}


def property_text(prop: dict) -> str:
    """One property value as text ("" for empty values and kinds not worth indexing)."""
    kind = prop.get("type")
    if kind in SKIPPED_PROPERTIES or kind not in _PROPERTY:
        return ""
    try:
        return _PROPERTY[kind](prop.get(kind))
    except (KeyError, TypeError, AttributeError) as exc:
        raise BlockError(f"malformed {kind} property: {exc!r}") from exc


def _number(value: Any) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def _date(value: dict | None) -> str:
    if not value:
        return ""
    return f"{value['start']} → {value['end']}" if value.get("end") else str(value["start"])


def _formula(value: dict | None) -> str:
    if not value:
        return ""
    kind = value["type"]
    return {"number": _number, "date": _date, "boolean": _checkbox}.get(kind, lambda v: v or "")(value.get(kind))


def _checkbox(value: Any) -> str:
    return "Yes" if value else "No"


def _unique_id(value: dict | None) -> str:
    if not value or value.get("number") is None:
        return ""
    return f"{value['prefix']}-{value['number']}" if value.get("prefix") else str(value["number"])


_PROPERTY: dict[str, Callable[[Any], str]] = {
    "title": plain, "rich_text": plain, "number": _number, "date": _date, "checkbox": _checkbox,
    "select": lambda v: v["name"] if v else "", "status": lambda v: v["name"] if v else "",
    "multi_select": lambda v: ", ".join(o["name"] for o in v),
    "people": lambda v: ", ".join(p["name"] for p in v if p.get("name")),
    "url": lambda v: v or "", "email": lambda v: v or "", "phone_number": lambda v: v or "",
    "formula": _formula, "unique_id": _unique_id,
}


# ---- blocks -------------------------------------------------------------------------------------

def to_markdown(blocks: Iterable[Block], children_of: Children) -> str:
    """Markdown for a sequence of sibling blocks, fetching children with `children_of(id)`.

    Blocks are separated by a blank line, except consecutive list items (one line each)."""
    parts: list[str] = []
    previous_is_item, number = False, 0
    for block in blocks:
        kind = block.get("type")
        if kind == "numbered_list_item":
            number = number + 1 if number else _start(block)
        else:
            number = 0
        text = _render(block, kind, children_of, number)
        if not text:
            continue
        is_item = kind in LIST_ITEMS
        if parts:
            parts.append("\n" if is_item and previous_is_item else "\n\n")
        parts.append(text)
        previous_is_item = is_item
    return "".join(parts)


def _start(block: Block) -> int:
    payload = block.get("numbered_list_item")
    start = payload.get("list_start_index") if isinstance(payload, dict) else None
    return start if isinstance(start, int) else 1


def _render(block: Block, kind: Any, children_of: Children, number: int) -> str:
    if kind not in _RENDER and kind not in CONTAINERS:
        return ""  # unsupported or textless block types are skipped
    payload = block.get(kind)
    if not isinstance(payload, dict):
        raise BlockError(f"{kind} block {block.get('id')} has no {kind} object")

    def children() -> str:
        if not block.get("has_children"):
            return ""
        return to_markdown(children_of(block["id"]), children_of)

    if kind in CONTAINERS:
        return children()
    try:
        return _RENDER[kind](payload, children, number, block, children_of)
    except BlockError as exc:
        raise BlockError(f"{kind} block {block.get('id')}: {exc}") from exc


def _text(payload: dict) -> str:
    if "rich_text" not in payload:
        raise BlockError("no rich_text")
    return rich_text(payload["rich_text"]).strip()


def _join(*parts: str) -> str:
    return "\n\n".join(p for p in parts if p)


def _item(marker: str, text: str, children: str) -> str:
    """A list item; its children are indented to the item's text so they stay nested."""
    nested = textwrap.indent(children, " " * len(marker), lambda line: bool(line.strip()))
    return f"{marker}{text}" + (f"\n{nested}" if nested else "")


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _heading(level: int):
    def render(payload, children, *_):
        text = _text(payload)
        return _join(f"{'#' * level} {text}" if text else "", children())  # toggleable: children follow
    return render


def _code(payload, *_):
    code = plain(payload.get("rich_text")).rstrip("\n")
    language = str(payload.get("language") or "")
    language = "" if language == "plain text" else language.replace(" ", "-")
    fence = "````" if "```" in code else "```"
    return f"{fence}{language}\n{code}\n{fence}"


def _table(payload, children, number, block, children_of):
    rows = [r["table_row"]["cells"] for r in children_of(block["id"]) if r.get("type") == "table_row"] \
        if block.get("has_children") else []
    if not rows:
        return ""
    width = max(len(cells) for cells in rows)
    lines = ["| " + " | ".join(_cell(c) for c in list(cells) + [[]] * (width - len(cells))) + " |"
             for cells in rows]
    lines.insert(1, "|" + " --- |" * width)  # Markdown needs a header row: the first row is it
    return "\n".join(lines)


def _cell(items: Any) -> str:
    return " ".join(rich_text(items).split()).replace("|", "\\|")


def _bookmark(payload, *_):
    url, caption = payload.get("url") or "", plain(payload.get("caption") or []).strip()
    return f"[{caption}]({url})" if caption and url else caption or url


def _callout(payload, children, *_):
    icon = payload.get("icon") or {}
    emoji = icon.get("emoji", "") if icon.get("type") == "emoji" else ""
    return _quoted(_join(" ".join(p for p in (emoji, _text(payload)) if p), children()))


_RENDER: dict[str, Callable[..., str]] = {
    "paragraph": lambda p, children, *_: _join(_text(p), children()),
    "heading_1": _heading(1), "heading_2": _heading(2), "heading_3": _heading(3),
    "bulleted_list_item": lambda p, children, *_: _item("- ", _text(p), children()),
    "numbered_list_item": lambda p, children, n, *_: _item(f"{n}. ", _text(p), children()),
    "to_do": lambda p, children, *_: _item("- [x] " if p.get("checked") else "- [ ] ", _text(p), children()),
    "toggle": lambda p, children, *_: _join(_text(p), children()),
    "quote": lambda p, children, *_: _quoted(_join(_text(p), children())),
    "callout": _callout,
    "code": _code,
    "equation": lambda p, *_: str(p["expression"]).strip(),
    "divider": lambda *_: "---",
    "child_page": lambda p, *_: str(p.get("title") or "").strip(),  # its own document
    "child_database": lambda p, *_: str(p.get("title") or "").strip(),  # its rows are documents
    "table": _table,
    "bookmark": _bookmark, "embed": _bookmark, "link_preview": _bookmark,
}
