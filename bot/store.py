"""The durable record: events (every answer, decline, failure, handoff request),
feedback, escalations to humans and every change of who owns a conversation, in SQL
through sqlmodel: an SQLite file by default, Postgres when DATABASE_URL says so. Tables
are made by `create_all`; changes to them, and the indexes the dashboard's queries use, are
numbered migrations applied on connecting (bot/store_schema.py).

Recording must never break a conversation: `EventLog.record` logs and swallows its own
failures (the turn already has a reply for the user), while reads raise. While the
database is unreachable, events wait in a bounded buffer in memory and are written, in
order and with their own time, once it answers again.
"""
from __future__ import annotations

import asyncio
import json
import contextlib
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterator, Optional

from sqlalchemy import Column, Text, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlmodel import Field, Session, SQLModel, create_engine, func, select

from bot import store_schema
from bot.errors import ConfigError, StoreUnavailable

log = logging.getLogger(__name__)

BUFFER_EVENTS = 10_000  # events kept in memory while the database is unreachable, the oldest dropped first
BATCH_EVENTS = 500  # events written per transaction when catching up
CONNECT_SECONDS = 10  # PostgreSQL: a host that doesn't answer fails a connection after this


class Event(SQLModel, table=True):
    """Something that happened in a conversation."""

    id: Optional[int] = Field(default=None, primary_key=True)
    at: float = Field(index=True)
    kind: str  # the outcome; indexed with `at` (bot/store_schema.py), as are channel and profile
    conversation: str = Field(index=True)
    channel: str = ""
    profile: str = ""  # the profile that handled it (also in `detail`, where older readers look)
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
    state: str  # queued | claimed | resolved | bot (handed back); indexed with created_at
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


def connect(database_url: str, migrate: bool = True):
    """A SQLAlchemy engine for `database_url`, tables created and migrated (unless `migrate`
    is False: `switchboard migrate` applies them itself, to report them); bad URLs fail clearly."""
    try:
        url = make_url(database_url)
    except Exception as exc:
        raise ConfigError(f"DATABASE_URL is not a database URL: {exc}") from None
    if url.drivername == "postgresql" or url.drivername == "postgres":
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername.startswith("sqlite") and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # without a connect timeout, a host that drops packets holds a connection for the OS's minutes
    connect_args = {"connect_timeout": CONNECT_SECONDS} if url.drivername.startswith("postgresql") else {}
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    SQLModel.metadata.create_all(engine)
    if migrate:
        store_schema.migrate(engine)
    return engine


