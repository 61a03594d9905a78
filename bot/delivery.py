"""One delivery pipeline for every channel: door → durable queue → answer workers → sender.

    inbound  (the channel: verify → `accept` → acknowledge)
    workers  (`Pipeline.run`: take a job → the channel's `process` → done)
    outbound (the channel's sender: bounded timeouts; a `Transient` failure retries the
              job with backoff, keeping what was already decided in the job's outbox)

A channel plugs in a `Handler`: `process(work)` turns the stored platform delivery into
an answer and sends it, returning its outcome (answered, declined, ignored, relayed...);
`failed(work, error)` tells the user when it finally can't (an apology with a way to a
human), and is itself best effort. The pipeline counts outcomes, records `delivery_failed`
events, retries transient failures (5xx, timeouts, 429, a store down) and, after
`max_attempts`, moves the job to the dead letters, after telling the user.

A reply decided by the engine is saved in the job's outbox (`work.save`) before it is
sent, so a retry after a send failure sends the same reply instead of answering again.
Each message of it is counted there as soon as the platform took it (`work.unsent`,
`work.mark_sent`), so a retry sends only what was not sent. Code that sends inside a job
without being handed it (a handoff relay, reached through the engine) finds the job of
the running worker with `running()`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol, Sequence, TypeVar

from bot.door import Door
from bot.errors import MemoryUnavailable, StoreUnavailable, SwitchboardError
from bot.queue import Job, Queue, QueueUnavailable, consumer_name

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0, 30.0)  # ~2 minutes of retries, then a dead letter
DRAIN = 8.0  # seconds a stopping process gives the answers in progress to finish
DOOR_FIRST = 0.25  # seconds a worker lets a burst at the door go first before taking a job


def retryable(error: BaseException) -> bool:
    """Worth retrying whatever the channel: a store down (memory, queue), a lost connection,
    a timeout. Channels add their platform's own (5xx, 429) in their `Transient` decision."""
    return isinstance(error, (MemoryUnavailable, StoreUnavailable, QueueUnavailable, ConnectionError, TimeoutError))


class Transient(SwitchboardError):
    """A failure worth retrying: the platform answered 5xx or 429, timed out, or a store is down."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Work:
    """A job being processed, with what the handler may do to it."""

    job: Job
    queue: Queue

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    @property
    def outbox(self) -> dict[str, Any]:
        return self.job.outbox

    async def save(self, **outbox: Any) -> None:
        """Keep `outbox` with the job: a retry of this job sees it in `work.outbox`."""
        merged = {**self.job.outbox, **outbox}
        await self.queue.save(self.job, merged)
        self.job = Job(**{**self.job.__dict__, "outbox": merged})

    def unsent(self, messages: Sequence[T], count: str = "sent") -> list[tuple[int, T]]:
        """`messages` numbered, without those an earlier attempt of this job sent (a failure
        after sending, or a crash before the job was recorded done, retries it). `count` is
        the outbox field that counts them: "sent" for the reply, another name for other
        messages the job sends (a handoff relay)."""
        done = int(self.outbox.get(count, 0))
        return [(n, message) for n, message in enumerate(messages) if n >= done]

    async def mark_sent(self, n: int, count: str = "sent") -> None:
        """Count message `n` of `unsent` as sent (`count` = n + 1 in the outbox), as soon as
        the platform took it."""
        await self.save(**{count: n + 1})


async def send_unsent(work: Work | None, messages: Sequence[T], send: Callable[[int, T], Awaitable[R]],
                      count: str = "sent") -> list[R]:
    """`send(n, message)` for each of `messages`, in order, but those an earlier attempt of the
    job `work` sent, each counted in its outbox as soon as it was sent (`Work.unsent`,
    `Work.mark_sent`); outside a job (`work` None), every one. What each `send` returned."""
    results = []
    for n, message in work.unsent(messages, count) if work is not None else enumerate(messages):
        results.append(await send(n, message))
        if work is not None:
            await work.mark_sent(n, count)
    return results


_running: ContextVar[Work | None] = ContextVar("switchboard_work", default=None)


def running() -> Work | None:
    """The job the current answer worker is processing (None outside one: a web request, a
    timer), for code that sends inside it but is reached through layers that know nothing
    of jobs: the handoff relays the engine makes count what they sent in it."""
    return _running.get()


async def _run(handler: Handler, work: Work) -> str:
    """`handler.process(work)`, with `work` as the task's `running()` job meanwhile."""
    token = _running.set(work)
    try:
        return await handler.process(work)
    finally:
        _running.reset(token)


class Handler(Protocol):
    name: str

    async def process(self, work: Work) -> str: ...

    async def failed(self, work: Work, error: BaseException) -> None: ...


class Counter(Protocol):
    def count(self, outcome: str) -> None: ...


Record = Callable[..., Awaitable[None]]


