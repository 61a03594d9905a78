"""A Slack workspace for tests: the fake Web API, our app served over HTTP, signed deliveries.

Payloads start from the real recorded ones in tests/fixtures/slack/ and get fresh
timestamps, ids and texts. Requests are signed exactly as Slack signs them (v0 HMAC-SHA256
of `v0:{timestamp}:{body}` with the signing secret).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import hmac
import itertools
import json
import shutil
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from adapters.app import create_app
from adapters.slack import SlackChannel, SlackSettings
from bot.runtime import Runtime
from bot.settings import DEFAULT_PROFILES, Settings
from tests.fakes.server import serve
from tests.fakes.slack_api import FakeSlack

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "slack"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM, BOT = "T00FAKE00AA", "U00FAKEBOT01"
CHANNELS = """
[channels."slack:CPRIVATE"]
profile = "staff"
private_answers = true

[channels."slack:CALL"]
profile = "staff"
respond = "all"

[channels."slack:CNOFOLLOW"]
profile = "staff"
follow_threads = false

[channels."slack:CAGENTS"]
agents = true

[channels."slack:CPLAIN"]
profile = "plain"

[profiles.plain]
name = "No handoff routing"
sources = ["helpcenter", "faq", "catalog"]

[profiles.staff.handoff]
agents = "slack:CAGENTS"
sla_minutes = 10

[profiles.support.handoff]
agents = "slack:CAGENTS"
sla_minutes = 10
"""
_ts = itertools.count(int(time.time()) * 1000)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """The fake Slack Web API, serving our bot's workspace."""
    slack = FakeSlack(token="xoxb-test", bot_user_id=BOT, team_id=TEAM)
    with serve(slack.app()) as url:
        slack.url = url
        yield slack


def new_ts() -> str:
    """A unique, realistic message timestamp."""
    return f"{next(_ts) / 1000:.6f}"


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def event(name: str = "app_mention_channel", *, text: str, channel: str = "C00FAKECHAN1", ts: str | None = None,
          thread_ts: str | None = None, user: str = "U00FAKEUSER1", **fields: Any) -> dict[str, Any]:
    """An event_callback built from a recorded one, with our team and bot."""
    body = copy.deepcopy(payload(name))
    ts = ts or new_ts()
    body.update(team_id=TEAM, event_id=f"Ev{ts.replace('.', '')}", event_time=int(float(ts)))
    body["authorizations"] = [{"enterprise_id": None, "team_id": TEAM, "user_id": BOT, "is_bot": True,
                               "is_enterprise_install": False}]
    body["event"].update(text=text, channel=channel, ts=ts, event_ts=ts, user=user, team=TEAM)
    body["event"].pop("blocks", None)
    body["event"].pop("thread_ts", None)
    body["event"].pop("parent_user_id", None)
    if thread_ts:
        body["event"]["thread_ts"] = thread_ts
    body["event"].update(fields)
    return body


def sign(body: bytes, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


@dataclasses.dataclass
class Workspace:
    fake: FakeSlack
    runtime: Runtime
    channel: SlackChannel
    http: httpx.Client

    def deliver(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        raw = json.dumps(body).encode()
        return self.http.post("/slack/events", content=raw,
                              headers={"Content-Type": "application/json", **sign(raw), **headers})

    def interact(self, body: dict[str, Any]) -> httpx.Response:
        """A block_actions / view payload, form-encoded as Slack sends it."""
        return self.form({"payload": json.dumps(body)})

    def form(self, fields: dict[str, str]) -> httpx.Response:
        raw = urllib.parse.urlencode(fields).encode()
        return self.http.post("/slack/events", content=raw, headers={
            "Content-Type": "application/x-www-form-urlencoded", **sign(raw)})

    def click(self, action_id: str, posted: dict[str, Any], user: str = "U00FAKEUSER1", *,
              ephemeral: bool = False) -> httpx.Response:
        """Press one of our buttons in a message the bot sent (`posted`: its blocks and place)."""
        button = next(e for b in posted["blocks"] if b["type"] == "actions" for e in b["elements"]
                      if e["action_id"] == action_id)
        body = copy.deepcopy(payload("block_actions"))
        body.update(user={"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
                    team={"id": TEAM, "domain": "switchboard-test"}, channel={"id": posted["channel"], "name": "x"},
                    container={"type": "message", "message_ts": posted.get("ts", new_ts()),
                               "channel_id": posted["channel"], "is_ephemeral": ephemeral},
                    response_url=self.fake.response_url(f"r{time.monotonic_ns()}"),
                    actions=[{"type": "button", "action_id": action_id, "block_id": "b",
                              "text": button["text"], "value": button["value"], "action_ts": new_ts()}])
        if ephemeral:
            body.pop("message", None)
        elif "ts" in posted:  # Slack sends the message the button is in
            body["message"] = {**body.get("message", {}), "ts": posted["ts"], "text": posted.get("text", ""),
                               "blocks": posted["blocks"],
                               **({"thread_ts": posted["thread_ts"]} if posted.get("thread_ts") else {})}
        return self.interact(body)

    def say(self, text: str, *, channel: str, user: str, thread_ts: str | None = None) -> dict[str, Any]:
        """A person writes a plain message (a DM, or a reply in a thread); the delivered event."""
        name = "message_im" if channel.startswith("D") else "message_thread_reply_no_mention"
        body = event(name, text=text, channel=channel, user=user, thread_ts=thread_ts)
        body["event"]["channel_type"] = "im" if channel.startswith("D") else "channel"
        assert self.deliver(body).status_code == 200
        return body["event"]

    def answers(self) -> list[dict[str, Any]]:
        """Every message the bot posted or finished (postMessage, and updates carrying blocks)."""
        return [c.args for c in self.fake.calls if c.ok and (c.method == "chat.postMessage" or (
            c.method == "chat.update" and "blocks" in c.args))]


def open_runtime(tmp_path: Path, sample_index_path: Path, embedder: Any, *, extra_profiles: str = "",
                 **env: str) -> Runtime:
    """A runtime on a copy of the sample index; `extra_profiles` is TOML appended to the profiles."""
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(DEFAULT_PROFILES.read_text() + CHANNELS + extra_profiles)
    shutil.copy(sample_index_path, tmp_path / "index.sqlite3")
    settings = Settings.from_env({"SWITCHBOARD_HOME": str(tmp_path), "SWITCHBOARD_PROFILES": str(profiles), **env})
    settings = dataclasses.replace(settings, index_path=tmp_path / "index.sqlite3", load_sample=False)
    return Runtime.open(settings, embedder=embedder)


@contextlib.contextmanager
def workspace(fake: FakeSlack, tmp_path: Path, sample_index_path: Path, embedder: Any, *, extra_profiles: str = "",
              api_timeout: float = 10.0, **env: str) -> Iterator[Workspace]:
    runtime = open_runtime(tmp_path, sample_index_path, embedder, extra_profiles=extra_profiles, **env)
    settings = SlackSettings.from_env({"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SECRET,
                                       "SLACK_API_URL": f"{fake.url}/api/"})
    channel = SlackChannel(runtime, settings, stream_interval=0, api_timeout=api_timeout)
    # lifespan: the channel starts and stops, and the runtime closes, in the server's loop
    with serve(create_app(runtime, [channel]), lifespan=True) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Workspace(fake, runtime, channel, http)
