"""Two "hosts" sharing nothing but the PostgreSQL index: separate data folders
(SWITCHBOARD_HOME, so separate event databases, memory and queues), the same INDEX_URL.
A document synced by one host is answered by the other (an open runtime, without restart,
and a fresh `switchboard ask` process); a source one host is syncing is refused to the
other (`switchboard sync` exits 2), which may sync it once the lease is released or has
expired (its holder died)."""
from __future__ import annotations

import json

import pytest

from bot.runtime import Runtime
from bot.settings import Settings
from bot.types import Message, User
from knowledge.sync import Busy, lease_lock
from tests.adapters.test_cli import run
from tests.pgvector_service import migrated_schema

PROFILES = "[profiles.support]\ndefault = true\nsources = ['kb']\nmin_confidence = 0.3\n"


@pytest.fixture
async def hosts(tmp_path, pgvector_url, embedder):
    """(environment of host A, of host B, A's runtime, B's runtime, the knowledge folder)."""
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "returns.md").write_text("# Returns\n\nYou have 30 days to return an item for a full refund.\n")
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(PROFILES)
    with migrated_schema(pgvector_url) as schema:
        envs = [{"SWITCHBOARD_HOME": str(tmp_path / name), "INDEX_URL": pgvector_url, "INDEX_SCHEMA": schema,
                 "SWITCHBOARD_SAMPLE": "0", "SWITCHBOARD_PROFILES": str(profiles), "SWITCHBOARD_INDEX": None,
                 "DATABASE_URL": None, "REDIS_URL": None} for name in ("host-a", "host-b")]
        runtimes = [Runtime.open(Settings.from_env({k: v for k, v in env.items() if v is not None}), embedder=embedder)
                    for env in envs]
        try:
            yield envs[0], envs[1], runtimes[0], runtimes[1], folder
        finally:
            for runtime in runtimes:
                await runtime.close()


async def ask(runtime: Runtime, text: str):
    return await runtime.engine.handle(Message(conversation=f"test:{text}", text=text, user=User(id="u"),
                                               channel="web", private=True))


async def test_a_document_synced_on_one_host_is_answered_on_the_other(hosts):
    env_a, env_b, host_a, host_b, folder = hosts
    assert host_a.settings.home != host_b.settings.home
    assert not (await ask(host_b, "How long do I have to return an item?")).answered  # nothing indexed yet
    host_a.index.add_source("kb", "folder", {"path": str(folder)})
    host_a.syncer().sync("kb")
    reply = await ask(host_b, "How long do I have to return an item?")
    assert reply.answered and reply.citations[0].document_id == "returns" and "30 days" in reply.answer
    (folder / "warranty.md").write_text("# Warranty\n\nEvery lamp carries a two-year warranty against defects.\n")
    host_a.syncer().sync("kb")
    reply = await ask(host_b, "What warranty does a lamp have?")  # the same open runtime: no restart
    assert reply.answered and reply.citations[0].document_id == "warranty", reply.answer
    # a process of its own on host B, as a web worker started after the sync
    result = run("ask", "How long do I have to return an item?", "--json", env=env_b)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["citations"][0]["document_id"] == "returns"


def test_a_sync_lease_held_on_one_host_is_respected_on_the_other(hosts):
    env_a, env_b, host_a, host_b, folder = hosts
    host_a.index.add_source("kb", "folder", {"path": str(folder)})
    with lease_lock(host_a.index)("kb") as mine:
        assert mine
        refused = run("sync", "kb", env=env_b)  # another host's worker, as a process
        assert refused.returncode == 2 and "being synced by another process" in refused.stderr, refused.stderr
        with pytest.raises(Busy):
            host_b.syncer().sync("kb")
    assert host_b.syncer().sync("kb").added == 1  # released: B syncs it
    assert host_a.index.lease("kb", "dead-worker", -1)  # a holder that died: its lease has run out
    assert host_b.syncer().sync("kb").unchanged == 1
