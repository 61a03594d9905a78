"""Signing in to the console: the session cookie, CSRF checks, and the guard every
console route goes through.

The cookie holds a random token (bot/operators.py stores its SHA-256), HttpOnly,
SameSite=Lax, and Secure when the request came over HTTPS (directly or, behind a proxy,
by X-Forwarded-Proto). Every POST carries the session's CSRF token, as a form field
`csrf` or an `X-CSRF-Token` header; the sign-in form, before there is a session, a
double-submit token in its own cookie. Without a session, a page redirects to the
sign-in form and an API route answers 401; an agent asking for an admin page gets 403.
"""
from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from adapters.admin.html import esc, h, page, tag
from bot.operators import SESSION_SECONDS, AccountError, Operators, Signed, TooManyAttempts

COOKIE = "switchboard_admin"
LOGIN_COOKIE = "switchboard_login"  # the sign-in form's double-submit CSRF token
MAX_FORM = 200_000
MAX_UPLOAD = 5_000_000  # bytes of a multipart POST (a product catalog CSV)


@dataclass(frozen=True)
class Visit:
    """A guarded request: who is signed in, and the form or JSON body of a POST."""

    request: Request
    signed: Signed
    form: dict[str, str]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # a multipart POST's: name -> (file name, bytes)

    @property
    def email(self) -> str:
        return self.signed.operator.email

    @property
    def role(self) -> str:
        return self.signed.operator.role

    def page(self, title: str, body: object, **kwargs: Any) -> Response:
        return page(title, body, role=self.role, email=self.email, csrf=self.signed.csrf, **kwargs)


Handler = Callable[[Visit], Awaitable[Response]]


