"""Teams ack benchmark: how fast `/api/messages` acknowledges signed activities, against a no-op bot.

Teams redelivers an activity a bot doesn't acknowledge in time (and shows the user an
error after about 15 s), so the web process must answer 200 at once and answer the
question afterwards. Every request carries a Bot Framework JWT that botbuilder validates
(issuer, RS256 signature by a key from the OpenID metadata, expiry, audience, serviceurl
claim), so the JWT's cost is part of every ack. Five servers are measured the same way,
each in its own process on 127.0.0.1, all talking to a fake Bot Framework
(tests/fakes/botframework.py: OpenID metadata, JWKS, token endpoint, Bot Connector) that
runs in this process:

- floor: botbuilder's `CloudAdapterBase` with a no-op `ActivityHandler` and our
  authentication (adapters/teams_auth.py), disabled (no app id, unsigned requests): what
  the JWT costs is the difference to
- baseline: the same no-op bot, with our app id and our authentication: the JWT is
  validated, a token's check then kept 5 minutes as Switchboard's door keeps it
  (adapters/teams_auth.py `CheckedTokens`; `python bench/teams.py --noop PORT --fake URL
  --mode signed|checked|unsigned|stock`);
- checked: the same, every request's JWT validated again (no check kept): the baseline of
  the figures before session 14, and what keeping a check saves;
- stock: the same, on botbuilder's authentication as shipped (two msrest clients built
  per activity), to show what reusing them saves;
- switchboard: the web process with its Teams channel (`create_app` over the runtime
  `switchboard serve` opens: SQLite memory and delivery queue, extractive answers, the
  bundled sample knowledge); every activity is a real question in its own personal chat.
  The ack is the door of the delivery pipeline: the JWT checked, the body read, the
  activity stored in the durable queue (bot/delivery.py), 200; the answer workers of the
  `answers` child process `serve` starts (its default with a channel) then answer from the
  queue ("typing…", retrieval, an Adaptive Card through the throttled connector); with
  `--inline`, also one process answering (`serve --answers inline`);
- split: the same door in a web process that only queues (`serve --no-answers`), beside
  a `switchboard answers` process answering from the same SQLite queue.

Each round posts `--concurrent` activities at once, each with the Bot Framework's token
(one token, reused, as the Bot Framework does); the figures are the time from sending a
request to its 200 (p50/p99) and acknowledged activities per second over the rounds. For
switchboard the answers keep running while later rounds are acknowledged, as in
production; the time until the fake connector has every answer gives answers per second.
The load client shares the machine's cores with the server, in a process of its own
(`bench.running.apart`), apart from the fake connector that receives the answers (at the
lowest CPU priority: the Bot Framework is not on the measured machine in production).
Last line: one JSON object.

    python bench/teams.py [--concurrent 50] [--rounds 10] [--inline]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.running import (SERVE_READY, apart, bursts, compared, fakes_in_background, index_sample,  # noqa: E402
                           server)
from tests.fakes.botframework import FakeBotFramework  # noqa: E402
from tests.fakes.server import free_port, serve  # noqa: E402

APP_ID = "6c1f0c2e-5b7a-4d8e-9f10-b3e2a1c4d5e6"
PASSWORD = "bench-app-password"
DROPPED_ENV = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "REDIS_URL", "DATABASE_URL", "SWITCHBOARD_INDEX",
               "SWITCHBOARD_PROFILES", "PORT", "HOST")
QUESTIONS = [json.loads(line)["query"] for line in (ROOT / "tests/data/sample_questions.jsonl").open()]


def activity(n: int, service_url: str) -> bytes:
    """A personal-chat message as Teams sends it (the shape of tests/fixtures/teams/personal_message.json)."""
    return json.dumps({
        "text": QUESTIONS[n % len(QUESTIONS)], "textFormat": "plain", "type": "message",
        "timestamp": "2026-01-02T18:28:24.3788393Z", "id": str(1767378504354 + n), "channelId": "msteams",
        "serviceUrl": service_url, "locale": "en-US",
        "from": {"id": f"29:bench-user-{n}", "name": f"User {n}", "aadObjectId": f"00000000-0000-0000-0000-{n:012d}"},
        "conversation": {"conversationType": "personal", "tenantId": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
                         "id": f"a:bench-chat-{n}"},
        "recipient": {"id": f"28:{APP_ID}", "name": "Switchboard"},
        "channelData": {"tenant": {"id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890"}}}).encode()


async def load(url: str, service_url: str, token: str, concurrent: int, rounds: int,
               offset: int) -> tuple[list[float], float]:
    """Ack latencies (ms) of `rounds` bursts of `concurrent` activities, and activities per
    second (after one untimed burst: OpenID metadata and keys, the outgoing token, connections)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    return await bursts(url, "/api/messages", lambda n: (activity(offset + n, service_url), headers), rounds,
                        concurrent)


