"""What the channel benchmarks share: a server subprocess (started, awaited until it
listens, stopped with SIGINT) and timed bursts of concurrent requests."""
from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from typing import Awaitable, Callable, Iterator


async def bursts(one: Callable[[int], Awaitable[None]], rounds: int, concurrent: int) -> float:
    """Seconds taken by `rounds` bursts of `concurrent` calls `one(n)` at once (n numbers them all)."""
    began = time.perf_counter()
    for r in range(rounds):
        await asyncio.gather(*(one(r * concurrent + i) for i in range(concurrent)))
    return time.perf_counter() - began


@contextlib.contextmanager
def server(command: list[str], env: dict[str, str], ready: str = "Uvicorn running on") -> Iterator[subprocess.Popen]:
    """Run `command` from its `ready` line on stderr until the block ends (graceful SIGINT)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:
            if ready in line:
                break
        else:
            raise RuntimeError(f"{command} did not start")
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
