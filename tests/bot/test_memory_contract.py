"""One contract, three stores: in-process, SQLite, and a real Redis server."""
from __future__ import annotations

import asyncio

import pytest
import redis

from bot.errors import ConversationBusy, MemoryUnavailable
from bot.memory import HISTORY_TOKENS, InMemoryMemory, estimate_tokens, remember
from bot.memory_redis import RedisMemory
from bot.memory_sqlite import SqliteMemory
from bot.types import Conversation, Turn


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request, tmp_path):
    if request.param == "memory":
        backend = InMemoryMemory(lock_timeout=2)
    elif request.param == "sqlite":
        backend = SqliteMemory(tmp_path / "memory.sqlite3", lock_timeout=2)
    else:
        url = request.getfixturevalue("redis_url")
        redis.Redis.from_url(url).flushdb()
        backend = RedisMemory(url, ttl=3600, lock_timeout=2)
    yield backend
    await backend.close()


async def test_a_new_conversation_is_empty(store):
    conversation = await store.load("web:new")
    assert conversation == Conversation(key="web:new")


async def test_saved_turns_come_back(store):
    saved = remember(Conversation("k1"), Turn("user", "Délais pour la Belgique ?", query="q"),
                     Turn("assistant", "3 à 5 jours", {"id": "r_1", "answer": "3 à 5 jours"}),
                     language="fr", profile="support")
    await store.save(saved)
    assert await store.load("k1") == saved


async def test_forget_drops_the_conversation(store):
    await store.save(remember(Conversation("k2"), Turn("user", "hi")))
    await store.forget("k2")
    assert not (await store.load("k2")).turns


async def test_turns_of_one_conversation_are_serialized(store):
    order: list[str] = []
    first_inside = asyncio.Event()

    async def first():
        async with store.lock("k3"):
            order.append("first in")
            first_inside.set()
            await asyncio.sleep(0)  # yield so the second turn really tries to enter
            for _ in range(20):
                await asyncio.sleep(0)
            order.append("first out")

    async def second():
        await first_inside.wait()
        async with store.lock("k3"):
            order.append("second in")

    await asyncio.gather(first(), second())
    assert order == ["first in", "first out", "second in"]


async def test_other_conversations_are_not_blocked(store):
    async with store.lock("a"):
        async with store.lock("b"):
            pass


async def test_a_lock_held_too_long_is_reported_busy(store):
    store.lock_timeout = 0.2
    async with store.lock("k4"):
        with pytest.raises(ConversationBusy):
            async with store.lock("k4"):
                pass


def test_history_is_bounded_and_older_questions_condensed():
    conversation = Conversation("k")
    for n in range(40):
        conversation = remember(conversation, Turn("user", f"question {n} " + "about delivery " * 20),
                                Turn("assistant", "answer " * 60))
    assert sum(estimate_tokens(t.text) for t in conversation.turns) <= HISTORY_TOKENS
    assert conversation.turns[-1].role == "assistant"
    assert "question 0 " not in conversation.summary and conversation.summary.count("\n") == 7
    assert conversation.summary.splitlines()[-1].startswith(f"question {39 - len(conversation.turns) // 2}")


async def test_redis_keys_all_have_a_ttl(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    store = RedisMemory(redis_url, ttl=600)
    await store.save(remember(Conversation("slack:T1:C1:1.2"), Turn("user", "hello")))
    async with store.lock("slack:T1:C1:1.2"):
        keys = client.keys("sb:*")
        assert {k.decode() for k in keys} == {"sb:conv:slack:T1:C1:1.2", "sb:lock:slack:T1:C1:1.2"}
        assert all(0 < client.pttl(k) <= 600_000 for k in keys)
    await store.close()


async def test_redis_locks_hold_across_clients(redis_url):
    one, two = RedisMemory(redis_url, lock_timeout=0.2), RedisMemory(redis_url, lock_timeout=0.2)
    async with one.lock("shared"):
        with pytest.raises(ConversationBusy):
            async with two.lock("shared"):
                pass
    async with two.lock("shared"):
        pass
    await one.close()
    await two.close()


async def test_unreachable_redis_is_a_clear_error():
    from tests.fakes.server import free_port

    store = RedisMemory(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(MemoryUnavailable, match="Redis unavailable"):
        await store.load("k")
    await store.close()


async def test_a_delivery_is_claimed_once(store):
    assert await store.first_delivery("slack:T1:C1:1.1") is True
    assert await store.first_delivery("slack:T1:C1:1.1") is False
    assert await store.first_delivery("slack:T1:C1:1.2") is True


async def test_concurrent_claims_of_one_delivery_have_one_winner(store):
    claims = await asyncio.gather(*(store.first_delivery("telegram:update:7") for _ in range(20)))
    assert claims.count(True) == 1


async def test_a_claim_expires_after_its_ttl(store):
    assert await store.first_delivery("k-expiring", ttl=60) is True
    if isinstance(store, RedisMemory):  # the server expires it: check it was told to
        assert 0 < await store.client.ttl(store._key("seen", "k-expiring")) <= 60
        return
    _age(store, "k-expiring")
    assert await store.first_delivery("k-expiring", ttl=60) is True
    assert await store.first_delivery("k-expiring", ttl=60) is False


def _age(store, key: str) -> None:
    """Move a claim's expiry into the past (no sleeping in tests)."""
    if isinstance(store, SqliteMemory):
        store._run("UPDATE deliveries SET expires = 0 WHERE key = ?", (key,))
    else:
        store._seen[key] = 0.0


async def test_claims_hold_across_processes_sharing_a_store(tmp_path, redis_url):
    one, two = SqliteMemory(tmp_path / "m.sqlite3"), SqliteMemory(tmp_path / "m.sqlite3")
    assert [await one.first_delivery("e1"), await two.first_delivery("e1")] == [True, False]
    r1, r2 = RedisMemory(redis_url), RedisMemory(redis_url)
    await r1.client.delete("sb:seen:e2")
    assert [await r1.first_delivery("e2"), await r2.first_delivery("e2")] == [True, False]
    assert 0 < await r1.client.ttl("sb:seen:e2") <= 24 * 3600
    for store in (one, two, r1, r2):
        await store.close()


async def test_a_tally_counts_hits_within_its_window(store):
    key = f"tally-{type(store).__name__}"
    assert [await store.tally(key, 3600) for _ in range(3)] == [1, 2, 3]
    assert await store.tally(key + "-other", 3600) == 1
    if isinstance(store, RedisMemory):  # the server ends the window: check it was told to, once
        assert 0 < await store.client.ttl(store._key("tally", key)) <= 3600
        return
    if isinstance(store, SqliteMemory):  # end the window (no sleeping in tests)
        store._run("UPDATE tallies SET ends = 0 WHERE key = ?", (key,))
    else:
        store._tallies[key] = (3, 0.0)
    assert await store.tally(key, 3600) == 1


async def test_concurrent_tallies_lose_no_hit(store):
    counts = await asyncio.gather(*(store.tally(f"tally-race-{type(store).__name__}", 60) for _ in range(20)))
    assert sorted(counts) == list(range(1, 21))


async def test_a_tally_can_be_read_without_counting(store):
    key = f"tally-peek-{type(store).__name__}"
    assert await store.tally(key, 3600, 0) == 0
    assert await store.tally(key, 3600) == 1
    assert [await store.tally(key, 3600, 0) for _ in range(3)] == [1, 1, 1]