class Pipeline:
    """The queue and the answer workers of one process."""

    def __init__(self, queue: Queue, *, workers: int = 4, max_attempts: int = len(BACKOFF) + 1,
                 record: Record | None = None, metrics: Any = None, backoff: tuple[float, ...] = BACKOFF):
        self.queue = queue
        self.workers = workers
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.record = record
        self.metrics = metrics
        self.consumer = consumer_name()
        self._handlers: dict[str, Handler] = {}
        self._counters: dict[str, Counter] = {}
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self.door = Door()  # the door's activity: shared with the answers child of `serve`

    def add(self, handler: Handler, counter: Counter | None = None) -> None:
        self._handlers[handler.name] = handler
        if counter is not None:
            self._counters[handler.name] = counter

    # -- inbound -------------------------------------------------------------------------
    async def accept(self, job_id: str, channel: str, lane: str, payload: dict[str, Any]) -> bool:
        """Store a verified delivery before acknowledging it: True when new, False for a
        duplicate (already queued, running or done). QueueUnavailable when it can't be
        stored: the channel then answers 5xx so that the platform delivers it again."""
        started = time.perf_counter()
        self.door.enter()
        try:
            added = await self.queue.put(job_id, channel, lane, payload)
        finally:
            self.door.leave()
        if not added:
            self._count(channel, "duplicate")
        if self.metrics is not None and hasattr(self.metrics, "observe_ack"):
            self.metrics.observe_ack(channel, time.perf_counter() - started)
        return added

    # -- workers -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the answer workers as tasks of the running loop."""
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._worker(n), name=f"answers-{n}") for n in range(self.workers)]

    async def stop(self, drain: float = DRAIN) -> None:
        """Stop taking jobs and let the ones in progress finish, for up to `drain` seconds (a
        deploy's SIGTERM: answers in flight are sent, not left to a lease). Any still running
        then is cancelled and stays leased: taken again by this host's next process at once
        (SQLite), or by another worker after its lease (Redis)."""
        self._stopping.set()
        if self._tasks:
            _, running = await asyncio.wait(self._tasks, timeout=drain)
            for task in running:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _worker(self, number: int) -> None:
        while not self._stopping.is_set():
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except QueueUnavailable as exc:
                log.warning("answer worker %d: %s", number, exc)
                await asyncio.sleep(1.0)  # the store is down: wait for it without spinning
            except Exception:
                log.exception("answer worker %d failed", number)

    async def step(self, wait: float = 1.0) -> bool:
        """Take one job and process it; False when none was ready within `wait`. While the
        door (this process's, or its parent's) is storing a burst of deliveries, a new answer
        waits for it to be quiet, up to DOOR_FIRST seconds: acknowledgements come first (the
        platform's 3 s), see bot/door.py."""
        await self.door.quiet(DOOR_FIRST)
        job = await self.queue.take(self.consumer, wait)
        if job is None:
            return False
        await self._process(job)
        return True

    async def _process(self, job: Job) -> None:
        handler = self._handlers.get(job.channel)
        if handler is None:  # a channel not configured in this process: leave it to one that has it
            await self.queue.retry(job, 5.0)
            return
        work = Work(job, self.queue)
        started = time.perf_counter()
        heartbeat = asyncio.create_task(self._heartbeat(work))
        try:
            outcome = await _run(handler, work)
        except asyncio.CancelledError:
            raise
        except Transient as exc:
            await self._transient(handler, work, exc)
            return
        except Exception as exc:
            log.exception("%s delivery %s failed", job.channel, job.id)
            await self._give_up(handler, work, exc, dead=False)
            return
        finally:
            heartbeat.cancel()
        await self._settle(work.job, outcome)
        self._count(job.channel, outcome)
        if self.metrics is not None and hasattr(self.metrics, "observe_answer"):
            self.metrics.observe_answer(job.channel, time.perf_counter() - started)

    async def _settle(self, job: Job, outcome: str) -> None:
        """Record a job's end even through a queue outage: the reply was sent, so the job must
        not run again. Retried every 2 s for up to 10 minutes, after which its lease decides."""
        for _ in range(300):
            try:
                await self.queue.done(job, outcome)
                return
            except QueueUnavailable as exc:
                log.warning("could not mark %s finished, retrying: %s", job.id, exc)
                await asyncio.sleep(2.0)

    async def _heartbeat(self, work: Work) -> None:
        lease = getattr(self.queue, "lease", 30.0)
        while True:
            await asyncio.sleep(lease / 3)
            try:
                await self.queue.extend(work.job)
            except QueueUnavailable as exc:
                log.warning("could not extend the lease of %s: %s", work.job.id, exc)

    async def _transient(self, handler: Handler, work: Work, exc: Transient) -> None:
        attempt = work.job.attempts
        if attempt + 1 >= self.max_attempts:
            log.warning("%s delivery %s: giving up after %d attempts: %s", work.job.channel, work.job.id,
                        attempt + 1, exc)
            await self._give_up(handler, work, exc, dead=True)
            return
        delay = exc.retry_after if exc.retry_after is not None else self.backoff[min(attempt, len(self.backoff) - 1)]
        log.info("%s delivery %s: attempt %d failed (%s), retrying in %.0f s", work.job.channel, work.job.id,
                 attempt + 1, exc, delay)
        if self.metrics is not None and hasattr(self.metrics, "retried"):
            self.metrics.retried(work.job.channel)
        await self.queue.retry(work.job, delay)

    async def _give_up(self, handler: Handler, work: Work, exc: BaseException, *, dead: bool) -> None:
        """The end of a delivery that could not be answered: an event, the user told, done."""
        if self.record is not None:
            await self.record("delivery_failed", work.payload.get("conversation", work.job.lane),
                              channel=work.job.channel, error=_describe(exc), delivery=work.job.id,
                              attempts=work.job.attempts + 1)
        try:
            await handler.failed(work, exc)
        except Exception:
            log.exception("could not tell the user about the failed delivery %s", work.job.id)
        if dead:
            await self.queue.dead(work.job, _describe(exc))
            if self.metrics is not None and hasattr(self.metrics, "dead_letter"):
                self.metrics.dead_letter(work.job.channel)
        else:
            await self.queue.done(work.job, "failed")
        self._count(work.job.channel, "failed")

    def _count(self, channel: str, outcome: str) -> None:
        counter = self._counters.get(channel)
        if counter is not None:
            counter.count(outcome)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
