"""Inbox message latency, agent → web chat customer: p50/p95 over N replies.

Serves the real app (SQLite, the sample knowledge) on a loopback port, hands a web chat
conversation to the console's inbox, an agent account claims it, then the agent sends
`--replies` replies from the inbox (POST /admin/inbox/<id>/reply, as the page's form
does). Each reply's latency is from just before that POST to the moment the customer
side has it:

- `sse`: the customer reads `GET /api/stream?conversation=` (adapters/web_live.py), as the
  page does with EventSource;
- `poll`: the customer fetches `GET /api/conversations/<id>?after=` every 3 s, as the page
  did before (and still does when the stream fails); each reply is sent at a random
  moment of the poll's cycle.

Prints p50/p95 in milliseconds per mode; last line: one JSON object.

    python bench/inbox_latency.py [--replies 50] [--poll-replies 30]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from adapters.app import create_app  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from bot.settings import Settings  # noqa: E402
from tests.admin.conftest import Console  # noqa: E402
from tests.fakes.server import serve  # noqa: E402

POLL_MS = 3000  # the page's poll interval (adapters/web_static/app.js)


class Seen:
    """Reply texts the customer side has received, with when."""

    def __init__(self):
        self.at: dict[str, float] = {}
        self.changed = threading.Condition()

    def add(self, turns: list[dict]) -> None:
        now = time.perf_counter()
        with self.changed:
            for t in turns:
                if t["role"] == "assistant":
                    self.at.setdefault(t["reply"]["answer"], now)
            self.changed.notify_all()

    def wait(self, text: str, timeout: float = 30) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: text in self.at, timeout):
                raise RuntimeError(f"{text!r} never reached the customer")
            return self.at[text]


def by_stream(url: str, conversation: str, seen: Seen, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=httpx.Timeout(60, read=None)) as http:
        with http.stream("GET", f"/api/stream?conversation={conversation}") as response:
            for line in response.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("data: "):
                    seen.add(json.loads(line[6:])["turns"])


def by_polling(url: str, conversation: str, seen: Seen, stop: threading.Event) -> None:
    after = 0
    with httpx.Client(base_url=url, timeout=60) as http:
        while not stop.wait(POLL_MS / 1000):
            turns = http.get(f"/api/conversations/{conversation}?after={after}").json()["turns"]
            after = max([after, *(t["seq"] for t in turns)])
            seen.add(turns)


def measure(console: Console, mode: str, replies: int) -> dict[str, float]:
    agent = console.signed_in("agent", name="Alice")
    conversation = uuid.uuid4().hex
    with httpx.Client(base_url=console.url, timeout=60) as customer:
        customer.post("/api/handoff", json={"conversation": conversation})
    [escalation] = [e for e in agent.http.get("/admin/api/inbox").json()["escalations"]
                    if e["conversation"] == f"web:{conversation}"]
    page = f"/admin/inbox/{escalation['id']}"
    agent.post(f"{page}/claim")
    seen, stop, rng = Seen(), threading.Event(), random.Random(7)
    reader = threading.Thread(target=by_stream if mode == "sse" else by_polling,
                              args=(console.url, conversation, seen, stop), daemon=True)
    reader.start()
    seen.wait("Alice from our team has joined the conversation.", 30 if mode == "sse" else 60)
    latencies = []
    for n in range(replies):
        if mode == "poll":
            time.sleep(rng.uniform(0, POLL_MS / 1000))  # a random moment of the poll's cycle
        text = f"reply number {n}"
        start = time.perf_counter()
        agent.post(f"{page}/reply", {"text": text})
        latencies.append((seen.wait(f"**Alice**: {text}") - start) * 1000)
    stop.set()
    agent.post(f"{page}/resolve")  # ends the stream's conversation
    latencies.sort()
    return {"replies": replies, "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1), "max_ms": round(latencies[-1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=50, help="replies timed over the stream")
    parser.add_argument("--poll-replies", type=int, default=30, help="replies timed with the 3 s poll")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = dataclasses.replace(Settings.from_env({"SWITCHBOARD_HOME": home}))
        runtime = Runtime.open(settings)
        app = create_app(runtime)
        with serve(app) as url:
            console = Console(url, runtime, app)
            result = {"sse": measure(console, "sse", args.replies),
                      "poll": measure(console, "poll", args.poll_replies)}
    for mode, figures in result.items():
        print(f"{mode:5} {figures['replies']:3} replies  p50 {figures['p50_ms']:8.1f} ms  "
              f"p95 {figures['p95_ms']:8.1f} ms  max {figures['max_ms']:8.1f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
