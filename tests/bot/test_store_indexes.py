"""The event database's migrations and indexes (bot/store_schema.py), on SQLite and on a real
PostgreSQL: an event table made by an older Switchboard gains its `profile` column (copied
from each event's detail) and the dashboard's indexes, once, recorded; and the queries the
console's overview, its conversation list and /metrics make over a period, by outcome,
channel and profile, are answered from those indexes (EXPLAIN), not a scan of the table."""
from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import func, insert, inspect, text
from sqlmodel import select

from bot import store_schema
from bot.store import Escalation, Event, EventLog, Feedback, connect

DAY = 86400.0
START = 1_780_000_000.0
OLD_EVENT_TABLE = """CREATE TABLE event (id INTEGER PRIMARY KEY, at FLOAT NOT NULL, kind VARCHAR NOT NULL,
  conversation VARCHAR NOT NULL, channel VARCHAR NOT NULL, reply_id VARCHAR NOT NULL, detail TEXT)"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    drop(url)  # the session's PostgreSQL is shared: start from no event tables, and leave none
    yield url
    drop(url)


def drop(url: str) -> None:
    engine = connect(url, migrate=False)
    with engine.begin() as conn:
        for table in ("event", "feedback", "escalation", "store_migrations"):
            conn.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    engine.dispose()


def indexes(engine, table: str) -> set[str]:
    return {i["name"] for i in inspect(engine).get_indexes(table)}


def test_an_older_event_table_is_migrated_once_and_keeps_its_events(database_url):
    engine = connect(database_url, migrate=False)
    with engine.begin() as conn:  # as an older Switchboard made it: no profile, one index per column
        conn.execute(text("DROP TABLE IF EXISTS event"))
        conn.execute(text(OLD_EVENT_TABLE.replace("INTEGER PRIMARY KEY", "SERIAL PRIMARY KEY")
                          if engine.dialect.name == "postgresql" else OLD_EVENT_TABLE))
        conn.execute(text("CREATE INDEX ix_event_kind ON event (kind)"))
        conn.execute(text("CREATE INDEX ix_event_at ON event (at)"))
        for n, detail in enumerate([{"profile": "hr", "confidence": 0.8}, {"question": "hi"}, "not json"]):
            conn.execute(text("INSERT INTO event (at, kind, conversation, channel, reply_id, detail) "
                              "VALUES (:at, 'answered', :c, 'web', '', :d)"),
                         {"at": START + n, "c": f"web:{n}", "d": detail if isinstance(detail, str) else json.dumps(detail)})
    engine.dispose()
    engine = connect(database_url)  # what every process does on start
    try:
        with engine.connect() as conn:
            assert store_schema.applied(conn) == store_schema.LATEST == 1
            rows = conn.execute(text("SELECT conversation, profile FROM event ORDER BY id")).all()
        assert rows == [("web:0", "hr"), ("web:1", ""), ("web:2", "")]
        assert {"ix_event_kind_at", "ix_event_channel_at", "ix_event_profile_at"} <= indexes(engine, "event")
        assert "ix_event_kind" not in indexes(engine, "event")
        assert {"ix_feedback_at"} <= indexes(engine, "feedback")
        assert {"ix_escalation_created_at", "ix_escalation_state_created_at", "ix_escalation_channel_created_at",
                "ix_escalation_profile_created_at"} <= indexes(engine, "escalation")
        assert store_schema.migrate(engine) == []  # applied once
    finally:
        engine.dispose()


async def test_a_recorded_event_keeps_its_profile_in_a_column(database_url):
    log = EventLog(connect(database_url))
    try:
        await log.record("answered", "web:1", channel="web", profile="billing", confidence=0.9)
        await log.record("busy", "web:1", channel="web")
        assert [(e.kind, e.profile) for e in log.events("web:1")] == [("answered", "billing"), ("busy", "")]
        assert json.loads(log.events("web:1")[0].detail)["profile"] == "billing"  # where older readers look
    finally:
        log.close()


def fill(engine, events: int = 30_000) -> None:
    """`events` turns over 90 days on 4 channels and 3 profiles, with feedback and escalations."""
    rng = random.Random(7)
    kinds = ["answered"] * 6 + ["declined", "handoff_requested", "escalated", "smalltalk", "turn_failed"]
    rows = [dict(at=START + rng.random() * 90 * DAY, kind=rng.choice(kinds), conversation=f"c{rng.randrange(events // 3)}",
                 channel=rng.choice(["web", "slack", "telegram", "teams"]), reply_id=f"r{n}",
                 profile=rng.choice(["support", "sales", "hr"]), detail="{}") for n in range(events)]
    with engine.begin() as conn:
        conn.execute(insert(Event), rows)
        conn.execute(insert(Feedback), [dict(at=r["at"], conversation=r["conversation"], reply_id=r["reply_id"],
                                             value=rng.choice(["up", "down"]), user="") for r in rows[::10]])
        conn.execute(insert(Escalation), [dict(conversation=r["conversation"], channel=r["channel"],
                                               profile=r["profile"], state=rng.choice(["queued", "claimed", "resolved"]),
                                               reason="asked", created_at=r["at"], claimed_at=r["at"] + 60)
                                          for r in rows[::10]])
        conn.execute(text("ANALYZE"))


def plan(engine, query) -> str:
    sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        return "\n".join(" ".join(str(c) for c in row) for row in conn.execute(text(explain + sql)))


def test_the_dashboard_queries_use_the_indexes(database_url):
    engine = connect(database_url)
    try:
        fill(engine)
        day = (Event.at >= START + 40 * DAY, Event.at < START + 41 * DAY)
        week = (Escalation.created_at >= START + 40 * DAY, Escalation.created_at < START + 47 * DAY)
        expected = {
            "ix_event_": select(Event.kind, func.count()).where(*day).group_by(Event.kind),  # a day by outcome:
            # ix_event_at, or (SQLite) the covering ix_event_kind_at skipping through the kinds
            "ix_event_kind_at": select(func.count()).where(Event.kind == "declined", *day),  # one outcome
            "ix_event_channel_at": select(func.count(func.distinct(Event.conversation)))
            .where(Event.channel == "slack", *day),
            "ix_event_profile_at": select(func.count(func.distinct(Event.conversation)))
            .where(Event.profile == "hr", *day),
            "ix_feedback_at": select(Feedback.value, func.count()).where(
                Feedback.at >= START + 40 * DAY, Feedback.at < START + 47 * DAY).group_by(Feedback.value),
            "ix_escalation_created_at": select(Escalation.claimed_at - Escalation.created_at).where(
                *week, Escalation.claimed_at > 0),
            "ix_escalation_state_created_at": select(Escalation).where(Escalation.state == "queued")
            .order_by(Escalation.created_at).limit(50),
            "ix_escalation_channel_created_at": select(func.count()).where(Escalation.channel == "teams", *week),
            "ix_escalation_profile_created_at": select(func.count()).where(Escalation.profile == "sales", *week),
        }
        for index, query in expected.items():
            found = plan(engine, query)
            assert index in found, f"{index} not used:\n{found}"
    finally:
        engine.dispose()