def secure(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def too_large(request: Request) -> bool:
    """A multipart POST larger than MAX_UPLOAD (or of unknown length): refused unread."""
    length = request.headers.get("content-length", "")
    return not length.isdigit() or int(length) > MAX_UPLOAD


async def read_upload(request: Request) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """A multipart POST (a file upload form): its text fields and its files (empty when the
    body is malformed)."""
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    try:
        async with request.form(max_files=2, max_fields=50, max_part_size=MAX_FORM) as data:
            for key, value in data.multi_items():
                if isinstance(value, str):
                    fields.setdefault(key, value)
                elif key not in files:
                    files[key] = (value.filename or "", await value.read(MAX_UPLOAD + 1))
    except Exception:  # a malformed multipart body (python-multipart raises several kinds)
        return {}, {}
    return fields, files


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded (or JSON) POST body as a dict of its first values."""
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {key: values[0] for key, values in parsed.items()}


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


class Gate:
    """Sessions and the guard, over the operators' store."""

    def __init__(self, operators: Operators, on_sign_in: Callable[[], None] = lambda: None):
        self.operators = operators
        self.on_sign_in = on_sign_in

    def guard(self, handler: Handler, *, role: str = "agent", api: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """`handler` behind the session check, the role check and, for a POST, the CSRF check."""
        async def endpoint(request: Request) -> Response:
            signed = await self.operators.session(request.cookies.get(COOKIE, ""))
            if signed is None:
                if api:
                    return JSONResponse({"error": "Sign in first."}, status_code=401)
                return RedirectResponse(f"/admin/login?next={quote(request.url.path)}", status_code=303)
            form: dict[str, str] = {}
            files: dict[str, tuple[str, bytes]] = {}
            if request.method == "POST":
                if request.headers.get("content-type", "").startswith("multipart/form-data"):
                    if too_large(request):  # nothing is read or changed: no CSRF token to check
                        return page("Too large", tag("p", f"That upload is larger than {MAX_UPLOAD // 1_000_000} MB: "
                                                          "nothing was changed.", role="alert"),
                                    role=signed.operator.role, email=signed.operator.email, csrf=signed.csrf,
                                    status=413)
                    form, files = await read_upload(request)
                else:
                    form = await read_form(request)
                token = request.headers.get("x-csrf-token") or form.get("csrf", "")
                if not _same(token, signed.csrf):
                    return JSONResponse({"error": "Missing or wrong CSRF token."}, status_code=403)
            if signed.operator.must_change and request.url.path != "/admin/password":
                if api:
                    return JSONResponse({"error": "Choose a password first."}, status_code=403)
                return RedirectResponse("/admin/password", status_code=303)
            if role == "admin" and signed.operator.role != "admin":
                if api:
                    return JSONResponse({"error": "Admins only."}, status_code=403)
                return page("Not allowed", tag("p", "This page is for admins."), role=signed.operator.role,
                            email=signed.operator.email, csrf=signed.csrf, status=403)
            return await handler(Visit(request, signed, form, files))
        return endpoint

    # -- sign in, sign out, choose a password ---------------------------------------------------
    async def login_page(self, request: Request, error: str = "", status: int = 200) -> Response:
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        target = _next(request.query_params.get("next", ""))
        body = h(
            (tag("p", error, class_="error", role="alert") if error else "")
            + f'<form method="post" action="/admin/login?next={esc(quote(target))}" class="login">'
            f'<input type="hidden" name="csrf" value="{esc(token)}">'
            '<label for="email">E-mail</label><input id="email" name="email" type="email" autocomplete="username" required>'
            '<label for="password">Password</label>'
            '<input id="password" name="password" type="password" autocomplete="current-password" required>'
            '<button type="submit">Sign in</button></form>')
        response = page("Sign in", body, status=status)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="lax", secure=secure(request),
                            path="/admin/login")
        return response

    async def login(self, request: Request) -> Response:
        form = await read_form(request)
        if not _same(form.get("csrf", ""), request.cookies.get(LOGIN_COOKIE, "")):
            return await self.login_page(request, "Your sign-in form expired: please try again.", 403)
        try:
            operator = await self.operators.sign_in(form.get("email", ""), form.get("password", ""),
                                                    address(request))
        except TooManyAttempts:
            return await self.login_page(request, "Too many failed attempts: wait 15 minutes.", 429)
        if operator is None:
            return await self.login_page(request, "Wrong e-mail or password.", 401)
        self.on_sign_in()
        token = await self.operators.open_session(operator)
        target = "/admin/password" if operator.must_change else _next(request.query_params.get("next", ""))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="lax",
                            secure=secure(request), path="/admin")
        response.delete_cookie(LOGIN_COOKIE, path="/admin/login")
        return response

    async def logout(self, visit: Visit) -> Response:
        await self.operators.close_session(visit.request.cookies.get(COOKIE, ""), visit.email)
        response = RedirectResponse("/admin/login", status_code=303)
        response.delete_cookie(COOKIE, path="/admin")
        return response

    async def password_page(self, visit: Visit, error: str = "", status: int = 200) -> Response:
        lead = ("You signed in with a one-time password: choose your own." if visit.signed.operator.must_change
                else "Choose a new password.")
        body = h(tag("p", lead) + (tag("p", error, class_="error", role="alert") if error else "")
                 + f'<form method="post" action="/admin/password" class="login">'
                 f'<input type="hidden" name="csrf" value="{esc(visit.signed.csrf)}">'
                 '<label for="new">New password (10 characters or more)</label>'
                 '<input id="new" name="password" type="password" autocomplete="new-password" minlength="10" required>'
                 '<button type="submit">Save</button></form>')
        return visit.page("Your password", body, status=status)

    async def password(self, visit: Visit) -> Response:
        try:
            await self.operators.set_password(visit.signed.operator, visit.form.get("password", ""))
        except AccountError as exc:
            return await self.password_page(visit, str(exc), 400)
        return RedirectResponse("/admin", status_code=303)


def _next(target: str) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    return target if target.startswith("/admin") and not target.startswith("//") and "\\" not in target \
        else "/admin"
