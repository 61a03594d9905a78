"""Rendering for Slack: Markdown to mrkdwn, a Reply to Block Kit messages, split under limits.

Slack's mrkdwn is not Markdown: bold is `*x*`, links are `<url|text>`, there are no
headings or tables, and `&`, `<`, `>` must be escaped. A section block holds at most
3,000 characters and a message at most 50 blocks, so long answers become several
sections, then several messages, cut between paragraphs, else lines, else words, never
inside a link or an escape, and with code fences closed and reopened across a cut.
Buttons carry the reply id and the conversation key in their value, so any worker can
route a click without state of its own. Only links the reply's `LinkPolicy` allows (the
profile's allowed domains, the cited sources) are clickable; images are never shown.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence


from adapters.links import NO_LINKS, LinkPolicy, policy_for
from adapters.markdown_layout import Layout, lay_out

from bot.profiles import Profile
from bot.types import ActionKind, Citation, Press, Reply

TEXT_LIMIT = 3000  # characters in a section block's text
BLOCK_LIMIT = 50  # blocks in one message
FALLBACK_LIMIT = 3000  # the notification text we send alongside blocks
_ATOM = re.compile(r"<[^<>\n]*>|&(?:amp|lt|gt);|\S")  # a link, an escape, or any other character
_MARKS = {"strong": "*", "em": "_", "s": "~"}


def escape(text: str) -> str:
    """Escape the three characters Slack reserves for control sequences."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    """A link to `url`, which a `LinkPolicy` has allowed (http or https)."""
    safe = escape(url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C").replace(" ", "%20"))
    return f"<{safe}|{label.replace('|', '¦')}>" if label and label != escape(url) else f"<{safe}>"


SLACK = Layout(marks=_MARKS, text=escape, code_span=lambda code: f"`{escape(code)}`", link=_link,
               heading=lambda text: f"*{text}*", code=lambda content: f"```\n{escape(content)}\n```",
               bullet="• ", indent="    ")


def mrkdwn(markdown: str, policy: LinkPolicy = NO_LINKS) -> str:
    """Markdown (as the engine writes it) to Slack mrkdwn, with only the links `policy` allows."""
    return lay_out(markdown, SLACK, policy)


def policy_of(reply: Reply, profile: Profile) -> LinkPolicy:
    """The links `reply` may carry (adapters/links.py `policy_for`)."""
    return policy_for(profile, (c.url for c in reply.citations))


def split(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Cut mrkdwn into pieces of at most `limit` characters (see the module docstring)."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = _cut(rest, limit)
        head, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if head.count("```") % 2:  # a code block runs across the cut: close it, reopen it
            head, rest = head + "\n```", "```\n" + rest
        pieces.append(head)
    if rest:
        pieces.append(rest)
    return pieces


def _cut(text: str, limit: int) -> int:
    room = limit - 4  # leave room to close a code fence
    for separator in ("\n\n", "\n", " "):
        at = text.rfind(separator, 0, room)
        if at > room // 3 and _outside_atom(text, at):
            return at
    end = 0  # one long word: cut between characters, never inside a link or an escape
    for match in _ATOM.finditer(text):
        if match.end() > room:
            break
        end = match.end()
    return end or room


def _outside_atom(text: str, at: int) -> bool:
    opened = text.rfind("<", 0, at)
    return opened == -1 or text.rfind(">", opened, at) != -1


# -- replies as Block Kit ----------------------------------------------------------------
def button_value(reply_id: str, conversation: str, action: str = "") -> str:
    """A button's value: the reply and conversation it belongs to (and a proposed action's id)."""
    data = {"r": reply_id, "c": conversation, **({"a": action} if action else {})}
    return json.dumps(data, separators=(",", ":"))


def parse_value(value: str) -> tuple[str, str]:
    """(reply id, conversation key) from a button value; ValueError if it isn't ours."""
    data = json.loads(value)
    if not isinstance(data, dict) or not str(data.get("r", "")).startswith("r_") or not data.get("c"):
        raise ValueError("not a Switchboard button")
    return str(data["r"]), str(data["c"])


def action_of(value: str) -> str:
    """The proposed action's id in a Yes / No button's value ("" if none)."""
    return str(json.loads(value).get("a", ""))


PRESSABLE = re.compile(r"^(feedback_(up|down)|handoff|share|tool_(yes|no)|rate_[1-5])$")


