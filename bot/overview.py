"""The operators' figures over a period, read from the event database: what the console's
Overview page draws and /admin/api/metrics returns (docs/admin.md#overview).

Everything comes from rows the engine already keeps: one `Event` per turn (its kind is
the turn's outcome, its detail the profile and the answer's confidence), the handoff
events (escalated with its reason, claimed, rated with the 1–5 rating), the resolution
events (an answer confirmed by 👍, or assumed resolved after the profile's window, or
reopened), the turns' LLM tokens and estimated cost (when an LLM answers), `Feedback` for 👍/👎 and `Escalation` for when an agent first took a
conversation. A period is [start, end) in epoch seconds.
"""
from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlmodel import Session, select

from bot.store import Escalation, Event, Feedback

# a customer's message the bot handled, by outcome (relayed ones went to a person, smalltalk is chatter)
QUESTIONS = ("answered", "declined", "handoff_requested", "acted", "tool_failed", "turn_failed", "escalation_failed")
TURNS = (*QUESTIONS, "smalltalk", "relayed", "relay_failed", "busy", "moderated", "rejected")
FAILURES = ("turn_failed", "tool_failed", "escalation_failed", "relay_failed")
HANDOFF_KINDS = ("escalated", "rated", "resolution_confirmed", "resolution_assumed", "reopened")
BINS = 10  # confidence histogram: [0, 0.1), [0.1, 0.2), ... [0.9, 1.0]
DAY = 86400


@dataclass
class Figures:
    """The period's figures (see the module docstring); rates are shares from 0 to 1."""

    start: float
    end: float
    conversations: int = 0
    turns: int = 0
    questions: int = 0
    answered: int = 0
    declined: int = 0
    failed: int = 0
    escalations: int = 0
    escalated_conversations: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    by_profile: dict[str, int] = field(default_factory=dict)
    by_day: dict[str, int] = field(default_factory=dict)  # "YYYY-MM-DD" (UTC) -> turns
    outcomes: dict[str, int] = field(default_factory=dict)
    escalation_reasons: dict[str, int] = field(default_factory=dict)
    resolved_confirmed: int = 0
    resolved_assumed: int = 0
    reopened: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    ratings: dict[str, int] = field(default_factory=dict)  # "1".."5" -> count
    confidence: list[int] = field(default_factory=lambda: [0] * BINS)  # answers and declines per bin
    tokens_in: int = 0  # LLM tokens and estimated cost (dollars) of the turns, when an LLM answers
    tokens_out: int = 0
    cost: float = 0.0
    first_response_p50: float | None = None  # seconds from escalation to an agent's claim
    first_response_p90: float | None = None

    @property
    def bot_resolved_rate(self) -> float:
        """Answers confirmed (👍) or assumed resolved, less those reopened, per answer."""
        return _share(max(0, self.resolved_confirmed + self.resolved_assumed - self.reopened), self.answered)

    @property
    def escalation_rate(self) -> float:
        return _share(self.escalations, self.conversations)

    @property
    def deflection_rate(self) -> float:
        """Conversations that never needed a person."""
        return _share(self.conversations - self.escalated_conversations, self.conversations)

    @property
    def decline_rate(self) -> float:
        return _share(self.declined, self.questions)

    @property
    def failure_rate(self) -> float:
        return _share(self.failed, self.questions)

    @property
    def csat(self) -> float | None:
        """The mean 1–5 rating customers gave after a person helped them."""
        count = sum(self.ratings.values())
        return sum(int(k) * v for k, v in self.ratings.items()) / count if count else None

    @property
    def thumbs_up_rate(self) -> float:
        return _share(self.thumbs_up, self.thumbs_up + self.thumbs_down)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("bot_resolved_rate", "escalation_rate", "deflection_rate", "decline_rate", "failure_rate",
                     "csat", "thumbs_up_rate"):
            value = getattr(self, name)
            data[name] = round(value, 4) if value is not None else None
        return data


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (nearest rank) of `values`, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def figures(db: Any, start: float, end: float) -> Figures:
    """The figures of events in [start, end) (blocking: call it off the event loop)."""
    result = Figures(start=start, end=end)
    with Session(db) as session:
        rows = session.exec(select(Event.kind, Event.conversation, Event.channel, Event.at, Event.detail).where(
            Event.at >= start, Event.at < end, Event.kind.in_((*TURNS, *HANDOFF_KINDS)))).all()
        feedback = session.exec(select(Feedback.value).where(Feedback.at >= start, Feedback.at < end)).all()
        waits = session.exec(select(Escalation.claimed_at - Escalation.created_at).where(
            Escalation.created_at >= start, Escalation.created_at < end, Escalation.claimed_at > 0)).all()
    _count(result, rows)
    votes = Counter(feedback)
    result.thumbs_up, result.thumbs_down = votes.get("up", 0), votes.get("down", 0)
    result.first_response_p50 = percentile([float(w) for w in waits], 50)
    result.first_response_p90 = percentile([float(w) for w in waits], 90)
    return result


def _count(result: Figures, rows: list[Any]) -> None:
    channels, profiles, days, outcomes, reasons, ratings = (Counter() for _ in range(6))
    conversations: set[str] = set()
    escalated: set[str] = set()
    for kind, conversation, channel, at, raw in rows:
        detail = json.loads(raw or "{}")
        if kind == "escalated":
            result.escalations += 1
            escalated.add(conversation)
            reasons[str(detail.get("reason", "unknown"))] += 1
        elif kind == "rated" and str(detail.get("rating", "")) in {"1", "2", "3", "4", "5"}:
            ratings[str(detail["rating"])] += 1
        elif kind == "resolution_confirmed":
            result.resolved_confirmed += 1
        elif kind == "resolution_assumed":
            result.resolved_assumed += 1
        elif kind == "reopened":
            result.reopened += 1
        if kind not in TURNS:
            continue
        conversations.add(conversation)
        result.turns += 1
        channels[channel or "unknown"] += 1
        profiles[str(detail.get("profile") or "unknown")] += 1
        days[_day(at)] += 1
        outcomes[kind] += 1
        if kind in QUESTIONS:
            result.questions += 1
        if kind in FAILURES:
            result.failed += 1
        result.tokens_in += _number(detail.get("tokens_in"))
        result.tokens_out += _number(detail.get("tokens_out"))
        result.cost += float(_number(detail.get("cost"), float))
        if kind in ("answered", "declined") and isinstance(detail.get("confidence"), (int, float)):
            result.confidence[min(BINS - 1, max(0, int(float(detail["confidence"]) * BINS)))] += 1
    result.answered, result.declined = outcomes.get("answered", 0), outcomes.get("declined", 0)
    result.conversations, result.escalated_conversations = len(conversations), len(escalated & conversations)
    result.by_channel, result.by_profile = dict(channels.most_common()), dict(profiles.most_common())
    result.by_day, result.outcomes = dict(sorted(days.items())), dict(outcomes.most_common())
    result.escalation_reasons, result.ratings = dict(reasons.most_common()), dict(sorted(ratings.items()))


def _number(value: Any, kind: type = int) -> Any:
    return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else kind(0)


def _day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))
