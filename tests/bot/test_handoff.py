"""The handoff service and its triggers, with recording Desk/Courier ports, real SQL
(SQLite and PostgreSQL) and a local webhook receiver."""
from __future__ import annotations

import asyncio
import json
import dataclasses
import threading
import time
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.answering import ExtractiveAnswerer
from bot.engine import Engine
from bot.errors import ConfigError
from bot.handoff import CustomerUnreachable, DeskUnavailable, Handoffs
from bot.memory import InMemoryMemory
from bot.profiles import load_profiles
from bot.settings import DEFAULT_PROFILES
from bot.store import Escalation, EventLog, connect
from bot.types import Message, User
from tests.fakes.server import serve

POLICY = """
[profiles.support.handoff]
agents = "test:AGENTS"
sla_minutes = 10
hours = "mon-sun 00:00-23:59"
human_topics = ["legal"]

[profiles.support.handoff.topics]
legal = ["lawyer", "avocat", "lawsuit"]

[[profiles.support.handoff.automations]]
on = "escalation_unclaimed"
mention = "S0123TEAM"
webhook = "{webhook}"

[[profiles.support.handoff.automations]]
on = "ai_failed"
webhook = "{webhook}"
"""


class Desk:
    """Records what the service asks of the agents' side."""

    def __init__(self) -> None:
        self.posts: list[Escalation] = []
        self.updates: list[str] = []
        self.relays: list[tuple[str, str]] = []
        self.reminders: list[str] = []
        self.down = False

    async def post(self, channel, escalation, conversation, profile) -> str:
        if self.down:
            raise DeskUnavailable("not_in_channel")
        self.posts.append(escalation)
        return f"post{len(self.posts)}"

    async def update(self, escalation, profile) -> None:
        self.updates.append(escalation.state)

    async def relay(self, escalation, author, text) -> None:
        self.relays.append((author, text))

    async def remind(self, escalation, group, text) -> None:
        self.reminders.append(f"{group}: {text}")


class Courier:
    """Records what customers are sent; `blocked` customers can't be reached."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.blocked = False

    async def deliver(self, conversation, address, reply) -> None:
        if self.blocked:
            raise CustomerUnreachable("Forbidden: bot was blocked by the user")
        self.sent.append((conversation, reply.answer))


class Hooks:
    """A local webhook receiver."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.arrived = threading.Condition()

    def app(self) -> Starlette:
        async def hook(request: Request):
            with self.arrived:
                self.received.append(await request.json())
                self.arrived.notify_all()
            return JSONResponse({"ok": True})
        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.fixture
def hooks():
    receiver = Hooks()
    with serve(receiver.app()) as url:
        receiver.url = f"{url}/hook"
        yield receiver


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class World:
    engine: Engine
    handoffs: Handoffs
    desk: Desk
    courier: Courier
    clock: Clock
    events: EventLog


def build(profiles_path: Path, database_url: str, retriever, memory=None, clock=None) -> World:
    profiles = load_profiles(profiles_path)
    events = EventLog(connect(database_url))
    memory = memory or InMemoryMemory()
    clock = clock or Clock()
    handoffs = Handoffs(events.engine, events, profiles, memory, clock=clock)
    desk, courier = Desk(), Courier()
    handoffs.add_desk("test", desk)
    handoffs.add_courier("web", courier)
    engine = Engine(memory=memory, retriever=retriever, answerer=ExtractiveAnswerer(), profiles=profiles,
                    events=events, handoffs=handoffs)
    return World(engine, handoffs, desk, courier, clock, events)


@pytest.fixture
def profiles_path(tmp_path, hooks) -> Path:
    path = tmp_path / "profiles.toml"
    path.write_text(DEFAULT_PROFILES.read_text() + POLICY.replace("{webhook}", hooks.url))
    return path


