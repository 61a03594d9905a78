"""Replies as Telegram messages: Markdown to Telegram HTML, sources, splitting, buttons.

Telegram's HTML parse mode accepts a handful of tags (b, i, s, code, pre, a, blockquote),
rejects anything unbalanced or unescaped (a lone `<` or `&` fails the whole message), and
caps a message at 4,096 characters of visible text. So the answer is rendered from
markdown-it tokens (raw HTML in the source is text, escaped like every other text), and
long output is split at a paragraph, a line or a space, never inside a tag, an entity, a
word or a link: tags open at a split are closed at the end of one part and reopened at the
start of the next. Only links the reply's `LinkPolicy` allows (adapters/links.py: the
profile's allowed domains, the cited sources) become `<a>`; any other is its label and its
URL defanged, bare URLs in the text are defanged (Telegram links them itself), and an image
is its alt text, or a link to it when allowed, never a preview. Buttons carry short callback
data: `fb:up|down:<reply id>` and `human:<reason>`, and `ok:yes|no:<action id>` for a
proposed action.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from adapters.links import NO_LINKS, LinkPolicy, defang, policy_for

from bot.profiles import Profile
from bot.types import ActionKind, Citation, HandoffReason, Press, Reply

LIMIT = 4096  # visible characters (UTF-16 code units) of one message, after entity parsing
_markdown = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])
_INLINE = {"strong": "b", "em": "i", "s": "s"}
_PIECE = re.compile(r"<[^>]*>|&[#\w]+;|\n[^\S\n]*\n\s*|\n|[^\S\n]+|[^\s<&]+|[<&]")


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _href(url: str, policy: LinkPolicy) -> str | None:
    return html.escape(url, quote=True) if policy.allows(url) else None


def _inline(tokens: list[Token], policy: LinkPolicy, in_link: bool = False) -> str:
    out: list[str] = []
    links: list[tuple[bool, str, int]] = []  # per open link: became an <a>?, its URL, where its label starts
    for tok in tokens:
        kind = tok.type
        if kind == "text":
            out.append(_esc(policy.inert(tok.content)))
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "code_inline":  # Telegram can't nest code in a link: plain text there
            code = _esc(policy.inert(tok.content))
            out.append(code if in_link or any(a for a, _, _ in links) else f"<code>{code}</code>")
        elif kind.endswith("_open") and kind[:-5] in _INLINE:
            out.append(f"<{_INLINE[kind[:-5]]}>")
        elif kind.endswith("_close") and kind[:-6] in _INLINE:
            out.append(f"</{_INLINE[kind[:-6]]}>")
        elif kind == "link_open":
            url = str(tok.attrGet("href") or "")
            href = _href(url, policy)
            opened = href is not None and not any(a for a, _, _ in links)
            links.append((opened, url, len(out)))
            out.append(f'<a href="{href}">' if opened else "")
        elif kind == "link_close" and links:
            opened, url, start = links.pop()
            out.append("</a>" if opened else _refused(url, "".join(out[start:])))
        elif kind == "image":
            href, alt = _href(str(tok.attrGet("src") or ""), policy), _inline(tok.children or [], policy, True)
            out.append(f'<a href="{href}">{alt or href}</a>' if href and not any(a for a, _, _ in links) else alt)
    return "".join(out)


def _refused(url: str, label: str) -> str:
    """After the label of a link that may not open: its URL defanged (not twice for an autolink)."""
    shown = _esc(defang(url))
    return "" if re.sub(r"<[^>]*>", "", label).strip() == shown else f" ({shown})"


def to_html(markdown: str, policy: LinkPolicy = NO_LINKS) -> str:
    """Markdown as Telegram HTML: only tags Telegram accepts, every text escaped, only the
    links `policy` allows."""
    out: list[str] = []
    lists: list[list[int]] = []  # per open list: [next number], or [] for bullets
    quotes = 0
    for tok in _markdown.parse(markdown):
        kind = tok.type
        if kind == "inline":
            out.append(_inline(tok.children or [], policy))
        elif kind == "paragraph_close":
            out.append("\n" if tok.hidden else "\n\n")
        elif kind == "heading_open":
            out.append("<b>")
        elif kind == "heading_close":
            out.append("</b>\n\n")
        elif kind in ("bullet_list_open", "ordered_list_open"):
            lists.append([int(tok.attrGet("start") or 1)] if kind == "ordered_list_open" else [])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            out.append("" if lists else "\n")
        elif kind == "list_item_open":
            number = lists[-1]
            out.append("  " * (len(lists) - 1) + (f"{number[0]}. " if number else "• "))
            if number:
                number[0] += 1
        elif kind in ("fence", "code_block"):
            language = re.sub(r"[^\w+-]", "", tok.info.split()[0]) if tok.info.strip() else ""
            code = _esc(tok.content.rstrip("\n"))
            out.append(f'<pre><code class="language-{language}">{code}</code></pre>\n\n' if language
                       else f"<pre>{code}</pre>\n\n")
        elif kind == "blockquote_open":
            quotes += 1
            out.append("<blockquote>" if quotes == 1 else "")
        elif kind == "blockquote_close":
            quotes -= 1
            out.append("</blockquote>\n\n" if quotes == 0 else "")
        elif kind == "hr":
            out.append("———\n\n")
        elif kind in ("th_close", "td_close"):
            out.append(" | ")
        elif kind == "tr_close":
            out[-1] = out[-1].removesuffix(" | ")
            out.append("\n")
        elif kind == "table_close":
            out.append("\n")
    text = re.sub(r"\n+(</blockquote>)", r"\1", "".join(out))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# -- splitting ---------------------------------------------------------------------------------
def _visible(piece: str) -> int:
    if piece.startswith("<"):
        return 0
    if piece.startswith("&") and piece.endswith(";"):
        return 1
    return len(piece.encode("utf-16-le")) // 2


def _tag(piece: str) -> tuple[str, bool] | None:
    """(name, is closing) for a tag piece, else None."""
    match = re.match(r"<(/?)([a-zA-Z][\w-]*)", piece)
    return (match.group(2).lower(), bool(match.group(1))) if match else None


def _fit(pieces: list[str], start: int, stack: list[tuple[str, str]], limit: int
         ) -> tuple[int, list[tuple[str, str]]]:
    """Where the part starting at `start` must end: (end index, tags open there)."""
    stack, size = list(stack), 0
    breaks: list[tuple[int, int, int, list[tuple[str, str]]]] = []  # (index, kind, size, stack)
    for i in range(start, len(pieces)):
        piece = pieces[i]
        tag = _tag(piece)
        if tag:
            if tag[1]:
                stack = stack[:-1] if stack and stack[-1][0] == tag[0] else stack
            else:
                stack = stack + [(tag[0], piece)]
            continue
        if piece.isspace() and i > start and all(name != "a" for name, _ in stack):
            breaks.append((i, 3 if piece.count("\n") > 1 else 2 if "\n" in piece else 1, size, stack))
        if size + _visible(piece) <= limit:
            size += _visible(piece)
            continue
        if piece.isspace():
            return i, stack
        for kind in (3, 2, 1):  # the latest paragraph break in the second half, else a line, a space
            good = [b for b in breaks if b[1] >= kind and b[2] >= limit // 2]
            if good:
                return good[-1][0], good[-1][3]
        if breaks:
            return breaks[-1][0], breaks[-1][3]
        if piece.startswith("&"):  # an entity is one character: it starts the next part
            return i, stack
        room, cut = limit - size, 0  # one word longer than a whole message: cut it (between code points)
        while room >= _visible(piece[cut]):
            room -= _visible(piece[cut])
            cut += 1
        pieces[i:i + 1] = [piece[:cut], piece[cut:]]
        return i + 1, stack
    return len(pieces), stack


def split_html(text: str, limit: int = LIMIT) -> list[str]:
    """Telegram HTML cut into parts of at most `limit` visible characters, each well formed."""
    pieces = _PIECE.findall(text)
    parts: list[str] = []
    start, stack = 0, []
    while start < len(pieces):
        end, after = _fit(pieces, start, stack, limit)
        if end == start and not _tag(pieces[start]):  # a part with room for nothing: never loop
            end = start + 1
        body = "".join(open_tag for _, open_tag in stack) + "".join(pieces[start:end])
        body += "".join(f"</{name}>" for name, _ in reversed(after))
        if re.sub(r"<[^>]*>", "", body).strip():
            parts.append(body.strip())
        start, stack = end, after
        while start < len(pieces) and pieces[start].isspace():
            start += 1
    return parts


# -- a whole reply -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Rendered:
    """One reply as Telegram messages: HTML parts in order, buttons under the last one."""

    parts: tuple[str, ...]
    keyboard: InlineKeyboardMarkup | None


def policy_of(reply: Reply, profile: Profile) -> LinkPolicy:
    """The links `reply` may carry (adapters/links.py `policy_for`)."""
    return policy_for(profile, (c.url for c in reply.citations))


def sources_html(citations: tuple[Citation, ...], profile: Profile, language: str,
                 policy: LinkPolicy | None = None) -> str:
    policy = policy or policy_for(profile, (c.url for c in citations))
    lines = [f"<b>{_esc(profile.text('sources', language))}</b>"]
    for n, citation in enumerate(citations, 1):
        href = _href(citation.url, policy)
        title = _esc(policy.inert(citation.title or citation.url))
        line = f'{n}. <a href="{href}">{title}</a>' if href else f"{n}. {title}"
        if citation.updated_at:
            line += f" · {_esc(profile.text('updated', language, date=citation.updated_at[:10]))}"
        lines.append(line)
    return "\n".join(lines)


def keyboard(reply: Reply, profile: Profile) -> InlineKeyboardMarkup | None:
    """👍/👎 and "Talk to a human" under an answer; a decline's own handoff button; else none."""
    confirms = [InlineKeyboardButton(a.label, callback_data=f"ok:{a.id.removeprefix('tool_')}:{a.value}")
                for a in reply.actions if a.kind == "confirm"]
    if confirms:  # a proposed action: Yes / No only
        return InlineKeyboardMarkup([confirms])
    rows: list[list[InlineKeyboardButton]] = []
    if reply.rateable:
        rows.append([InlineKeyboardButton("👍", callback_data=f"fb:up:{reply.id}"),
                     InlineKeyboardButton("👎", callback_data=f"fb:down:{reply.id}")])
        rows.append([InlineKeyboardButton(profile.text("talk_to_human", reply.language),
                                          callback_data=f"human:{HandoffReason.CUSTOMER_REQUEST.value}")])
    elif reply.handoff is None and not reply.answered:
        rows += [[InlineKeyboardButton(a.label, callback_data=f"human:{a.value}")]
                 for a in reply.actions if a.kind == "handoff"]
    ratings = [InlineKeyboardButton(a.label, callback_data=f"rate:{a.value}") for a in reply.actions
               if a.kind == "rating"]  # after a person resolved the conversation: 1–5
    if ratings:
        rows.append(ratings)
    return InlineKeyboardMarkup(rows) if rows else None


def pressed(data: str) -> Press | None:
    """A button's callback_data (as `keyboard` wrote it) decoded; None for anything else."""
    kind, _, rest = data.partition(":")
    value, _, reply_id = rest.partition(":")
    if kind == "fb" and value in ("up", "down") and reply_id:
        return Press(ActionKind.FEEDBACK, value, reply_id)
    if kind == "human":
        return Press(ActionKind.HANDOFF, rest)
    if kind == "ok" and value in ("yes", "no") and reply_id:
        return Press(ActionKind.CONFIRM, value, reply_id)
    if kind == "rate":
        return Press(ActionKind.RATING, rest)
    return None


def render(reply: Reply, profile: Profile, limit: int = LIMIT) -> Rendered:
    policy = policy_of(reply, profile)
    body = to_html(reply.answer, policy)
    if reply.citations:
        body += "\n\n" + sources_html(reply.citations, profile, reply.language, policy)
    return Rendered(tuple(split_html(body, limit)), keyboard(reply, profile))


def preview(markdown: str, limit: int = LIMIT, policy: LinkPolicy = NO_LINKS) -> str:
    """The first message's worth of an answer still being written (no sources, no buttons)."""
    parts = split_html(to_html(markdown, policy), limit)
    return parts[0] if parts else ""
