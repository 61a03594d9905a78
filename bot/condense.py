"""Turns a follow-up into a standalone question before retrieval.

"and for Belgium?" after "what are your delivery times?" must retrieve delivery
documents, so a message is joined to the previous standalone question. The engine
retrieves with the joined question when the message carries a follow-up cue ("and…",
"what about…", a pronoun) and, for other short messages, only when the message alone
finds nothing good: a change of topic is not polluted by the previous one.
"""
from __future__ import annotations

import re

from typing import Sequence

from bot import smalltalk
from bot.evidence import confidence
from bot.types import Conversation
from knowledge import lexical, readers
from knowledge.retrieval import Hit

MIN_OWN_CONFIDENCE = 0.3  # the message alone, against the joined question's passages
# A message pointing back with a pronoun relates when at least this share of its words is
# known to the knowledge: "how much does it cost?" (the index has "cost", not "much"), not
# "is it raining?" (nothing).
KNOWN_REFERENCE = 0.5

# Words that only frame a question (how much, how long, combien de temps, 多少): a message
# made of them and a pronoun ("and how much is it?") has no topic of its own.
FRAME = frozenset({"much", "many", "long", "often", "soon", "temp", "combien", "多少", "多久", "多长"})

REFERENCE = re.compile(r"\b(it|that|this|they|them|those|these|ça|cela|celle|celui|ceux|elle|elles)\b|[它这那]", re.IGNORECASE)
# Chinese particles (no word boundary separates them from the next word): 那 "then" opening a
# message, 呢 "what about" closing it; 吗 closes a yes/no question, a whole one.
CJK_POINTING_BACK = re.compile(r"^\s*(那|还有|如果)|呢\s*[？?!！。]*\s*$")
CJK_YES_NO = re.compile(r"吗\s*[？?!！。]*\s*$")
FOLLOW_UP = re.compile(
    r"""^\s*(and|what\ about|how\ about|same\ for|also|or|but|et|mais|ou|aussi|pareil|même\ chose|
    et\ pour|et\ si|et\ en|und|y|también|还有|那|那么|如果)\b
    | \b(it|that|this|they|them|those|these|there|ça|cela|celle|celui|ceux|y|它|这个|那个)\b
    """,
    re.IGNORECASE | re.VERBOSE,
)


def joined(text: str, conversation: Conversation) -> str | None:
    """`text` after the previous standalone question, or None at the start of a conversation."""
    previous = _previous(conversation)
    return f"{previous} {text}" if previous else None


def condensed(query: str, conversation: Conversation) -> bool:
    """Was `query` joined to the conversation's previous question (a follow-up searched with
    its context)? Such a query means nothing outside its conversation (bot/cache.py)."""
    return _own(query, conversation) is not None


def own_part(query: str, conversation: Conversation) -> str:
    """The user's own message in `query` when it was joined to the conversation's previous
    question ("How much is shipping to Switzerland? and to Spain?" → "and to Spain?"); else
    "" (the query is the message)."""
    return _own(query, conversation) or ""


def _own(query: str, conversation: Conversation) -> str | None:
    """What follows the previous question in a joined `query`; None when it isn't one."""
    previous = _previous(conversation)
    return query[len(previous) + 1:] if previous and query.startswith(f"{previous} ") else None


def _previous(conversation: Conversation) -> str:
    asked = [t for t in conversation.turns if t.role == "user" and smalltalk.kind(t.text) is None]
    # the last question the bot searched for; in a thread it joined, the last one asked
    previous = next((t.query for t in reversed(asked) if t.query), "") \
        or next((t.text for t in reversed(asked) if t.text.rstrip().endswith(("?", "？"))), "") \
        or (asked[-1].text if asked else "")
    if not previous and conversation.summary:
        previous = conversation.summary.rsplit("\n", 1)[-1]
    return previous


