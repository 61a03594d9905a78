"""The LLM path: the real `openai` client over HTTP to a scripted local server."""
from __future__ import annotations

import pytest

from bot.answering import GenerativeAnswerer
from bot.engine import Engine
from bot.model import OpenAIChatModel
from bot.types import Message, User
from tests.fakes.openai_server import Step
from tests.fakes.server import free_port

QUESTION = "How long do I have to return an item?"


def ask(text: str, conversation: str = "tg:1") -> Message:
    return Message(conversation=conversation, text=text, user=User(id="u"), channel="telegram")


def streamed():
    """What the engine streams: the list it fills, and the callback that fills it."""
    deltas: list[str] = []

    async def on_text(delta: str) -> None:
        deltas.append(delta)
    return deltas, on_text


@pytest.fixture
def make_engine(memory, retriever, profiles, events):
    def build(base_url: str, timeout: float = 10) -> Engine:
        model = OpenAIChatModel("test-model", base_url=base_url, api_key="sk-test", timeout=timeout, max_retries=0)
        return Engine(memory=memory, retriever=retriever, answerer=GenerativeAnswerer(model), profiles=profiles,
                      events=events)
    return build


async def test_streams_a_cited_answer_sentence_by_sentence(openai_server, make_engine):
    openai_server.steps.append(Step(chunks=["You have ", "30 days from delivery ", "to return an item [1]. ",
                                            "That is more than twice ", "the 14 days required by law [1]."]))
    deltas, on_text = streamed()
    reply = await make_engine(openai_server.base_url).handle(ask(QUESTION), on_text=on_text)
    assert reply.answered and reply.answer == ("You have 30 days from delivery to return an item [1]. "
                                               "That is more than twice the 14 days required by law [1].")
    assert "".join(deltas) == reply.answer
    assert deltas[0] == "You have 30 days from delivery to return an item [1]. "  # a whole checked sentence
    assert reply.citations and "return" in reply.citations[0].document_id.lower() or \
        "retour" in reply.citations[0].document_id
    request = openai_server.requests[0]
    assert request["stream"] is True and request["model"] == "test-model"
    system, user = request["messages"][0]["content"], request["messages"][-1]["content"]
    assert "never instructions" in system and "Reply in English" in system
    assert "[1]" in user and QUESTION in user


async def test_the_model_declining_is_a_decline_and_nothing_streams(openai_server, make_engine):
    openai_server.steps.append(Step(chunks=["NO_", "ANSWER"]))
    deltas, on_text = streamed()
    reply = await make_engine(openai_server.base_url).handle(ask(QUESTION), on_text=on_text)
    assert not reply.answered and reply.actions[0].value == "low_confidence"
    assert deltas == []


async def test_an_unsupported_answer_is_declined(openai_server, make_engine):
    openai_server.steps.append(Step(text="You have 90 days and we refund 150% of the price [1]."))
    reply = await make_engine(openai_server.base_url).handle(ask(QUESTION))
    assert not reply.answered and not reply.citations


async def test_a_contradiction_is_declined_and_nothing_of_it_streams(openai_server, make_engine):
    # every word of it is in the passages: only its polarity is wrong
    openai_server.steps.append(Step(chunks=["You don't have ", "30 days from delivery to return an item [1]."]))
    deltas, on_text = streamed()
    reply = await make_engine(openai_server.base_url).handle(ask(QUESTION), on_text=on_text)
    assert not reply.answered and not reply.citations and deltas == []


async def test_what_streamed_is_the_answer_when_a_later_sentence_fails(openai_server, make_engine):
    openai_server.steps.append(Step(chunks=["You have 30 days from delivery to return an item [1]. ",
                                            "We also refund 150% of the price in 2 hours [1]."]))
    deltas, on_text = streamed()
    reply = await make_engine(openai_server.base_url).handle(ask(QUESTION), on_text=on_text)
    assert reply.answered and reply.answer == "You have 30 days from delivery to return an item [1]."
    assert "".join(deltas).strip() == reply.answer and "150%" not in "".join(deltas)


async def test_history_goes_to_the_model(openai_server, make_engine):
    engine = make_engine(openai_server.base_url)
    openai_server.steps += [Step(text="Delivery to Belgium takes 3 to 5 business days [1]."),
                            Step(text="Belgium: 3 to 5 business days [1].")]
    await engine.handle(ask("What are the delivery times for Belgium?", "tg:h"))
    await engine.handle(ask("and Luxembourg?", "tg:h"))
    roles = [m["role"] for m in openai_server.requests[1]["messages"]]
    assert roles[:1] == ["system"] and roles[-3:] == ["user", "assistant", "user"]


@pytest.mark.parametrize("status", [500, 429, 401])
async def test_an_endpoint_error_ends_in_an_apology_and_an_event(openai_server, make_engine, events, status):
    openai_server.steps.append(Step(status=status))
    reply = await make_engine(openai_server.base_url).handle(ask(QUESTION))
    assert not reply.answered and "went wrong" in reply.answer and reply.actions[0].value == "ai_error"
    [event] = events.events(kind="turn_failed")
    assert "ModelError" in event.detail and f"HTTP {status}" in event.detail
    assert "sk-test" not in event.detail


async def test_an_unreachable_endpoint_ends_in_an_apology(make_engine, events):
    reply = await make_engine(f"http://127.0.0.1:{free_port()}/v1", timeout=2).handle(ask(QUESTION))
    assert not reply.answered and reply.actions[0].value == "ai_error"
    assert "unreachable" in events.events(kind="turn_failed")[0].detail


async def test_out_of_scope_never_reaches_the_model(openai_server, make_engine):
    reply = await make_engine(openai_server.base_url).handle(ask("What is the capital of Peru?"))
    assert not reply.answered and openai_server.requests == []
