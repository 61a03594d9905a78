"""The console's fixtures: the real app served on a loopback port over a real SQLite
database (and a copy of the sample index), operator accounts made as the CLI makes them,
and a signed-in client that carries the session's CSRF token like the pages do."""
from __future__ import annotations

import re
import uuid

import httpx
import pytest

from adapters.app import create_app
from bot.operators import Operators
from bot.settings import DEFAULT_PROFILES
from tests.adapters.test_web import open_runtime
from tests.fakes.server import serve

PASSWORD = "correct horse battery"


class Console:
    """The served app and its operator accounts."""

    def __init__(self, url: str, runtime, app):
        self.url, self.runtime, self.app = url, runtime, app
        self.operators: Operators = app.state.console.operators

    def account(self, role: str = "agent", name: str = "") -> tuple[str, str]:
        """A new account (e-mail, one-time password), as `switchboard admin create` makes it."""
        email = f"{role}-{uuid.uuid4().hex[:6]}@example.com"
        _, password = self.operators.create(email, role, name)
        return email, password

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, follow_redirects=False, **kwargs)

    def signed_in(self, role: str = "agent", name: str = "") -> "Operator":
        """A client signed in as a new account whose password is already chosen."""
        email, once = self.account(role, name)
        operator = Operator(self.client(), email)
        operator.sign_in(once)
        operator.choose_password(PASSWORD)
        return operator


class Operator:
    """A browser-like client: follows the forms, keeps the cookie and the page's CSRF token."""

    def __init__(self, client: httpx.Client, email: str):
        self.http, self.email, self.csrf = client, email, ""

    def sign_in(self, password: str, *, email: str = "") -> httpx.Response:
        form = self.http.get("/admin/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        response = self.http.post("/admin/login", data={"csrf": token, "email": email or self.email,
                                                        "password": password})
        if response.status_code == 303:
            self.csrf = Page(self.http.get(response.headers["location"], follow_redirects=True)).csrf_token
        return response

    def page(self, path: str) -> "Page":
        response = self.http.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        return Page(response)

    def choose_password(self, password: str) -> None:
        response = self.post("/admin/password", {"password": password})
        assert response.status_code == 303 and response.headers["location"] == "/admin"

    def post(self, path: str, data: dict | None = None, **kwargs) -> httpx.Response:
        return self.http.post(path, data={"csrf": self.csrf, **(data or {})}, **kwargs)


class Page:
    def __init__(self, response: httpx.Response):
        self.response, self.text = response, response.text
        found = re.search(r'<meta name="csrf" content="([^"]+)"', self.text)
        self.csrf_token = found.group(1) if found else ""


@pytest.fixture
def console(tmp_path, sample_index_path, embedder):
    # the default profiles, with room for a first answer on a machine busy with other tests
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(DEFAULT_PROFILES.read_text().replace("turn_deadline = 20 ", "turn_deadline = 120 "))
    runtime = open_runtime(tmp_path, sample_index_path, embedder, SWITCHBOARD_PROFILES=str(profiles))
    app = create_app(runtime)
    with serve(app) as url:
        yield Console(url, runtime, app)