def describe(error: BaseException) -> str:
    """One line for an operator: the driver's own message, without SQLAlchemy's wrapping."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return lines[0][:300] if lines else type(cause).__name__


def unreachable(error: BaseException) -> bool:
    """Whether `error` says the database can't be reached (down, refused, timed out, dropped
    the connection) rather than refusing what was asked of it."""
    return (isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                               sa_exc.TimeoutError))
            or bool(getattr(error, "connection_invalidated", False)))


@contextlib.contextmanager
def reachable(what: str) -> Iterator[None]:
    """Database work a turn can't do without: a database that can't be reached becomes
    StoreUnavailable naming `what` (a queued turn is then retried); other errors pass."""
    try:
        yield
    except Exception as exc:
        if unreachable(exc):
            raise StoreUnavailable(f"{what}: {describe(exc)}") from exc
        raise


class EventLog:
    """Writes and reads events and feedback.

    Every recorded event goes through a buffer: normally written before `record` returns;
    while the database is unreachable it waits there (at most `buffer` events, the oldest
    dropped first) until the next `record`, `flush` (the web process runs it every few
    seconds) or `close` finds the database answering. One warning per outage.
    """

    def __init__(self, engine, buffer: int = BUFFER_EVENTS):
        self.engine = engine
        self.buffer = buffer
        self.dropped = 0  # events lost to a full buffer during the current outage
        self._pending: deque[dict[str, Any]] = deque()
        self._pending_lock = threading.Lock()  # held briefly, for the deque
        self._writing = threading.Lock()  # one writer at a time, whichever thread or event loop
        self._outage = False

    @property
    def pending(self) -> int:
        """Events waiting for the database."""
        return len(self._pending)

    def _add(self, row: SQLModel) -> None:
        with Session(self.engine) as session:
            session.add(row)
            session.commit()

    def ping(self) -> None:
        """A `SELECT 1`: raises when the database doesn't answer."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    async def record(self, kind: str, conversation: str, *, channel: str = "", reply_id: str = "",
                     **detail: Any) -> None:
        row = dict(at=time.time(), kind=kind, conversation=conversation, channel=channel, reply_id=reply_id,
                   profile=str(detail.get("profile") or ""), detail=json.dumps(detail, ensure_ascii=False, default=str))
        try:
            await asyncio.to_thread(self._keep, row)
        except Exception:  # the user has their reply; losing the record must not cost it
            log.exception("could not record event %s for %s", kind, conversation)

    async def flush(self) -> int:
        """Write the events kept during an outage, if the database answers; how many were written."""
        return await asyncio.to_thread(self._write, True)

    def _keep(self, row: dict[str, Any]) -> None:
        with self._pending_lock:
            self._pending.append(row)
            self._trim()
        # normally wait for the writer, so the event is stored when `record` returns; during
        # an outage don't queue behind another thread's attempt: the event waits in the buffer
        self._write(wait=not self._outage)

    def _write(self, wait: bool) -> int:
        if not self._writing.acquire(blocking=wait):
            return 0
        try:
            return self._drain()
        finally:
            self._writing.release()

    def _drain(self) -> int:
        written, size = 0, BATCH_EVENTS
        while batch := self._take(size):
            try:
                with Session(self.engine) as session:
                    session.add_all([Event(**row) for row in batch])
                    session.commit()
            except Exception as exc:
                if unreachable(exc):
                    self._put_back(batch)
                    self._went_down(exc, batch[0])
                    break
                if len(batch) > 1:  # a row the database refuses: find it by writing one at a time
                    self._put_back(batch)
                    size = 1
                    continue
                log.exception("could not record event %s for %s", batch[0]["kind"], batch[0]["conversation"])
                continue
            written += len(batch)
        if written and self._outage and not self._pending:
            self._came_back(written)
        return written

    def _take(self, size: int) -> list[dict[str, Any]]:
        with self._pending_lock:
            return [self._pending.popleft() for _ in range(min(size, len(self._pending)))]

    def _put_back(self, batch: list[dict[str, Any]]) -> None:
        with self._pending_lock:
            self._pending.extendleft(reversed(batch))  # older than anything recorded meanwhile
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest events over the bound (called with `_pending_lock` held)."""
        while len(self._pending) > self.buffer:
            self._pending.popleft()
            if not self.dropped:
                log.warning("event buffer full (%d events): dropping the oldest until the database answers",
                            self.buffer)
            self.dropped += 1

    def _went_down(self, error: BaseException, row: dict[str, Any]) -> None:
        if not self._outage:
            self._outage = True
            log.warning("could not record event %s for %s: the event database is unreachable (%s); keeping "
                        "events in memory (at most %d) until it answers", row["kind"], row["conversation"],
                        describe(error), self.buffer)

    def _came_back(self, written: int) -> None:
        self._outage = False
        lost = f"; {self.dropped} older events were dropped (buffer full)" if self.dropped else ""
        log.warning("the event database answers again: wrote %d events kept during the outage%s", written, lost)
        self.dropped = 0

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

    def counts(self) -> dict[str, int]:
        """How many events of each kind were recorded (for /metrics)."""
        with Session(self.engine) as session:
            return dict(session.exec(select(Event.kind, func.count()).group_by(Event.kind)).all())

    async def last(self, conversation: str, kinds: tuple[str, ...]) -> Event | None:
        """The conversation's latest event among `kinds`."""
        def read() -> Event | None:
            with Session(self.engine) as session:
                return session.exec(select(Event).where(Event.conversation == conversation, Event.kind.in_(kinds))
                                    .order_by(Event.id.desc()).limit(1)).first()
        with reachable("events database"):
            return await asyncio.to_thread(read)

    def feedbacks(self, reply_id: str | None = None) -> list[Feedback]:
        with Session(self.engine) as session:
            query = select(Feedback).order_by(Feedback.id)
            if reply_id:
                query = query.where(Feedback.reply_id == reply_id)
            return list(session.exec(query))

    def close(self) -> None:
        """Write what the buffer holds (if the database answers), then close the connections."""
        self._write(wait=True)
        if self._pending:
            log.warning("closing with %d events the event database never received: they are lost", self.pending)
        self.engine.dispose()
