"""Sync end to end: sources as configured, the real notion-client against the local fake
Notion, the real index and embedder, and answers from the engine. An edit upstream shows
in the next answer, a deletion is no longer cited, a revoked token fails the source with a
message a person can act on and leaves the index alone, and two workers never sync one
source at once (Redis lock, and the index lease without Redis)."""
from __future__ import annotations

import json

import pytest

from bot.answering import ExtractiveAnswerer
from bot.engine import Engine
from bot.locks import redis_lock
from bot.memory import InMemoryMemory
from bot.profiles import load_profiles
from bot.types import Message, User
from knowledge.index import Index
from knowledge.retrieval import Retriever
from knowledge.sync import Busy, Syncer, UnknownSource, lease_lock
from tests.fakes.notion_api import FakeNotion, heading, paragraph
from tests.fakes.server import serve

PROFILES = """
[profiles.support]
default = true
name = "Support"
sources = ["wiki"]
min_confidence = 0.3

[profiles.hr]
name = "HR"
sources = ["handbook"]
min_confidence = 0.3
"""


@pytest.fixture
def notion():
    fake = FakeNotion(page_size=2)
    with serve(fake.app()) as url:
        fake.url = url
        yield fake


@pytest.fixture
def index(tmp_path):
    index = Index(tmp_path / "index.sqlite3")
    yield index
    index.close()


def add(index: Index, notion: FakeNotion, name: str = "wiki", **config) -> None:
    index.add_source(name, "notion", {"base_url": notion.url, "min_interval": 0, **config})


def syncer(index, embedder, notion, **options) -> Syncer:
    return Syncer(index, embedder, {"NOTION_TOKEN": notion.token}, clock=lambda: notion.now, **options)


@pytest.fixture
def engine(tmp_path, index, embedder, events):
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILES)
    return Engine(memory=InMemoryMemory(), retriever=Retriever(index, embedder), answerer=ExtractiveAnswerer(),
                  profiles=load_profiles(path), events=events)


def ask(text: str, n: int, profile: str = "support") -> Message:
    return Message(conversation=f"web:sync{n}", text=text, user=User(id="u"), channel="web", profile=profile)


def help_centre(notion: FakeNotion) -> dict[str, str]:
    return {
        "delivery": notion.add_page("Delivery times", [heading(1, "Belgium"),
                                                       paragraph("Parcels reach Belgium in three working days.")]),
        "returns": notion.add_page("Returns", [heading(1, "Returns"),
                                               paragraph("Unused items can be returned within 30 days.")]),
        "warranty": notion.add_page("Warranty", [heading(1, "Warranty"),
                                                 paragraph("Every lamp has a two-year warranty against defects.")]),
    }


async def test_an_edit_upstream_shows_in_the_next_answer_and_a_deletion_is_no_longer_cited(
        notion, index, embedder, engine):
    pages = help_centre(notion)
    notion.advance(600)
    add(index, notion)
    sync = syncer(index, embedder, notion)
    first = sync.sync("wiki")
    assert first.full and first.added == 3 and index.source("wiki").status == "success"
    reply = await engine.handle(ask("How many days does delivery to Belgium take?", 1))
    assert "three working days" in reply.answer and reply.citations[0].title == "Delivery times"

    notion.advance(600)
    notion.edit(pages["delivery"], blocks=[heading(1, "Belgium"),
                                           paragraph("Parcels reach Belgium in two working days.")])
    notion.archive(pages["warranty"])
    notion.advance(600)
    calls = len(notion.calls)
    changes = sync.sync("wiki")
    assert not changes.full and (changes.updated, changes.removed, changes.added) == (1, 1, 0)
    assert not any(c.path.endswith(f"{pages['returns']}/children") for c in notion.calls[calls:])  # unchanged: not read
    reply = await engine.handle(ask("How many days does delivery to Belgium take?", 2))
    assert "two working days" in reply.answer and "three" not in reply.answer
    warranty = await engine.handle(ask("How long is the warranty on a lamp?", 3))
    assert all(c.title != "Warranty" for c in warranty.citations)
    assert index.document_ids("wiki") == {pages["delivery"], pages["returns"]}


async def test_the_slim_pass_prunes_what_a_poll_cannot_see(notion, index, embedder, engine):
    pages = help_centre(notion)
    add(index, notion)
    sync = syncer(index, embedder, notion)
    sync.sync("wiki")
    notion.unshare(pages["returns"])  # no longer shared: no poll reports it, the listing no longer has it
    notion.advance(600)
    assert sync.sync("wiki").removed == 0
    assert sync.prune("wiki") == 1
    reply = await engine.handle(ask("Can unused items be returned?", 4))
    assert all(c.title != "Returns" for c in reply.citations)


def test_a_revoked_token_fails_the_source_with_an_actionable_message_and_keeps_the_index(
        notion, index, embedder, tmp_path):
    help_centre(notion)
    add(index, notion)
    sync = syncer(index, embedder, notion)
    sync.sync("wiki")
    before = index.stats()
    notion.revoke()
    notion.advance(600)
    with pytest.raises(Exception):
        sync.sync("wiki")
    info = index.source("wiki")
    assert info.status == "failed" and "reconnect the integration" in info.error and notion.token not in info.error
    assert index.stats() == before and len(index.document_ids("wiki")) == 3


