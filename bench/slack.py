"""Slack ack benchmark: how fast `/slack/events` acknowledges deliveries, against a no-op app.

Slack retries a delivery that isn't acknowledged within 3 seconds, so the web process must
answer 200 at once and answer the question afterwards. Two servers are measured the same
way, each in its own process on 127.0.0.1 with the same signing secret, both talking to a
fake Slack Web API (tests/fakes/slack_api.py) that runs in this process:

- baseline: a Bolt `AsyncApp` whose `app_mention`/`message` listeners do nothing, served
  by uvicorn (`python bench/slack.py --baseline PORT`);
- switchboard: `switchboard serve` itself, with SLACK_* set, on the embedded defaults
  (SQLite memory, extractive answers) over the bundled sample knowledge: every delivery is
  a real question, answered after the ack (retrieval, rendering, Web API calls) by the
  `answers` child process `serve` starts (its default with a channel); then, for
  comparison, `serve --no-answers` beside a `switchboard answers` process, and with
  `--inline` one process answering (`serve --answers inline`).

Each round posts `--concurrent` correctly signed `app_mention` deliveries at once, after one
untimed round that opens the connections; the figures are the time from sending a request
to its 200 (p50/p99), and acknowledged events per second over the rounds, taken by an
aiohttp load generator in a process of its own (`bench.running.bursts`; the fake
Slack, which receives the answers, runs in this one, at the lowest CPU priority: Slack's
servers are not on the measured machine in production). For switchboard the answers keep
running while later rounds are acknowledged, as in production; the time until every
question is answered (the fake has received every answer) gives answers per second. The
load client shares the 2 cores with the server. Last line: one JSON object.

    python bench/slack.py [--concurrent 50] [--rounds 10] [--inline]
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.running import (SERVE_READY, apart, bursts, compared, fakes_in_background, index_sample,  # noqa: E402
                           server)
from tests.fakes.server import free_port, serve  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402

SECRET = "bench-signing-secret"
BOT, TEAM = "U0BENCHBOT", "T0BENCH"
DROPPED_ENV = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "REDIS_URL", "DATABASE_URL", "SWITCHBOARD_INDEX",
               "SWITCHBOARD_PROFILES", "SLACK_APP_TOKEN", "PORT", "HOST")
QUESTIONS = [json.loads(line)["query"] for line in (ROOT / "tests/data/sample_questions.jsonl").open()]


def delivery(n: int) -> bytes:
    ts = f"{1767000000 + n}.000100"
    return json.dumps({
        "token": "x", "team_id": TEAM, "api_app_id": "A0BENCH", "type": "event_callback",
        "event_id": f"Ev{n:08d}", "event_time": int(float(ts)),
        "authorizations": [{"enterprise_id": None, "team_id": TEAM, "user_id": BOT, "is_bot": True}],
        "event": {"type": "app_mention", "user": "U0ASKER", "ts": ts, "event_ts": ts, "team": TEAM,
                  "channel": f"C{n % 7}", "text": f"<@{BOT}> {QUESTIONS[n % len(QUESTIONS)]}"}}).encode()


def signed(body: bytes) -> dict[str, str]:
    now = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{now}:".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": now, "X-Slack-Signature": f"v0={digest}"}


async def load(url: str, concurrent: int, rounds: int, offset: int) -> tuple[list[float], float]:
    """Ack latencies (ms) of `rounds` bursts of `concurrent` deliveries, and events per second
    (after one untimed burst: Bolt's auth.test, the connections)."""
    def make(n: int) -> tuple[bytes, dict[str, str]]:
        body = delivery(offset + n)
        return body, signed(body)
    return await bursts(url, "/slack/events", make, rounds, concurrent)


def baseline_app(api_url: str) -> Starlette:
    app = AsyncApp(client=AsyncWebClient(token="xoxb-bench", base_url=api_url), signing_secret=SECRET)

    async def nothing() -> None:
        return None
    app.event("app_mention")(nothing)
    app.event("message")(nothing)
    handler = AsyncSlackRequestHandler(app)

    async def endpoint(request):
        return await handler.handle(request)
    return Starlette(routes=[Route("/slack/events", endpoint, methods=["POST"])])


def figures(latencies: list[float], per_second: float) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1), "events_per_s": round(per_second, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--inline", action="store_true", help="also measure `serve --answers inline` (one process)")
    parser.add_argument("--baseline", type=int, default=0, help=argparse.SUPPRESS)  # serve the no-op app
    parser.add_argument("--api", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        import uvicorn
        uvicorn.run(baseline_app(args.api), host="127.0.0.1", port=args.baseline, log_level="info", access_log=False)
        return
    fake = FakeSlack(token="xoxb-bench", bot_user_id=BOT, team_id=TEAM)
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    total = args.concurrent * (args.rounds + 1)  # + the warm-up burst
    with tempfile.TemporaryDirectory() as home, serve(fake.app()) as fake_url:
        fakes_in_background()  # the platform's side: not on the measured machine in production
        api = f"{fake_url}/api/"
        port = free_port()
        with server([sys.executable, __file__, "--baseline", str(port), "--api", api], env):
            baseline = figures(*apart(load, f"http://127.0.0.1:{port}", args.concurrent, args.rounds, 0))
        print(f"baseline (no-op listener): ack p50 {baseline['p50_ms']} ms, p99 {baseline['p99_ms']} ms, "
              f"{baseline['events_per_s']} events/s")
        print("indexing the sample knowledge, then starting switchboard serve…", flush=True)
        port = free_port()
        env.update(SWITCHBOARD_HOME=home, SLACK_BOT_TOKEN="xoxb-bench", SLACK_SIGNING_SECRET=SECRET,
                   SLACK_API_URL=api, LOG_LEVEL="WARNING")
        index_sample(env)
        with server([sys.executable, "-m", "adapters.cli", "serve", "--port", str(port)], env,
                    ready=SERVE_READY) as process:
            began = time.perf_counter()
            real = figures(*apart(load, f"http://127.0.0.1:{port}", args.concurrent, args.rounds, 10_000))
            answers = fake.wait_for("chat.postMessage", total, timeout=1800)
            answered_per_s = total / (time.perf_counter() - began)
            memory = resident_mb(process.pid)
        split = split_run(fake, env, args, total, len(answers))
        inline = inline_run(fake, env, args, total, len(answers) + total) if args.inline else None
        threads = {c.args.get("thread_ts") for c in answers}
        print(f"switchboard serve (answering in its child process): ack p50 {real['p50_ms']} ms, p99 "
              f"{real['p99_ms']} ms, {real['events_per_s']} events/s (answering continues after each ack)")
        print(f"  {len(threads)} questions answered in their threads, {answered_per_s:.1f} per second end to end; "
              f"resident memory: web process {memory['web']} MB, its answers child {memory['answers']} MB")
        ratio = {k: round(real[k] / baseline[k], 2) for k in real}
        print(f"ratio switchboard/baseline: p50 ×{ratio['p50_ms']}, p99 ×{ratio['p99_ms']}, "
              f"events/s ×{ratio['events_per_s']}  (goal: p99 under 50 ms; Slack allows 3,000)")
        split_ratio = compared("split (serve --no-answers + one `switchboard answers` process, one SQLite queue)", split, baseline)
        inline_ratio = compared("one process (serve --answers inline)", inline, baseline)
        print(json.dumps({"concurrent": args.concurrent, "rounds": args.rounds, "baseline": baseline,
                          "switchboard": real, "ratio": ratio, "answered_per_s": round(answered_per_s, 1),
                          "answered": len(threads), "memory_mb": memory, "split": split, "split_ratio": split_ratio,
                          "inline": inline, "inline_ratio": inline_ratio}))


def resident_mb(pid: int) -> dict[str, float]:
    """Resident memory of `serve` and of its answers child, in MB (psutil, from the test extras)."""
    import psutil

    web = psutil.Process(pid)
    children = web.children()
    mb = lambda process: round(process.memory_info().rss / 2**20, 1)  # noqa: E731
    return {"web": mb(web), "answers": sum(mb(child) for child in children)}


def inline_run(fake: FakeSlack, env: dict[str, str], args: argparse.Namespace, total: int, before: int) -> dict:
    """`serve --answers inline`: one process acknowledges and answers."""
    port = free_port()
    with server([sys.executable, "-m", "adapters.cli", "serve", "--answers", "inline", "--port", str(port)],
                env) as process:
        began = time.perf_counter()
        acks = figures(*apart(load, f"http://127.0.0.1:{port}", args.concurrent, args.rounds, 30_000))
        fake.wait_for("chat.postMessage", before + total, timeout=1800)
        answered_per_s = total / (time.perf_counter() - began)
        memory = resident_mb(process.pid)["web"]
    return {"acks": acks, "answered_per_s": round(answered_per_s, 1), "memory_mb": memory}


def split_run(fake: FakeSlack, env: dict[str, str], args: argparse.Namespace, total: int, before: int) -> dict:
    """The web process only acknowledges and queues; a second process answers from the queue."""
    port = free_port()
    web = [sys.executable, "-m", "adapters.cli", "serve", "--no-answers", "--port", str(port)]
    workers = [sys.executable, "-m", "adapters.cli", "answers"]
    with server(web, env), server(workers, env, ready="answer workers are running"):
        began = time.perf_counter()
        acks = figures(*apart(load, f"http://127.0.0.1:{port}", args.concurrent, args.rounds, 20_000))
        fake.wait_for("chat.postMessage", before + total, timeout=1800)
        answered_per_s = total / (time.perf_counter() - began)
    return {"acks": acks, "answered_per_s": round(answered_per_s, 1)}


if __name__ == "__main__":
    main()
