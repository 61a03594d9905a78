"""Events recorded while PostgreSQL is down are kept and written once it is back: a real
server of this module's own, stopped and started (not the session's shared one)."""
from __future__ import annotations

import logging
import time
import uuid

import pytest
from sqlalchemy.exc import OperationalError

from bot.store import EventLog, connect
from tests.services import postgres_service


@pytest.fixture(scope="module")
def database():
    with postgres_service() as service:
        yield service


@pytest.fixture
def log(database):
    database.start()  # a test that failed midway may have left it stopped
    events = EventLog(connect(database.url), buffer=3)
    yield events
    database.start()
    events.close()


def outage_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "bot.store"]


async def test_events_recorded_while_the_database_is_down_are_written_in_order_with_their_time(
        log, database, caplog):
    conversation = uuid.uuid4().hex
    await log.record("answered", conversation, n=0)
    database.stop()
    before = time.time()
    for n in (1, 2):
        await log.record("answered", conversation, n=n)
    recorded = time.time()
    assert log.pending == 2
    with pytest.raises(OperationalError):  # reads still raise
        log.events(conversation)
    assert len(outage_warnings(caplog)) == 1 and "event database is unreachable" in outage_warnings(caplog)[0]

    database.start()
    await log.record("declined", conversation, n=3)  # the next record writes what waited first
    events = log.events(conversation)
    assert [e.detail for e in events] == ['{"n": 0}', '{"n": 1}', '{"n": 2}', '{"n": 3}']
    assert all(before <= e.at <= recorded for e in events[1:3])  # their own time, not the write's
    assert log.pending == 0 and "answers again: wrote 3 events" in outage_warnings(caplog)[-1]


async def test_a_full_buffer_drops_the_oldest_and_says_how_many(log, database, caplog):
    conversation = uuid.uuid4().hex
    database.stop()
    for n in range(5):
        await log.record("answered", conversation, n=n)
    assert log.pending == 3 and log.dropped == 2
    assert await log.flush() == 0  # still down: nothing written, nothing lost
    database.start()
    assert await log.flush() == 3
    assert [e.detail for e in log.events(conversation)] == ['{"n": 2}', '{"n": 3}', '{"n": 4}']
    warnings = outage_warnings(caplog)
    assert sum("dropping the oldest" in w for w in warnings) == 1 and "2 older events were dropped" in warnings[-1]


async def test_closing_writes_what_an_outage_kept(log, database):
    conversation = uuid.uuid4().hex
    database.stop()
    await log.record("handoff_requested", conversation)
    database.start()
    log.close()
    again = EventLog(connect(database.url))
    try:
        assert [e.kind for e in again.events(conversation)] == ["handoff_requested"]
    finally:
        again.close()


async def test_a_row_the_database_refuses_is_dropped_alone(log, database, caplog):
    conversation = uuid.uuid4().hex
    database.stop()
    await log.record("answered", conversation, n=1)
    await log.record("answered", conversation, channel="\x00", n=2)  # PostgreSQL text can't hold NUL
    await log.record("answered", conversation, n=3)
    database.start()
    await log.flush()
    assert [e.detail for e in log.events(conversation)] == ['{"n": 1}', '{"n": 3}']
    assert log.pending == 0 and "could not record event answered" in caplog.text
