"""Telegram webhook benchmark: how fast one web worker acks Telegram's deliveries, and how
many updates per second it answers, against a no-op handler on the same stack.

One web worker runs as a subprocess (this script with `--worker`): the real web app
(`adapters.app.create_app`) with the real `TelegramChannel` (python-telegram-bot; the
delivery pipeline on Redis Streams: each update is stored in the durable queue before the
200, then answered by the answer workers of the `answers` child process it starts, as
`serve` does, with the extractive answerer over the bundled sample knowledge; `--inline`
also measures one process answering), talking to the fake Bot API (tests/fakes/telegram_api.py)
served by this process on 127.0.0.1. The baseline is the no-op python-telegram-bot app (its
documented custom webhook on Starlette: secret checked, `Update` parsed and queued, no
handler), and the floor the same web app as the worker with a handler on
`/telegram/webhook` that only reads the body and answers 200. A third run splits the work
as `serve --no-answers` and `switchboard answers` do: a web worker that only stores
updates, beside a process of answer workers on the same Redis queue.

Deliveries are recorded-shape private messages (a sample question each, a new chat and
`update_id` each), POSTed with the secret token header in waves of `--concurrency`
concurrent requests, as Telegram does when many customers write at once:

- ack latency p50 / p99: from sending the request to the 200. Twice: for group messages
  that don't address the bot (the door alone: secret, bounded read, parse, lane, the queue's
  put; the workers then find them not addressed), and for questions, whose answers are
  written by the answer workers while the next acks are due;
- acks/s: deliveries acked per second of wall time;
- answered updates/s: deliveries until every answer reached the fake Bot API, per second
  (bounded by answering work on the worker, and by the flood limiter's 30 messages/s).

Ratios are Telegram (and the split run) over the no-op SDK app, and over the floor. The client runs on the same machine
and takes CPU from the worker, in a process of its own (`bench.running.apart`): not in this
one, where the fake Bot API receives the answers at the lowest CPU priority (Telegram's
servers are not on the measured machine in production). The last line is one JSON object
with every figure, for scripts.

The headline pair, Telegram (`serve`) and the no-op SDK app, run side by side and are timed
in alternating rounds (`--rounds`), their latencies pooled: measured one after the other,
minutes apart, their ratio moved by ×0.9 to ×2 between runs of the same code.

    python bench/telegram.py [--deliveries 500] [--concurrency 50] [--rounds 3] [--inline]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script from anywhere, without installing the package; and in place of this script's
# folder, where `import telegram` would find this very file instead of python-telegram-bot.
sys.path[0] = str(ROOT)

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bench.running import apart, bursts, fakes_in_background, server  # noqa: E402
from tests.fakes.server import free_port, serve  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram  # noqa: E402
from tests.services import redis_server  # noqa: E402

QUESTIONS = ROOT / "tests" / "data" / "sample_questions.jsonl"
PAYLOAD = ROOT / "tests" / "fixtures" / "telegram" / "private_text.json"
PREBUILT_INDEX = ROOT / "var" / "index.sqlite3"  # scripts/start's index of the sample KB, when there
SECRET = "bench-secret"
START_TIMEOUT = 900  # seconds: a first start without a prebuilt index embeds the sample KB


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else 0.0


# -- the worker (subprocess) ------------------------------------------------------------------------
def worker(args: argparse.Namespace) -> None:
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from adapters.answers_process import answering
    from adapters.app import create_app
    from adapters.telegram import TelegramChannel, TelegramSettings
    from bot.runtime import Runtime
    from bot.settings import Settings

    if args.mode == "sdk":
        uvicorn.run(sdk_app(args.token, args.api), host="127.0.0.1", port=args.port, log_level="warning",
                    access_log=False)
        return
    runtime = Runtime.open(Settings.from_env({"SWITCHBOARD_HOME": args.home, "REDIS_URL": args.redis}))
    runtime.load_sample()
    if args.mode == "noop":
        async def noop(request: Request) -> Response:
            await request.body()
            return Response()
        app = create_app(runtime)
        app.router.routes.append(Route("/telegram/webhook", noop, methods=["POST"]))
    else:  # "telegram": acks, its child process answers (as `serve`); "inline": acks and answers in this
        # process (`serve --answers inline`); "queue": acks only, a `switchboard answers` process answers
        env = {"TELEGRAM_BOT_TOKEN": args.token, "TELEGRAM_WEBHOOK_SECRET": SECRET, "TELEGRAM_API_URL": args.api}
        os.environ.update(env, SWITCHBOARD_HOME=args.home, REDIS_URL=args.redis)  # for the child
        settings = TelegramSettings.from_env(env)
        channels = [TelegramChannel(runtime, settings)]
        layout = {"telegram": "process", "inline": "inline", "queue": "none"}[args.mode]
        app = create_app(runtime, channels, **answering(layout, channels))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


def sdk_app(token: str, api: str):
    """The no-op python-telegram-bot app: its documented custom webhook (Starlette), the secret
    token checked, each update parsed into an `Update` and put on the `Application`'s queue,
    which no handler answers."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
    from telegram import Update
    from telegram.ext import Application

    application = Application.builder().token(token).base_url(f"{api}/bot").updater(None).build()

    async def webhook(request: Request) -> Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != SECRET:
            return Response(status_code=403)
        await application.update_queue.put(Update.de_json(data=await request.json(), bot=application.bot))
        return Response()

    async def health(request: Request) -> Response:
        return Response()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        async with application:
            await application.start()
            yield
            await application.stop()
    return Starlette(routes=[Route("/telegram/webhook", webhook, methods=["POST"]), Route("/healthz", health)],
                     lifespan=lifespan)


