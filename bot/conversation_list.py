"""The conversations of a period, filtered and paged by the database (the console's
Conversations list, adapters/admin/conversations.py).

The period's turn, escalation and rating events are read newest first (the index on
`at`), a batch at a time, until a page of conversations was seen; filters are subqueries
(a conversation matches when one of its events in the period does: channel, profile,
outcome, a rating, words of a question). Only the page's conversations are then read
event by event for their questions, outcomes and ratings. Works on SQLite and
PostgreSQL alike (bot/event_sql.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import Session, func, select

from bot.event_sql import Detail
from bot.overview import TURNS
from bot.store import Event

KINDS = (*TURNS, "escalated", "rated")
OUTCOMES = (*TURNS, "escalated")
PAGE = 50  # conversations per page
BATCH = 1000  # events read at a time, newest first, to find a page's conversations
FILTERS = ("channel", "profile", "outcome", "rating", "q")


@dataclass
class Row:
    """One conversation in the list."""

    key: str
    channel: str = ""
    profile: str = ""
    first: float = 0.0
    last: float = 0.0
    turns: int = 0
    outcomes: set[str] = field(default_factory=set)
    questions: list[str] = field(default_factory=list)
    ratings: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Listing:
    """A page of conversations, how many match and are in the period, and the values the
    filters can take in it."""

    rows: list[Row]
    matched: int
    total: int
    channels: list[str]
    profiles: list[str]
    outcomes: list[str]


def _matching(sql: Detail, period: tuple[Any, ...], wanted: dict[str, str]) -> list[Any]:
    """Conditions on Event.conversation for each filter given."""
    def having(*conditions: Any) -> Any:
        return Event.conversation.in_(select(Event.conversation).where(*period, *conditions))
    conditions = []
    if wanted.get("channel"):
        conditions.append(having(Event.kind.in_(KINDS), Event.channel == wanted["channel"]))
    if wanted.get("profile"):
        conditions.append(having(Event.kind.in_(TURNS), sql.profile() == wanted["profile"]))
    if wanted.get("outcome"):
        conditions.append(having(Event.kind.in_(OUTCOMES), Event.kind == wanted["outcome"]))
    if wanted.get("rating"):
        rating = wanted["rating"]
        conditions.append(having(Event.kind == "rated", sql.number("rating") == int(rating)) if rating.isdigit()
                          else Event.id.is_(None))
    if wanted.get("q"):
        words = wanted["q"].lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(having(Event.kind.in_(TURNS),
                                 func.lower(sql.value("question")).like(f"%{words}%", escape="\\")))
    return conditions


def listing(db: Any, start: float, end: float, wanted: dict[str, str], page: int = 1, size: int = PAGE,
            batch: int = BATCH) -> Listing:
    """Page `page` (from 1) of the conversations of [start, end) matching `wanted`, the
    newest last event first (blocking)."""
    sql = Detail(db)
    period = (Event.at >= start, Event.at < end)
    events = (*period, Event.kind.in_(KINDS))
    matching = _matching(sql, period, wanted)
    with Session(db) as session:
        keys = _newest(session, (*events, *matching), max(0, page - 1) * size, size, batch)
        rows = _rows(session, start, end, keys)
        scan = sql.scans(session, start, end)  # the whole period is read here: maybe the table (SQLite)
        everything = sql.within(start, end, KINDS, scan)
        count = func.count(func.distinct(Event.conversation))
        matched = session.exec(select(count).where(*everything, *matching)).one()
        total = session.exec(select(count).where(*everything)).one() if matching else matched
        profile = sql.profile().label("profile")
        channels = session.exec(select(Event.channel).where(*everything).distinct()).all()
        profiles = session.exec(select(profile).where(*sql.within(start, end, TURNS, scan)).distinct()).all()
        outcomes = session.exec(select(Event.kind).where(*sql.within(start, end, OUTCOMES, scan)).distinct()).all()
    return Listing([rows[key] for key in keys], matched, total, sorted(channels), sorted(p for p in profiles if p),
                   sorted(outcomes))


def _newest(session: Session, conditions: tuple[Any, ...], skip: int, size: int, batch: int) -> list[str]:
    """The conversations of the events matching `conditions`, by their newest event, from
    the `skip`-th on: the events are read newest first, a batch at a time, until enough
    conversations were seen (page 1 reads a few hundred events, not the whole period)."""
    seen: dict[str, None] = {}
    after: tuple[float, int] | None = None
    while len(seen) < skip + size:
        query = select(Event.conversation, Event.at, Event.id).where(*conditions)
        if after is not None:
            query = query.where(or_(Event.at < after[0], and_(Event.at == after[0], Event.id < after[1])))
        found = session.exec(query.order_by(Event.at.desc(), Event.id.desc()).limit(batch)).all()
        for conversation, at, id_ in found:
            seen.setdefault(conversation, None)
            after = (at, id_)
        if len(found) < batch:
            break
    return list(seen)[skip:skip + size]


def _rows(session: Session, start: float, end: float, keys: list[str]) -> dict[str, Row]:
    """The page's conversations, read event by event (by conversation: the period is checked
    here, so the database looks them up by the conversation's index)."""
    rows: dict[str, Row] = {}
    for conversation, kind, channel, at, profile, raw in session.exec(
            select(Event.conversation, Event.kind, Event.channel, Event.at, Event.profile, Event.detail)
            .where(Event.conversation.in_(keys)).order_by(Event.id)).all():
        if not (start <= at < end and kind in KINDS):
            continue
        detail = json.loads(raw or "{}")
        row = rows.setdefault(conversation, Row(conversation, channel=channel, first=at))
        row.first, row.last = min(row.first, at), max(row.last, at)
        if kind == "rated":
            if isinstance(detail.get("rating"), int):
                row.ratings.append(detail["rating"])
            continue
        row.outcomes.add(kind)
        if kind in TURNS:
            row.turns += 1
            row.profile = row.profile or profile or str(detail.get("profile") or "")
            if detail.get("question"):
                row.questions.append(str(detail["question"]))
    return rows
