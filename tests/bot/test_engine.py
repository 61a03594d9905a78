"""The engine end to end on the sample knowledge, with the extractive answerer."""
from __future__ import annotations

import dataclasses

import pytest

from bot.answering import ExtractiveAnswerer
from bot.errors import MemoryUnavailable
from bot.engine import MAX_MESSAGE_CHARS, Engine
from bot.memory_redis import RedisMemory
from bot.types import Action, ActionKind, HandoffReason, Message, Press, Reply, User
from tests.fakes.server import free_port


@pytest.fixture
def engine(memory, retriever, profiles, events):
    return Engine(memory=memory, retriever=retriever, answerer=ExtractiveAnswerer(), profiles=profiles,
                  events=events)


def ask(text: str, conversation: str = "web:test", **fields) -> Message:
    return Message(conversation=conversation, text=text, user=User(id="u1", name="Ada"), channel="web", **fields)


async def test_answers_with_a_citation_of_the_right_document(engine, events):
    reply = await engine.handle(ask("How long do I have to return an item?"))
    assert reply.answered and reply.language == "en"
    assert reply.citations[0].document_id == "en/returns"
    assert reply.citations[0].url.startswith("https://help.maison-lumiere.example/")
    assert "30 days" in reply.answer and "[1]" in reply.answer
    assert 0 < reply.confidence <= 1
    [event] = events.events("web:test")
    assert event.kind == "answered" and event.reply_id == reply.id


async def test_a_quoted_exception_list_comes_with_its_items(engine):
    """The warranty page says what the 5-year warranty "does not cover:" in a list: an answer
    quoting that sentence quotes the list too, not a colon with nothing after it."""
    items = ("- bulbs, which are covered", "- the built-in battery", "- normal wear of lampshade fabric",
             "- damage caused by a fall")
    for n, question in enumerate(("How long is the warranty on lamps?", "保修期多久？")):
        reply = await engine.handle(ask(question, conversation=f"web:warranty-{n}"))
        assert reply.answered and "5 years" in reply.answer and "does not cover:" in reply.answer
        assert all(item in reply.answer for item in items), reply.answer  # every item, not the first match


async def test_answers_in_the_language_of_the_question(engine):
    reply = await engine.handle(ask("Combien de temps ai-je pour retourner un article ?"))
    assert reply.answered and reply.language == "fr"
    assert reply.citations[0].document_id in ("fr/retours", "qa_form#custom_gift_wrapping@fr") or \
        reply.citations[0].document_id.endswith("@fr")
    assert "30 jours" in reply.answer


async def test_a_follow_up_retrieves_with_the_conversation(engine):
    first = await engine.handle(ask("What are your delivery times?", "web:follow"))
    assert first.answered
    follow = await engine.handle(ask("and for Belgium?", "web:follow"))
    assert follow.answered
    assert any("deliver" in c.document_id or "delivery" in c.document_id for c in follow.citations)
    assert "Belgium" in follow.answer
    memory = await engine.history("web:follow")
    assert memory.turns[-2].query.startswith("What are your delivery times?")


async def test_a_new_topic_is_not_polluted_by_the_previous_one(engine):
    await engine.handle(ask("What are your delivery times?", "web:topic"))
    reply = await engine.handle(ask("Can I pay with PayPal?", "web:topic"))
    assert reply.citations[0].document_id in ("en/payment",) or "payment" in reply.citations[0].document_id


async def test_out_of_scope_is_declined_with_an_offer_of_a_human(engine, events):
    reply = await engine.handle(ask("What is the capital of Peru?"))
    assert not reply.answered and not reply.citations
    assert "couldn't find" in reply.answer
    [action] = reply.actions
    assert action.kind == "handoff" and action.value == HandoffReason.MISSING_KNOWLEDGE.value
    assert events.events("web:test")[0].kind == "declined"


async def test_declines_in_french_too(engine):
    reply = await engine.handle(ask("Quelle est la recette de la tarte tatin ?"))
    assert not reply.answered and reply.language == "fr"
    assert "Désolé" in reply.answer and reply.actions[0].label == "Parler à un humain"


async def test_asking_for_a_human_hands_off(engine, events):
    reply = await engine.handle(ask("je voudrais parler à un conseiller"))
    assert reply.handoff is not None and reply.handoff.reason is HandoffReason.CUSTOMER_REQUEST
    assert reply.language == "fr" and "équipe" in reply.answer
    assert events.events(kind="handoff_requested")


@pytest.mark.parametrize("text, reason", [("   ", "empty"), ("x" * (MAX_MESSAGE_CHARS + 1), "too_long")])
async def test_bad_input_gets_a_clear_reply_and_an_event(engine, events, text, reason):
    reply = await engine.handle(ask(text))
    assert not reply.answered and reply.answer
    if reason == "too_long":
        assert str(MAX_MESSAGE_CHARS) in reply.answer.replace(",", "")
    [event] = events.events(kind="rejected")
    assert reason in event.detail


async def test_a_profile_never_retrieves_another_profiles_sources(engine, profiles):
    catalog_only = dataclasses.replace(profiles.get("support"), key="shop", sources=("catalog",))
    engine.profiles = dataclasses.replace(profiles, by_key={**profiles.by_key, "shop": catalog_only})
    reply = await engine.handle(ask("What are your delivery times to Belgium?", profile="shop"))
    assert all(c.source == "catalog" for c in reply.citations)


