"""The durable record: events (every answer, decline, failure, handoff request),
feedback, escalations to humans and every change of who owns a conversation, in SQL
through sqlmodel: an SQLite file by default, Postgres when DATABASE_URL says so.

Recording must never break a conversation: `EventLog.record` logs and swallows its own
failures (the turn already has a reply for the user), while reads raise.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import Column, Text
from sqlalchemy.engine import make_url
from sqlmodel import Field, Session, SQLModel, create_engine, select

from bot.errors import ConfigError

log = logging.getLogger(__name__)


class Event(SQLModel, table=True):
    """Something that happened in a conversation."""

    id: Optional[int] = Field(default=None, primary_key=True)
    at: float = Field(index=True)
    kind: str = Field(index=True)
    conversation: str = Field(index=True)
    channel: str = ""
    reply_id: str = Field(default="", index=True)
    detail: str = Field(default="{}", sa_column=Column(Text))


class Feedback(SQLModel, table=True):
    """A 👍/👎 on one answer."""

    id: Optional[int] = Field(default=None, primary_key=True)
    at: float
    conversation: str = Field(index=True)
    reply_id: str = Field(index=True)
    value: str  # "up" | "down"
    user: str = ""


class Escalation(SQLModel, table=True):
    """A conversation handed to humans (see bot/handoff.py for its life)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    conversation: str = Field(index=True)
    channel: str  # the customer's channel: "telegram", "slack", "web", ...
    profile: str = ""
    state: str = Field(index=True)  # queued | claimed | resolved | bot (handed back)
    reason: str
    customer: str = ""  # display name
    language: str = "en"
    address: str = Field(default="{}", sa_column=Column(Text))  # JSON: how the customer's adapter reaches them
    desk: str = Field(default="", index=True)  # the agents channel, "<platform>:<channel id>"
    post: str = Field(default="", index=True)  # the escalation post's id there (its thread is the relay)
    agent: str = ""
    agent_name: str = ""
    created_at: float = 0.0
    claimed_at: float = 0.0
    closed_at: float = 0.0
    unclaimed_notice: bool = False  # the SLA passed and the customer was told
    rating: Optional[int] = None


class OwnerChange(SQLModel, table=True):
    """The audit trail: every change of a conversation's owner, who made it, when and why."""

    id: Optional[int] = Field(default=None, primary_key=True)
    escalation: int = Field(index=True)
    conversation: str = Field(index=True)
    at: float
    before: str
    after: str
    actor: str = ""
    why: str = ""


def connect(database_url: str):
    """A SQLAlchemy engine for `database_url`, tables created; bad URLs fail clearly."""
    try:
        url = make_url(database_url)
    except Exception as exc:
        raise ConfigError(f"DATABASE_URL is not a database URL: {exc}") from None
    if url.drivername == "postgresql" or url.drivername == "postgres":
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername.startswith("sqlite") and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    SQLModel.metadata.create_all(engine)
    return engine


class EventLog:
    """Writes and reads events and feedback."""

    def __init__(self, engine):
        self.engine = engine

    def _add(self, row: SQLModel) -> None:
        with Session(self.engine) as session:
            session.add(row)
            session.commit()

    async def record(self, kind: str, conversation: str, *, channel: str = "", reply_id: str = "",
                     **detail: Any) -> None:
        row = Event(at=time.time(), kind=kind, conversation=conversation, channel=channel, reply_id=reply_id,
                    detail=json.dumps(detail, ensure_ascii=False, default=str))
        try:
            await asyncio.to_thread(self._add, row)
        except Exception:  # the user has their reply; losing the record must not cost it
            log.exception("could not record event %s for %s", kind, conversation)

    async def feedback(self, conversation: str, reply_id: str, value: str, user: str = "") -> None:
        await asyncio.to_thread(self._add, Feedback(at=time.time(), conversation=conversation,
                                                    reply_id=reply_id, value=value, user=user))

    def events(self, conversation: str | None = None, kind: str | None = None) -> list[Event]:
        with Session(self.engine) as session:
            query = select(Event).order_by(Event.id)
            if conversation:
                query = query.where(Event.conversation == conversation)
            if kind:
                query = query.where(Event.kind == kind)
            return list(session.exec(query))

    async def last(self, conversation: str, kinds: tuple[str, ...]) -> Event | None:
        """The conversation's latest event among `kinds`."""
        def read() -> Event | None:
            with Session(self.engine) as session:
                return session.exec(select(Event).where(Event.conversation == conversation, Event.kind.in_(kinds))
                                    .order_by(Event.id.desc()).limit(1)).first()
        return await asyncio.to_thread(read)

    def feedbacks(self, reply_id: str | None = None) -> list[Feedback]:
        with Session(self.engine) as session:
            query = select(Feedback).order_by(Feedback.id)
            if reply_id:
                query = query.where(Feedback.reply_id == reply_id)
            return list(session.exec(query))

    def close(self) -> None:
        self.engine.dispose()
