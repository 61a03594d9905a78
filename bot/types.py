"""The engine's vocabulary: frozen, SDK-free values that cross every boundary.

A channel adapter turns a platform event into a `Message`; the engine answers with a
`Reply`; the adapter renders it. Nothing here knows any platform: what an adapter needs to
keep from its event (a Slack `ts`, a Telegram `message_id`) goes in the opaque `raw`
mapping, which only the adapter that filled it reads.
"""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping

EMPTY: Mapping[str, Any] = MappingProxyType({})


class HandoffReason(str, Enum):
    """Why a conversation goes to a human (a fixed set, recorded with every escalation)."""

    CUSTOMER_REQUEST = "customer_request"
    MISSING_KNOWLEDGE = "missing_knowledge"
    LOW_CONFIDENCE = "low_confidence"
    TOOL_FAILURE = "tool_failure"
    AI_ERROR = "ai_error"
    POLICY_TOPIC = "policy_topic"


def new_reply_id() -> str:
    return f"r_{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True)
class User:
    """Who wrote a message, as far as the channel knows."""

    id: str
    name: str = ""
    locale: str = ""  # a language hint from the platform (e.g. Telegram's language_code)
    email: str = ""


@dataclass(frozen=True)
class Message:
    """One incoming user message, normalized by an adapter.

    `conversation` is the memory key the adapter computed (e.g. `web:<uuid>`,
    `slack:<team>:<channel>:<thread_ts>`); `private` says whether the place is private to
    the asker (DM, web chat), which decides whether restricted sources may be used.
    """

    conversation: str
    text: str
    user: User
    channel: str  # "web", "cli", "slack", ...
    profile: str = ""  # bot profile name; "" means the default profile
    private: bool = True
    id: str = ""  # the platform's id of this message, for dedupe and threading
    raw: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    # earlier messages of the place (a thread the bot joins mid-way), oldest first: they open
    # the conversation when the bot has no memory of it yet
    context: tuple[str, ...] = ()
    link: str = ""  # a URL back to the conversation's thread, where the channel has one (for tickets)


@dataclass(frozen=True)
class Citation:
    """A source the answer relies on."""

    title: str
    url: str  # an http(s) URL, or a path for local files
    snippet: str
    source: str  # the knowledge source's name
    document_id: str = ""
    updated_at: str | None = None


class ActionKind(str, Enum):
    """What a button does. Every channel encodes a button as (kind, value, reply) in its own
    format and decodes a press back into a `Press`; one `Engine.press` handles them all."""

    FEEDBACK = "feedback"  # 👍 / 👎 on an answer: value "up" / "down"
    HANDOFF = "handoff"  # talk to a human: value a HandoffReason
    CONFIRM = "confirm"  # Yes / No to a proposed action: value "yes" / "no", reply the pending action
    RATING = "rating"  # 1–5 after a person resolved the conversation: value "<escalation>:<n>"
    SHARE = "share"  # post a privately shown answer for everyone (Slack's /ask)
    LINK = "link"


@dataclass(frozen=True)
class Action:
    """A button the adapter should render under the reply."""

    id: str  # stable identifier adapters route on: "handoff", "tool_yes", "rate_3", ...
    label: str
    kind: ActionKind
    value: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ActionKind(self.kind))  # from a remembered turn: a string


@dataclass(frozen=True)
class Press:
    """A button pressed on some channel, decoded: its kind, the value it carried, and the
    reply (or pending action, for CONFIRM) it was under."""

    kind: ActionKind
    value: str = ""
    reply: str = ""


@dataclass(frozen=True)
class Handoff:
    """A request that a human take the conversation over."""

    reason: HandoffReason
    message: str = ""


@dataclass(frozen=True)
class Reply:
    """The engine's answer to one message.

    `answer` is Markdown. `answered` is False when the bot declined (no knowledge, bad
    input, failure): adapters render the same way, but metrics and escalation use it.
    """

    id: str
    conversation: str
    answer: str
    language: str
    citations: tuple[Citation, ...] = ()
    actions: tuple[Action, ...] = ()
    confidence: float = 0.0
    answered: bool = True
    handoff: Handoff | None = None
    plain: bool = False  # a reply of the bot's own (small talk): nothing to rate, nothing to hand over

    @property
    def rateable(self) -> bool:
        """An answer the user can rate (👍/👎) and take to a person: not a decline, not small talk."""
        return self.answered and not self.plain

    @property
    def notice(self) -> bool:
        """A short notice with nothing to act on ("already handled"): no answer, no buttons, no
        handoff. Adapters show a notice about a button press only to whoever pressed it."""
        return not (self.answered or self.actions or self.handoff)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (enums as their values)."""
        data = asdict(self)
        if self.handoff is not None:
            data["handoff"] = {"reason": self.handoff.reason.value, "message": self.handoff.message}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Reply":
        """The Reply `to_dict` wrote (as remembered in a conversation's turns)."""
        handoff = data.get("handoff")
        return cls(**{**data, "citations": tuple(Citation(**c) for c in data.get("citations", ())),
                      "actions": tuple(Action(**a) for a in data.get("actions", ())),
                      "handoff": Handoff(HandoffReason(handoff["reason"]), handoff.get("message", ""))
                      if handoff else None})


@dataclass(frozen=True)
class Turn:
    """One remembered turn of a conversation."""

    role: str  # "user" | "assistant"
    text: str
    reply: Mapping[str, Any] | None = None  # the Reply as a dict, for assistant turns
    at: float = 0.0
    query: str = ""  # for user turns: the standalone question used for retrieval


@dataclass(frozen=True)
class Conversation:
    """What the engine remembers of one conversation."""

    key: str
    turns: tuple[Turn, ...] = ()
    summary: str = ""  # condensed older turns (see bot/memory.py)
    language: str = ""
    profile: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