def pressed(body: Mapping[str, Any], action: Mapping[str, Any]) -> tuple[Press, str] | None:
    """A Switchboard button's press decoded: (the press, its conversation key); None if the
    action isn't one of ours or its value was tampered with."""
    action_id, value = str(action.get("action_id", "")), str(action.get("value", ""))
    if action_id.startswith("rate_"):  # after a person resolved the thread: the thread is the conversation
        thread = (body.get("message") or {}).get("thread_ts") or (body.get("container") or {}).get("thread_ts")
        if not thread:
            return None
        key = f"slack:{body['team']['id']}:{body['channel']['id']}:{thread}"
        return Press(ActionKind.RATING, value), key
    try:
        reply_id, key = parse_value(value)
        if action_id.startswith("tool_"):
            return Press(ActionKind.CONFIRM, action_id.removeprefix("tool_"), action_of(value)), key
    except (ValueError, AttributeError):
        return None
    if action_id.startswith("feedback_"):
        return Press(ActionKind.FEEDBACK, action_id.removeprefix("feedback_"), reply_id), key
    kind = {"handoff": ActionKind.HANDOFF, "share": ActionKind.SHARE}.get(action_id)
    return (Press(kind, "", reply_id), key) if kind else None


def _sources(citations: Sequence[Citation], profile: Profile, language: str, policy: LinkPolicy) -> dict[str, Any]:
    lines = [f"*{profile.text('sources', language)}*"]
    for n, citation in enumerate(citations, 1):
        when = f", {profile.text('updated', language, date=citation.updated_at)}" if citation.updated_at else ""
        title = escape(policy.inert(citation.title))
        shown = _link(citation.url, title) if policy.allows(citation.url) else title
        lines.append(f"{n}. {shown} · {escape(citation.source)}{when}")
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": "\n".join(lines)[:TEXT_LIMIT]}]}


def _buttons(reply: Reply, profile: Profile, share: bool) -> dict[str, Any]:
    value = button_value(reply.id, reply.conversation)
    confirms = [a for a in reply.actions if a.kind == "confirm"]
    if confirms:  # a proposed action: Yes / No only
        return {"type": "actions", "block_id": f"sb_{reply.id}", "elements": [
            {"type": "button", "action_id": a.id, "value": button_value(reply.id, reply.conversation, a.value),
             "text": {"type": "plain_text", "text": a.label}, **({"style": "primary"} if a.id == "tool_yes" else {})}
            for a in confirms]}
    buttons = []
    if share:
        buttons.append({"type": "button", "action_id": "share", "style": "primary", "value": value,
                        "text": {"type": "plain_text", "text": profile.text("share_with_channel", reply.language)}})
    if reply.rateable:
        buttons += [{"type": "button", "action_id": f"feedback_{v}", "value": value,
                     "text": {"type": "plain_text", "text": emoji, "emoji": True}}
                    for v, emoji in (("up", "👍"), ("down", "👎"))]
    handoff = next((a for a in reply.actions if a.kind == "handoff"), None)
    if reply.handoff is None and (reply.rateable or handoff):
        label = handoff.label if handoff else profile.text("talk_to_human", reply.language)
        buttons.append({"type": "button", "action_id": "handoff", "value": value,
                        "text": {"type": "plain_text", "text": label[:75]}})
    buttons += [{"type": "button", "action_id": action.id, "value": action.value,  # ratings after a handoff
                 "text": {"type": "plain_text", "text": action.label}} for action in reply.actions
                if action.kind == "rating"]
    return {"type": "actions", "block_id": f"sb_{reply.id}", "elements": buttons}


def render(reply: Reply, profile: Profile, *, share: bool = False, note: str = "") -> list[list[dict[str, Any]]]:
    """The reply as Slack messages: each a list of at most 50 blocks."""
    policy = policy_of(reply, profile)
    sections = [{"type": "section", "text": {"type": "mrkdwn", "text": piece}}
                for piece in split(mrkdwn(reply.answer, policy))]
    tail: list[dict[str, Any]] = []
    if note:
        tail.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if reply.citations:
        tail.append(_sources(reply.citations, profile, reply.language, policy))
    actions = _buttons(reply, profile, share)
    if actions["elements"]:
        tail.append(actions)
    blocks = sections + tail
    return [blocks[i:i + BLOCK_LIMIT] for i in range(0, len(blocks), BLOCK_LIMIT)]


def fallback_text(blocks: Sequence[dict[str, Any]]) -> str:
    """The plain `text` sent with blocks (notifications, screen readers)."""
    text = "\n\n".join(b["text"]["text"] for b in blocks if b.get("type") == "section")
    return text[:FALLBACK_LIMIT] or "…"
