"""Operator accounts for the console at /admin: who may sign in, with which role, their
sessions, failed sign-ins (for rate limiting), internal notes, and the audit trail.

Accounts live in the event database (SQLite or PostgreSQL, bot/store.py) beside the
escalations they work on. Passwords are hashed with argon2id (argon2-cffi); a new account
gets a random one-time password that must be changed at the first sign-in. A session is
a random token whose SHA-256 alone is stored, with its own CSRF token. Sign-ins are
limited per address and e-mail (`LOGIN_FAILURES` failures in `LOGIN_WINDOW` seconds) in
the database, so every web worker counts the same failures. Every change an operator
makes is an `AuditEntry`.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Column, Text, delete
from sqlmodel import Field, Session, SQLModel, func, select

from bot.errors import SwitchboardError

ROLES = ("admin", "agent")
SESSION_SECONDS = 12 * 3600  # a session ends 12 hours after sign-in
LOGIN_FAILURES = 5  # failed sign-ins per address and e-mail ...
LOGIN_WINDOW = 15 * 60  # ... within this many seconds, before sign-ins are refused
MIN_PASSWORD = 10  # characters in a chosen password
_hasher = PasswordHasher()
# verified against when the e-mail is unknown, so a wrong e-mail costs as long as a wrong password
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))


class Operator(SQLModel, table=True):
    """A person who signs in to the console."""

    __tablename__ = "operator"
    id: Optional[int] = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True)
    name: str = ""
    role: str  # "admin" | "agent"
    password: str  # argon2 hash
    must_change: bool = True  # signed in with a one-time password: choose one first
    active: bool = True
    created_at: float = 0.0


class OperatorSession(SQLModel, table=True):
    """A signed-in browser: the SHA-256 of its cookie's token, and its CSRF token."""

    __tablename__ = "operator_session"
    id: Optional[int] = Field(default=None, primary_key=True)
    token: str = Field(index=True, unique=True)
    operator: int = Field(index=True)
    csrf: str
    created_at: float
    expires_at: float


class LoginFailure(SQLModel, table=True):
    """One failed sign-in, counted per address and e-mail."""

    __tablename__ = "login_failure"
    id: Optional[int] = Field(default=None, primary_key=True)
    key: str = Field(index=True)  # "<address> <email>"
    at: float = Field(index=True)


class AuditEntry(SQLModel, table=True):
    """Something an operator did: signed in, claimed, replied, edited knowledge, ..."""

    __tablename__ = "audit_entry"
    id: Optional[int] = Field(default=None, primary_key=True)
    at: float = Field(index=True)
    operator: str  # the operator's e-mail ("cli" for the command line)
    action: str = Field(index=True)
    target: str = ""
    detail: str = Field(default="{}", sa_column=Column(Text))


class Note(SQLModel, table=True):
    """An agent's internal note on an escalation: never shown to the customer."""

    __tablename__ = "inbox_note"
    id: Optional[int] = Field(default=None, primary_key=True)
    escalation: int = Field(index=True)
    at: float
    author: str
    text: str = Field(sa_column=Column(Text))


@dataclass(frozen=True)
class Signed:
    """A valid session: who it is and the CSRF token their forms must carry."""

    operator: Operator
    csrf: str


class TooManyAttempts(Exception):
    """Raised by `Operators.sign_in` when the address and e-mail failed too often lately."""


