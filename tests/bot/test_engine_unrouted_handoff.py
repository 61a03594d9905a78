""""Talk to a human" where no agents channel takes handoffs: the reply says so, and how else
to reach people (the profile's `contact`), instead of promising a reply that never comes."""
from __future__ import annotations

import pytest

from bot.answering import ExtractiveAnswerer
from bot.engine import Engine
from bot.handoff import Handoffs
from bot.profiles import load_profiles
from bot.settings import DEFAULT_PROFILES
from bot.types import Message, User

PROMISE = "reply here"  # the old words: "They'll reply here as soon as they can."


def ask(text: str, conversation: str = "web:unrouted", profile: str = "") -> Message:
    return Message(conversation=conversation, text=text, user=User(id="u1", name="Ada"), channel="web",
                   profile=profile)


@pytest.fixture
def engine(memory, retriever, profiles, events):
    return Engine(memory=memory, retriever=retriever, answerer=ExtractiveAnswerer(), profiles=profiles,
                  events=events)


async def test_asking_for_a_human_says_no_one_is_connected_and_gives_the_contact(engine, events):
    reply = await engine.request_handoff(ask("help"))
    assert "No one from our team is connected" in reply.answer and PROMISE not in reply.answer
    assert "support@maison-lumiere.example" in reply.answer and "+33 4 78 00 12 34" in reply.answer
    assert events.events(kind="handoff_requested")
    answer = await engine.handle(ask("How long do I have to return an item?"))
    assert answer.answered and "30 days" in answer.answer  # the bot keeps answering: it still owns it


@pytest.mark.parametrize("text, words", [
    ("je voudrais parler à un conseiller", ("Aucun membre de notre équipe", " ou +33 4 78 00 12 34")),
    ("我想和人工客服说话", ("目前没有团队成员", "或 +33 4 78 00 12 34")),
])
async def test_in_the_users_language(engine, text, words):
    reply = await engine.handle(ask(text, conversation=f"web:{text[:4]}"))
    assert all(w in reply.answer for w in words), reply.answer


async def test_a_profile_without_contact_offers_to_keep_answering(engine):
    reply = await engine.request_handoff(ask("help", profile="staff"))
    assert "No one from our team is connected" in reply.answer and "keep answering" in reply.answer
    assert "@" not in reply.answer


async def test_an_agents_channel_whose_platform_is_not_running_is_not_routed(tmp_path, memory, retriever, events):
    path = tmp_path / "profiles.toml"
    path.write_text(DEFAULT_PROFILES.read_text() + "[profiles.support.handoff]\nagents = 'slack:C0AGENTS'\n")
    profiles = load_profiles(path)
    handoffs = Handoffs(events.engine, events, profiles, memory)  # no Slack desk: Slack isn't configured
    engine = Engine(memory=memory, retriever=retriever, answerer=ExtractiveAnswerer(), profiles=profiles,
                    events=events, handoffs=handoffs)
    reply = await engine.request_handoff(ask("help"))
    assert "No one from our team is connected" in reply.answer and "support@maison-lumiere.example" in reply.answer
    assert await handoffs.open_for("web:unrouted") is None  # nothing queued for a human who isn't there