# "那保修呢？" (and the warranty?), "还有发票呢": the frame of a Chinese "what about X?",
# whose topic is X alone. Searched with the frame, a two-character topic is drowned by it
# (the warranty page: 0.08 confident for "那保修呢？", 0.66 for "保修").
WHAT_ABOUT = re.compile(r"^\s*(?:那么|那(?![个些])|还有|另外)?\s*(?P<topic>[^\s，,。？?]+?)\s*呢\s*[？?]?\s*$")


def topic(text: str) -> str:
    """The message without the frame of a Chinese "what about X?" (WHAT_ABOUT); else as is."""
    match = WHAT_ABOUT.match(text)
    return match.group("topic") if match else text


def is_follow_up(text: str) -> bool:
    """True when the message reads as a continuation of the previous question."""
    return bool(FOLLOW_UP.search(text))


def may_depend(text: str) -> bool:
    """Could this message lean on the conversation? (a cue, or short enough to be elliptic)"""
    return is_follow_up(text) or is_short(text)


def relates(text: str, own: Sequence[Hit], language: str) -> bool:
    """Do the passages the joined question found relate to what this message itself says?

    `own` are those passages judged against the message alone (Retriever.judge). A
    follow-up makes them a confident answer to itself ("Belgium?": the delivery page lists
    Belgium), or points back with a pronoun using mostly words the knowledge knows ("how much
    does it cost?" after a product); an unrelated message that merely shares the
    conversation ("who won the match?", "is it raining?") does neither. A message with no
    content words of its own ("and?", "and how much is it?": FRAME) relates.
    """
    if not [t for t in lexical.terms(text, language) if t not in FRAME]:
        return True
    if confidence(own, language) >= MIN_OWN_CONFIDENCE:
        return True
    return refers(text) and all(h.known >= KNOWN_REFERENCE for h in own)


def refers(text: str) -> bool:
    """Does the message point back with a pronoun ("how much does it cost?", "那比利时呢？")?"""
    return bool(REFERENCE.search(text))


def about_product(text: str, own: Sequence[Hit]) -> bool:
    """Does the message point back at the product the conversation is about? Then what it
    finds alone ("how much does it cost?": the shipping costs) is not what it asks about,
    while "and how long to return it?" after a delivery question is about returns."""
    return refers(text) and bool(own) and readers.is_offer(own[0].stored.chunk.text)


def better_alone(own: Sequence[Hit], alone: Sequence[Hit], language: str = "") -> bool:
    """Does the message alone find another page that answers it better than the joined
    question's best does: one that holds more of its words ("what about returns?" after a
    delivery question: the returns page), or, where no word can be shared (the page is in
    another language), one it is more confidently about ("保修期多久？" after a question in
    French on delivery: the English warranty page, not the French delivery FAQ)?"""
    if not own or not alone:
        return bool(alone)
    if alone[0].stored.chunk.document_id == own[0].stored.chunk.document_id:
        return False
    if not language or alone[0].stored.language == language:  # words can be shared: count them
        return alone[0].coverage > own[0].coverage
    return confidence(alone[:1], language) > confidence(own[:1], language)


def is_short(text: str) -> bool:
    """Short enough to be elliptic even without a cue ("Belgium?", "in Switzerland", "瑞士？").

    Chinese and Japanese are written without spaces, so there the words count, not the
    spaces: a message pointing back (那… "then…", …呢 "what about…") or of two words at most
    ("寄到瑞士", "明天天气") is elliptic; a yes/no question (…吗) or a longer one stands alone.
    "可以分期付款吗？" (can I pay in instalments?) was joined to a returns question before it
    and answered from the refunds section, which mentions instalments."""
    if len(text) >= 50:
        return False
    if not lexical.CJK.search(text):
        return len(text.split()) <= 5
    if CJK_POINTING_BACK.search(text):
        return True
    if CJK_YES_NO.search(text):
        return False
    words = {t for t in lexical.terms(text, "zh") if t not in FRAME}
    return len({w for w in words if not any(w != other and w in other for other in words)}) <= 2
