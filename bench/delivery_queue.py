"""Delivery queue overhead: what storing, taking and finishing one delivery costs.

For each backend (the SQLite file of the embedded default; Redis Streams on a local
redis-server started here, as in the tests) it times `put` (the door's cost before the
acknowledgement) and `take` + `done` (a worker's cost around each answer) over N messages
spread over 50 conversations, with one consumer. The baseline is an in-process
asyncio.Queue doing the same puts and gets, in the same run. Last line: one JSON object.

    python bench/delivery_queue.py [--messages 2000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.queue import RedisQueue, SqliteQueue  # noqa: E402
from tests.services import redis_server  # noqa: E402


async def measure(queue, messages: int) -> dict[str, float]:
    payload = {"body": "x" * 1500, "content_type": "application/json", "mode": "http"}  # a Slack event's size
    began = time.perf_counter()
    for n in range(messages):
        await queue.put(f"bench:{n}", "slack", f"lane:{n % 50}", payload)
    put = time.perf_counter() - began
    began = time.perf_counter()
    for _ in range(messages):
        job = await queue.take("bench-consumer", wait=0.5)
        await queue.done(job, "answered")
    take = time.perf_counter() - began
    return {"put_us": round(put / messages * 1e6, 1), "take_done_us": round(take / messages * 1e6, 1)}


async def baseline(messages: int) -> dict[str, float]:
    queue: asyncio.Queue = asyncio.Queue()
    began = time.perf_counter()
    for n in range(messages):
        queue.put_nowait((f"bench:{n}", {"body": "x" * 1500}))
    put = time.perf_counter() - began
    began = time.perf_counter()
    for _ in range(messages):
        await queue.get()
    return {"put_us": round(put / messages * 1e6, 2), "take_done_us": round((time.perf_counter() - began) / messages * 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    results = {"messages": args.messages, "asyncio.Queue (not durable)": asyncio.run(baseline(args.messages))}
    with tempfile.TemporaryDirectory() as tmp:
        queue = SqliteQueue(Path(tmp) / "queue.sqlite3")
        results["sqlite"] = asyncio.run(measure(queue, args.messages))
        asyncio.run(queue.close())
    with redis_server() as url:
        async def redis_run():
            queue = RedisQueue(url)
            try:
                return await measure(queue, args.messages)
            finally:
                await queue.close()
        results["redis"] = asyncio.run(redis_run())
    for name, figures in results.items():
        if name != "messages":
            print(f"{name:28} put {figures['put_us']:>8} µs/message   take+done {figures['take_done_us']:>8} µs/message")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
