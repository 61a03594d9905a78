"""SQL expressions over an event's `detail` JSON and its time that read the same on SQLite
and PostgreSQL, so the console's figures (bot/overview.py) and lists are aggregated by the
database instead of parsing every row in Python.

SQLite reads JSON with `json_extract` / `json_type` (its JSON1 functions); PostgreSQL casts
the text to `jsonb`. Numbers are truncated toward zero as Python's `int()` does, and only
JSON numbers count as numbers (a string or a boolean is NULL), as bot/overview.py did.

`Detail.within` writes a period's conditions. SQLite keeps no statistics of the times, so
for "these kinds in this period" it always walks the (kind, at) index and looks every row
up in the table: over a period holding most of the events that is several times slower
than reading the table (measured over 120k events: a distinct count 450 ms against 60 ms,
the overview's grouping 370 ms against 140 ms). When the period holds more than a quarter
of the events, the conditions are written so that SQLite uses no index (`at + 0`,
`kind || ''`). PostgreSQL's planner has statistics and decides for itself.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer, case, cast, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Session, select

from bot.store import Event

DAY = 86400
SCAN_SHARE = 0.25  # SQLite: from this share of all events in the period on, read the table instead of an index


class Detail:
    """Expressions for one database dialect ("sqlite" or "postgresql")."""

    def __init__(self, db: Any):
        self.postgres = db.dialect.name == "postgresql"

    def value(self, key: str) -> Any:
        """The detail's `key`: SQLite gives its JSON type (4, 'x'), PostgreSQL its text ('4', 'x')."""
        if self.postgres:
            return cast(Event.detail, JSONB)[key].astext
        return func.json_extract(Event.detail, f"$.{key}")

    def number(self, key: str) -> Any:
        """The detail's `key` as a double when it is a JSON number, else NULL."""
        if self.postgres:
            field = cast(Event.detail, JSONB)[key]
            return case((func.jsonb_typeof(field) == "number", cast(field.astext, Float)))
        # the text search first: most rows lack most keys (no LLM, no tokens), and parsing is the cost
        return case((func.instr(Event.detail, f'"{key}"') > 0, case((
            func.json_type(Event.detail, f"$.{key}").in_(("integer", "real")),
            cast(func.json_extract(Event.detail, f"$.{key}"), Float)))))

    def whole(self, expression: Any) -> Any:
        """`expression` truncated toward zero (Python's int())."""
        return func.trunc(expression) if self.postgres else cast(expression, Integer)

    def day(self) -> Any:
        """The event's UTC day, as days since the epoch (times are positive: truncation is floor)."""
        return self.whole(Event.at / DAY)

    def profile(self) -> Any:
        """The turn's profile: the column, or for rows written before it existed, the detail's."""
        return func.coalesce(func.nullif(Event.profile, ""), self.value("profile"))

    def scans(self, session: Session, start: float, end: float) -> bool:
        """Whether [start, end) is better read from the table than through an index (SQLite,
        see the module docstring)."""
        if self.postgres:
            return False
        inside = session.exec(select(func.count()).where(Event.at >= start, Event.at < end)).one()
        return bool(inside) and inside >= SCAN_SHARE * session.exec(select(func.count()).select_from(Event)).one()

    @staticmethod
    def within(start: float, end: float, kinds: tuple[str, ...], scan: bool = False) -> tuple[Any, ...]:
        """Conditions for events of `kinds` in [start, end); with `scan`, written so that no
        index serves them (see `scans`)."""
        at, kind = (Event.at + 0, Event.kind.concat("")) if scan else (Event.at, Event.kind)
        return (at >= start, at < end, kind.in_(kinds))