class Worker:
    """One web worker subprocess on a free port."""

    def __init__(self, mode: str, home: Path, redis_url: str, api: str, token: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = home / f"worker-{mode}.log"
        command = [sys.executable, __file__, "--worker", mode, "--home", str(home), "--redis", redis_url,
                   "--api", api, "--token", token, "--port", str(self.port)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        started = time.perf_counter()
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while True:  # readiness poll, bounded by START_TIMEOUT
                if self.process.poll() is not None:
                    raise RuntimeError(f"the {mode} worker exited:\n{self.log.read_text()[-2000:]}")
                if time.perf_counter() - started > START_TIMEOUT:
                    raise RuntimeError(f"the {mode} worker did not start within {START_TIMEOUT} s")
                try:
                    if client.get(f"{self.base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- the client --------------------------------------------------------------------------------------
def updates(n: int, first_id: int, answered: bool = True) -> list[bytes]:
    """`n` private questions, or (not `answered`) group messages that don't address the bot."""
    questions = [json.loads(line)["query"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]
    template = json.loads(PAYLOAD.read_text())
    bodies = []
    for i in range(n):
        update = json.loads(json.dumps(template))
        message = update["message"]
        message["chat"]["id"] = message["from"]["id"] = 10_000_000 + first_id + i
        if not answered:
            message["chat"] = {"id": -1_000_000_000_000 - first_id - i, "type": "supergroup", "title": "bench"}
        message.update(text=questions[i % len(questions)], message_id=i + 1)
        update["update_id"] = first_id + i
        bodies.append(json.dumps(update).encode())
    return bodies


async def deliver_all(base: str, bodies: list[bytes], concurrency: int) -> tuple[list[float], float]:
    """POST every body in bursts of `concurrency` (`bench.running.bursts`, after an untimed burst
    of group messages that don't address the bot): (ack latencies in ms, acks per second)."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "content-type": "application/json"}
    warm = updates(concurrency, json.loads(bodies[0])["update_id"] + 5 * 10**6, answered=False)

    def make(n: int) -> tuple[bytes, dict[str, str]]:
        return (bodies[n] if n >= 0 else warm[-1 - n]), headers
    return await bursts(base, "/telegram/webhook", make, len(bodies) // concurrency, concurrency)


def acks(latencies: list[float], per_second: float) -> dict:
    return {"ack_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                       "max": percentile(latencies, 100)}, "acks_per_s": round(per_second, 1)}


def warm_up(worker_process: "Worker", fake: FakeTelegram, args: argparse.Namespace, first_id: int,
            answering: bool) -> None:
    """One untimed wave of questions; for a worker that answers, until every answer was sent."""
    warm = len(fake.calls_to("sendMessage"))
    apart(deliver_all, worker_process.base, updates(args.concurrency, first_id), args.concurrency)
    if answering:
        fake.wait_for("sendMessage", warm + args.concurrency, timeout=600, answered=True)


def timed(worker_process: "Worker", fake: FakeTelegram, args: argparse.Namespace, first_id: int,
          answering: bool) -> tuple[list[float], float, float | None]:
    """`args.deliveries` questions in waves: (ack latencies, acks/s, seconds until every answer
    was sent, or None for a worker that answers nothing)."""
    before = len(fake.calls_to("sendMessage"))
    started = time.perf_counter()
    latencies, per_second = apart(deliver_all, worker_process.base, updates(args.deliveries, first_id),
                                  args.concurrency)
    if not answering:
        return latencies, per_second, None
    fake.wait_for("sendMessage", before + args.deliveries, timeout=1800, answered=True)
    return latencies, per_second, time.perf_counter() - started


def measure(mode: str, home: Path, redis_url: str, api: str, fake: FakeTelegram, args: argparse.Namespace,
            first_id: int) -> dict:
    """One layout on its own: the floor, the split run, one process answering."""
    with contextlib.ExitStack() as running:
        worker_process = Worker(mode, home, redis_url, api, fake.token)
        running.callback(worker_process.stop)
        if mode == "queue":  # the answers, in a process of their own on the same queue
            running.enter_context(answers_process(home, redis_url, api, fake.token))
        answering = mode not in ("noop", "sdk")
        warm_up(worker_process, fake, args, first_id, answering)
        latencies, per_second, seconds = timed(worker_process, fake, args, first_id + 10**6, answering)
        return answered(acks(latencies, per_second), args.deliveries, seconds)


def answered(figures: dict, deliveries: int, seconds: float | None) -> dict:
    if seconds is not None:
        figures.update(answered_per_s=round(deliveries / seconds, 1), answer_seconds=round(seconds, 2))
    return figures


def alternated(home: Path, redis_url: str, api: str, fake: FakeTelegram, args: argparse.Namespace,
               first_id: int) -> tuple[dict, dict]:
    """Telegram (`serve`: the web worker and its answers child) and the no-op SDK app, both
    running, measured in `args.rounds` alternating rounds (which goes first alternates too), so
    that what else the machine does at one moment weighs on both: each round times
    `args.deliveries` questions on each, and Telegram's round ends when its every answer was
    sent (the next round's no-op app is not timed beside Switchboard's answering). Before the
    rounds, the door alone: updates that don't address the bot (stored, then found not
    addressed by the workers). (Telegram's figures, the SDK app's), latencies pooled over the
    rounds, each with its rounds' own p50 / p99 too."""
    with contextlib.ExitStack() as running:
        workers = {mode: Worker(mode, home, redis_url, api, fake.token) for mode in ("telegram", "sdk")}
        for worker_process in workers.values():
            running.callback(worker_process.stop)
        for n, (mode, worker_process) in enumerate(workers.items()):
            warm_up(worker_process, fake, args, first_id + n * 10**5, mode == "telegram")
        unaddressed = apart(deliver_all, workers["telegram"].base,
                            updates(args.deliveries, first_id + 2 * 10**6, answered=False), args.concurrency)
        runs: dict[str, list[tuple[list[float], float, float | None]]] = {mode: [] for mode in workers}
        for r in range(args.rounds):
            for mode in (list(workers) if r % 2 else list(reversed(workers))):
                first = first_id + (1 + r) * 10**7 + (10**6 if mode == "sdk" else 0)  # apart from the warm-up waves' +5e6
                runs[mode].append(timed(workers[mode], fake, args, first, mode == "telegram"))
    results = {}
    for mode, rounds in runs.items():
        figures = acks([ms for latencies, _, _ in rounds for ms in latencies],
                       float(np.mean([per_second for _, per_second, _ in rounds])))
        figures["rounds"] = [[percentile(latencies, 50), percentile(latencies, 99)] for latencies, _, _ in rounds]
        seconds = [s for _, _, s in rounds if s is not None]
        results[mode] = answered(figures, args.deliveries * len(seconds), sum(seconds) if seconds else None)
    results["telegram"]["unaddressed"] = acks(*unaddressed)
    return results["telegram"], results["sdk"]


def answers_process(home: Path, redis_url: str, api: str, token: str):
    """`switchboard answers` on the bench's Redis queue and data folder, until the block ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "SLACK_", "TEAMS_", "OPENAI_"))}
    env.update(SWITCHBOARD_HOME=str(home), REDIS_URL=redis_url, TELEGRAM_BOT_TOKEN=token,
               TELEGRAM_WEBHOOK_SECRET=SECRET, TELEGRAM_API_URL=api, LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    return server([sys.executable, "-m", "adapters.cli", "answers"], env, ready="answer workers are running")


def run(args: argparse.Namespace) -> dict:
    fake = FakeTelegram(token="424242:BENCH-token", bot_id=424242)
    with tempfile.TemporaryDirectory(prefix="switchboard-telegram-") as tmp, redis_server() as redis_url, \
            serve(fake.app()) as api:
        fakes_in_background()  # the platform's side: not on the measured machine in production
        home = Path(tmp)
        if PREBUILT_INDEX.exists():
            shutil.copy(PREBUILT_INDEX, home / "index.sqlite3")
        figures = {"deliveries": args.deliveries, "concurrency": args.concurrency, "cpus": os.cpu_count(),
                   "load_average_start": round(os.getloadavg()[0], 2)}
        figures["telegram"], figures["sdk"] = alternated(home, redis_url, api, fake, args, 1)
        figures["noop"] = measure("noop", home, redis_url, api, fake, args, 10**9)
        figures["split"] = measure("queue", home, redis_url, api, fake, args, 2 * 10**9)
        if args.inline:
            figures["inline"] = measure("inline", home, redis_url, api, fake, args, 3 * 10**9)
    t = figures["telegram"]
    for key, base in (("ratio", figures["sdk"]), ("ratio_floor", figures["noop"])):
        figures[key] = {name: {"ack_p50": round(f["ack_ms"]["p50"] / base["ack_ms"]["p50"], 2),
                               "ack_p99": round(f["ack_ms"]["p99"] / base["ack_ms"]["p99"], 2),
                               "acks_per_s": round(f["acks_per_s"] / base["acks_per_s"], 2)}
                        for name, f in (("answered", t), ("unaddressed", t["unaddressed"]),
                                        ("split", figures["split"]), ("inline", figures.get("inline")))
                        if f is not None}
    figures["sent_messages_rejected"] = sum(c.status != 200 for c in fake.calls_to("sendMessage"))
    figures["load_average_end"] = round(os.getloadavg()[0], 2)
    return figures


def print_table(f: dict) -> None:
    def row(label: str, value, note: str = "") -> None:
        print(f"  {label:<52}{value!s:>22}  {note}")

    t, n, r, floor = f["telegram"], f["noop"], f["ratio"], f["ratio_floor"]
    print(f"\nTelegram webhook, one worker, {f['deliveries']} deliveries in waves of {f['concurrency']} "
          f"(client on the same machine, {f['cpus']} cores)")
    for label, figures in (("floor: a handler that reads the body", n), ("no-op python-telegram-bot app", f["sdk"]),
                           ("Telegram, unaddressed", t["unaddressed"]),
                           ("Telegram, answered (child process)", t), ("split, web queues only", f["split"]),
                           ("one process (--answers inline)", f.get("inline"))):
        if figures is None:
            continue
        ms = figures["ack_ms"]
        row(f"ack ms p50 / p99 / max, {label}", f"{ms['p50']} / {ms['p99']} / {ms['max']}",
            f"{figures['acks_per_s']} acks/s")
    for name in r:
        row(f"ratio to the no-op SDK app, {name}: p50 / p99 / acks/s",
            f"×{r[name]['ack_p50']} / ×{r[name]['ack_p99']} / ×{r[name]['acks_per_s']}")
    for name in floor:
        row(f"ratio to the floor, {name}: p50 / p99 / acks/s",
            f"×{floor[name]['ack_p50']} / ×{floor[name]['ack_p99']} / ×{floor[name]['acks_per_s']}")
    rounds = [f"×{round(a[0] / b[0], 2)} / ×{round(a[1] / b[1], 2)}"
              for a, b in zip(t["rounds"], f["sdk"]["rounds"])]
    row("each round's ratio to the no-op SDK app, p50 / p99", "", ", ".join(rounds))
    row("answered updates/s (all answers sent)", t["answered_per_s"], f"{t['answer_seconds']} s for all")
    row("answered updates/s, split", f["split"]["answered_per_s"], f"{f['split']['answer_seconds']} s for all")
    row("sendMessage calls the fake rejected", f["sent_messages_rejected"])
    row("machine load average start / end", f"{f['load_average_start']} / {f['load_average_end']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of Telegram and the no-op SDK app (each: --deliveries)")
    parser.add_argument("--inline", action="store_true", help="also measure one process answering (--answers inline)")
    parser.add_argument("--worker", choices=["telegram", "inline", "queue", "noop", "sdk"], help=argparse.SUPPRESS)
    for hidden in ("--home", "--redis", "--api", "--token"):
        parser.add_argument(hidden, default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.mode = args.worker
        worker(args)
        return
    figures = run(args)
    print_table(figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
