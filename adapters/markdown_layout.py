"""Markdown laid out as lines for chat formats that render inline marks but not Markdown's
blocks (Slack mrkdwn, a Teams TextBlock): list items get their marker and indent, quotes
their `> `, table rows become `a | b` lines, headings are emphasized, code blocks are
rendered by the format, and a blank line separates top-level blocks. Each format says
how in a `Layout` (its emphasis marks, escaping, links, headings and code); the walk over
markdown-it's tokens is shared, and so is what a `LinkPolicy` lets open (adapters/links.py):
a link it refuses is its label and its URL defanged, an image is never shown as one (its alt
text, or a link to it when allowed), and bare URLs in the text are defanged too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

from adapters.links import NO_LINKS, LinkPolicy, defang

PARSER = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])
BLOCK_ENDS = ("paragraph_close", "heading_close", "fence", "code_block", "table_close", "hr",
              "bullet_list_close", "ordered_list_close", "blockquote_close")


@dataclass(frozen=True)
class Layout:
    """How one format writes what Markdown's blocks become."""

    marks: Mapping[str, str]  # emphasis: markdown-it's "strong", "em", "s" → the format's marker
    text: Callable[[str], str]  # plain text, escaped as the format needs
    code_span: Callable[[str], str]  # inline code
    link: Callable[[str, str], str]  # (url, label) → a link (the policy already allowed the URL)
    heading: Callable[[str], str]  # e.g. bold
    code: Callable[[str], str]  # a code block's content
    bullet: str = "• "
    indent: str = "    "  # per level of nested list


def lay_out(markdown: str, layout: Layout, policy: LinkPolicy = NO_LINKS) -> str:
    """`markdown` as lines in the format `layout` describes, with only the links `policy` allows."""
    tokens = PARSER.parse(markdown)
    lines: list[str] = []
    frames: list[list[Any]] = []  # ["list", next number or 0], ["item", marker, first?], ["quote"]
    row: list[str] = []
    for i, token in enumerate(tokens):
        kind, before = token.type, tokens[i - 1].type if i else ""
        if kind in ("bullet_list_open", "ordered_list_open"):
            frames.append(["list", int(token.attrs.get("start", 1) or 1) if kind[0] == "o" else 0])
        elif kind == "list_item_open":
            number = frames[-1][1]
            frames.append(["item", f"{number}. " if number else layout.bullet, True])
            frames[-2][1] = number + 1 if number else 0
        elif kind == "blockquote_open":
            frames.append(["quote"])
        elif kind in ("bullet_list_close", "ordered_list_close", "list_item_close", "blockquote_close"):
            frames.pop()
        elif kind == "inline" and before in ("th_open", "td_open"):
            row.append(inline(token.children or [], layout, policy))
        elif kind == "inline":
            text = inline(token.children or [], layout, policy)
            text = layout.heading(text) if before == "heading_open" else text
            lines.append(_lead(frames, layout) + text.replace("\n", "\n" + _lead(frames, layout)))
        elif kind in ("fence", "code_block"):
            lines.append(layout.code(token.content.rstrip()))
        elif kind == "tr_close":
            lines.append(" | ".join(row))
            row = []
        elif kind == "hr":
            lines.append("———")
        if not frames and kind in BLOCK_ENDS:
            lines.append("")  # a blank line between top-level blocks
    return "\n".join(lines).strip()


def inline(tokens: Sequence[Token], layout: Layout, policy: LinkPolicy = NO_LINKS) -> str:
    """A run of inline tokens (text, emphasis, code, links, images) in the format."""
    out: list[str] = []
    links: list[tuple[str, int]] = []
    for token in tokens:
        kind = token.type
        if kind == "text":
            out.append(layout.text(policy.inert(token.content)))
        elif kind == "code_inline":
            out.append(layout.code_span(policy.inert(token.content)))
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind.endswith(("_open", "_close")) and kind.rsplit("_", 1)[0] in layout.marks:
            out.append(layout.marks[kind.rsplit("_", 1)[0]])
        elif kind == "link_open":
            links.append((str(token.attrs.get("href", "")), len(out)))
        elif kind == "link_close" and links:
            url, start = links.pop()
            label = "".join(out[start:])
            del out[start:]
            out.append(layout.link(url, label) if policy.allows(url) else refused(url, label, layout))
        elif kind == "image":
            src, alt = str(token.attrs.get("src", "")), layout.text(policy.inert(token.content or "image"))
            out.append(layout.link(src, alt) if policy.allows(src) else alt)  # never loaded as an image
    return "".join(out)


def refused(url: str, label: str, layout: Layout) -> str:
    """A link that may not open: its label, then its URL defanged (once, when they're the same)."""
    shown = layout.text(defang(url))
    return label if label.strip() == shown else f"{label} ({shown})" if label.strip() else shown


def _lead(frames: list[list[Any]], layout: Layout) -> str:
    """A line's prefix: quote marks, then the innermost list item's marker (first line) or indent."""
    lead = "> " * sum(1 for f in frames if f[0] == "quote")
    items = [f for f in frames if f[0] == "item"]
    if items:
        lead += layout.indent * (len(items) - 1)
        lead += items[-1][1] if items[-1][2] else " " * len(items[-1][1])
        items[-1][2] = False
    return lead
