"""The overview aggregated by the database gives the figures the row-by-row count gave,
and the conversations list filtered and paged by the database lists what the row-by-row
filter listed: scripted events of every kind (profiles in the column or only in the
detail, tokens, costs, confidences, reasons, ratings, 👍/👎, waits for an agent) on
SQLite and on PostgreSQL, compared with `reference` and `reference_list`, the Python
code bot/overview.py and adapters/admin/conversations.py used to run."""
from __future__ import annotations

import json
import random
import time
from collections import Counter

import pytest
from sqlmodel import Session, select

from bot.conversation_list import listing
from bot.overview import BINS, FAILURES, HANDOFF_KINDS, QUESTIONS, TURNS, Figures, figures, percentile
from bot.store import Escalation, Event, Feedback, connect

RESOLUTIONS = {"resolution_confirmed": "resolved_confirmed", "resolution_assumed": "resolved_assumed",
               "reopened": "reopened"}


def reference(db, start: float, end: float) -> Figures:
    """The figures as bot/overview.py computed them before: every row read and parsed."""
    result = Figures(start=start, end=end)
    with Session(db) as session:
        rows = session.exec(select(Event.kind, Event.conversation, Event.channel, Event.at, Event.detail).where(
            Event.at >= start, Event.at < end, Event.kind.in_((*TURNS, *HANDOFF_KINDS)))).all()
        votes = Counter(session.exec(select(Feedback.value).where(Feedback.at >= start, Feedback.at < end)).all())
        waits = [float(w) for w in session.exec(select(Escalation.claimed_at - Escalation.created_at).where(
            Escalation.created_at >= start, Escalation.created_at < end, Escalation.claimed_at > 0)).all()]
    channels, profiles, days, outcomes, reasons, ratings = (Counter() for _ in range(6))
    conversations, escalated = set(), set()
    for kind, conversation, channel, at, raw in rows:
        detail = json.loads(raw or "{}")
        if kind == "escalated":
            result.escalations += 1
            escalated.add(conversation)
            reasons[str(detail.get("reason", "unknown"))] += 1
        elif kind == "rated" and str(detail.get("rating", "")) in {"1", "2", "3", "4", "5"}:
            ratings[str(detail["rating"])] += 1
        elif kind in RESOLUTIONS:
            setattr(result, RESOLUTIONS[kind], getattr(result, RESOLUTIONS[kind]) + 1)
        if kind not in TURNS:
            continue
        conversations.add(conversation)
        result.turns += 1
        channels[channel or "unknown"] += 1
        profiles[str(detail.get("profile") or "unknown")] += 1
        days[time.strftime("%Y-%m-%d", time.gmtime(at))] += 1
        outcomes[kind] += 1
        result.questions += kind in QUESTIONS
        result.failed += kind in FAILURES
        for name in ("tokens_in", "tokens_out"):
            value = detail.get(name)
            setattr(result, name, getattr(result, name) + (int(value) if isinstance(value, (int, float))
                                                           and not isinstance(value, bool) else 0))
        cost = detail.get("cost")
        result.cost += float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else 0.0
        if kind in ("answered", "declined") and isinstance(detail.get("confidence"), (int, float)):
            result.confidence[min(BINS - 1, max(0, int(float(detail["confidence"]) * BINS)))] += 1
    result.answered, result.declined = outcomes.get("answered", 0), outcomes.get("declined", 0)
    result.conversations, result.escalated_conversations = len(conversations), len(escalated & conversations)
    result.by_channel, result.by_profile, result.by_day = dict(channels), dict(profiles), dict(days)
    result.outcomes, result.escalation_reasons, result.ratings = dict(outcomes), dict(reasons), dict(ratings)
    result.thumbs_up, result.thumbs_down = votes.get("up", 0), votes.get("down", 0)
    result.first_response_p50, result.first_response_p90 = percentile(waits, 50), percentile(waits, 90)
    return result


def script(db, now: float, conversations: int = 400) -> None:
    """Conversations of every kind over 20 days, some events outside any period asked."""
    rng = random.Random(18)
    rows, votes, escalations = [], [], []
    kinds = (*TURNS, *HANDOFF_KINDS, "claimed", "relayed_out", "ai_failed")
    for n in range(conversations):
        key, channel = f"c{n}", rng.choice(("web", "telegram", "slack", ""))
        profile = rng.choice(("support", "staff", "", None))  # one per conversation, as the engine keeps it
        for turn in range(rng.randint(1, 4)):
            at, kind = now - rng.uniform(0, 20 * 86400), rng.choice(kinds)
            detail = {"question": f"Question {n}.{turn} about {rng.choice(('delivery', 'Returns', 'lamps'))}"}
            if profile is not None and rng.random() < 0.8:
                detail["profile"] = profile
            if rng.random() < 0.7:
                detail["confidence"] = rng.choice((round(rng.random(), 2), 0.3, 0.7, 1.0, 1.2, -0.1, "high"))
            if rng.random() < 0.3:
                detail.update(tokens_in=rng.randint(10, 900), tokens_out=rng.randint(1, 90),
                              cost=round(rng.random() / 100, 6))
            if kind == "escalated":
                detail["reason"] = rng.choice(("customer_request", "ai_error", "declined_twice"))
                if rng.random() < 0.1:
                    del detail["reason"]
            if kind == "rated":
                detail["rating"] = rng.choice((1, 2, 3, 4, 5, 5, "4", 7))
            column = detail.get("profile") or "" if rng.random() < 0.5 else ""  # older rows: only in the detail
            rows.append(Event(at=at, kind=kind, conversation=key, channel=channel, profile=column,
                              reply_id=f"r{n}.{turn}", detail=json.dumps(detail)))
            if rng.random() < 0.2:
                votes.append(Feedback(at=at + 1, conversation=key, reply_id=f"r{n}.{turn}",
                                      value=rng.choice(("up", "down"))))
        if rng.random() < 0.2:
            created = now - rng.uniform(0, 20 * 86400)
            escalations.append(Escalation(conversation=key, channel=channel or "web", state="resolved",
                                          reason="customer_request", created_at=created,
                                          claimed_at=created + rng.randint(5, 3000) if rng.random() < 0.8 else 0))
    with Session(db) as session:
        session.add_all(rows + votes + escalations)
        session.commit()


