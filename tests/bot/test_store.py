"""The event log and feedback on real SQLite and real PostgreSQL."""
import pytest
from sqlmodel import SQLModel

from bot.errors import ConfigError
from bot.store import EventLog, connect


@pytest.fixture(params=["sqlite", "postgres"])
def log(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'events.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    if request.param == "postgres":  # the session's PostgreSQL is shared: start from no event tables
        SQLModel.metadata.drop_all(connect(url))
    events = EventLog(connect(url))
    yield events
    if request.param == "postgres":
        SQLModel.metadata.drop_all(events.engine)
    events.close()


async def test_events_and_feedback_round_trip(log):
    await log.record("answered", "web:1", channel="web", reply_id="r_1", question="délai ?", confidence=0.8)
    await log.record("declined", "web:2", channel="web", reply_id="r_2")
    await log.feedback("web:1", "r_1", "down", "u1")
    [event] = log.events("web:1")
    assert event.kind == "answered" and "délai ?" in event.detail
    assert [e.kind for e in log.events(kind="declined")] == ["declined"]
    assert log.feedbacks("r_1")[0].value == "down"


async def test_a_failing_database_never_breaks_recording(tmp_path, caplog):
    events = EventLog(connect(f"sqlite:///{tmp_path / 'events.db'}"))
    (tmp_path / "events.db").unlink()
    events.engine.dispose()
    (tmp_path / "events.db").mkdir()  # the path is now a folder: every write fails
    await events.record("answered", "web:1")
    assert "could not record event answered" in caplog.text


def test_a_bad_database_url_is_named():
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        connect("not a url at all")
