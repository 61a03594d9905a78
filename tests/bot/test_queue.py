"""The delivery queue's contract, on both backends: the SQLite file and Redis Streams (a real
redis-server). Two queue objects on one store stand for two processes."""
from __future__ import annotations

import uuid

import pytest

from bot.queue import QueueUnavailable, RedisQueue, SqliteQueue


@pytest.fixture(params=["sqlite", "redis"])
def make_queue(request, tmp_path, redis_url):
    prefix = f"t{uuid.uuid4().hex[:8]}:"

    def make(lease: float = 30.0):
        if request.param == "sqlite":
            queue = SqliteQueue(tmp_path / "queue.sqlite3", lease=lease)
        else:
            queue = RedisQueue(redis_url, lease=lease, prefix=prefix)
        return queue

    return make


async def _close(*queues):
    for queue in queues:
        await queue.close()


async def test_an_id_is_queued_once_even_after_it_is_done(make_queue):
    queue = make_queue()
    assert await queue.put("d1", "slack", "c1", {"text": "hello"})
    assert not await queue.put("d1", "slack", "c1", {"text": "hello"})
    job = await queue.take("w1", wait=0.1)
    assert job is not None and job.id == "d1" and job.payload == {"text": "hello"} and job.attempts == 0
    await queue.done(job, "answered")
    assert not await queue.put("d1", "slack", "c1", {"text": "hello"})
    assert await queue.take("w1", wait=0.05) is None
    await _close(queue)


async def test_a_lane_runs_one_job_at_a_time_in_order_while_other_lanes_go_on(make_queue):
    one, two = make_queue(), make_queue()
    for job_id, lane in (("a1", "A"), ("a2", "A"), ("b1", "B"), ("a3", "A")):
        assert await one.put(job_id, "telegram", lane, {"id": job_id})
    first = await one.take("w1", wait=0.1)
    assert first.id == "a1"
    other = await two.take("w2", wait=0.1)
    assert other.id == "b1"  # a2 waits for a1
    assert await two.take("w2", wait=0.05) is None
    await two.done(other, "answered")
    await one.done(first, "answered")
    taken = []
    for _ in range(2):
        job = await two.take("w2", wait=0.2)
        taken.append(job.id)
        await two.done(job, "answered")
    assert taken == ["a2", "a3"]
    await _close(one, two)


async def test_a_job_whose_lease_ran_out_is_taken_again_with_its_outbox(make_queue):
    dead = make_queue(lease=0.0)  # its lease is over as soon as it is given
    assert await dead.put("d1", "slack", "c1", {"n": 1})
    job = await dead.take("crashed", wait=0.1)
    await dead.save(job, {"reply": {"answer": "kept"}})
    survivor = make_queue(lease=0.0)
    again = await survivor.take("w2", wait=0.2)
    assert again is not None and again.id == "d1"
    assert again.attempts == 1 and again.outbox == {"reply": {"answer": "kept"}}
    await survivor.done(again, "answered")
    stats = await survivor.stats()
    assert stats.depth == 0
    await _close(dead, survivor)


async def test_a_live_lease_is_respected(make_queue):
    one, two = make_queue(lease=60.0), make_queue(lease=60.0)
    await one.put("d1", "slack", "c1", {})
    assert (await one.take("w1", wait=0.1)).id == "d1"
    assert await two.take("w2", wait=0.05) is None
    await _close(one, two)


async def test_a_retried_job_keeps_its_place_in_its_lane(make_queue):
    queue = make_queue()
    await queue.put("x1", "teams", "L", {})
    await queue.put("x2", "teams", "L", {})
    job = await queue.take("w1", wait=0.1)
    await queue.save(job, {"sent": 1})
    await queue.retry(job, 30.0)  # not before 30 s: x2 must not overtake it
    assert await queue.take("w1", wait=0.05) is None
    await queue.put("y1", "teams", "M", {})
    assert (await queue.take("w1", wait=0.1)).id == "y1"
    await _close(queue)


async def test_retry_now_gives_the_job_back_counted(make_queue):
    queue = make_queue()
    await queue.put("x1", "teams", "L", {"a": 1})
    job = await queue.take("w1", wait=0.1)
    await queue.save(job, {"reply": "r"})
    await queue.retry(job, 0.0)
    again = await queue.take("w1", wait=0.1)
    assert again.id == "x1" and again.attempts == 1 and again.outbox == {"reply": "r"}
    await _close(queue)


