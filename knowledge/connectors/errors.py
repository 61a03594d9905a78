"""The errors a connector raises (per-document problems are `Failure` values instead).

Each says in words a person can act on what is wrong and what to do: the message is shown
as the source's status by `switchboard sources` and the admin page, so it never contains
a token or a password.
"""
from __future__ import annotations


class ConnectorError(Exception):
    """The source can't be read at all right now (raised after retries: 5xx, network)."""


class CredentialError(ConnectorError):
    """The source refused our credentials (401/403: expired, revoked, missing scope).

    Raised at once, never retried: the source goes to `failed` with this message, and the
    documents already indexed from it stay as they were.
    """


class ConfigurationError(ConnectorError):
    """The source's settings are wrong (an unknown space, folder or database id)."""
