"""`switchboard serve`'s answer workers in a child process (the default when a channel is set).

Why a process and not tasks in the web process: on 2 cores, an answer's ranking, rendering
and Web API calls hold the interpreter lock that the door's event loop needs to
acknowledge a burst; answering beside the door kept Slack's p99 ack at ×1.6–2.2 the no-op
Bolt app, answering in another process at ×0.95–1.3 (docs/benchmarks.md). The child is
`switchboard answers --child`: the same workers, queue and senders as the Procfile's
`answers:` line, so one command still runs everything, and the same crash recovery holds.

The parent supervises it:
- the child's stdin is a pipe the parent holds open: when the parent stops, or dies in any
  way (SIGKILL included, the kernel closes the pipe), the child reads end of file, lets the
  answers in progress finish (bot/delivery.py's DRAIN) and exits: no orphan keeps working;
- a child that exits on its own (a crash, the out-of-memory killer) is started again, after
  1, 2, 4… up to 30 s; /healthz names it meanwhile, an event is recorded, and what it had
  taken waits in the queue (its lease, or its gone process, hands it to the next one). One
  asked to stop (SIGTERM: exit code 0) is started again too, quietly: when every process of
  the host is being stopped, `serve` stops before that. Ctrl-C is `serve`'s: the child
  ignores SIGINT and stops when `serve` closes its stdin;
- its /metrics is served on a loopback socket the parent opened and passes down (kept across
  restarts), and read into the parent's /metrics (adapters/metrics.py merges the per-process
  series: answers, retries, dead letters, outcomes, LLM tokens).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from typing import Awaitable, Callable, Sequence

import httpx

from bot.delivery import DRAIN
from bot.door import Door

log = logging.getLogger("switchboard")

RESTART_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # then 30 s between attempts
STEADY_SECONDS = 60.0  # a child alive this long has its restart delays start again from the first
READ_SECONDS = 2.0  # how long the child's /metrics may take to answer a scrape


class AnswersProcess:
    """One supervised `switchboard answers --child`, started and stopped with the web app."""

    def __init__(self, on_exit: Callable[[int | None], Awaitable[None]] | None = None):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.set_inheritable(True)
        self.metrics_port: int = self._sock.getsockname()[1]
        self.door = Door.shareable()  # the web process's pipeline writes it, the child's workers read it
        self.command = [sys.executable, "-m", "adapters.cli", "answers", "--child",
                        "--metrics-fd", str(self._sock.fileno()), "--door-fd", str(self.door.fd)]
        self._process: asyncio.subprocess.Process | None = None
        self._supervising: asyncio.Task | None = None
        self._stopping = False
        self.started_at = 0.0
        self.on_exit = on_exit  # told of each child that exited on its own (an event), best effort

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        self._process = await self._spawn()
        self._supervising = asyncio.create_task(self._supervise(), name="answers process")

    async def _spawn(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(*self.command, stdin=asyncio.subprocess.PIPE,
                                                       pass_fds=(self._sock.fileno(), self.door.fd))
        self.started_at = time.monotonic()
        log.info("answers process %s started", process.pid)
        return process

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            code = None
            if self._process is not None:
                code = await self._process.wait()
                if self._stopping:
                    return
            if time.monotonic() - self.started_at > STEADY_SECONDS:
                failures = 0
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            failures += 1
            if code == 0:  # asked to stop (SIGTERM): by an operator, or a stop of every process under way
                log.info("the answers process stopped; starting another in %g s", delay)
            else:
                log.error("the answers process exited (%s); starting another in %g s: the questions it had taken "
                          "wait in the queue", _said(code), delay)
            if self.on_exit is not None and code != 0:
                try:
                    await self.on_exit(code)
                except Exception:
                    log.exception("recording the answers process's exit")
            await asyncio.sleep(delay)
            try:
                self._process = await self._spawn()
            except OSError as exc:
                log.error("could not start the answers process: %s", exc)
                self._process = None

    async def stop(self) -> None:
        """Close the child's stdin (it finishes what it is answering, within DRAIN), then wait for
        it; one that doesn't stop in time is killed (its jobs stay queued for the next start)."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(Exception):
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), DRAIN + 5)
            except asyncio.TimeoutError:
                log.warning("the answers process did not stop within %g s: killed", DRAIN + 5)
                process.kill()
                await process.wait()
        if self._supervising is not None:
            self._supervising.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervising
        self._sock.close()

    async def problems(self) -> list[str]:
        """For /healthz: the child not running (and how the last one ended)."""
        if self.running:
            return []
        ended = self._process.returncode if self._process is not None else None
        last = f" (the last one {_said(ended)})" if ended is not None else ""
        return [f"answers process: not running{last}; questions wait in the queue until it is back"]

    async def metrics(self) -> str | None:
        """The child's /metrics text, or None when it isn't running or doesn't answer in time."""
        if not self.running:
            return None
        try:  # trust_env=False: a proxy from the environment must not see a loopback call
            async with httpx.AsyncClient(timeout=READ_SECONDS, trust_env=False) as client:
                page = await client.get(f"http://127.0.0.1:{self.metrics_port}/metrics")
                page.raise_for_status()
                return page.text
        except httpx.HTTPError as exc:
            log.info("the answers process's /metrics: %s", exc or type(exc).__name__)
            return None


def _said(code: int | None) -> str:
    if code is None:
        return "could not start"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def watch_parent(stop: asyncio.Event, fd: int | None = None) -> None:
    """In the child: set `stop` when stdin reaches end of file (the parent closed it, or died)."""
    fd = sys.stdin.fileno() if fd is None else fd
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()
    loop.add_reader(fd, readable)


def answering(mode: str, channels: Sequence[object]) -> dict:
    """`create_app`'s arguments for `serve --answers MODE`: "process", a supervised child (none
    without a channel: only channels queue deliveries, the web chat answers in the web
    process); "inline", this process's own answer workers; "none", `answers` processes."""
    child = mode == "process" and bool(channels)
    return {"answers": mode == "inline" or (mode == "process" and not channels),
            "answers_process": AnswersProcess() if child else None}