@pytest.fixture
def world(profiles_path, tmp_path, retriever) -> World:
    return build(profiles_path, f"sqlite:///{tmp_path / 'events.db'}", retriever)


def ask(text: str, conversation: str = "web:c1") -> Message:
    return Message(conversation=conversation, text=text, user=User(id="u1", name="Ada"), channel="web",
                   raw={"session": "abc"})


def kinds(world: World) -> list[str]:
    return [e.kind for e in world.events.events()]


async def test_two_declines_in_a_row_escalate_with_their_reason(world):
    first = await world.engine.handle(ask("What is the airspeed velocity of an unladen swallow?"))
    assert not first.answered and first.handoff is None and world.desk.posts == []
    second = await world.engine.handle(ask("What will the weather be like on Mars tomorrow?"))
    assert second.handoff is not None and second.handoff.reason.value == "missing_knowledge"
    assert "number 1 in the queue" in second.answer
    [escalation] = world.desk.posts
    assert (escalation.reason, escalation.customer, escalation.state) == ("missing_knowledge", "Ada", "queued")


async def test_a_policy_topic_goes_straight_to_humans(world):
    reply = await world.engine.handle(ask("My lawyer says the lamp you sold me is defective"))
    assert reply.handoff.reason.value == "policy_topic" and world.desk.posts


async def test_ai_topics_let_the_ai_answer_only_those(tmp_path, retriever):
    path = tmp_path / "p.toml"
    path.write_text(DEFAULT_PROFILES.read_text() + "[profiles.support.handoff]\nagents = 'test:A'\n"
                    "ai_topics = ['returns']\n[profiles.support.handoff.topics]\nreturns = ['return', 'retour']\n")
    world = build(path, f"sqlite:///{tmp_path / 'e.db'}", retriever)
    answered = await world.engine.handle(ask("How long do I have to return an item?", "web:a"))
    assert answered.answered
    handed = await world.engine.handle(ask("What are your delivery times?", "web:b"))
    assert handed.handoff is not None and handed.handoff.reason.value == "policy_topic"


async def test_while_a_human_owns_it_the_bot_relays_and_never_answers(world):
    await world.engine.request_handoff(ask(""))
    waiting = await world.engine.handle(ask("How long do I have to return an item?"))
    assert "30 days" not in waiting.answer and "a person from our team will be with you" in waiting.answer
    [escalation] = world.desk.posts
    claimed = await world.handoffs.claim(escalation, "agent1", "Alice")
    assert claimed.ok and world.courier.sent[-1][1] == "Alice from our team has joined the conversation."
    silent = await world.engine.handle(ask("Are you there?"))
    assert silent.answer == "" and world.desk.relays[-1] == ("Ada", "Are you there?")
    assert await world.engine.owner("web:c1") == "claimed"


async def test_agents_write_to_the_customer_notes_stay_internal_others_are_refused(world):
    await world.engine.request_handoff(ask(""))
    [escalation] = world.desk.posts
    assert (await world.handoffs.from_agent(escalation, "agent1", "hello")).notice == "claim_first"
    await world.handoffs.claim(escalation, "agent1", "Alice")
    assert (await world.handoffs.from_agent(escalation, "agent1", "Note: VIP")).ok
    assert (await world.handoffs.from_agent(escalation, "agent1", "Hello Ada")).ok
    refused = await world.handoffs.from_agent(escalation, "agent2", "me too")
    assert refused.notice == "claimed_by_other" and refused.values == {"agent": "Alice"}
    assert [text for _, text in world.courier.sent] == ["Alice from our team has joined the conversation.",
                                                        "**Alice**: Hello Ada"]
    history = await world.engine.history("web:c1")
    assert history.turns[-1].text == "**Alice**: Hello Ada"


