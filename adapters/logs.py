"""Logging for every process: one root handler whose filter redacts secrets from each record.

Records of every logger reach the root handler (ours and third parties': httpx, httpcore,
telegram, slack_sdk, urllib3, atlassian, botbuilder/msrest, uvicorn), whatever their level.
The filter sits on the handler, not on loggers, because a logger's filter never sees its
children's records. It renders the message with its arguments, then redacts:

- every configured secret value (`secrets_in(env)`: *_TOKEN, *_SECRET, *_PASSWORD, *_KEY and
  the passwords inside *_URL variables), also percent-encoded as they appear in URLs;
- the token of a Telegram Bot API URL (`/bot<id>:<key>/getMe`) and token-shaped values
  (Telegram, Slack `xox?-`/`xapp-`, OpenAI `sk-`), configured or not;
- Authorization, Proxy-Authorization, X-Api-Key, Cookie, Set-Cookie and the platforms' token
  headers, as `Name: value`, `'Name': 'value'` or `-H 'Name: value'` (atlassian's curl dumps);
- `token=`, `key=`, `secret=`, `password=`, `sig=` query parameters, and URL passwords.

A traceback is rendered once and redacted too (its text is cached on the record, which
formatters reuse). Redaction keeps what is around the secret, so request lines stay readable:
`GET https://api.telegram.org/bot[redacted]/getMe "HTTP/1.1 200 OK"`.
"""
from __future__ import annotations

import logging
import re
import sys
from typing import IO, Iterable, Mapping
from urllib.parse import quote, urlsplit

REDACTED = "[redacted]"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SECRET_NAMES = re.compile(r"(?:TOKEN|SECRET|PASSWORD|PASSWD|_KEY|APIKEY)$", re.IGNORECASE)
MIN_SECRET = 6  # shorter values ("1", "true") would redact ordinary words: they are left alone

_HEADERS = (r"authorization|proxy-authorization|x-api-key|api-key|cookie|set-cookie|x-shopify-access-token|"
            r"x-telegram-bot-api-secret-token|x-slack-signature|x-auth-token|private-token")
_PATTERNS = (
    # a header: `Authorization: Bearer x`, `'Authorization': 'Basic x'`, `(b'cookie', b'a=b')`
    (re.compile(rf"(?i)(\b(?:{_HEADERS})(?:['\"]?\s*[:=]\s*['\"]?|['\"]\s*,\s*b?['\"]))[^'\"\r\n]+"),
     rf"\g<1>{REDACTED}"),
    # Telegram's Bot API puts the token in the path: /bot<id>:<key>/method
    (re.compile(r"(/bot)\d+:[^/\s'\"?#]+"), rf"\g<1>{REDACTED}"),
    # token-shaped values wherever they are
    (re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}"), REDACTED),
    (re.compile(r"\b(?:xox[abposre]|xapp|xoxe\.xox[bp])-[A-Za-z0-9-]{6,}"), REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), REDACTED),
    # query (or form) parameters naming a credential
    (re.compile(r"(?i)((?:^|[?&;\s])(?:access_|api_|auth_|refresh_|client_|bot_)?"
                r"(?:token|key|apikey|secret|password|passwd|sig|signature)=)[^&\s'\"#]+"), rf"\g<1>{REDACTED}"),
    # a password inside a URL: scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s'\"]*:)[^@/\s'\"]+@", re.IGNORECASE), rf"\g<1>{REDACTED}@"),
)


def secrets_in(env: Mapping[str, str]) -> list[str]:
    """The secret values among environment variables: *_TOKEN, *_SECRET, *_PASSWORD and *_KEY
    values, and the password of any URL variable (DATABASE_URL, REDIS_URL, …)."""
    found = []
    for name, value in env.items():
        value = value.strip()
        if SECRET_NAMES.search(name):
            found.append(value)
        elif name.upper().endswith("_URL") and "@" in value:
            try:
                found.append(urlsplit(value).password or "")
            except ValueError:
                continue
    return sorted({v for v in found if len(v) >= MIN_SECRET}, key=len, reverse=True)


class Redactor(logging.Filter):
    """A handler filter that rewrites each record without secrets (see the module docstring)."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        values = {v for s in secrets if len(s) >= MIN_SECRET for v in (s, quote(s, safe=""), quote(s))}
        ordered = sorted(values, key=len, reverse=True)  # the longest first: a secret containing another
        self._values = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        """`text` with every known secret and secret-shaped value replaced."""
        if self._values is not None:
            text = self._values.sub(REDACTED, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad format arguments: keep what there is, still redacted
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def configure(level: str | int, secrets: Iterable[str] = (), stream: IO[str] | None = None) -> logging.Handler:
    """Install the one root handler (to `stream`, stderr by default) with its redacting filter,
    at `level` (a name like "INFO" or a number). Handlers loggers already have get the filter
    too. Returns the handler."""
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for logger in list(logging.root.manager.loggerDict.values()):
        for own in getattr(logger, "handlers", ()):
            if not isinstance(own, logging.NullHandler) and redactor not in own.filters:
                own.addFilter(redactor)
    return handler