def noop_app(fake_url: str, mode: str):
    """botbuilder's adapter and JWT validation around an ActivityHandler that does nothing."""
    from botbuilder.core import ActivityHandler, CloudAdapterBase
    from botbuilder.schema import Activity
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from adapters.teams_auth import CheckedTokens, Credentials, authentication

    unsigned = mode == "unsigned"
    credentials = Credentials("" if unsigned else APP_ID, "" if unsigned else PASSWORD, f"{fake_url}/")
    auth = authentication(credentials, login_url=f"{fake_url}/",
                          openid_url=f"{fake_url}/v1/.well-known/openidconfiguration")
    auth = auth.inner if mode == "stock" else auth
    if mode == "checked":
        auth.checked = CheckedTokens(trusted_for=0)  # every token checked again
    adapter, bot = CloudAdapterBase(auth), ActivityHandler()

    async def endpoint(request: Request) -> Response:
        activity = Activity().deserialize(json.loads(await request.body()))
        try:
            checked = await auth.authenticate_request(activity, request.headers.get("authorization"))
        except Exception:
            return Response(status_code=401)
        await adapter.process_activity(checked, activity, bot.on_turn)
        return Response(status_code=200)
    return Starlette(routes=[Route("/api/messages", endpoint, methods=["POST"])])


def serve_switchboard(port: int, answers: str = "process") -> None:
    """The web process with its Teams channel, configured from the environment, as `switchboard
    serve --answers process|inline|none` runs it."""
    import uvicorn

    from adapters.answers_process import answering
    from adapters.app import create_app
    from adapters.cli import _open
    from adapters.teams import TeamsChannel, TeamsSettings
    from bot.settings import Settings

    runtime = _open(Settings.from_env(os.environ))
    channel = TeamsChannel(runtime, TeamsSettings.from_env(os.environ))
    app = create_app(runtime, [channel], **answering(answers, [channel]))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="info", access_log=False)


def figures(latencies: list[float], per_second: float) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1), "activities_per_s": round(per_second, 1)}


