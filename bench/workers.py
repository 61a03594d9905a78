"""Answer workers benchmark: answers per second with one and two `switchboard answers`
processes, and what a crash costs (issue 16).

One `switchboard serve --no-answers` process acknowledges and queues Slack deliveries
(embedded defaults: SQLite queue and memory, extractive answers over the sample knowledge)
and a fake Slack Web API (tests/fakes/slack_api.py) in this process receives the answers.

1. throughput: `--questions` deliveries are queued with no worker running, then one
   `switchboard answers` process starts; the time from its "running" line to the last
   answer gives answers/s. The same again with two processes started together.
2. crash: `--kill` questions are queued, one worker process starts and is killed (SIGKILL)
   after it has answered a few; a new one starts. Figures: answered before the kill, time
   from the restart to its first answer and to the last in-flight one, and per question
   how many answers arrived (lost = 0, duplicates = 0 is the guarantee).

Everything shares the 2 cores with this load generator. Last line: one JSON object.

    python bench/workers.py [--questions 60] [--kill 40]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.running import server  # noqa: E402
from bench.slack import BOT, DROPPED_ENV, SECRET, TEAM, delivery, signed  # noqa: E402
from tests.fakes.server import free_port, serve  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402

READY = "answer workers are running"
WORKERS = [sys.executable, "-m", "adapters.cli", "answers"]


async def queue(url: str, numbers: range) -> None:
    """Deliver questions `numbers` (each its own thread), all acknowledged."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for n in numbers:
            body = delivery(n)
            response = await client.post("/slack/events", content=body, headers=signed(body))
            assert response.status_code == 200, response.text


def answered(fake: FakeSlack, numbers: range) -> collections.Counter:
    """Answers per question (thread ts) among `numbers`."""
    wanted = {f"{1767000000 + n}.000100" for n in numbers}
    return collections.Counter(c.args.get("thread_ts") for c in fake.calls_to("chat.postMessage")
                               if c.ok and c.args.get("thread_ts") in wanted)


def wait(fake: FakeSlack, numbers: range, count: int, timeout: float = 1800) -> float:
    """Block until `count` of `numbers` have an answer; the monotonic time it happened."""
    deadline = time.monotonic() + timeout
    while len(answered(fake, numbers)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(answered(fake, numbers))} of {count} answered")
        time.sleep(0.02)
    return time.monotonic()


def start_workers(env: dict[str, str], count: int) -> tuple[list[subprocess.Popen], float]:
    """`count` answer processes, started together; (processes, when the last said it runs)."""
    began = time.monotonic()
    processes = [subprocess.Popen(WORKERS, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for _ in range(count)]
    for process in processes:
        for line in process.stderr:
            if os.environ.get("BENCH_VERBOSE"):
                print(f"  [{time.monotonic() - began:6.1f} s] {line.rstrip()}", flush=True)
            if READY in line:
                break
        else:
            raise RuntimeError("answers did not start")
    print(f"  {count} answers process(es) running after {time.monotonic() - began:.1f} s", flush=True)
    return processes, time.monotonic()


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.send_signal(signal.SIGINT)
    for process in processes:
        process.communicate(timeout=60)


def throughput(fake: FakeSlack, env: dict[str, str], url: str, numbers: range, count: int) -> float:
    asyncio.run(queue(url, numbers))
    processes, ready = start_workers(env, count)
    try:
        done = wait(fake, numbers, len(numbers))
    finally:
        stop(processes)
    return len(numbers) / (done - ready)


def crash(fake: FakeSlack, env: dict[str, str], url: str, numbers: range, before: int) -> dict:
    asyncio.run(queue(url, numbers))
    [victim], _ = start_workers(env, 1)
    wait(fake, numbers, before)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    answered_before = len(answered(fake, numbers))
    restarted = time.monotonic()
    processes, ready = start_workers(env, 1)
    try:
        first = wait(fake, numbers, answered_before + 1)
        last = wait(fake, numbers, len(numbers))
        time.sleep(1.0)  # let a duplicate, if the queue made one, arrive before counting
        counts = answered(fake, numbers)
    finally:
        stop(processes)
    return {"questions": len(numbers), "answered_before_kill": answered_before,
            "restart_to_ready_s": round(ready - restarted, 2), "restart_to_first_answer_s": round(first - restarted, 2),
            "restart_to_all_answered_s": round(last - restarted, 2),
            "answered_once": sum(1 for v in counts.values() if v == 1),
            "duplicates": sum(v - 1 for v in counts.values() if v > 1), "lost": len(numbers) - len(counts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--kill", type=int, default=40)
    args = parser.parse_args()
    fake = FakeSlack(token="xoxb-bench", bot_user_id=BOT, team_id=TEAM)
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    with tempfile.TemporaryDirectory() as home, serve(fake.app()) as fake_url:
        port = free_port()
        env.update(SWITCHBOARD_HOME=home, SLACK_BOT_TOKEN="xoxb-bench", SLACK_SIGNING_SECRET=SECRET,
                   SLACK_API_URL=f"{fake_url}/api/", LOG_LEVEL="WARNING")
        print("starting switchboard serve --no-answers (indexes the sample knowledge on first start)…", flush=True)
        with server([sys.executable, "-m", "adapters.cli", "serve", "--no-answers", "--port", str(port)], env):
            url = f"http://127.0.0.1:{port}"
            n = args.questions
            one = throughput(fake, env, url, range(0, n), 1)
            print(f"1 answers process: {one:.2f} answers/s ({n} queued questions)", flush=True)
            two = throughput(fake, env, url, range(n, 2 * n), 2)
            print(f"2 answers processes: {two:.2f} answers/s (×{two / one:.2f})", flush=True)
            killed = crash(fake, env, url, range(2 * n, 2 * n + args.kill), before=5)
            print(f"SIGKILL after {killed['answered_before_kill']} of {killed['questions']} answered: restarted worker "
                  f"ready in {killed['restart_to_ready_s']} s, first answer {killed['restart_to_first_answer_s']} s, "
                  f"all in {killed['restart_to_all_answered_s']} s; answered once {killed['answered_once']}, "
                  f"duplicates {killed['duplicates']}, lost {killed['lost']}")
    print(json.dumps({"answers_per_s": {"1": round(one, 2), "2": round(two, 2)}, "scale": round(two / one, 2),
                      "crash": killed}))


if __name__ == "__main__":
    main()
