"""The event database's numbered migrations (events, feedback, handoffs: bot/store.py), on
SQLite and PostgreSQL alike.

`SQLModel.metadata.create_all` makes missing tables, as it always did; it never changes a
table that exists. What changes existing tables goes here, as (version, name, step): each
runs once, recorded in `store_migrations`, when a process connects (bot/store.py `connect`)
or when `switchboard migrate` runs. On PostgreSQL a transaction-level advisory lock makes
processes starting together take turns; every step is idempotent (IF NOT EXISTS, columns
checked first), so SQLite processes racing, or a step interrupted half-way, are harmless.
Same choice as the knowledge index (knowledge/index_pg_schema.py): our own numbered steps,
not Alembic, for a few tables and their indexes.

Migration 1 indexes what the console's overview, its conversation list and /metrics ask:
a period of events by outcome (`kind`), channel or profile (each `(column, at)`, so one
index range scan answers "this channel, this week"), feedback by time, escalations by time,
state, channel and profile. The profile of a turn was only inside the `detail` JSON; it
becomes a column (filled by `EventLog.record`, existing rows copied from their detail) so
that a `GROUP BY profile` or a profile filter is plain, indexed SQL on both engines. The
single-column `kind` and `state` indexes are dropped: the composite ones start with them.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

log = logging.getLogger(__name__)

LOCK_KEY = 0x5B_E7_01  # pg_advisory_xact_lock key: one migrator at a time
TABLE = ("CREATE TABLE IF NOT EXISTS store_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
         "applied_at DOUBLE PRECISION NOT NULL)")

# (name, table, columns): what the dashboard and metrics filter and group by, each with the time
DASHBOARD_INDEXES = (
    ("ix_event_kind_at", "event", "kind, at"),
    ("ix_event_channel_at", "event", "channel, at"),
    ("ix_event_profile_at", "event", "profile, at"),
    ("ix_feedback_at", "feedback", "at"),
    ("ix_escalation_created_at", "escalation", "created_at"),
    ("ix_escalation_state_created_at", "escalation", "state, created_at"),
    ("ix_escalation_channel_created_at", "escalation", "channel, created_at"),
    ("ix_escalation_profile_created_at", "escalation", "profile, created_at"),
)
REPLACED = ("ix_event_kind", "ix_escalation_state")  # prefixes of the composite ones above


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    step: Callable[[Connection], None]


def _dashboard(conn: Connection) -> None:
    if "profile" not in {c["name"] for c in inspect(conn).get_columns("event")}:
        try:
            conn.execute(text("ALTER TABLE event ADD COLUMN profile VARCHAR NOT NULL DEFAULT ''"))
        except (OperationalError, ProgrammingError) as exc:  # another SQLite process added it meanwhile
            if "duplicate column" not in str(exc):
                raise
    profile = ("detail::jsonb ->> 'profile'" if conn.dialect.name == "postgresql"
               else "CASE WHEN json_valid(detail) THEN json_extract(detail, '$.profile') END")
    conn.execute(text(f"UPDATE event SET profile = COALESCE({profile}, '') WHERE profile = '' "
                      "AND detail LIKE '%\"profile\"%'"))
    for name in REPLACED:
        conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    for name, table, columns in DASHBOARD_INDEXES:
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"))


MIGRATIONS = (Migration(1, "events, feedback and handoffs indexed by time, outcome, channel and profile", _dashboard),)
LATEST = MIGRATIONS[-1].version


def applied(conn: Connection) -> int:
    """The highest migration applied (0: none)."""
    return conn.execute(text("SELECT COALESCE(MAX(version), 0) FROM store_migrations")).scalar_one()


def migrate(engine: Engine) -> list[tuple[int, str]]:
    """Apply the pending migrations (the tables exist: `create_all` ran); returns those applied."""
    done: list[tuple[int, str]] = []
    for migration in MIGRATIONS:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            conn.execute(text(TABLE))
            if applied(conn) >= migration.version:
                continue
            migration.step(conn)
            conn.execute(text("INSERT INTO store_migrations (version, name, applied_at) VALUES (:v, :n, :t) "
                              "ON CONFLICT (version) DO NOTHING"),
                         {"v": migration.version, "n": migration.name, "t": time.time()})
            done.append((migration.version, migration.name))
            log.info("event database: applied migration %d (%s)", migration.version, migration.name)
    return done
