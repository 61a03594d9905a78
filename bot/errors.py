"""The engine's error classes. Each says when it is raised; adapters catch them at the edge."""
from __future__ import annotations


class SwitchboardError(Exception):
    """Base class for errors with a message meant for an operator (never for end users)."""


class ConfigError(SwitchboardError):
    """Raised at start-up when settings or the profiles file are missing or malformed."""


class ModelError(SwitchboardError):
    """Raised when the LLM endpoint is unreachable, times out or answers with an error."""


class MemoryUnavailable(SwitchboardError):
    """Raised when the conversation store (Redis, SQLite) cannot be reached."""


class StoreUnavailable(SwitchboardError):
    """Raised when the database of events and handoffs (SQLite, PostgreSQL) cannot be reached
    for something a turn can't do without (who owns the conversation)."""


class ConversationBusy(SwitchboardError):
    """Raised when another turn of the same conversation holds its lock for too long."""