async def test_internal_documents_reach_only_staff_in_private(engine):
    question = "When can staff give a goodwill gesture, and up to how much?"
    customer = await engine.handle(ask(question, "web:c1", profile="support"))
    assert all("internal" not in c.document_id and "interne" not in c.document_id for c in customer.citations)
    staff = await engine.handle(ask(question, "slack:T:D1:1", profile="staff", private=True))
    assert any("internal" in c.document_id for c in staff.citations)
    in_public = await engine.handle(ask(question, "slack:T:C1:2", profile="staff", private=False))
    assert all("internal" not in c.document_id for c in in_public.citations)


async def test_an_unreachable_store_ends_in_an_apology_not_silence(retriever, profiles, events):
    broken = RedisMemory(f"redis://127.0.0.1:{free_port()}/0")
    engine = Engine(memory=broken, retriever=retriever, answerer=ExtractiveAnswerer(), profiles=profiles,
                    events=events)
    reply = await engine.handle(ask("How long do I have to return an item?"))
    assert not reply.answered and "went wrong" in reply.answer
    assert reply.actions[0].kind == "handoff" and reply.actions[0].value == "ai_error"
    [event] = events.events(kind="turn_failed")
    assert "MemoryUnavailable" in event.detail
    await broken.close()


async def test_a_queued_turn_raises_an_unreachable_store_for_the_queue_to_retry(retriever, profiles, events):
    broken = RedisMemory(f"redis://127.0.0.1:{free_port()}/0")
    engine = Engine(memory=broken, retriever=retriever, answerer=ExtractiveAnswerer(), profiles=profiles,
                    events=events)
    with pytest.raises(MemoryUnavailable):  # no apology now: the question is answered once Redis is back
        await engine.handle(ask("How long do I have to return an item?"), durable=True)
    assert events.events(kind="turn_failed") == []
    await broken.close()


async def test_feedback_is_stored_against_the_answer(engine, events):
    reply = await engine.handle(ask("Do you sell gift wrapping?"))
    thanks = await engine.feedback(ask(""), reply.id, "up")
    assert thanks == "Thanks for your feedback!"
    [feedback] = events.feedbacks(reply.id)
    assert feedback.value == "up" and feedback.conversation == "web:test"
    with pytest.raises(ValueError):
        await engine.feedback(ask(""), reply.id, "sideways")


async def test_forget_starts_over(engine):
    await engine.handle(ask("What are your delivery times?", "web:forget"))
    await engine.forget("web:forget")
    assert not (await engine.history("web:forget")).turns


async def test_a_thread_joined_mid_way_starts_from_what_was_said(engine, memory):
    message = ask("and for Belgium?", "slack:T:C1:9.1")
    joined = await engine.handle(dataclasses.replace(message, context=("What are your delivery times?",)))
    assert joined.answered and "Belgium" in joined.answer
    turns = (await memory.load("slack:T:C1:9.1")).turns
    assert [t.role for t in turns] == ["user", "user", "assistant"] and turns[0].text.startswith("What are")
    alone = await engine.handle(ask("and for Belgium?", "slack:T:C1:9.2"))
    assert alone.answer != joined.answer


async def test_one_press_handles_every_kind_of_button(engine, events):
    """Every channel decodes its buttons into a Press; Engine.press does what the kind says."""
    reply = await engine.handle(ask("Do you sell gift wrapping?", "web:press"))
    thanks = await engine.press(ask("", "web:press"), Press(ActionKind.FEEDBACK, "down", reply.id))
    assert thanks.notice and thanks.answer == "Thanks for your feedback!"
    assert [f.value for f in events.feedbacks(reply.id)] == ["down"]
    shared = await engine.press(ask("", "web:press"), Press(ActionKind.SHARE, "", reply.id))
    assert shared == reply  # the answer as it was shown, to post again
    expired = await engine.press(ask("", "web:press"), Press(ActionKind.SHARE, "", "r_unknown"))
    assert expired.notice and expired.answer != reply.answer
    handed = await engine.press(ask("", "web:press"), Press(ActionKind.HANDOFF, "not-a-reason"))
    assert handed.handoff is not None and handed.handoff.reason is HandoffReason.CUSTOMER_REQUEST
    assert events.events(kind="handoff_requested")


@pytest.mark.parametrize("press", [Press(ActionKind.FEEDBACK, "sideways", "r_1"), Press(ActionKind.FEEDBACK, "up"),
                                   Press(ActionKind.CONFIRM, "maybe", "t_1"), Press(ActionKind.CONFIRM, "yes"),
                                   Press(ActionKind.SHARE), Press(ActionKind.LINK, "x", "r_1")])
async def test_a_press_that_carries_nothing_to_act_on_does_nothing(engine, events, press):
    assert await engine.press(ask("", "web:forged"), press) is None
    assert events.events("web:forged") == [] and events.feedbacks("r_1") == []


def test_a_remembered_action_gets_its_kind_back():
    action = Action("handoff", "Talk to a human", "handoff", "ai_error")
    assert action.kind is ActionKind.HANDOFF
    reply = Reply(id="r_1", conversation="web:x", answer="", language="en", actions=(action,))
    assert Reply.from_dict(reply.to_dict()).actions[0].kind is ActionKind.HANDOFF
    with pytest.raises(ValueError):
        Action("x", "X", "explode")
