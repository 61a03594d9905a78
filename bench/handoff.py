"""Handoff benchmark: relay latency both ways, and 50 agents clicking Claim at once.

`switchboard serve` runs as its own process with Slack and Telegram configured, the
embedded defaults (SQLite events and escalations, SQLite memory) and a profile whose
escalations go to a Slack agents channel. The fake Slack Web API and fake Telegram Bot
API (tests/fakes/) run in this process and note when each call arrives.

1. A Telegram customer sends /human; an agent claims the escalation (a signed
   block_actions request, as Slack sends it).
2. Relay in: the customer writes `--messages` times, one at a time (webhook POST); the
   latency is from sending the update to the fake Slack receiving the post in the
   escalation's thread.
3. Relay out: the agent writes as many times in the thread (signed message events); the
   latency is from sending the event to the fake Bot API receiving sendMessage.
4. Claim race: a second customer escalates and `--agents` agents click Claim at once;
   the figures are how many own it (from the database's audit trail: it must be 1) and
   the time from the first click to the last answer (49 private "X has it" notices and
   the redrawn post). Last line: one JSON object.

    python bench/handoff.py [--messages 50] [--agents 50]
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import sqlite3
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.running import server  # noqa: E402
from tests.fakes.server import free_port, serve  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram  # noqa: E402

SLACK_SECRET, TG_SECRET = "bench-signing-secret", "bench_webhook_secret"
TEAM, BOT, AGENTS = "T0BENCH", "U0BENCHBOT", "C0AGENTS"
PROFILES = (ROOT / "bot" / "profiles.default.toml").read_text() + f"""
[channels."slack:{AGENTS}"]
agents = true