async def test_dead_letters_are_counted_and_free_the_lane(make_queue):
    queue = make_queue()
    await queue.put("x1", "slack", "L", {})
    await queue.put("x2", "slack", "L", {})
    job = await queue.take("w1", wait=0.1)
    assert (await queue.stats()).depth == 2
    await queue.dead(job, "gave up")
    stats = await queue.stats()
    assert stats.dead == 1 and stats.depth == 1 and stats.oldest >= 0
    assert (await queue.take("w1", wait=0.1)).id == "x2"
    assert not await queue.put("x1", "slack", "L", {})  # a dead letter isn't queued again by a retry
    await _close(queue)


async def test_sqlite_notices_a_consumer_whose_process_is_gone_at_once(tmp_path):
    import socket

    queue = SqliteQueue(tmp_path / "q.sqlite3", lease=3600)
    await queue.put("d1", "web", "c", {})
    gone = f"{socket.gethostname()}:{2 ** 22 + 12345}:abc"  # a pid above pid_max: no such process
    assert (await queue.take(gone, wait=0.1)).id == "d1"
    again = await queue.take(f"{socket.gethostname()}:1:xyz", wait=0.1)
    assert again is not None and again.id == "d1" and again.attempts == 1
    await queue.close()


async def test_redis_down_is_a_clear_error():
    queue = RedisQueue("redis://127.0.0.1:1/0")
    with pytest.raises(QueueUnavailable, match="Redis"):
        await queue.put("d1", "slack", "c", {})
    await queue.close()


class Gate:
    """A pipeline handler whose jobs wait for the test to open the gate."""

    name = "gate"

    def __init__(self) -> None:
        import asyncio

        self.taken, self.open, self.done = asyncio.Event(), asyncio.Event(), []

    async def process(self, work) -> str:
        self.taken.set()
        await self.open.wait()
        self.done.append(work.job.id)
        return "answered"

    async def failed(self, work, error) -> None:
        raise AssertionError(f"not expected: {error!r}")


async def test_stopping_lets_the_answer_in_progress_finish(make_queue):
    """A deploy's SIGTERM: the pipeline stops taking jobs, and the one being answered is
    finished and marked done rather than left to its lease."""
    import asyncio

    from bot.delivery import Pipeline

    queue, gate = make_queue(), Gate()
    pipeline = Pipeline(queue, workers=1)
    pipeline.add(gate)
    await queue.put("d1", "gate", "c1", {})
    pipeline.start()
    await asyncio.wait_for(gate.taken.wait(), 30)
    stopping = asyncio.create_task(pipeline.stop(drain=30))
    await asyncio.sleep(0)  # the stop has begun: nothing new is taken from here on
    await queue.put("d2", "gate", "c2", {})
    gate.open.set()
    await stopping
    assert gate.done == ["d1"]
    assert (await queue.stats()).depth == 1  # d2 waits for the next process; d1 is done
    await _close(queue)


async def test_an_answer_that_outlasts_the_drain_stays_leased_for_the_next_process(make_queue):
    import asyncio

    from bot.delivery import Pipeline

    queue, gate = make_queue(lease=0.5), Gate()
    pipeline = Pipeline(queue, workers=1)
    pipeline.add(gate)
    await queue.put("d1", "gate", "c1", {})
    pipeline.start()
    await asyncio.wait_for(gate.taken.wait(), 30)
    await pipeline.stop(drain=0.05)  # cancelled: not done, not lost
    assert gate.done == [] and (await queue.stats()).depth == 1
    other = make_queue(lease=0.5)
    deadline = asyncio.get_running_loop().time() + 30
    while (job := await other.take("next", wait=0.2)) is None:  # after the lease
        assert asyncio.get_running_loop().time() < deadline
    assert job.id == "d1"
    await _close(queue, other)


