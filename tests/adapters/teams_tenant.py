"""A Teams tenant for tests: the fake Bot Framework, our web process over HTTP, signed activities.

Activities start from the real recorded ones in tests/fixtures/teams/ and get fresh ids,
texts, conversations and senders, the fake's URL as `serviceUrl` and our bot as
`recipient`. Each is posted to `/api/messages` with the JWT the Bot Framework would put on
it (signed by the fake's test key, published as its OpenID metadata). Activities are
answered by the web process's answer workers, from the delivery queue (Redis Streams when
REDIS_URL is given, which `tenant` empties first unless told to keep it: a job a previous
test left would otherwise hold a lane of the same chat). Not registered in
tests/conftest.py: test modules import the fixtures they use.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import redis

from adapters.app import create_app
from adapters.teams import TeamsChannel, TeamsSettings
from bot.runtime import Runtime
from bot.settings import DEFAULT_PROFILES, Settings
from tests.fakes.botframework import Call, FakeBotFramework
from tests.fakes.server import serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teams"
APP_ID = "2f1f5a0e-3c55-4a1b-9d2e-6a1d0f7c9b10"
BOT = f"28:{APP_ID}"
BOT_NAME = "Switchboard"
TENANT = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
CUSTOMER, ALICE, BOB = ("29:customer", "Camille Petit"), ("29:alice", "Alice Martin"), ("29:bob", "Bob Durand")
CHAT = "a:1customer-personal-chat"  # a personal chat
SUPPORT = "19:support@thread.tacv2"  # a channel where people ask
AGENTS = "19:agents@thread.tacv2"  # the agents channel
PLAIN = "19:plain@thread.tacv2"  # a channel whose profile routes handoffs nowhere
CHANNELS = f"""
[channels."teams:{AGENTS}"]
agents = true

[channels."teams:{PLAIN}"]
profile = "plain"

[profiles.plain]
name = "No handoff routing"
sources = ["helpcenter", "faq", "catalog"]

[profiles.support.handoff]
agents = "teams:{AGENTS}"
sla_minutes = 10