[profiles.support.handoff]
agents = "slack:{AGENTS}"
"""
DROPPED_ENV = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "REDIS_URL", "DATABASE_URL", "SWITCHBOARD_INDEX", "PORT", "HOST")


def signed(body: bytes) -> dict[str, str]:
    now = str(int(time.time()))
    digest = hmac.new(SLACK_SECRET.encode(), f"v0:{now}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": f"v0={digest}"}


def private(chat: int, text: str, n: int) -> dict:
    entities = [{"offset": 0, "length": len(text), "type": "bot_command"}] if text.startswith("/") else []
    return {"update_id": n, "message": {
        "message_id": n, "date": int(time.time()), "text": text, "entities": entities,
        "chat": {"id": chat, "type": "private", "first_name": "Camille"},
        "from": {"id": chat, "is_bot": False, "first_name": "Camille", "language_code": "en"}}}


def agent_event(text: str, thread: str, n: int) -> bytes:
    ts = f"{1767000000 + n}.000200"
    return json.dumps({"token": "x", "team_id": TEAM, "api_app_id": "A0", "type": "event_callback",
                       "event_id": f"EvB{n}", "event_time": int(float(ts)),
                       "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
                       "event": {"type": "message", "channel": AGENTS, "channel_type": "channel", "user": "U0AGENT0",
                                 "text": text, "ts": ts, "event_ts": ts, "thread_ts": thread, "team": TEAM}}).encode()


def click(post: dict, agent: str, value: str) -> bytes:
    payload = {"type": "block_actions", "user": {"id": agent, "username": agent, "team_id": TEAM},
               "team": {"id": TEAM, "domain": "bench"}, "channel": {"id": AGENTS, "name": "agents"},
               "container": {"type": "message", "message_ts": post["ts"], "channel_id": AGENTS},
               "message": {"ts": post["ts"], "text": ""}, "trigger_id": "t", "response_url": "",
               "actions": [{"type": "button", "action_id": "desk_claim", "block_id": "b", "value": value,
                            "action_ts": "1"}]}
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def percentiles(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(values, 50)), 1), "p95_ms": round(float(np.percentile(values, 95)), 1)}


def escalation_post(slack: FakeSlack, count: int) -> dict:
    call = [c for c in slack.wait_for("chat.postMessage", count, 60) if c.args["channel"] == AGENTS
            and "blocks" in c.args][-1]
    return {**call.args, "ts": call.response["ts"]}


async def run(args: argparse.Namespace, url: str, slack: FakeSlack, telegram: FakeTelegram, home: Path) -> dict:
    tg_headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        await http.post("/telegram/webhook", json=private(1001, "/human", 1), headers=tg_headers)
        post = await asyncio.to_thread(escalation_post, slack, 1)
        value = next(e["value"] for b in post["blocks"] if b["type"] == "actions" for e in b["elements"])
        body = click(post, "U0AGENT0", value)
        await http.post("/slack/events", content=body, headers={**signed(body),
                                                                "Content-Type": "application/x-www-form-urlencoded"})
        await asyncio.to_thread(telegram.wait_for, "sendMessage", 2, 60, True)  # ack + "agent joined"

        inbound, outbound = [], []
        for n in range(args.messages):
            posted = len(slack.calls_to("chat.postMessage"))
            began = time.monotonic()
            await http.post("/telegram/webhook", json=private(1001, f"customer message {n}", 100 + n),
                            headers=tg_headers)
            call = (await asyncio.to_thread(slack.wait_for, "chat.postMessage", posted + 1, 60))[-1]
            assert call.args["text"].endswith(f"customer message {n}"), call.args
            inbound.append((call.at - began) * 1000)
        for n in range(args.messages):
            sent = len(telegram.calls_to("sendMessage"))
            body = agent_event(f"agent message {n}", post["ts"], n)
            began = time.time()
            await http.post("/slack/events", content=body, headers={**signed(body), "Content-Type": "application/json"})
            call = (await asyncio.to_thread(telegram.wait_for, "sendMessage", sent + 1, 60))[-1]
            assert call.params["text"].endswith(f"agent message {n}"), call.params
            outbound.append((call.at - began) * 1000)

        # the race: a second customer, `agents` concurrent Claim clicks
        await http.post("/telegram/webhook", json=private(2002, "/human", 10_000), headers=tg_headers)
        race = await asyncio.to_thread(escalation_post, slack, len(slack.calls_to("chat.postMessage")) + 1)
        value = next(e["value"] for b in race["blocks"] if b["type"] == "actions" for e in b["elements"])
        notices, updates = len(slack.calls_to("chat.postEphemeral")), len(slack.calls_to("chat.update"))
        bodies = [click(race, f"U0AGENT{n}", value) for n in range(1, args.agents + 1)]
        began = time.monotonic()
        await asyncio.gather(*(http.post("/slack/events", content=b, headers={
            **signed(b), "Content-Type": "application/x-www-form-urlencoded"}) for b in bodies))
        last = await asyncio.to_thread(slack.wait_for, "chat.postEphemeral", notices + args.agents - 1, 120)
        redrawn = await asyncio.to_thread(slack.wait_for, "chat.update", updates + 1, 120)
        settled = (max(last[-1].at, redrawn[-1].at) - began) * 1000
    with sqlite3.connect(home / "switchboard.db") as db:
        owners = db.execute("SELECT count(*) FROM ownerchange WHERE escalation = ? AND after = 'claimed'",
                            (int(value),)).fetchone()[0]
    return {"relay_in": percentiles(inbound), "relay_out": percentiles(outbound),
            "claim": {"agents": args.agents, "winners": owners, "settled_ms": round(settled, 1)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--agents", type=int, default=50)
    args = parser.parse_args()
    slack = FakeSlack(token="xoxb-bench", bot_user_id=BOT, team_id=TEAM)
    telegram = FakeTelegram(token="7000000001:BENCH-token", bot_id=7000000001)
    with tempfile.TemporaryDirectory() as home, serve(slack.app()) as slack_url, serve(telegram.app()) as tg_url:
        slack.url = slack_url
        profiles = Path(home) / "profiles.toml"
        profiles.write_text(PROFILES)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env.update(SWITCHBOARD_HOME=home, SWITCHBOARD_PROFILES=str(profiles), SLACK_BOT_TOKEN="xoxb-bench",
                   SLACK_SIGNING_SECRET=SLACK_SECRET, SLACK_API_URL=f"{slack_url}/api/",
                   TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_WEBHOOK_SECRET=TG_SECRET, TELEGRAM_API_URL=tg_url)
        print("starting switchboard serve (indexes the sample knowledge on first start)…", flush=True)
        with server([sys.executable, "-m", "adapters.cli", "serve", "--port", str(port)], env):
            result = asyncio.run(run(args, f"http://127.0.0.1:{port}", slack, telegram, Path(home)))
    print(f"relay in  (Telegram customer → agents' Slack thread): p50 {result['relay_in']['p50_ms']} ms, "
          f"p95 {result['relay_in']['p95_ms']} ms over {args.messages} messages")
    print(f"relay out (agent's Slack reply → Telegram customer): p50 {result['relay_out']['p50_ms']} ms, "
          f"p95 {result['relay_out']['p95_ms']} ms over {args.messages} messages")
    claim = result["claim"]
    print(f"{claim['agents']} concurrent Claim clicks: {claim['winners']} winner(s), settled in {claim['settled_ms']} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
