"""The Slack app manifest agrees with the adapter: events, commands and URLs."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from adapters.slack import COMMANDS, EVENTS
from tests.adapters.slack_workspace import TEAM, event, payload, workspace

MANIFEST = yaml.safe_load((Path(__file__).resolve().parents[2] / "manifests/slack/manifest.yaml").read_text())
# Slack's bot event names → the event type and channel_type the app then receives
DELIVERED = {"app_mention": ("app_mention", None), "message.channels": ("message", "channel"),
             "message.groups": ("message", "group"), "message.im": ("message", "im"),
             "message.mpim": ("message", "mpim")}


@pytest.fixture(scope="module")
def subscribed() -> list[str]:
    return MANIFEST["settings"]["event_subscriptions"]["bot_events"]


def test_every_listener_is_subscribed_and_every_subscription_known(subscribed):
    assert set(subscribed) <= set(DELIVERED), "a bot event this test doesn't know how Slack delivers"
    assert {DELIVERED[name][0] for name in subscribed} == set(EVENTS)
    assert {c["command"] for c in MANIFEST["features"]["slash_commands"]} == set(COMMANDS)


def test_every_subscribed_event_and_command_reaches_a_listener(fake_slack, tmp_path, sample_index_path,
                                                               embedder, subscribed):
    with workspace(fake_slack, tmp_path, sample_index_path, embedder) as ws:
        for name in subscribed:
            kind, channel_type = DELIVERED[name]
            body = event(text="hello", channel="D1" if channel_type == "im" else "C1")
            body["event"]["type"] = kind
            if channel_type:
                body["event"]["channel_type"] = channel_type
            assert ws.deliver(body).status_code == 200, name
        ws.channel.deliveries.wait(len(subscribed))  # each finished (answered, ignored, duplicate…) before counting
        unsubscribed = event(text="hello")
        unsubscribed["event"] = {"type": "reaction_added", "user": "U1", "reaction": "eyes",
                                 "item": {"type": "message", "channel": "C1", "ts": "1.2"}, "event_ts": "1.3"}
        before = ws.channel.deliveries.counts["ignored"]
        assert ws.deliver(unsubscribed).status_code == 200  # acknowledged at the door, never queued
        assert ws.channel.deliveries.counts["ignored"] == before + 1
        for command in COMMANDS:
            form = {**payload("slash_command"), "team_id": TEAM, "command": command, "text": "",
                    "response_url": fake_slack.response_url("m")}
            assert ws.form(form).status_code == 200, command


def test_every_url_is_a_route_of_the_web_app(fake_slack, tmp_path, sample_index_path, embedder):
    urls = [MANIFEST["settings"]["event_subscriptions"]["request_url"],
            MANIFEST["settings"]["interactivity"]["request_url"],
            *(c["url"] for c in MANIFEST["features"]["slash_commands"])]
    with workspace(fake_slack, tmp_path, sample_index_path, embedder) as ws:
        for url in urls:
            response = ws.http.post(urlparse(url).path, content=b"{}")
            assert response.status_code == 401, url  # the route exists and Bolt guards it
        assert ws.http.post("/slack/nope", content=b"{}").status_code == 404
