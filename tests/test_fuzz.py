"""Malformed requests on every route of the web process never get a 5xx (issue 16).

One `create_app` with the web chat and all three channels (Slack, Telegram, Teams, each
against its fake platform) serves real HTTP; hypothesis sends junk: random bytes, random
JSON, and real recorded payloads with fields dropped or given the wrong type, signed and
unsigned. Unsigned Slack requests are refused (401) before anything parses them.
"""
from __future__ import annotations

import copy
import json
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from adapters.app import create_app
from adapters.slack import SlackChannel, SlackSettings
from adapters.teams import TeamsChannel
from adapters.telegram import TelegramChannel, TelegramSettings
from tests.adapters.slack_workspace import SECRET, open_runtime, sign
from tests.adapters.teams_tenant import settings_for
from tests.fakes.server import serve
from tests.fakes.telegram_api import FakeTelegram

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TELEGRAM_SECRET = "fuzz-secret_0123456789"
WEB_ROUTES = ["/", "/api/chat", "/api/handoff", "/api/feedback", "/api/confirm", "/api/conversations/x",
              "/healthz", "/metrics", "/nowhere"]


def _recorded(folder: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted((FIXTURES / folder).glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            found.append(data)
    return found


SLACK, TELEGRAM, TEAMS = _recorded("slack"), _recorded("telegram"), _recorded("teams")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)


@st.composite
def mutated(draw, recorded: list[dict[str, Any]]) -> Any:
    """A real payload with some fields (at any depth) dropped or replaced by junk."""
    data = copy.deepcopy(draw(st.sampled_from(recorded)))
    for _ in range(draw(st.integers(1, 4))):
        node = data
        while isinstance(node, dict) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node)))
            if not isinstance(node[key], dict):
                break
            node = node[key]
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            if draw(st.booleans()):
                del node[key]
            else:
                node[key] = draw(json_values)
    return data


def bodies(recorded: list[dict[str, Any]]):
    return st.one_of(st.binary(max_size=300),
                     json_values.map(lambda v: json.dumps(v).encode()),
                     mutated(recorded).map(lambda v: json.dumps(v).encode()))


@pytest.fixture(scope="module")
def site(tmp_path_factory, sample_index_path, embedder):
    tmp = tmp_path_factory.mktemp("fuzz")
    from tests.fakes.slack_api import FakeSlack

    slack = FakeSlack(token="xoxb-test", bot_user_id="U00FAKEBOT01", team_id="T00FAKE00AA")
    telegram = FakeTelegram(token="7000000001:FUZZ-token", bot_id=7000000001, max_poll_seconds=0.5)
    from tests.fakes.botframework import FakeBotFramework

    teams = FakeBotFramework(app_id="2f1f5a0e-3c55-4a1b-9d2e-6a1d0f7c9b10", password="test-password-not-a-secret")
    with serve(slack.app()) as slack_url, serve(telegram.app()) as telegram_url, serve(teams.app()) as teams_url:
        slack.url, teams.url = slack_url, teams_url
        runtime = open_runtime(tmp, sample_index_path, embedder)
        channels = [
            SlackChannel(runtime, SlackSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
                                                          "SLACK_API_URL": f"{slack_url}/api/"})),
            TelegramChannel(runtime, TelegramSettings.from_env({"TELEGRAM_BOT_TOKEN": telegram.token,
                                                                "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
                                                                "TELEGRAM_API_URL": telegram_url})),
            TeamsChannel(runtime, settings_for(teams))]
        with serve(create_app(runtime, channels), lifespan=True) as url, \
                httpx.Client(base_url=url, timeout=30) as http:
            yield http, teams


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@FUZZ
@given(body=bodies(SLACK), form=st.booleans(), signed=st.booleans())
def test_slack_events_never_5xx_and_unsigned_is_401(site, body, form, signed):
    http, _ = site
    if form:
        body = urllib.parse.urlencode({"payload": body.decode("utf-8", "replace")}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded" if form else "application/json"}
    if signed:
        headers.update(sign(body))
    status = http.post("/slack/events", content=body, headers=headers).status_code
    assert status < 500
    if not signed:
        assert status == 401


@FUZZ
@given(body=bodies(TELEGRAM), secret=st.sampled_from([TELEGRAM_SECRET, None, "wrong"]))
def test_telegram_webhook_never_5xx(site, body, secret):
    http, _ = site
    headers = {"Content-Type": "application/json"}
    if secret:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    status = http.post("/telegram/webhook", content=body, headers=headers).status_code
    assert status < 500
    if secret != TELEGRAM_SECRET:
        assert status in (401, 403)


@FUZZ
@given(body=bodies(TEAMS), token=st.sampled_from(["valid", None, "junk"]))
def test_teams_messages_never_5xx(site, body, token):
    http, teams = site
    headers = {"Content-Type": "application/json"}
    if token == "valid":
        try:
            service = json.loads(body).get("serviceUrl") if body.startswith(b"{") else None
        except ValueError:
            service = None
        headers["Authorization"] = f"Bearer {teams.token(service if isinstance(service, str) else teams.url + '/')}"
    elif token:
        headers["Authorization"] = "Bearer not.a.jwt"
    status = http.post("/api/messages", content=body, headers=headers).status_code
    assert status < 500
    if token != "valid":
        assert status in (401, 403)


@FUZZ
@given(route=st.sampled_from(WEB_ROUTES), method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
       body=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_web_routes_never_5xx(site, route, method, body):
    http, _ = site
    status = http.request(method, route, content=body, headers={"Content-Type": "application/json"}).status_code
    assert status < 500 or route == "/healthz" and status == 503  # 503 there names a dependency that is down