def same(found: Figures, expected: Figures) -> None:
    got, want = found.to_dict(), expected.to_dict()
    assert got.pop("cost") == pytest.approx(want.pop("cost"))
    assert got == want


def reference_list(db, start: float, end: float, wanted: dict[str, str]) -> list[tuple]:
    """The conversations list as adapters/admin/conversations.py made it before: every
    event of the period parsed, filtered in Python; (key, channel, profile, outcomes,
    questions, ratings, turns, last) newest first."""
    with Session(db) as session:
        events = session.exec(select(Event.conversation, Event.kind, Event.channel, Event.at, Event.detail).where(
            Event.at >= start, Event.at < end, Event.kind.in_((*TURNS, "escalated", "rated")))
            .order_by(Event.id)).all()
    rows: dict[str, dict] = {}
    for conversation, kind, channel, at, raw in events:
        detail = json.loads(raw or "{}")
        row = rows.setdefault(conversation, dict(key=conversation, channel=channel, profile="", outcomes=set(),
                                                 questions=[], ratings=[], turns=0, last=0.0))
        row["last"] = max(row["last"], at)
        if kind == "rated":  # before, a rating not an integer fell through and listed "rated" as an outcome
            row["ratings"] += [detail["rating"]] if isinstance(detail.get("rating"), int) else []
            continue
        row["outcomes"].add(kind)
        if kind in TURNS:
            row["turns"] += 1
            row["profile"] = row["profile"] or str(detail.get("profile") or "")
            if detail.get("question"):
                row["questions"].append(str(detail["question"]))
    checks = {"channel": lambda r, v: r["channel"] == v, "profile": lambda r, v: r["profile"] == v,
              "outcome": lambda r, v: v in r["outcomes"],
              "rating": lambda r, v: v.isdigit() and int(v) in r["ratings"],
              "q": lambda r, v: any(v.lower() in q.lower() for q in r["questions"])}
    kept = [r for r in rows.values() if all(checks[k](r, v) for k, v in wanted.items() if v)]
    return [_listed(r) for r in sorted(kept, key=lambda r: -r["last"])]


def _listed(row) -> tuple:
    return (row["key"], row["channel"], row["profile"], sorted(row["outcomes"]), row["questions"], row["ratings"],
            row["turns"], row["last"])


def _database(engine: str, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'events.db'}" if engine == "sqlite" else request.getfixturevalue("postgres_url")
    db = connect(url)
    _empty(db)  # the PostgreSQL is shared by the session's tests: start empty, and leave it so
    request.addfinalizer(lambda: _empty(db))
    return db


def _empty(db) -> None:
    with Session(db) as session:
        for table in (Event, Feedback, Escalation):
            for row in session.exec(select(table)).all():
                session.delete(row)
        session.commit()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_the_database_lists_and_pages_the_conversations_the_row_filter_listed(engine, tmp_path, request):
    db, now = _database(engine, tmp_path, request), 1_790_000_000.0
    script(db, now)
    start, end = now - 10 * 86400, now + 1
    for wanted in ({}, {"channel": "web"}, {"profile": "staff"}, {"outcome": "declined"}, {"outcome": "escalated"},
                   {"rating": "5"}, {"rating": "x"}, {"q": "RETURNS"}, {"q": "question 1"}, {"q": "100%"},
                   {"channel": "telegram", "outcome": "answered", "q": "lamps"}):
        expected = reference_list(db, start, end, {"channel": "", **wanted})
        pages, number = [], 1
        while page := listing(db, start, end, wanted, number, size=40, batch=number * 7).rows:  # batches vary
            pages += page
            number += 1
        assert [_listed(vars(r) | {"outcomes": r.outcomes}) for r in pages] == expected, wanted
        found = listing(db, start, end, wanted, 1, size=40)
        assert found.matched == len(expected) and found.total == len(reference_list(db, start, end, {}))
    assert listing(db, start, end, {}).channels == ["", "slack", "telegram", "web"]
    assert len(reference_list(db, start, end, {})) > 40 * 2  # several pages were compared


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_the_database_aggregates_the_figures_the_row_count_gave(engine, tmp_path, request):
    db, now = _database(engine, tmp_path, request), 1_790_000_000.0
    script(db, now)
    for start, end in ((now - 30 * 86400, now + 1), (now - 7 * 86400, now - 86400), (now - 86400 / 3, now),
                       (now + 10, now + 20)):
        found, expected = figures(db, start, end), reference(db, start, end)
        same(found, expected)
        assert found.turns > 0 or start > now
    whole = figures(db, now - 30 * 86400, now + 1)
    assert whole.tokens_in > 0 and whole.ratings and whole.first_response_p90 and sum(whole.confidence) > 0
    assert "unknown" in whole.by_profile and "unknown" in whole.by_channel and "unknown" in whole.escalation_reasons
    assert list(whole.by_channel.values()) == sorted(whole.by_channel.values(), reverse=True)