def answered(fake: FakeBotFramework) -> int:
    return len([c for c in fake.calls_of("reply", ok=True) if c.activity.get("attachments")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--noop", type=int, default=0, help=argparse.SUPPRESS)  # serve the no-op bot
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)  # serve switchboard
    parser.add_argument("--answers", default="process", help=argparse.SUPPRESS)  # ... who answers
    parser.add_argument("--inline", action="store_true", help="also measure `serve --answers inline` (one process)")
    parser.add_argument("--fake", default="", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="signed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop:
        import uvicorn
        uvicorn.run(noop_app(args.fake, args.mode), host="127.0.0.1", port=args.noop, log_level="info",
                    access_log=False)
        return
    if args.serve:
        serve_switchboard(args.serve, answers=args.answers)
        return
    fake = FakeBotFramework(app_id=APP_ID, password=PASSWORD)
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV and not k.startswith("TEAMS_")}
    total = args.concurrent * (args.rounds + 1)  # + the warm-up burst
    results = {}
    with tempfile.TemporaryDirectory() as home, serve(fake.app()) as fake_url:
        fakes_in_background()  # the platform's side: not on the measured machine in production
        fake.url = fake_url
        service_url, token = f"{fake_url}/", fake.token(f"{fake_url}/")
        for name, mode, what in (("stock", "stock", "botbuilder's authentication as shipped, JWT validated"),
                                 ("floor", "unsigned", "no JWT"),
                                 ("checked", "checked", "every request's JWT validated"),
                                 ("baseline", "signed", "JWT validated, each token's check kept 5 minutes")):
            port = free_port()
            with server([sys.executable, __file__, "--noop", str(port), "--fake", fake_url, "--mode", mode], env):
                results[name] = figures(*apart(load, f"http://127.0.0.1:{port}", service_url,
                                               "" if mode == "unsigned" else token, args.concurrent, args.rounds, 0))
            print(f"{name} (no-op bot, {what}): ack p50 {results[name]['p50_ms']} ms, p99 "
                  f"{results[name]['p99_ms']} ms, {results[name]['activities_per_s']} activities/s", flush=True)
        print("indexing the sample knowledge, then starting the switchboard web process…", flush=True)
        port = free_port()
        env.update(SWITCHBOARD_HOME=home, TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=PASSWORD,
                   TEAMS_LOGIN_URL=f"{fake_url}/", TEAMS_OPENID_URL=f"{fake_url}/v1/.well-known/openidconfiguration",
                   TEAMS_SERVICE_URL=service_url, LOG_LEVEL="WARNING")
        index_sample(env)  # the same indexed folder for every layout
        with server([sys.executable, __file__, "--serve", str(port)], env, ready=SERVE_READY):
            began = time.perf_counter()
            results["switchboard"] = figures(*apart(load, f"http://127.0.0.1:{port}", service_url, token,
                                                    args.concurrent, args.rounds, 10_000))
            fake.wait_for(lambda calls: answered(fake) >= total, timeout=1800)
            answered_per_s = total / (time.perf_counter() - began)
            throttled, delivered = len(fake.calls_of(ok=False)), answered(fake)
        split = split_run(fake, env, args, service_url, token, total)
        inline = split_run(fake, env, args, service_url, token, total, inline=True) if args.inline else None
    real, baseline, floor, stock = results["switchboard"], results["baseline"], results["floor"], results["stock"]
    checked = results["checked"]
    print(f"switchboard serve (answering in its child process): ack p50 {real['p50_ms']} ms, p99 {real['p99_ms']} ms, "
          f"{real['activities_per_s']} activities/s (answering continues after each ack)")
    print(f"  {delivered} answers (Adaptive Cards) at the connector, {answered_per_s:.1f} per second end to end"
          f"; {throttled} connector calls refused")
    ratio = {k: round(real[k] / baseline[k], 2) for k in real}
    jwt = {k: round(checked[k] / floor[k], 2) for k in checked}
    against_checked = {k: round(real[k] / checked[k], 2) for k in real}
    print(f"ratio switchboard/baseline: p50 ×{ratio['p50_ms']}, p99 ×{ratio['p99_ms']}, "
          f"activities/s ×{ratio['activities_per_s']}  (Teams allows 15,000 ms)")
    print(f"ratio switchboard/checked (the no-op bot checking every token): p50 ×{against_checked['p50_ms']}, "
          f"p99 ×{against_checked['p99_ms']}")
    print(f"JWT validation of every request (checked/floor): p50 ×{jwt['p50_ms']}, p99 ×{jwt['p99_ms']}, "
          f"activities/s ×{jwt['activities_per_s']}")
    print(f"clients reused (baseline/stock): p99 ×{round(baseline['p99_ms'] / stock['p99_ms'], 2)}, activities/s "
          f"×{round(baseline['activities_per_s'] / stock['activities_per_s'], 2)}")
    split_ratio = compared("split (serve --no-answers + one `switchboard answers` process, one SQLite queue)", split, baseline)
    inline_ratio = compared("one process (serve --answers inline)", inline, baseline)
    print(json.dumps({"concurrent": args.concurrent, "rounds": args.rounds, "stock": stock, "floor": floor,
                      "baseline": baseline, "checked": checked, "switchboard": real, "ratio": ratio,
                      "ratio_to_checked": against_checked, "jwt_ratio": jwt,
                      "answered_per_s": round(answered_per_s, 1), "answered": delivered, "split": split,
                      "split_ratio": split_ratio, "inline": inline, "inline_ratio": inline_ratio}))


def split_run(fake: FakeBotFramework, env: dict[str, str], args: argparse.Namespace, service_url: str, token: str,
              total: int, inline: bool = False) -> dict:
    """The web process only acknowledges and queues; a `switchboard answers` process answers from the
    queue. `inline`: one process acknowledges and answers (`serve --answers inline`)."""
    port, before = free_port(), answered(fake)
    web = [sys.executable, __file__, "--serve", str(port), "--answers", "inline" if inline else "none"]
    workers = [sys.executable, "-m", "adapters.cli", "answers"]
    with server(web, env), (contextlib.nullcontext() if inline else
                            server(workers, env, ready="answer workers are running")):
        began = time.perf_counter()
        acks = figures(*apart(load, f"http://127.0.0.1:{port}", service_url, token, args.concurrent,
                              args.rounds, 30_000 if inline else 20_000))  # new activities, not redeliveries
        fake.wait_for(lambda calls: answered(fake) >= before + total, timeout=1800)
        answered_per_s = total / (time.perf_counter() - began)
    return {"acks": acks, "answered_per_s": round(answered_per_s, 1)}


if __name__ == "__main__":
    main()
