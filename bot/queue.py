"""The durable delivery queue: what a channel acknowledged is kept until it is answered.

A channel's HTTP handler verifies a platform delivery and `put`s it here *before* it
acknowledges; answer workers `take` jobs, answer them, send the reply and only then mark
them `done`. A process that dies mid-answer leaves its job leased; the lease runs out and
another worker (or the same one, restarted) takes it again.

Three rules every backend keeps:
- **Once per id.** `put` of an id already known (queued, running or done within the
  dedupe window) returns False: a platform's retry of an acknowledged delivery is a
  duplicate, and a redelivery after a crash is answered by the job already queued.
- **Lanes.** Jobs of one lane (a conversation, or a relay direction) are taken one at a
  time in `put` order: a job is only taken when it is the oldest unfinished job of its
  lane and nobody holds that lane. A job waiting to be retried keeps its place.
- **Leases.** A taken job belongs to its consumer until the lease ends; `extend` renews
  it while the work goes on; an expired lease makes the job takeable again.

Backends: `SqliteQueue` (the embedded default: a table in the data folder, shared by the
processes of one machine; a consumer whose process is gone is noticed at once) and
`RedisQueue` (Redis Streams with a consumer group: XREADGROUP to take, XAUTOCLAIM to take
over the entries of a consumer whose lease ran out, a list per lane for order). Why
Streams and not a job library: docs/delivery.md.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

from bot.errors import SwitchboardError

DEDUPE_SECONDS = 24 * 3600  # platforms retry for minutes (Slack) to a day (Telegram)
LEASE_SECONDS = 30.0


class QueueUnavailable(SwitchboardError):
    """The queue's store can't be reached: the delivery must not be acknowledged."""


@dataclass(frozen=True)
class Job:
    """One platform delivery to process: what the channel stored at the door."""

    id: str  # the delivery's identity (dedupe key), e.g. "slack:T1:C1:1700000000.000100"
    channel: str  # the channel that processes it
    lane: str  # jobs of one lane run one at a time, in order
    payload: dict[str, Any]
    enqueued: float
    attempts: int = 0  # how many times it was taken before this one
    outbox: dict[str, Any] = field(default_factory=dict)  # what a previous attempt saved (e.g. the reply)
    receipt: str = ""  # the backend's handle on this taking


@dataclass(frozen=True)
class QueueStats:
    depth: int  # jobs not finished
    oldest: float  # age in seconds of the oldest unfinished job (0 when none)
    dead: int  # dead letters kept


class Queue(Protocol):
    async def put(self, job_id: str, channel: str, lane: str, payload: dict[str, Any]) -> bool: ...

    async def take(self, consumer: str, wait: float = 1.0) -> Job | None: ...

    async def extend(self, job: Job) -> None: ...

    async def save(self, job: Job, outbox: dict[str, Any]) -> None: ...

    async def done(self, job: Job, outcome: str) -> None: ...

    async def retry(self, job: Job, delay: float) -> None: ...

    async def dead(self, job: Job, reason: str) -> None: ...

    async def stats(self) -> QueueStats: ...

    async def close(self) -> None: ...


def consumer_name() -> str:
    """host:pid:random: unique per process, so a restarted process is a new consumer."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _takeable(row: tuple, now: float) -> bool:
    """A lane head from _TAKEABLE that may be taken now: not leased to a live consumer."""
    _, state, holder, lease_until = row
    return not (state == "leased" and lease_until > now and _alive(holder))


