"""Rendering for Teams: Markdown to what Adaptive Cards show, a Reply to cards, split under limits.

An Adaptive Card TextBlock renders a small Markdown subset in Teams: bold, italic, links,
bullet and numbered lists, paragraphs. So the engine's Markdown is re-emitted from
markdown-it tokens in that subset: headings become bold lines, tables "a | b" rows, code
plain lines, links only where the reply's `LinkPolicy` allows (adapters/links.py: the
profile's allowed domains and the cited sources), images never (their alt text). A Teams message holds about 28 KB
(the whole activity, JSON-encoded), so a long answer becomes several cards, each text under
TEXT_LIMIT JSON-encoded characters, cut between paragraphs, else lines, else words, never
inside a link; sources and buttons ride on the last card.

Buttons are `Action.Execute` (an `adaptiveCard/action` invoke the bot answers in place,
privately to the clicker) with an `Action.Submit` fallback for older clients (a message
carrying `value`); both carry the same data, `{"sb": <what>, ...}`: `feedback` (`v` up or
down, `r` the reply id), `handoff` (`why`, the reason), `rate` (`v`, "<escalation>:<n>"),
`confirm` (`v` true for Yes, `a` the proposed action's id) under a proposed action, and `desk`
(`do`, `e` the escalation id) on escalation cards. The conversation is the one
the click arrives from, never something the card claims.

Reading activities: a mention of the bot, a message's words without it, a click's data,
an authenticated request body as an activity (`activity_of`; the door's light view,
`door_activity`), the bot added to a chat.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount

from adapters.links import NO_LINKS, LinkPolicy, policy_for
from adapters.markdown_layout import Layout, lay_out
from bot.profiles import Profile
from bot.types import ActionKind, Citation, HandoffReason, Press, Reply

MESSAGE_LIMIT = 28_000  # bytes of one activity as Teams receives it (JSON)
TEXT_LIMIT = 20_000  # JSON-encoded characters of answer text in one card (sources and buttons fit beside)
SOURCES_LIMIT = 3_000
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.4"  # Action.Execute
ACTIONS = ("feedback", "handoff", "rate", "desk", "confirm")
LINK_SCHEMES = ("http://", "https://", "mailto:")
_MARKS = {"strong": "**", "em": "_"}
_ATOM = re.compile(r"\[[^\[\]\n]*\]\([^()\s]*\)|https?://\S+")  # a Markdown link or a bare URL


def _url(url: str) -> str:
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def _label(text: str) -> str:
    return text.replace("[", "(").replace("]", ")")


def link(url: str, label: str) -> str:
    """A Markdown link, or just the label when the URL isn't one Teams should open."""
    if not url.lower().startswith(LINK_SCHEMES):
        return label
    return f"[{_label(label) or url}]({_url(url)})"


def policy_of(reply: Reply, profile: Profile) -> LinkPolicy:
    """The links `reply` may carry (adapters/links.py `policy_for`)."""
    return policy_for(profile, (c.url for c in reply.citations))


def _plain(text: str) -> str:
    return text.replace("](", "] (")  # text that isn't a link must not become one


TEAMS = Layout(marks=_MARKS, text=_plain, code_span=_plain, link=link, heading=lambda text: f"**{text}**",
               code=lambda content: content, bullet="- ", indent="  ")


def markdown(text: str, policy: LinkPolicy = NO_LINKS) -> str:
    """The engine's Markdown as a Teams TextBlock renders it (see the module docstring)."""
    return lay_out(text, TEAMS, policy)


# -- splitting ---------------------------------------------------------------------------
def size(text: str) -> int:
    """What `text` weighs in a JSON-encoded activity (non-ASCII is sent as \\u escapes)."""
    return len(json.dumps(text)) - 2