async def test_a_customer_who_blocked_the_bot_is_a_notice_for_the_agent_and_an_event(world):
    await world.engine.request_handoff(ask(""))
    [escalation] = world.desk.posts
    await world.handoffs.claim(escalation, "agent1", "Alice")
    world.courier.blocked = True
    result = await world.handoffs.from_agent(escalation, "agent1", "Hello?")
    assert not result.ok and result.notice == "customer_unreachable" and "customer_unreachable" in kinds(world)


async def test_resolve_asks_for_a_rating_once(world):
    await world.engine.request_handoff(ask(""))
    [escalation] = world.desk.posts
    await world.handoffs.claim(escalation, "agent1", "Alice")
    assert (await world.handoffs.resolve(escalation, "agent2")).notice == "claimed_by_other"
    assert (await world.handoffs.resolve(escalation, "agent1")).ok
    assert "rate the help" in world.courier.sent[-1][1]
    assert await world.engine.rate(ask(""), f"{escalation.id}:9") is None
    assert (await world.engine.rate(ask(""), f"{escalation.id}:5")).answer == "Thank you for your rating!"
    assert await world.engine.rate(ask(""), f"{escalation.id}:1") is None  # once
    assert (await world.handoffs.get(escalation.id)).rating == 5
    assert await world.engine.owner("web:c1") == "bot"


async def test_unclaimed_past_the_sla_tells_the_customer_and_fires_automations(world, hooks):
    await world.engine.request_handoff(ask(""))
    assert await world.handoffs.check_sla() == 0
    world.clock.now += 11 * 60
    assert await world.handoffs.check_sla() == 1
    assert await world.handoffs.check_sla() == 0  # once per escalation
    assert "busier than usual" in world.courier.sent[-1][1]
    assert world.desk.reminders == ["S0123TEAM: A conversation has been waiting for an agent "
                                    "for more than 10 min."]
    [payload] = hooks.received
    assert payload["event"] == "escalation_unclaimed" and payload["conversation"] == "web:c1"
    assert payload["reason"] == "customer_request" and "escalation_unclaimed" in kinds(world)


async def test_an_ai_failure_escalates_and_fires_ai_failed(world, hooks, openai_server, tmp_path):
    from bot.answering import GenerativeAnswerer
    from bot.model import OpenAIChatModel
    from tests.fakes.openai_server import Step

    openai_server.steps += [Step(status=500)] * 3
    world.engine.answerer = GenerativeAnswerer(OpenAIChatModel("m", openai_server.base_url, "sk", 10, max_retries=0))
    reply = await world.engine.handle(ask("How long do I have to return an item?"))
    assert reply.answer.startswith("Sorry, something went wrong") and "asked a member of our team" in reply.answer
    assert reply.handoff.reason.value == "ai_error" and world.desk.posts[0].reason == "ai_error"
    with hooks.arrived:
        hooks.arrived.wait_for(lambda: hooks.received, timeout=10)
    assert hooks.received[0]["event"] == "ai_failed" and hooks.received[0]["error"] == "ModelError"
    assert "ai_failed" in kinds(world) and "automation_fired" in kinds(world)


async def test_outside_business_hours_the_customer_is_told_when_humans_are_back(tmp_path, retriever):
    path = tmp_path / "p.toml"
    path.write_text(DEFAULT_PROFILES.read_text() + "[profiles.support.handoff]\nagents = 'test:A'\n"
                    "hours = 'mon-fri 09:00-18:00'\ntimezone = 'Europe/Paris'\n")
    world = build(path, f"sqlite:///{tmp_path / 'e.db'}", retriever)
    world.clock.now = 1_800_000_000.0  # Friday 15 January 2027, 08:00 UTC = 09:00 in Paris: open
    open_reply = await world.engine.request_handoff(ask("", "web:open"))
    world.clock.now += 12 * 3600  # 21:00 in Paris: closed
    closed_reply = await world.engine.request_handoff(ask("", "web:closed"))
    assert "queue" in open_reply.answer and "available mon-fri 09:00-18:00 (Europe/Paris)" in closed_reply.answer


