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

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import case, intersect
from sqlmodel import Session, func, select

from bot.event_sql import Detail
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
    """The figures of events in [start, end) (blocking: call it off the event loop).

    Aggregated by the database (bot/event_sql.py), the same on SQLite and PostgreSQL: a few
    GROUP BY queries over the period, no row parsed in Python."""
    result, sql = Figures(start=start, end=end), Detail(db)
    # grouped by labels: PostgreSQL binds each copy of an expression's parameters apart
    profile, day = sql.profile().label("profile"), sql.day().label("day")
    bins = case((Event.kind.in_(("answered", "declined")), sql.whole(sql.number("confidence") * BINS))).label("bin")
    with Session(db) as session:
        turns = sql.within(start, end, TURNS, sql.scans(session, start, end))
        _turns(result, session.exec(select(
            Event.kind, Event.channel, profile, day, bins, func.count(),
            func.sum(sql.whole(sql.number("tokens_in"))), func.sum(sql.whole(sql.number("tokens_out"))),
            func.sum(sql.number("cost"))).where(*turns).group_by(Event.kind, Event.channel, profile, day, bins))
            .all())
        result.conversations = session.exec(select(func.count(func.distinct(Event.conversation)))
                                            .where(*turns)).one()
        _handoffs(result, session, sql, start, end, turns)
        votes = dict(session.exec(select(Feedback.value, func.count()).where(
            Feedback.at >= start, Feedback.at < end).group_by(Feedback.value)).all())
        result.thumbs_up, result.thumbs_down = votes.get("up", 0), votes.get("down", 0)
        result.first_response_p50 = _waited(session, start, end, 50)
        result.first_response_p90 = _waited(session, start, end, 90)
    return result


def _turns(result: Figures, groups: list[Any]) -> None:
    channels, profiles, days, outcomes = (Counter() for _ in range(4))
    for kind, channel, profile, day, bin_, count, tokens_in, tokens_out, cost in groups:
        if bin_ is not None:  # answers and declines with a confidence
            result.confidence[min(BINS - 1, max(0, int(bin_)))] += count
        result.turns += count
        channels[channel or "unknown"] += count
        profiles[str(profile or "unknown")] += count
        days[_day(int(day) * DAY)] += count
        outcomes[kind] += count
        result.questions += count if kind in QUESTIONS else 0
        result.failed += count if kind in FAILURES else 0
        result.tokens_in += int(tokens_in or 0)
        result.tokens_out += int(tokens_out or 0)
        result.cost += float(cost or 0.0)
    result.answered, result.declined = outcomes.get("answered", 0), outcomes.get("declined", 0)
    result.by_channel, result.by_profile = _ranked(channels), _ranked(profiles)
    result.by_day, result.outcomes = dict(sorted(days.items())), _ranked(outcomes)


def _handoffs(result: Figures, session: Session, sql: Detail, start: float, end: float,
              turns: tuple[Any, ...]) -> None:
    period = (Event.at >= start, Event.at < end)
    kinds = dict(session.exec(select(Event.kind, func.count()).where(*period, Event.kind.in_(HANDOFF_KINDS))
                              .group_by(Event.kind)).all())
    result.escalations = kinds.get("escalated", 0)
    result.resolved_confirmed, result.resolved_assumed = (kinds.get("resolution_confirmed", 0),
                                                          kinds.get("resolution_assumed", 0))
    result.reopened = kinds.get("reopened", 0)
    reason = func.coalesce(sql.value("reason"), "unknown").label("reason")
    reasons = Counter({str(k): n for k, n in session.exec(select(reason, func.count()).where(
        *period, Event.kind == "escalated").group_by(reason)).all()})
    rating = sql.value("rating").label("rating")
    ratings = Counter()
    for value, count in session.exec(select(rating, func.count()).where(*period, Event.kind == "rated")
                                     .group_by(rating)).all():
        if str(value) in {"1", "2", "3", "4", "5"}:
            ratings[str(value)] += count
    result.escalation_reasons, result.ratings = _ranked(reasons), dict(sorted(ratings.items()))
    # escalated conversations that have a turn in the period: two sets intersected (a hash of
    # each on PostgreSQL whatever its statistics say, not a lookup per escalation)
    both = intersect(select(Event.conversation).where(*period, Event.kind == "escalated"),
                     select(Event.conversation).where(*turns)).subquery()
    result.escalated_conversations = session.exec(select(func.count()).select_from(both)).one()


def _waited(session: Session, start: float, end: float, p: float) -> float | None:
    """The p-th percentile (nearest rank) of the waits for an agent, picked by the database."""
    wait = Escalation.claimed_at - Escalation.created_at
    claimed = (Escalation.created_at >= start, Escalation.created_at < end, Escalation.claimed_at > 0)
    count = session.exec(select(func.count()).select_from(Escalation).where(*claimed)).one()
    if not count:
        return None
    found = session.exec(select(wait).where(*claimed).order_by(wait)
                         .offset(max(0, math.ceil(p / 100 * count) - 1)).limit(1)).one()
    return float(found)


def _ranked(counter: Counter) -> dict[str, int]:
    """Most frequent first; equal counts by name (the order does not depend on the database's)."""
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def _day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))