def test_a_missing_credential_names_the_variable(notion, index, embedder):
    add(index, notion)
    with pytest.raises(Exception):
        Syncer(index, embedder, {}).sync("wiki")
    info = index.source("wiki")
    assert info.status == "failed" and "NOTION_TOKEN is not set" in info.error
    with pytest.raises(UnknownSource):
        Syncer(index, embedder, {}).sync("ghost")


async def test_sources_are_scoped_per_profile(notion, index, embedder, engine):
    help_centre(notion)
    handbook = FakeNotion()
    handbook.add_page("Paid leave", [heading(1, "Leave"), paragraph("Employees get 25 days of paid leave a year.")])
    with serve(handbook.app()) as url:
        handbook.url = url
        add(index, notion)
        add(index, handbook, name="handbook")
        syncer(index, embedder, notion).sync("wiki")
        Syncer(index, embedder, {"NOTION_TOKEN": handbook.token}).sync("handbook")
    hr = await engine.handle(ask("How many days of paid leave do employees get?", 5, profile="hr"))
    assert "25 days" in hr.answer
    support = await engine.handle(ask("How many days of paid leave do employees get?", 6))
    assert all(c.source == "wiki" for c in support.citations) and "25 days" not in support.answer


async def test_internal_pages_are_only_used_in_private_conversations(notion, index, embedder, tmp_path, events):
    notion.add_page("Escalation policy", [heading(1, "Refund limits"),
                                          paragraph("Agents may refund up to 150 euros without approval.")])
    add(index, notion, visibility="internal")
    syncer(index, embedder, notion).sync("wiki")
    path = tmp_path / "staff.toml"
    path.write_text('[profiles.staff]\ndefault = true\nname = "Staff"\ninternal = true\nmin_confidence = 0.3\n')
    staff = Engine(memory=InMemoryMemory(), retriever=Retriever(index, embedder), answerer=ExtractiveAnswerer(),
                   profiles=load_profiles(path), events=events)
    question = "How much may agents refund without approval?"
    private = await staff.handle(Message(conversation="slack:T:D1:1", text=question, user=User(id="u"),
                                         channel="slack", private=True))
    public = await staff.handle(Message(conversation="slack:T:C1:1", text=question, user=User(id="u"),
                                        channel="slack", private=False))
    assert "150 euros" in private.answer
    assert "150 euros" not in public.answer and not public.citations


def test_two_workers_never_sync_one_source_at_once(notion, index, embedder, redis_url, tmp_path):
    help_centre(notion)
    add(index, notion)
    lock = redis_lock(redis_url, prefix=f"sb:test-sync:{tmp_path.name}:")
    one, two = syncer(index, embedder, notion, lock=lock), syncer(index, embedder, notion, lock=lock)
    with lock("wiki") as held:  # worker one is syncing
        assert held
        calls = len(notion.calls)
        with pytest.raises(Busy):
            two.sync("wiki")
        assert len(notion.calls) == calls and index.source("wiki").status == "new"
    assert two.sync("wiki").added == 3  # released: the next round runs
    assert one.sync("wiki").added == 0


def test_without_redis_a_lease_in_the_index_keeps_two_processes_apart(notion, index, embedder, tmp_path):
    help_centre(notion)
    add(index, notion)
    other = Index(index.path)  # a second process's connection to the same file
    try:
        lease = lease_lock(index)
        with lease("wiki") as held:
            assert held
            with pytest.raises(Busy):
                syncer(other, embedder, notion, lock=lease_lock(other)).sync("wiki")
        assert syncer(other, embedder, notion, lock=lease_lock(other)).sync("wiki").added == 3
    finally:
        other.close()


def test_a_crash_mid_sync_resumes_from_the_same_cursor(notion, index, embedder):
    pages = help_centre(notion)
    add(index, notion)
    sync = syncer(index, embedder, notion)
    sync.sync("wiki")
    cursor = index.source("wiki").cursor
    notion.advance(600)
    notion.edit(pages["returns"], blocks=[paragraph("Unused items can be returned within 60 days.")])
    notion.fail(times=20, status=502, path="/children")  # the worker dies mid-way (bounded retries give up)
    with pytest.raises(Exception):
        sync.sync("wiki")
    assert index.source("wiki").cursor == cursor  # not moved: the next sync asks for the same changes
    assert index.source("wiki").status == "failed"
    notion._failures.clear()
    assert sync.sync("wiki").updated == 1
    assert json.dumps(index.source("wiki").config)  # the stored settings survive the connector's own


def test_a_first_sync_knows_its_size_and_keeps_every_page_read_ahead(notion, index, embedder):
    """More pages than the prefetch's look-ahead (knowledge/prefetch.py): all arrive, each once;
    the count for the progress bar is the pages a complete pass reads, and a poll has none."""
    ids = [notion.add_page(f"Store {i}", [paragraph(f"Store number {i} opens at {i % 12 + 7} o'clock.")])
           for i in range(70)]
    add(index, notion)
    sync = syncer(index, embedder, notion)
    assert sync.expected("wiki") == 70
    seen = []
    report = sync.sync("wiki", progress=lambda r, item: seen.append(item.id))
    assert report.added == 70 and len(seen) == 70 and set(seen) == set(index.document_ids("wiki")) == set(ids)
    assert sync.expected("wiki") is None and sync.expected("wiki", full=True) == 70