async def test_the_desk_being_gone_keeps_the_bot_in_charge_and_says_so(world):
    world.desk.down = True
    reply = await world.engine.request_handoff(ask(""))
    assert "something went wrong" in reply.answer and await world.engine.owner("web:c1") == "bot"
    assert "escalation_failed" in kinds(world) and "ai_failed" not in kinds(world)
    assert len(world.events.events(kind="escalation_failed")) == 1  # tried once, not again as an AI failure


async def test_a_restart_mid_claim_keeps_relaying(profiles_path, tmp_path, retriever, redis_url):
    from bot.memory_redis import RedisMemory

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    before = build(profiles_path, url, retriever, memory=RedisMemory(redis_url))
    await before.engine.request_handoff(ask("", "web:restart"))
    [escalation] = before.desk.posts
    await before.handoffs.claim(escalation, "agent1", "Alice")
    await before.engine.memory.close()
    before.events.close()
    after = build(profiles_path, url, retriever, memory=RedisMemory(redis_url))  # a new process, same stores
    found = await after.handoffs.by_post("test:AGENTS", "post1")
    assert (await after.handoffs.from_agent(found, "agent1", "Still here")).ok
    assert after.courier.sent == [("web:restart", "**Alice**: Still here")]
    assert (await after.engine.handle(ask("thanks", "web:restart"))).answer == ""
    assert after.desk.relays == [("Ada", "thanks")]
    await after.engine.memory.close()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_fifty_concurrent_claims_have_one_winner(database, profiles_path, tmp_path, retriever, request):
    url = f"sqlite:///{tmp_path / 'c.db'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    world = build(profiles_path, url, retriever)
    await world.engine.request_handoff(ask("", f"web:race-{database}-{tmp_path.name}"))
    escalation = world.desk.posts[0]
    results = await asyncio.gather(*(world.handoffs.claim(escalation, f"agent{n}", f"Agent {n}") for n in range(50)))
    winners = [r for r in results if r.ok]
    assert len(winners) == 1
    assert all(r.notice == "claimed_by_other" and r.values["agent"] == winners[0].escalation.agent_name
               for r in results if not r.ok)
    assert world.courier.sent.count((escalation.conversation, f"{winners[0].escalation.agent_name} from our team "
                                                              "has joined the conversation.")) == 1