async def test_a_burst_of_puts_is_stored_once_each_in_arrival_order(make_queue):
    """50 deliveries at once, a third of them sent twice in the same burst (Slack's retries,
    mention pairs): each id is new exactly once, all are stored, in the callers' order (one
    group commit on SQLite, one pipeline on Redis: `bot.queue._Batches`)."""
    import asyncio

    queue = make_queue()
    ids = [f"e{n}" for n in range(50)] + [f"e{n}" for n in range(0, 50, 3)]
    added = await asyncio.gather(*(queue.put(i, "slack", f"lane{int(i[1:]) % 5}", {"n": i}) for i in ids))
    for n in range(50):  # which of a pair wins is the store's order, not the callers'
        assert sum(a for i, a in zip(ids, added) if i == f"e{n}") == 1
    taken = []
    while (job := await queue.take("w1", wait=0.05)) is not None:
        taken.append(job.id)
        await queue.done(job, "answered")
    assert sorted(taken) == sorted(ids[:50])
    for lane in range(5):
        in_lane = [i for i in taken if int(i[1:]) % 5 == lane]
        assert in_lane == sorted(in_lane, key=lambda i: int(i[1:]))
    await _close(queue)


async def test_a_put_given_up_by_its_caller_does_not_stop_the_others(make_queue):
    import asyncio

    queue = make_queue()
    puts = [asyncio.ensure_future(queue.put(f"p{n}", "teams", "lane", {"n": n})) for n in range(10)]
    puts[0].cancel()  # the platform's connection dropped before the ack
    done = await asyncio.gather(*puts[1:])
    assert done == [True] * 9
    taken = []
    while (job := await queue.take("w1", wait=0.05)) is not None:
        taken.append(job.id)
        await queue.done(job, "answered")
    assert set(taken) >= {f"p{n}" for n in range(1, 10)}
    await _close(queue)


async def test_every_put_of_a_burst_hears_that_the_sqlite_queue_cannot_store_it(tmp_path):
    """A broken store fails each waiting put with QueueUnavailable (the door answers 503 and
    the platform delivers again), none hangs and none is reported stored."""
    import asyncio
    import sqlite3

    queue = SqliteQueue(tmp_path / "queue.sqlite3")
    other = sqlite3.connect(tmp_path / "queue.sqlite3")
    other.execute("DROP TABLE jobs")
    other.close()
    outcomes = await asyncio.gather(*(queue.put(f"x{n}", "slack", "lane", {}) for n in range(20)),
                                    return_exceptions=True)
    assert len(outcomes) == 20 and all(isinstance(o, QueueUnavailable) and "no such table" in str(o) for o in outcomes)
    await queue.close()


async def test_every_put_of_a_burst_hears_that_redis_went_away(redis_url):
    """Redis stops between two bursts: each waiting put fails with QueueUnavailable (503 at
    the door, the platform delivers again), none hangs; once it is back, puts are stored."""
    import asyncio

    from tests.services import redis_service

    with redis_service() as redis:
        queue = RedisQueue(redis.url, prefix=f"t{uuid.uuid4().hex[:8]}:")
        assert await queue.put("before", "slack", "lane", {}) is True
        redis.stop()
        outcomes = await asyncio.gather(*(queue.put(f"x{n}", "slack", "lane", {}) for n in range(20)),
                                        return_exceptions=True)
        assert len(outcomes) == 20 and all(isinstance(o, QueueUnavailable) for o in outcomes)
        redis.start()
        assert await asyncio.gather(*(queue.put(f"y{n}", "slack", "lane", {}) for n in range(5))) == [True] * 5
        await queue.close()


async def test_a_burst_after_redis_lost_its_scripts_is_stored(redis_url):
    """A Redis restarted without its data has no scripts: the batch loads its script again."""
    import asyncio

    import redis as sync_redis

    queue = RedisQueue(redis_url, prefix=f"t{uuid.uuid4().hex[:8]}:")
    assert await queue.put("before", "slack", "lane", {}) is True
    client = sync_redis.Redis.from_url(redis_url)
    client.script_flush()
    client.close()
    assert await asyncio.gather(*(queue.put(f"z{n}", "slack", "lane", {}) for n in range(10))) == [True] * 10
    taken = []
    while (job := await queue.take("w1", wait=0.05)) is not None:
        taken.append(job.id)
        await queue.done(job, "answered")
    assert taken == ["before"] + [f"z{n}" for n in range(10)]
    await queue.close()
