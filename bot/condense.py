"""Turns a follow-up into a standalone question before retrieval.

"and for Belgium?" after "what are your delivery times?" must retrieve delivery
documents, so a message is joined to the previous standalone question. The engine
retrieves with the joined question when the message carries a follow-up cue ("and…",
"what about…", a pronoun) and, for other short messages, only when the message alone
finds nothing good: a change of topic is not polluted by the previous one.
"""
from __future__ import annotations

import re

from bot.types import Conversation

FOLLOW_UP = re.compile(
    r"""^\s*(and|what\ about|how\ about|same\ for|also|or|but|et|mais|ou|aussi|pareil|même\ chose|
    et\ pour|et\ si|et\ en|und|y|también|还有|那|那么|如果)\b
    | \b(it|that|this|they|them|those|these|there|ça|cela|celle|celui|ceux|y|它|这个|那个)\b
    """,
    re.IGNORECASE | re.VERBOSE,
)


def joined(text: str, conversation: Conversation) -> str | None:
    """`text` after the previous standalone question, or None at the start of a conversation."""
    previous = next((t.query or t.text for t in reversed(conversation.turns) if t.role == "user"), "")
    if not previous and conversation.summary:
        previous = conversation.summary.rsplit("\n", 1)[-1]
    return f"{previous} {text}" if previous else None


def is_follow_up(text: str) -> bool:
    """True when the message reads as a continuation of the previous question."""
    return bool(FOLLOW_UP.search(text))


def is_short(text: str) -> bool:
    """Short enough to be elliptic even without a cue ("Belgium?", "in Switzerland")."""
    return len(text.split()) <= 5 and len(text) < 50
