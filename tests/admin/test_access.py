"""Access to the console over real HTTP: nothing under /admin answers without a session,
one-time passwords must be replaced, cookies are HttpOnly / SameSite / Secure behind
HTTPS, every POST needs the session's CSRF token, sign-ins are rate limited, roles
limit pages, and what operators do is in the audit trail."""
from __future__ import annotations

import re

import pytest
from sqlmodel import Session, select
from starlette.routing import Route

from adapters import cli
from adapters.admin.auth import COOKIE
from bot.operators import LOGIN_FAILURES, AuditEntry
from tests.admin.conftest import PASSWORD, Operator


def admin_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every console route, its parameters filled in."""
    found = []
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/admin") and route.path != "/admin/login":
            path = route.path.replace("{id}", "1").replace("{action}", "claim").replace("{rest:path}", "x/y").replace("{key:path}", "web:x").replace("{name}", "faq")
            found += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def test_nothing_under_admin_answers_without_a_session(console):
    routes = admin_routes(console.app)
    assert len(routes) >= 12 and ("GET", "/admin/api/stream") in routes
    with console.client() as anonymous:
        for method, path in routes:
            response = anonymous.request(method, path)
            if path.startswith("/admin/api/"):
                assert response.status_code == 401, (method, path)
                assert response.json() == {"error": "Sign in first."}
            else:
                assert response.status_code == 303, (method, path, response.status_code)
                assert response.headers["location"].startswith("/admin/login?next=/admin")
        anonymous.cookies.set(COOKIE, "not-a-session")
        assert anonymous.get("/admin/inbox").status_code == 303


def test_a_one_time_password_must_be_replaced_then_the_session_works(console):
    email, once = console.account("agent")
    operator = Operator(console.client(), email)
    signed = operator.sign_in(once)
    assert signed.status_code == 303 and signed.headers["location"] == "/admin/password"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie \
        and "Path=/admin" in cookie and "Secure" not in cookie
    assert operator.http.get("/admin/inbox").headers["location"] == "/admin/password"
    assert operator.http.get("/admin/api/inbox").status_code == 403
    short = operator.post("/admin/password", {"password": "short"})
    assert short.status_code == 400 and "at least 10 characters" in short.text
    operator.choose_password(PASSWORD)
    assert operator.http.get("/admin/api/inbox").json() == {"escalations": []}
    again = Operator(console.client(), email)
    assert again.sign_in(once).status_code == 401  # the one-time password is gone
    assert again.sign_in(PASSWORD).headers["location"] == "/admin"


def test_the_cookie_is_secure_behind_https(console):
    email, once = console.account("agent")
    operator = Operator(console.client(headers={"X-Forwarded-Proto": "https"}), email)
    assert "Secure" in operator.sign_in(once).headers["set-cookie"]


def test_every_post_needs_the_sessions_csrf_token(console):
    operator = console.signed_in("admin")
    for token in ("", "wrong", operator.csrf[:-1]):
        refused = operator.http.post("/admin/logout", data={"csrf": token})
        assert refused.status_code == 403 and refused.json()["error"] == "Missing or wrong CSRF token."
    header = operator.http.post("/admin/inbox/1/claim", headers={"X-CSRF-Token": operator.csrf,
                                                                  "Accept": "application/json"})
    assert header.status_code == 404  # past the check: there is no escalation 1
    with console.client() as other:  # a sign-in form posted without its own token
        email, once = console.account("agent")
        refused = other.post("/admin/login", data={"csrf": "x", "email": email, "password": once})
        assert refused.status_code == 403 and COOKIE not in refused.headers.get("set-cookie", "")


def test_sign_ins_are_rate_limited_per_address_and_email(console):
    email, once = console.account("agent")
    operator = Operator(console.client(), email)
    for _ in range(LOGIN_FAILURES):
        assert operator.sign_in("wrong password").status_code == 401
    limited = operator.sign_in(once)
    assert limited.status_code == 429 and "Too many failed attempts" in limited.text
    other_email, other_once = console.account("agent")  # another account from the same address still can
    assert Operator(console.client(), other_email).sign_in(other_once).status_code == 303


def test_sign_out_ends_the_session(console):
    operator = console.signed_in("agent")
    cookie = operator.http.cookies.get(COOKIE)
    assert operator.post("/admin/logout").headers["location"] == "/admin/login"
    with console.client() as replay:
        replay.cookies.set(COOKIE, cookie)
        assert replay.get("/admin/inbox").status_code == 303


def test_roles_limit_the_pages(console):
    agent, admin = console.signed_in("agent"), console.signed_in("admin")
    assert agent.http.get("/admin/audit").status_code == 403
    assert agent.http.get("/admin").headers["location"] == "/admin/inbox"
    assert admin.http.get("/admin").headers["location"] == "/admin/overview"
    assert admin.page("/admin/audit").text.count("signed in") >= 2


def test_operator_changes_are_audited(console):
    operator = console.signed_in("agent")
    operator.post("/admin/logout")
    with Session(console.runtime.events.engine) as session:
        trail = [(e.operator, e.action) for e in session.exec(select(AuditEntry).order_by(AuditEntry.id))]
    assert trail == [("cli", "operator_created"), (operator.email, "signed_in"),
                     (operator.email, "password_changed"), (operator.email, "signed_out")]


def test_admin_create_prints_a_one_time_password(tmp_path, monkeypatch, capsys, console):
    monkeypatch.setenv("SWITCHBOARD_HOME", str(console.runtime.settings.home))
    monkeypatch.setenv("DATABASE_URL", console.runtime.settings.database_url)
    assert cli.main(["admin", "create", "Lea@Example.com", "--role", "admin", "--name", "Léa"]) == 0
    printed = capsys.readouterr().out
    password = printed.strip().splitlines()[-1]
    assert "Created admin lea@example.com" in printed and re.fullmatch(r"[A-Za-z0-9_-]{16}", password)
    assert cli.main(["admin", "create", "lea@example.com"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert Operator(console.client(), "lea@example.com").sign_in(password).status_code == 303
    assert cli.main(["admin", "list"]) == 0
    assert capsys.readouterr().out.split() == ["lea@example.com", "admin", "Léa", "active"]