@pytest.mark.parametrize("table, message", [
    ("agents = 'C0123'", "'agents' must be '<platform>:<channel id>'"),
    ("human_topics = ['legal']", "topic 'legal' is not defined"),
    ("hours = 'weekdays'", "hours must look like"),
    ("timezone = 'Mars/Olympus'", "Mars/Olympus"),
    ("sla = 5", "unknown setting(s) sla"),
    ("[[profiles.support.handoff.automations]]\non = 'sometimes'", "needs on = one of"),
    ("[[profiles.support.handoff.automations]]\non = 'ai_failed'\nwebhook = 'ftp://x'", "http(s) URL"),
])
def test_a_malformed_handoff_policy_is_named(tmp_path, table, message):
    path = tmp_path / "p.toml"
    path.write_text(DEFAULT_PROFILES.read_text() + "[profiles.support.handoff]\n" + table + "\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_profiles(path)


async def test_answers_are_confirmed_assumed_resolved_and_reopened(world):
    world.clock.now = time.time()  # events carry the wall clock
    await world.engine.handle(ask("How long do I have to return an item?", "web:quiet"))
    liked = await world.engine.handle(ask("What are your delivery times?", "web:liked"))
    await world.engine.feedback(ask("", "web:liked"), liked.id, "up")
    assert await world.handoffs.check_resolutions() == 0  # too early
    with world.events.engine.begin() as db:  # a day goes by: age the events rather than wait
        db.exec_driver_sql("UPDATE event SET at = at - ?", (25 * 3600,))
    assert await world.handoffs.check_resolutions() == 1  # the 👍 one was confirmed already
    assert await world.handoffs.check_resolutions() == 0
    await world.engine.handle(ask("And for Belgium?", "web:quiet"))
    assert [e.kind for e in world.events.events("web:quiet")] == ["answered", "resolution_assumed", "reopened",
                                                                    "answered"]
    assert [e.kind for e in world.events.events("web:liked")][-1] == "resolution_confirmed"


async def test_every_desk_shows_and_acts_through_one_channel_neutral_view(world):
    """bot/desk.py: the post's facts, lines and buttons for each state; one dispatcher for the
    buttons; a refusal told (and recorded) the same way on every desk."""
    from bot import desk

    await world.engine.handle(ask("Do you sell gift wrapping?"))
    await world.engine.handle(ask("word " * 200))
    await world.engine.request_handoff(ask(""))
    [escalation] = world.desk.posts
    conversation = await world.engine.history(escalation.conversation)
    queued = desk.view(escalation, conversation, world.engine.profiles)
    assert [b.name for b in queued.buttons] == ["claim"] and queued.buttons[0].primary
    assert dict(queued.facts)["Customer"] == "Ada" and queued.lines[0] == desk.Line("Ada", "Do you sell gift wrapping?")
    long = next(line.text for line in queued.lines if line.text.startswith("word"))
    assert len(long) <= desk.EXCERPT + 1 and long.endswith("…")

    assert await desk.act(world.handoffs, escalation, "explode", "agent1", lambda: None) is None
    names = []

    async def alice() -> str:
        names.append("asked")
        return "Alice"
    claimed = await desk.act(world.handoffs, escalation, "claim", "agent1", alice)
    assert claimed.ok and names == ["asked"]
    view = desk.view(claimed.escalation, conversation, world.engine.profiles)
    assert [b.name for b in view.buttons] == ["resolve", "return_to_bot", "unclaim"] and "Alice" in view.status

    late = await desk.act(world.handoffs, escalation, "claim", "agent2", alice)
    notice = await desk.refusal(late, "agent2", "test", world.events, world.engine.profiles)
    assert not late.ok and notice and "Alice" in notice
    [refused] = world.events.events(kind="agent_refused")
    assert refused.channel == "test"
    resolved = await desk.act(world.handoffs, claimed.escalation, "resolve", "agent1", alice)
    assert resolved.ok and await desk.refusal(resolved, "agent1", "test", world.events, world.engine.profiles) == ""


async def test_agents_see_the_personal_data_types_their_profile_allows_and_nothing_stores_them(tmp_path, retriever):
    path = tmp_path / "p.toml"
    path.write_text(DEFAULT_PROFILES.read_text() + "[profiles.support.handoff]\nagents = 'test:A'\n"
                    "[profiles.support.pii]\nagents = ['email']\n")
    world = build(path, f"sqlite:///{tmp_path / 'e.db'}", retriever)
    await world.engine.request_handoff(ask("", "web:pii"))
    said = "It's noah.brown7922@example.com, card 4111 1111 1111 1111"
    await world.engine.handle(ask(said, "web:pii"))
    [(_, relayed)] = world.desk.relays
    assert "noah.brown7922@example.com" in relayed and "4111" not in relayed and "<CARD_1>" in relayed
    remembered = await world.engine.history("web:pii")
    stored = json.dumps([t.text for t in remembered.turns] + [t.query for t in remembered.turns])
    assert "noah.brown7922" not in stored and "<EMAIL_1>" in stored
    assert "noah.brown7922" not in json.dumps([e.detail for e in world.events.events()])


def test_which_personal_data_agents_see_is_checked():
    from bot.pii import parse_policy

    assert parse_policy({"agents": ["email", "phone"]}).agents == {"email", "phone"}
    assert parse_policy(None).agents == frozenset()
    with pytest.raises(ConfigError):
        parse_policy({"agents": ["shoe_size"]})