def _alive(consumer: str) -> bool:
    """False only when the consumer is a process of this host that no longer exists."""
    host, _, rest = consumer.partition(":")
    pid = rest.split(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Wakeup:
    """Wakes the takers of this process when a job is put or finished here; other
    processes' puts are seen at the next poll."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def notify(self) -> None:
        if self._event is not None:
            self._event.set()

    async def wait(self, seconds: float) -> None:
        if self._event is None:
            self._event = asyncio.Event()
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        self._event.clear()


# -- SQLite ----------------------------------------------------------------------------------
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    lane TEXT NOT NULL,
    payload TEXT NOT NULL,
    outbox TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,          -- ready | leased | done | dead
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    consumer TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0,
    enqueued REAL NOT NULL,
    finished REAL NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (lane, seq) WHERE state IN ('ready', 'leased');
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished) WHERE state IN ('done', 'dead');
"""

# The head of every lane (its oldest unfinished job), if it can be taken now.
_TAKEABLE = """
SELECT seq, state, consumer, lease_until FROM jobs AS j
WHERE state IN ('ready', 'leased')
  AND seq = (SELECT MIN(seq) FROM jobs WHERE lane = j.lane AND state IN ('ready', 'leased'))
  AND ((state = 'ready' AND not_before <= :now) OR state = 'leased')
ORDER BY seq LIMIT 50
"""


class _Batches:
    """Puts that arrive together (a burst at the door) written by one call of `write(rows)`
    (a group commit, a pipeline): per put, a round trip and a commit cost the door more than
    the write itself. Each caller gets its own result, or the error that stopped it: one
    `write` raised, or an exception in its place among the results. The writing is a task of
    its own, so a caller that gives up (cancelled) does not stop the others' writes."""

    def __init__(self, write: Callable[[list[Any]], Awaitable[list[Any]]]):
        self._write = write
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._drainer: asyncio.Future | None = None

    async def submit(self, row: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._drainer is None or self._drainer.done() or self._drainer.get_loop() is not future.get_loop():
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._write([row for row, _ in batch])
            except Exception as exc:  # QueueUnavailable: each caller hears it
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results):
                if future.done() or future.get_loop().is_closed():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


class SqliteQueue:
    """`Queue` in an SQLite file (WAL), for the processes of one machine."""

    def __init__(self, path: str | Path, lease: float = LEASE_SECONDS, dedupe: float = DEDUPE_SECONDS):
        self.path = Path(path)
        self.lease, self.dedupe = lease, dedupe
        self._mutex = threading.Lock()
        self._wakeup = _Wakeup()
        self._purged = 0.0
        self._puts = _Batches(self._write)  # a group commit per burst
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            # the door's own connection (`_insert_now`): no busy wait, used from the event loop only
            self._door = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=0)
        except sqlite3.Error as exc:
            raise QueueUnavailable(f"cannot open the delivery queue {self.path}: {exc}") from exc

    def _tx(self, work):
        """Run `work(db)` in one write transaction (BEGIN IMMEDIATE: atomic across processes)."""
        with self._mutex:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                return self._within(self._db, work)
            except sqlite3.Error as exc:
                raise QueueUnavailable(f"delivery queue {self.path}: {exc}") from exc

    @staticmethod
    def _within(db: sqlite3.Connection, work):
        """`work(db)` in the transaction just begun on `db`: committed, or rolled back and raised."""
        try:
            result = work(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return result

    async def put(self, job_id: str, channel: str, lane: str, payload: dict[str, Any]) -> bool:
        """Stored when this returns. Puts that arrive together (a burst at the door) are
        written by one transaction (a group commit, `_Batches`)."""
        added = await self._puts.submit((job_id, channel, lane, json.dumps(payload), time.time()))
        if added:
            self._wakeup.notify()
        return added

    async def _write(self, rows: list[tuple]) -> list[bool]:
        added = self._insert_now(rows)
        if added is None:  # another writer holds the lock: a thread waits for it
            added = await asyncio.to_thread(self._tx, lambda db: self._insert(db, rows))
        return added

    def _insert_now(self, rows: list[tuple]) -> list[bool] | None:
        """The batch written from the event loop's own thread, on a connection that never
        waits for the write lock: a WAL commit takes a fraction of a millisecond, less than
        handing the batch to a thread and taking the interpreter lock back. None when the
        lock is held (by this process's workers or another process): `_tx` in a thread then."""
        try:
            self._door.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return None
        try:
            return self._within(self._door, lambda db: self._insert(db, rows))
        except sqlite3.Error as exc:
            raise QueueUnavailable(f"delivery queue {self.path}: {exc}") from exc

    def _insert(self, db: sqlite3.Connection, rows: list[tuple]) -> list[bool]:
        added = []
        for row in rows:
            cursor = db.execute("INSERT OR IGNORE INTO jobs (id, channel, lane, payload, state, enqueued) "
                                "VALUES (?, ?, ?, ?, 'ready', ?)", row)
            added.append(cursor.rowcount == 1)
        now = time.time()
        if any(added) and now - self._purged > 600:
            db.execute("DELETE FROM jobs WHERE state IN ('done', 'dead') AND finished < ?", (now - self.dedupe,))
            self._purged = now
        return added

    def _take(self, consumer: str) -> Job | None:
        now = time.time()
        with self._mutex:  # looked at first without the write lock: an idle worker's poll never
            try:           # makes the door's inserts wait (in this process or in another)
                candidates = self._db.execute(_TAKEABLE, {"now": now}).fetchall()
            except sqlite3.Error as exc:
                raise QueueUnavailable(f"delivery queue {self.path}: {exc}") from exc
        if not any(_takeable(row, now) for row in candidates):
            return None

        def claim(db: sqlite3.Connection) -> Job | None:
            for seq, state, holder, lease_until in db.execute(_TAKEABLE, {"now": now}).fetchall():
                if not _takeable((seq, state, holder, lease_until), now):
                    continue  # its lane is busy
                db.execute("UPDATE jobs SET state = 'leased', consumer = ?, lease_until = ?, "
                           "attempts = attempts + (CASE WHEN state = 'leased' THEN 1 ELSE 0 END) WHERE seq = ?",
                           (consumer, now + self.lease, seq))
                row = db.execute("SELECT id, channel, lane, payload, enqueued, attempts, outbox FROM jobs "
                                 "WHERE seq = ?", (seq,)).fetchone()
                return Job(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], json.loads(row[6]),
                           receipt=f"{seq}:{consumer}")
            return None

        return self._tx(claim)

    async def take(self, consumer: str, wait: float = 1.0) -> Job | None:
        job = await asyncio.to_thread(self._take, consumer)
        if job is None:  # this process's puts wake us at once; another process's are seen within 0.25 s
            await self._wakeup.wait(min(wait, 0.25))
            job = await asyncio.to_thread(self._take, consumer)
        return job

    def _update(self, job: Job, sql: str, params: tuple) -> None:
        seq, consumer = job.receipt.split(":", 1)
        self._tx(lambda db: db.execute(sql + " WHERE seq = ? AND consumer = ? AND state = 'leased'",
                                       (*params, int(seq), consumer)))

    async def extend(self, job: Job) -> None:
        await asyncio.to_thread(self._update, job, "UPDATE jobs SET lease_until = ?", (time.time() + self.lease,))

    async def save(self, job: Job, outbox: dict[str, Any]) -> None:
        await asyncio.to_thread(self._update, job, "UPDATE jobs SET outbox = ?", (json.dumps(outbox),))

    async def done(self, job: Job, outcome: str) -> None:
        await asyncio.to_thread(self._update, job, "UPDATE jobs SET state = 'done', finished = ?, outcome = ?, "
                                "outbox = '{}', payload = '{}'", (time.time(), outcome))
        self._wakeup.notify()

    async def retry(self, job: Job, delay: float) -> None:
        await asyncio.to_thread(self._update, job, "UPDATE jobs SET state = 'ready', consumer = '', "
                                "attempts = attempts + 1, not_before = ?", (time.time() + delay,))
        self._wakeup.notify()

    async def dead(self, job: Job, reason: str) -> None:
        await asyncio.to_thread(self._update, job, "UPDATE jobs SET state = 'dead', finished = ?, outcome = ?",
                                (time.time(), reason[:500]))
        self._wakeup.notify()

    async def stats(self) -> QueueStats:
        def read(db: sqlite3.Connection) -> QueueStats:
            depth, first = db.execute("SELECT COUNT(*), MIN(enqueued) FROM jobs "
                                      "WHERE state IN ('ready', 'leased')").fetchone()
            dead = db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'dead'").fetchone()[0]
            return QueueStats(depth, max(0.0, time.time() - first) if first else 0.0, dead)

        return await asyncio.to_thread(self._tx, read)

    async def close(self) -> None:
        with self._mutex:
            self._db.close()
            self._door.close()


