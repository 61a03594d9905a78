"""What the channel benchmarks share: a server subprocess (started, awaited until it
listens, stopped with SIGINT), timed bursts of concurrent requests, and a load generator
in a process of its own (`apart`)."""
from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Awaitable, Callable, Iterator


async def bursts(url: str, path: str, make: Callable[[int], tuple[bytes, dict[str, str]]], rounds: int,
                 concurrent: int) -> tuple[list[float], float]:
    """POST `rounds` bursts of `concurrent` requests at once to `url` + `path`, request n being
    `make(n)` = (body, headers): the ack latencies (ms, from sending to the whole response)
    and requests per second. One burst first, not timed (n = -1, -2, ...), opens the
    `concurrent` keep-alive connections, as a platform keeps them open.

    aiohttp, not httpx: httpx's connection pool cost this client 20 of the 28 ms that a burst
    of 50 took against the no-op Bolt app (aiohttp: 8 ms), so the client, not the server,
    set the pace, and stalls in the server were half hidden behind it."""
    import aiohttp

    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrent)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def one(n: int) -> None:
            body, headers = make(n)
            start = time.perf_counter()
            async with session.post(path, data=body, headers=headers) as response:
                text = await response.text()
            if n >= 0:
                latencies.append((time.perf_counter() - start) * 1000)
            assert response.status == 200, (response.status, text[:200])

        await asyncio.gather(*(one(-1 - i) for i in range(concurrent)))
        began = time.perf_counter()
        for r in range(rounds):
            await asyncio.gather(*(one(r * concurrent + i) for i in range(concurrent)))
        return latencies, len(latencies) / (time.perf_counter() - began)


def fakes_in_background(niceness: int = 19) -> None:
    """Lower the CPU priority of this process's other threads (the fake platform APIs): in
    production the platform's servers are not on the measured machine, so the work of
    receiving the answers should not take the 2 cores from the server under test. Threads
    they start later inherit it. Linux: niceness is per thread; elsewhere nothing changes."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and thread.native_id is not None:
            try:
                os.setpriority(os.PRIO_PROCESS, thread.native_id, niceness)
            except (AttributeError, OSError):
                return


def apart(load: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """`asyncio.run(load(*args))` in a fresh process (spawned), returning its result.

    The fake platform APIs run in the benchmark's own process, in threads, and receive every
    answer the server sends; a load generator in that process shares their interpreter lock,
    so the fake's work for the answers would count in the acks measured for the server that
    answers, and not for a no-op app that sends nothing. `load` must be a module-level function
    and its arguments picklable."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run, (load, args))


def _run(load: Callable[..., Awaitable[Any]], args: tuple) -> Any:
    return asyncio.run(load(*args))


# `serve` with a channel is ready when it accepts connections and its answers child is warm
SERVE_READY = ("Uvicorn running on", "answer workers are running")


@contextlib.contextmanager
def server(command: list[str], env: dict[str, str],
           ready: str | tuple[str, ...] = "Uvicorn running on") -> Iterator[subprocess.Popen]:
    """Run `command` from its `ready` line (or lines, in any order) on stderr until the block
    ends (graceful SIGINT)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    waiting = {ready} if isinstance(ready, str) else set(ready)
    try:
        for line in process.stderr:
            waiting = {text for text in waiting if text not in line}
            if not waiting:
                break
        else:
            raise RuntimeError(f"{command} did not start")
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


def compared(label: str, run: dict | None, baseline: dict) -> dict | None:
    """Print a layout's acks (`run`: {"acks": p50_ms/p99_ms/..., "answered_per_s": n}) against the
    no-op app's in the same run, and return the ratios (None when the layout wasn't run)."""
    if run is None:
        return None
    ratio = {k: round(run["acks"][k] / baseline[k], 2) for k in run["acks"]}
    memory = f"; resident memory {run['memory_mb']} MB" if "memory_mb" in run else ""
    print(f"{label}: ack p50 {run['acks']['p50_ms']} ms, p99 {run['acks']['p99_ms']} ms; ratio p50 "
          f"×{ratio['p50_ms']}, p99 ×{ratio['p99_ms']}; {run['answered_per_s']} answers/s{memory}")
    return ratio


def index_sample(env: dict[str, str]) -> None:
    """A first `switchboard ask` indexes the bundled sample in the data folder of `env`, so
    that every layout measured starts from the same indexed folder, as every start after a
    host's first."""
    subprocess.run([sys.executable, "-m", "adapters.cli", "ask", "hello"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