[profiles.staff.handoff]
agents = "teams:{AGENTS}"
"""
_ids = itertools.count(int(time.time() * 1000))


@pytest.fixture
def fake_teams() -> Iterator[FakeBotFramework]:
    """The fake Bot Framework (identity, AAD token endpoint, Bot Connector) for our bot."""
    fake = FakeBotFramework(app_id=APP_ID, password="test-password-not-a-secret")
    with serve(fake.app()) as url:
        fake.url = url
        yield fake


def payload(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def new_id() -> str:
    return str(next(_ids))


def settings_for(fake: FakeBotFramework, **env: str) -> TeamsSettings:
    settings = TeamsSettings.from_env({"TEAMS_APP_ID": fake.app_id, "TEAMS_APP_PASSWORD": fake.password,
                                       "TEAMS_SERVICE_URL": f"{fake.url}/", "TEAMS_LOGIN_URL": fake.login_url,
                                       "TEAMS_OPENID_URL": fake.openid_url, **env})
    assert settings is not None
    return dataclasses.replace(settings, emulator_openid_url=fake.openid_url)  # never the real AAD in tests


def cards(call: Call) -> list[dict[str, Any]]:
    return [a["content"] for a in call.activity.get("attachments") or []
            if a.get("contentType") == "application/vnd.microsoft.card.adaptive"]


def _blocks(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _blocks(item.get("items", []))


def text(card: dict[str, Any]) -> str:
    """Every TextBlock of a card (sources included), and its facts, in order."""
    parts = []
    for block in _blocks(card.get("body", [])):
        if block["type"] == "TextBlock":
            parts.append(block["text"])
        elif block["type"] == "FactSet":
            parts += [f"{f['title']}: {f['value']}" for f in block["facts"]]
    return "\n".join(parts)


def buttons(card: dict[str, Any]) -> list[str]:
    return [a["title"] for a in card.get("actions", [])]


@dataclasses.dataclass
class Tenant:
    fake: FakeBotFramework
    runtime: Runtime
    channel: TeamsChannel
    http: httpx.Client
    service_url: str = ""

    def post(self, activity: dict[str, Any], token: str | None = "valid") -> httpx.Response:
        """POST an activity to /api/messages with a valid Bot Framework token (or `token`, or none)."""
        headers = {"Content-Type": "application/json"}
        if token == "valid":
            token = self.fake.token(activity["serviceUrl"])
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.post("/api/messages", content=json.dumps(activity).encode(), headers=headers)

    def activity(self, recorded: str, *, conversation: str, user: tuple[str, str] = CUSTOMER, scope: str = "",
                 **fields: Any) -> dict[str, Any]:
        """A recorded activity, readdressed: our bot, the fake connector, this conversation
        (personal for "a:…" ids, else a channel, unless `scope` says) and sender."""
        body = copy.deepcopy(payload(recorded))
        kind = scope or ("personal" if conversation.startswith("a:") else "channel")
        body.update(id=new_id(), serviceUrl=self.service_url, recipient={"id": BOT, "name": BOT_NAME},
                    **{"from": {"id": user[0], "name": user[1], "aadObjectId": str(uuid.uuid4())}})
        body["conversation"] = {"id": conversation, "conversationType": kind, "tenantId": TENANT,
                                **({"isGroup": True} if kind == "channel" else {})}
        body["channelData"] = {"tenant": {"id": TENANT}, **({"channel": {"id": conversation.split(";")[0]},
                                                              "teamsChannelId": conversation.split(";")[0]}
                                                           if kind == "channel" else {})}
        body.update(fields)
        return body

    def say(self, words: str, *, conversation: str = CHAT, user: tuple[str, str] = CUSTOMER,
            mention: bool = False) -> dict[str, Any]:
        """A person writes (in a chat, or in a channel reply chain, @mentioning the bot or not)."""
        if mention:
            body = self.activity("channel_mention", conversation=conversation, user=user)
            body["text"] = f"<at>{BOT_NAME}</at> {words}"
            body["entities"][0] = {"mentioned": {"id": BOT, "name": BOT_NAME}, "text": f"<at>{BOT_NAME}</at>",
                                   "type": "mention"}
        else:
            name = "personal_message" if conversation.startswith("a:") else "channel_thread_followup_no_mention"
            body = self.activity(name, conversation=conversation, user=user, text=words)
        body.pop("attachments", None)
        assert self.post(body).status_code == 200
        return body

    def ask(self, words: str, *, channel: str = SUPPORT, user: tuple[str, str] = CUSTOMER) -> dict[str, Any]:
        """A new post in a channel that @mentions the bot: its own reply chain."""
        root = new_id()
        body = self.activity("channel_mention", conversation=f"{channel};messageid={root}", user=user, id=root)
        body["text"] = f"<at>{BOT_NAME}</at> {words}"
        body["entities"][0] = {"mentioned": {"id": BOT, "name": BOT_NAME}, "text": f"<at>{BOT_NAME}</at>",
                               "type": "mention"}
        assert self.post(body).status_code == 200
        return body

    def click(self, card: dict[str, Any], title: str, *, conversation: str, user: tuple[str, str] = CUSTOMER,
              submit: bool = False) -> httpx.Response:
        """Press a button of a card the bot sent: an Action.Execute invoke (or the Action.Submit fallback)."""
        button = next(a for a in card["actions"] if a["title"] == title)
        if submit:
            body = self.activity("message_with_value_action_submit", conversation=conversation, user=user,
                                 value=button["fallback"]["data"])
        else:
            body = self.activity("invoke_adaptive_card_action", conversation=conversation, user=user,
                                 id=f"f:{uuid.uuid4()}", value={"action": {
                                     "type": "Action.Execute", "title": title, "verb": button["verb"],
                                     "data": button["data"]}, "trigger": "manual"})
        return self.post(body)

    def answers(self, conversation: str | None = None) -> list[Call]:
        """Every card the bot sent (or posted as a new thread), in order; in `conversation` if given."""
        return [c for c in self.fake.calls_of("send", "reply", "create", ok=True) if cards(c)
                and (conversation is None or c.conversation == conversation)]

    def wait_answers(self, count: int, conversation: str | None = None) -> list[Call]:
        self.fake.wait_for(lambda calls: len(self.answers(conversation)) >= count)
        return self.answers(conversation)


def open_runtime(tmp_path: Path, sample_index_path: Path, embedder: Any, **env: str) -> Runtime:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(DEFAULT_PROFILES.read_text() + CHANNELS)
    shutil.copy(sample_index_path, tmp_path / "index.sqlite3")
    settings = Settings.from_env({"SWITCHBOARD_HOME": str(tmp_path), "SWITCHBOARD_PROFILES": str(profiles), **env})
    settings = dataclasses.replace(settings, index_path=tmp_path / "index.sqlite3", load_sample=False)
    return Runtime.open(settings, embedder=embedder)


@contextlib.contextmanager
def tenant(fake: FakeBotFramework, tmp_path: Path, sample_index_path: Path, embedder: Any, *,
           channels: tuple[Any, ...] = (), settings: TeamsSettings | None = None, fresh: bool = True,
           connector_timeout: float | None = None, **env: str) -> Iterator[Tenant]:
    """Our web process: create_app with the Teams channel (and `channels`: factories of
    other channels, given the runtime), over the runtime of `tmp_path`; its Redis emptied
    first when `fresh`."""
    if fresh and env.get("REDIS_URL"):
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    runtime = open_runtime(tmp_path, sample_index_path, embedder, **env)
    options = {} if connector_timeout is None else {"connector_timeout": connector_timeout}
    channel = TeamsChannel(runtime, settings or settings_for(fake), **options)
    extra = [make(runtime) for make in channels]
    with serve(create_app(runtime, [channel, *extra]), lifespan=True) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        yield Tenant(fake, runtime, channel, http, service_url=f"{fake.url}/")