# -- Redis -----------------------------------------------------------------------------------
# put: claim the id, append to the stream, then the entry id to its lane's list (one script,
# so a crash can't leave a claimed id without its job).
_PUT = """
if redis.call('SET', KEYS[1], 'queued', 'NX', 'EX', ARGV[1]) == false then return 0 end
local entry = redis.call('XADD', KEYS[2], '*', 'job', ARGV[2])
redis.call('RPUSH', KEYS[3], entry)
redis.call('HSET', KEYS[4], entry, ARGV[3])
return entry
"""
# finish: ack and delete the entry, pop it from its lane (it is the head), mark the id
_FINISH = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('LINDEX', KEYS[2], 0) == ARGV[2] then redis.call('LPOP', KEYS[2]) else redis.call('LREM', KEYS[2], 1, ARGV[2]) end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[5], ARGV[2])
redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[4])
return 1
"""


class RedisQueue:
    """`Queue` on Redis Streams: one stream, one consumer group, a list per lane.

    Keys (prefix `sb:q:`): `stream` (entries `job` = JSON), `lane:{lane}` (entry ids in put
    order: a job runs only at its lane's head), `lanes` (a hash entry → lane, to find a
    reclaimed entry's lane), `id:{id}` (queued → done/dead, with the dedupe TTL),
    `outbox` (entry → JSON saved by a previous attempt), `attempts` (entry → count),
    `dead` (a stream of dead letters). A taken entry that is not its lane's head waits in
    its taker's pending list (its lease renewed) until it is.
    """

    GROUP = "answers"

    def __init__(self, url: str, lease: float = LEASE_SECONDS, dedupe: float = DEDUPE_SECONDS,
                 prefix: str = "sb:q:"):
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.lease, self.dedupe, self.prefix = lease, dedupe, prefix
        self.stream = prefix + "stream"
        self._put = self.client.register_script(_PUT)
        self._finish = self.client.register_script(_FINISH)
        self._group_ready = False
        self._held: dict[str, dict[str, Any]] = {}  # entries this process took and hasn't finished
        self._wakeup = _Wakeup()
        self._reclaimed = 0.0
        self._puts = _Batches(self._write)  # a pipeline per burst

    async def _call(self, coroutine):
        from redis.exceptions import RedisError

        try:
            return await coroutine
        except RedisError as exc:
            if "NOGROUP" in str(exc):  # Redis came back without its data: make the group again
                self._group_ready = False
            raise QueueUnavailable(f"delivery queue (Redis): {exc}") from exc

    async def _group(self) -> None:
        if self._group_ready:
            return
        from redis.exceptions import ResponseError

        try:
            await self._call(self.client.xgroup_create(self.stream, self.GROUP, id="0", mkstream=True))
        except QueueUnavailable as exc:
            if not isinstance(exc.__cause__, ResponseError) or "BUSYGROUP" not in str(exc.__cause__):
                raise
        self._group_ready = True

    async def put(self, job_id: str, channel: str, lane: str, payload: dict[str, Any]) -> bool:
        """Stored when this returns. Puts that arrive together (a burst at the door) go to
        Redis as one pipeline (`_Batches`), in their callers' order."""
        data = json.dumps({"id": job_id, "channel": channel, "lane": lane, "payload": payload, "at": time.time()})
        entry = await self._puts.submit((job_id, lane, data))
        if entry:
            self._wakeup.notify()
        return bool(entry)

    async def _write(self, rows: list[tuple[str, str, str]]) -> list[Any]:
        await self._group()
        entries = await self._call(self._put_all(rows))
        # a put's own error is its caller's alone: the others were stored
        return [QueueUnavailable(f"delivery queue (Redis): {e}") if isinstance(e, Exception) else e for e in entries]

    async def _put_all(self, rows: list[tuple[str, str, str]]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.scripts.add(self._put)  # loaded first if Redis lost it (a restart without its data)
            for job_id, lane, data in rows:
                pipe.evalsha(self._put.sha, 4, self.prefix + "id:" + job_id, self.stream,
                             self.prefix + "lane:" + lane, self.prefix + "lanes", int(self.dedupe), data, lane)
            return await pipe.execute(raise_on_error=False)

    async def _fetch(self, consumer: str, block_ms: int | None) -> int:
        """New entries into this process's held set (and other consumers' expired ones)."""
        now = time.monotonic()
        if now - self._reclaimed > self.lease / 3:
            self._reclaimed = now
            _, claimed, *_ = await self._call(self.client.xautoclaim(
                self.stream, self.GROUP, consumer, min_idle_time=int(self.lease * 1000), count=50))
            for entry, fields in claimed:
                await self._hold(entry, fields, consumer, reclaimed=True)
        # One at a time: an entry read here waits here for its lane, so don't hoard other lanes'.
        read = await self._call(self.client.xreadgroup(self.GROUP, consumer, {self.stream: ">"}, count=1,
                                                       block=block_ms))
        got = 0
        for _, entries in read or []:
            for entry, fields in entries:
                await self._hold(entry, fields, consumer)
                got += 1
        return got

    async def _hold(self, entry: bytes, fields: dict | None, consumer: str, reclaimed: bool = False) -> None:
        key = entry.decode() if isinstance(entry, bytes) else entry
        if key in self._held:
            self._held[key]["consumer"] = consumer
            return
        if not fields:  # deleted meanwhile (finished by its first taker)
            await self._call(self.client.xack(self.stream, self.GROUP, key))
            return
        data = json.loads(fields[b"job"])
        attempts = 0
        if reclaimed:
            attempts = await self._call(self.client.hincrby(self.prefix + "attempts", key, 1))
        self._held[key] = {**data, "attempts": attempts, "consumer": consumer, "not_before": 0.0, "busy": False}

    async def take(self, consumer: str, wait: float = 1.0) -> Job | None:
        await self._group()
        job = await self._runnable(consumer)
        if job is not None:
            return job
        for _ in range(20):  # read until something can run (or nothing new is there)
            got = await self._fetch(consumer, None if self._held else max(1, int(wait * 1000)))
            job = await self._runnable(consumer)
            if job is not None or not got:
                break
        if job is None and self._held:
            await self._wakeup.wait(min(wait, 0.2))  # held entries wait for their lane's head
            await self._renew(consumer)
            job = await self._runnable(consumer)
        return job

    async def _runnable(self, consumer: str) -> Job | None:
        now = time.time()
        for entry, held in list(self._held.items()):
            if held["busy"] or held["not_before"] > now or held["consumer"] != consumer:
                continue
            held["busy"] = True  # before any await: another task of this process may look too
            try:
                head = await self._call(self.client.lindex(self.prefix + "lane:" + held["lane"], 0))
            except QueueUnavailable:
                held["busy"] = False
                raise
            # Redis restarted without its data lost the lane: the job held here is all there is
            lost = head is None and await self._call(self.client.get(self.prefix + "id:" + held["id"])) is None
            if not lost and (head is None or head.decode() != entry):
                held["busy"] = False
                continue
            outbox = await self._call(self.client.hget(self.prefix + "outbox", entry))
            return Job(held["id"], held["channel"], held["lane"], held["payload"], held["at"], held["attempts"],
                       json.loads(outbox) if outbox else {}, receipt=entry)
        return None

    async def _renew(self, consumer: str) -> None:
        """Keep the entries this process holds from being reclaimed (XCLAIM resets idle time)."""
        mine = [entry for entry, held in self._held.items() if held["consumer"] == consumer]
        if mine:
            claimed = await self._call(self.client.xclaim(self.stream, self.GROUP, consumer, 0, mine, justid=True))
            kept = {c.decode() if isinstance(c, bytes) else c for c in claimed}
            for entry in mine:
                if entry not in kept:  # taken over (our lease ran out), or deleted
                    self._held.pop(entry, None)

    async def extend(self, job: Job) -> None:
        held = self._held.get(job.receipt)
        if held is not None:
            await self._renew(held["consumer"])

    async def save(self, job: Job, outbox: dict[str, Any]) -> None:
        await self._call(self.client.hset(self.prefix + "outbox", job.receipt, json.dumps(outbox)))

    async def _close(self, job: Job, state: str) -> None:
        await self._call(self._finish(
            keys=[self.stream, self.prefix + "lane:" + job.lane, self.prefix + "lanes", self.prefix + "id:" + job.id,
                  self.prefix + "outbox"],
            args=[self.GROUP, job.receipt, state, int(self.dedupe)]))
        await self._call(self.client.hdel(self.prefix + "attempts", job.receipt))
        self._held.pop(job.receipt, None)
        self._wakeup.notify()

    async def done(self, job: Job, outcome: str) -> None:
        await self._close(job, "done")

    async def retry(self, job: Job, delay: float) -> None:
        held = self._held.get(job.receipt)
        if held is not None:  # it stays held (and its lane's head): taken again after the delay
            held.update(busy=False, not_before=time.time() + delay, attempts=held["attempts"] + 1)
            self._wakeup.notify()
            try:  # the count is best effort: Redis being down is often why we retry
                await self._call(self.client.hincrby(self.prefix + "attempts", job.receipt, 1))
            except QueueUnavailable:
                pass

    async def dead(self, job: Job, reason: str) -> None:
        await self._call(self.client.xadd(self.prefix + "dead", {
            "job": json.dumps({"id": job.id, "channel": job.channel, "lane": job.lane, "payload": job.payload,
                               "reason": reason[:500], "at": time.time()})}, maxlen=10_000, approximate=True))
        await self._close(job, "dead")

    async def stats(self) -> QueueStats:
        await self._group()
        groups = await self._call(self.client.xinfo_groups(self.stream))
        group = next((g for g in groups if g["name"] in (self.GROUP, self.GROUP.encode())), None)
        pending = int(group["pending"]) if group else 0
        lag = int(group.get("lag") or 0) if group else 0
        first = await self._call(self.client.xrange(self.stream, count=1))
        oldest = max(0.0, time.time() - int(first[0][0].decode().split("-")[0]) / 1000) if first else 0.0
        dead = await self._call(self.client.xlen(self.prefix + "dead"))
        return QueueStats(pending + lag, oldest, int(dead))

    async def close(self) -> None:
        await self.client.aclose()


def open_queue(redis_url: str, home: Path, lease: float = LEASE_SECONDS) -> Queue:
    """Redis Streams when REDIS_URL is set, else the SQLite queue in the data folder."""
    if redis_url:
        return RedisQueue(redis_url, lease=lease)
    return SqliteQueue(Path(home) / "queue.sqlite3", lease=lease)
