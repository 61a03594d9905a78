"""SQL expressions over an event's `detail` JSON and its time that read the same on SQLite
and PostgreSQL, so the console's figures (bot/overview.py) and lists are aggregated by the
database instead of parsing every row in Python.

SQLite reads JSON with `json_extract` / `json_type` (its JSON1 functions); PostgreSQL casts
the text to `jsonb`. Numbers are truncated toward zero as Python's `int()` does, and only
JSON numbers count as numbers (a string or a boolean is NULL), as bot/overview.py did.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer, case, cast, func
from sqlalchemy.dialects.postgresql import JSONB

from bot.store import Event

DAY = 86400


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
        return case((func.json_type(Event.detail, f"$.{key}").in_(("integer", "real")),
                     cast(func.json_extract(Event.detail, f"$.{key}"), Float)))

    def whole(self, expression: Any) -> Any:
        """`expression` truncated toward zero (Python's int())."""
        return func.trunc(expression) if self.postgres else cast(expression, Integer)

    def day(self) -> Any:
        """The event's UTC day, as days since the epoch (times are positive: truncation is floor)."""
        return self.whole(Event.at / DAY)

    def profile(self) -> Any:
        """The turn's profile: the column, or for rows written before it existed, the detail's."""
        return func.coalesce(func.nullif(Event.profile, ""), self.value("profile"))