class AccountError(SwitchboardError):
    """Raised for an account that can't be made or changed (a bad role, a taken e-mail,
    a short password); its message is for the operator."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Operators:
    """Accounts, sessions and the audit trail over the event database's engine."""

    def __init__(self, db: Any, clock: Callable[[], float] = time.time):
        self.db, self.clock = db, clock
        for table in (Operator, OperatorSession, LoginFailure, AuditEntry, Note):
            table.__table__.create(db, checkfirst=True)

    def _do(self, work: Callable[[Session], Any]) -> Any:
        with Session(self.db, expire_on_commit=False) as session:
            return work(session)

    async def _run(self, work: Callable[[Session], Any]) -> Any:
        return await asyncio.to_thread(self._do, work)

    # -- accounts (sync: the command line uses them too) ----------------------------------------
    def create(self, email: str, role: str, name: str = "", actor: str = "cli") -> tuple[Operator, str]:
        """A new account and its one-time password (shown once, stored hashed)."""
        email = email.strip().lower()
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if "@" not in email or len(email) > 254:
            raise AccountError(f"{email!r} is not an e-mail address")
        password = secrets.token_urlsafe(12)
        operator = Operator(email=email, name=name or email.split("@")[0], role=role,
                            password=_hasher.hash(password), created_at=self.clock())

        def work(session: Session) -> Operator:
            if session.exec(select(Operator).where(Operator.email == email)).first() is not None:
                raise AccountError(f"an operator {email} exists already")
            session.add(operator)
            session.add(self._entry(actor, "operator_created", email, role=role))
            session.commit()
            return operator
        return self._do(work), password

    def any(self) -> bool:
        """Whether at least one active account exists (someone can staff the inbox)."""
        return self._do(lambda s: s.exec(select(func.count()).select_from(Operator)
                                         .where(Operator.active == True)).one() > 0)  # noqa: E712 (SQL)

    async def sign_in(self, email: str, password: str, address: str) -> Operator | None:
        """The operator, if the password is theirs; raises TooManyAttempts when rate limited."""
        email, now = email.strip().lower(), self.clock()
        key = f"{address} {email}"

        def work(session: Session) -> Operator | None:
            failures = session.exec(select(func.count()).select_from(LoginFailure).where(
                LoginFailure.key == key, LoginFailure.at > now - LOGIN_WINDOW)).one()
            if failures >= LOGIN_FAILURES:
                raise TooManyAttempts(key)
            operator = session.exec(select(Operator).where(Operator.email == email,
                                                           Operator.active == True)).first()  # noqa: E712
            if _verified(operator.password if operator else _DUMMY, password) and operator is not None:
                session.exec(delete(LoginFailure).where(LoginFailure.key == key))
                session.add(self._entry(email, "signed_in", email, address=address))
                session.commit()
                return operator
            session.add(LoginFailure(key=key, at=now))
            session.commit()
            return None
        return await self._run(work)

    async def set_password(self, operator: Operator, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"choose a password of at least {MIN_PASSWORD} characters")

        def work(session: Session) -> None:
            row = session.get(Operator, operator.id)
            row.password, row.must_change = _hasher.hash(password), False
            session.add(self._entry(operator.email, "password_changed", operator.email))
            session.commit()
        await self._run(work)

    # -- sessions -------------------------------------------------------------------------------
    async def open_session(self, operator: Operator) -> str:
        """A new session for `operator`; the token for their cookie."""
        token, now = secrets.token_urlsafe(32), self.clock()
        row = OperatorSession(token=_digest(token), operator=operator.id, csrf=secrets.token_urlsafe(24),
                              created_at=now, expires_at=now + SESSION_SECONDS)

        def work(session: Session) -> None:
            session.exec(delete(OperatorSession).where(OperatorSession.expires_at < now))
            session.add(row)
            session.commit()
        await self._run(work)
        return token

    async def session(self, token: str) -> Signed | None:
        """The signed-in operator behind a cookie's token, if the session is still valid."""
        if not token:
            return None
        now = self.clock()

        def work(session: Session) -> Signed | None:
            row = session.exec(select(OperatorSession).where(OperatorSession.token == _digest(token))).first()
            if row is None or row.expires_at < now:
                return None
            operator = session.get(Operator, row.operator)
            return Signed(operator, row.csrf) if operator is not None and operator.active else None
        return await self._run(work)

    async def close_session(self, token: str, email: str) -> None:
        def work(session: Session) -> None:
            session.exec(delete(OperatorSession).where(OperatorSession.token == _digest(token)))
            session.add(self._entry(email, "signed_out", email))
            session.commit()
        await self._run(work)

    # -- audit and notes ------------------------------------------------------------------------
    def _entry(self, actor: str, action: str, target: str, **detail: Any) -> AuditEntry:
        return AuditEntry(at=self.clock(), operator=actor, action=action, target=target,
                          detail=json.dumps(detail, ensure_ascii=False, default=str))

    async def audit(self, actor: str, action: str, target: str = "", **detail: Any) -> None:
        """Keep one entry of the audit trail."""
        entry = self._entry(actor, action, target, **detail)

        def work(session: Session) -> None:
            session.add(entry)
            session.commit()
        await self._run(work)

    async def trail(self, limit: int = 200) -> list[AuditEntry]:
        """The newest audit entries first."""
        return await self._run(lambda s: list(s.exec(select(AuditEntry).order_by(AuditEntry.id.desc())
                                                     .limit(limit))))

    async def note(self, escalation: int, author: str, text: str) -> None:
        note = Note(escalation=escalation, at=self.clock(), author=author, text=text)

        def work(session: Session) -> None:
            session.add(note)
            session.add(self._entry(author, "note", f"escalation {escalation}"))
            session.commit()
        await self._run(work)

    async def notes(self, escalation: int) -> list[Note]:
        return await self._run(lambda s: list(s.exec(select(Note).where(Note.escalation == escalation)
                                                     .order_by(Note.id))))


def _verified(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False