def split(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Cut `text` into pieces of at most `limit` JSON-encoded characters (see the module docstring)."""
    pieces: list[str] = []
    rest = text.strip()
    while size(rest) > limit:
        cut = _cut(rest, limit)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _cut(text: str, limit: int) -> int:
    room, used = 0, 0
    for room, char in enumerate(text):  # the longest prefix that fits
        used += 1 if " " <= char <= "~" and char not in '"\\' else size(char)
        if used > limit:
            break
    atoms = []
    for match in _ATOM.finditer(text):
        if match.start() > room:
            break
        atoms.append(match.span())
    for separator in ("\n\n", "\n", " "):
        at = text.rfind(separator, 0, room)
        if at > room // 3 and not any(start < at < end for start, end in atoms):
            return at
    inside = next((start for start, end in atoms if start < room < end and start > 0), None)
    return inside or room  # one endless word: between characters, before a link that doesn't fit


# -- cards ---------------------------------------------------------------------------------
def text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def action(title: str, data: Mapping[str, Any], style: str = "default") -> dict[str, Any]:
    """A button: Action.Execute (invoke), falling back to Action.Submit (a message) on old clients."""
    return {"type": "Action.Execute", "title": title, "verb": data["sb"], "data": dict(data), "style": style,
            "fallback": {"type": "Action.Submit", "title": title, "data": dict(data)}}


def card(body: list[dict[str, Any]], actions: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    built: dict[str, Any] = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION, "body": body,
                             "msteams": {"width": "Full"}}
    if actions:
        built["actions"] = list(actions)
    return built


def card_activity(content: dict[str, Any]) -> Activity:
    return MessageFactory.attachment(CardFactory.adaptive_card(content))


def text_card(markdown_text: str) -> dict[str, Any]:
    """A card of text only (a notice, a relayed message), in one piece."""
    return card([text_block(piece) for piece in split(markdown_text)] or [text_block("…")])


def _sources(citations: Sequence[Citation], profile: Profile, language: str, policy: LinkPolicy) -> dict[str, Any]:
    lines = []
    for n, citation in enumerate(citations, 1):
        when = f", {profile.text('updated', language, date=citation.updated_at)}" if citation.updated_at else ""
        title = _plain(policy.inert(citation.title))
        shown = link(citation.url, title) if policy.allows(citation.url) else title
        lines.append(f"{n}. {shown} · {citation.source}{when}")
    listed = "\n".join(lines)
    if size(listed) > SOURCES_LIMIT:
        listed = split(listed, SOURCES_LIMIT)[0]
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": [
        text_block(f"**{profile.text('sources', language)}**", size="Small"),
        text_block(listed, size="Small", isSubtle=True)]}


def buttons(reply: Reply, profile: Profile) -> list[dict[str, Any]]:
    confirms = [a for a in reply.actions if a.kind == "confirm"]
    if confirms:  # a proposed action (a tool with side effects): Yes / No only
        return [action(a.label, {"sb": "confirm", "v": a.id == "tool_yes", "a": a.value},
                       "positive" if a.id == "tool_yes" else "default") for a in confirms]
    found = []
    if reply.rateable:
        found += [action(emoji, {"sb": "feedback", "v": value, "r": reply.id})
                  for value, emoji in (("up", "👍"), ("down", "👎"))]
    handoff = next((a for a in reply.actions if a.kind == "handoff"), None)
    if reply.handoff is None and (reply.rateable or handoff):
        why = handoff.value if handoff and handoff.value else HandoffReason.CUSTOMER_REQUEST.value
        label = handoff.label if handoff else profile.text("talk_to_human", reply.language)
        found.append(action(label, {"sb": "handoff", "why": why, "r": reply.id}))
    found += [action(a.label, {"sb": "rate", "v": a.value}) for a in reply.actions if a.kind == "rating"]
    return found


def render(reply: Reply, profile: Profile) -> list[dict[str, Any]]:
    """The reply as Adaptive Cards, each one Teams message; sources and buttons on the last."""
    policy = policy_of(reply, profile)
    pieces = split(markdown(reply.answer, policy))
    cards = [card([text_block(piece)]) for piece in pieces] or [card([text_block("…")])]
    if reply.citations:
        cards[-1]["body"].append(_sources(reply.citations, profile, reply.language, policy))
    actions = buttons(reply, profile)
    if actions:
        cards[-1]["actions"] = actions
    return cards


# -- reading activities --------------------------------------------------------------------
def mentions_bot(activity: Activity) -> bool:
    """Whether a message @mentions the bot (its recipient)."""
    return any((mention.additional_properties.get("mentioned") or {}).get("id") == activity.recipient.id
               for mention in TurnContext.get_mentions(activity))


def words(activity: Activity) -> str:
    """A message's text without the bot's @mention."""
    text = TurnContext.remove_recipient_mention(activity) if mentions_bot(activity) else activity.text
    return (text or "").strip()


def clicked(activity: Activity) -> dict[str, Any] | None:
    """The data of one of our buttons in an invoke (Action.Execute) or a message (Action.Submit)."""
    value = activity.value if isinstance(activity.value, dict) else {}
    if activity.type == "invoke":
        action_ = value.get("action") if isinstance(value.get("action"), dict) else {}
        value = action_.get("data") if isinstance(action_.get("data"), dict) else {}
    return dict(value) if value.get("sb") in ACTIONS else None


def pressed(data: Mapping[str, Any]) -> Press | None:
    """One of our (non-desk) buttons' data decoded, None when it doesn't carry what it should."""
    kind, value, reply = data.get("sb"), data.get("v"), str(data.get("r", ""))
    if kind == "feedback" and value in ("up", "down") and reply.startswith("r_"):
        return Press(ActionKind.FEEDBACK, str(value), reply)
    if kind == "handoff":
        return Press(ActionKind.HANDOFF, str(data.get("why", "")), reply)
    if kind == "confirm" and str(data.get("a", "")).startswith("t_"):
        return Press(ActionKind.CONFIRM, "yes" if value is True else "no", str(data["a"]))
    if kind == "rate":
        return Press(ActionKind.RATING, str(value or ""))
    return None


def door_activity(data: Mapping[str, Any]) -> Activity:
    """What the door reads of an authenticated body: its type, ids, conversation, sender,
    recipient, members added, and a button's name and value, built without msrest's
    deserialiser (a third of the door's CPU under a burst: it reads every field of the
    activity). The answer worker reads the whole activity (`activity_of`), as Telegram's
    worker reads its update. ValueError when it isn't an activity (`activity_of`'s test)."""
    def text(value: Any) -> str | None:
        return value if isinstance(value, str) else None

    def account(value: Any) -> ChannelAccount | None:
        return ChannelAccount(id=text(value.get("id")), name=text(value.get("name"))) \
            if isinstance(value, dict) else None
    conversation = data.get("conversation") if isinstance(data.get("conversation"), dict) else {}
    kind, service_url, conversation_id = data.get("type"), data.get("serviceUrl"), conversation.get("id")
    if not (isinstance(kind, str) and isinstance(service_url, str) and isinstance(conversation_id, str)
            and conversation_id):
        raise ValueError("not an activity")
    members = data.get("membersAdded")
    return Activity(type=kind, id=text(data.get("id")), service_url=service_url, channel_id=text(data.get("channelId")),
                    name=text(data.get("name")), value=data.get("value"), from_property=account(data.get("from")),
                    recipient=account(data.get("recipient")),
                    conversation=ConversationAccount(id=conversation_id,
                                                     conversation_type=text(conversation.get("conversationType"))),
                    members_added=[a for a in map(account, members) if a] if isinstance(members, list) else None)


def activity_of(data: Mapping[str, Any]) -> Activity:
    """The activity in an authenticated body; ValueError when it isn't one we can handle."""
    try:
        activity = Activity().deserialize(dict(data))
    except Exception as exc:  # msrest raises whatever the field it choked on gave it
        raise ValueError("not an activity") from exc
    conversation = activity.conversation
    if not (isinstance(activity.type, str) and isinstance(activity.service_url, str) and conversation
            and isinstance(conversation.id, str) and conversation.id):
        raise ValueError("not an activity")
    return activity


def added_to_chat(activity: Activity) -> bool:
    """The bot itself was added to a personal or group chat (in a team it waits to be asked)."""
    added = {member.id for member in activity.members_added or []}
    return activity.recipient is not None and activity.recipient.id in added and \
        activity.conversation.conversation_type in ("personal", "groupChat")
