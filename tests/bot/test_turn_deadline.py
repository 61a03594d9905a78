"""A turn is bounded: an LLM endpoint that hangs is cut at the profile's `turn_deadline`,
one whose answer parses as nothing fails the turn; both end in the apology, a "Talk to a
human" button and a `turn_failed` event. The real `openai` client talks HTTP to the
scripted server of tests/fakes/openai_server.py, which holds a hanging request without
sleeping until the client leaves (or the fixture releases it)."""
from __future__ import annotations

import json
import re

import pytest

from bot.acting import ToolLoop
from bot.answering import GenerativeAnswerer
from bot.engine import Engine
from bot.errors import ConfigError
from bot.memory import InMemoryMemory
from bot.model import OpenAIChatModel
from bot.profiles import load_profiles
from bot.settings import DEFAULT_PROFILES
from bot.tools import ToolContext, Toolbox, tool
from bot.types import Message, User
from tests.fakes.openai_server import Step

QUESTION = "How long do I have to return an item?"
ANSWER = "You have 30 days from delivery to return an item [1]."
DEADLINE = 2  # seconds (the support profile's): the warmed search takes milliseconds, the model call the rest
TOOLS = """
[profiles.desk]
name = "Desk"
tools = ["lookup"]
"""


class Orders:
    @tool
    async def lookup(self, ctx: ToolContext, order: str) -> dict:
        """Look up an order's status.

        Args:
            order: the order number, like W123
        """
        return {"order": order, "status": "shipped"}


@pytest.fixture
def llm(openai_server):
    yield openai_server
    openai_server.release()  # a request still held must not keep the server from stopping


@pytest.fixture
def profiles(tmp_path):
    """The bundled profiles, support's deadline made short, and a profile with a tool."""
    bundled = DEFAULT_PROFILES.read_text(encoding="utf-8")
    assert "turn_deadline = 20" in bundled
    path = tmp_path / "profiles.toml"
    path.write_text(bundled.replace("turn_deadline = 20", f"turn_deadline = {DEADLINE}") + TOOLS, encoding="utf-8")
    return load_profiles(path)


@pytest.fixture
def engine(llm, retriever, profiles, events):
    # The question's embedding is computed (and the embedder loaded) now, not within the
    # deadline: on a busy machine that alone can take longer, and the test is about the model.
    retriever.search(QUESTION, k=8, language="en")
    # a lock left held would make the next turn wait this long, then say "busy"
    memory = InMemoryMemory(lock_timeout=5)
    # the per-call timeout is far above the deadline: what cuts the turn can only be the deadline
    model = OpenAIChatModel("test-model", base_url=llm.base_url, api_key="sk-test", timeout=60, max_retries=0)
    return Engine(memory=memory, retriever=retriever, answerer=GenerativeAnswerer(model), profiles=profiles,
                  events=events, toolbox=Toolbox().register(Orders()), acting=ToolLoop(model))


def ask(text: str = QUESTION, conversation: str = "tg:1", profile: str = "") -> Message:
    return Message(conversation=conversation, text=text, user=User(id="u"), channel="telegram", profile=profile)


def failures(events, conversation: str = "tg:1") -> list[dict]:
    return [json.loads(e.detail) for e in events.events(conversation, kind="turn_failed")]


def apologised(reply, profiles, profile: str = "support") -> bool:
    [action] = reply.actions
    return (not reply.answered and reply.answer == profiles.get(profile).text("error", "en")
            and action.kind == "handoff" and action.value == "ai_error")


async def test_a_hanging_endpoint_is_cut_at_the_deadline_and_the_next_turn_is_answered(engine, llm, events,
                                                                                        profiles):
    llm.steps += [Step(hang=True), Step(text=ANSWER)]
    reply = await engine.handle(ask())
    assert apologised(reply, profiles)
    [failure] = failures(events)
    assert failure["reason"] == "deadline" and failure["error"] == "TimeoutError"
    assert f"({DEADLINE} s)" in failure["detail"]
    assert llm.held == 1, "the deadline should have cut the model call, not the search before it"
    assert llm.abandoned.wait(10), "the hanging HTTP call should have been closed"
    assert (await engine.history("tg:1")).turns == ()

    again = await engine.handle(ask())  # the conversation's lock was released
    assert again.answered and again.answer == ANSWER
    assert [t.role for t in (await engine.history("tg:1")).turns] == ["user", "assistant"]
    assert [e.kind for e in events.events("tg:1")] == ["turn_failed", "answered"]


async def test_a_stream_that_stalls_halfway_is_not_the_answer(engine, llm, events, profiles):
    first = "You have 30 days from delivery to return an item [1]. "
    llm.steps.append(Step(chunks=[first, "That is more than "], hang=True))
    deltas: list[str] = []

    async def on_text(delta: str) -> None:
        deltas.append(delta)

    reply = await engine.handle(ask(), on_text=on_text)
    assert deltas == [first]  # shown while it streamed; the adapter replaces it with the reply
    assert apologised(reply, profiles)
    assert [f["reason"] for f in failures(events)] == ["deadline"]
    assert (await engine.history("tg:1")).turns == ()  # nothing remembered as the answer
    assert [e.kind for e in events.events("tg:1")] == ["turn_failed"]


UNPARSABLE = [Step(body="<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
              Step(body="{not json"),
              Step(body='{"id": "chatcmpl-1", "object": "chat.completion", "model": "test-model"}')]


@pytest.mark.parametrize("step", UNPARSABLE, ids=["html", "garbage", "no-choices"])
async def test_an_unparsable_answer_to_a_streamed_request_fails_the_turn(engine, llm, events, profiles, step):
    llm.steps.append(step)
    reply = await engine.handle(ask())
    assert llm.requests[0]["stream"] is True
    assert apologised(reply, profiles), "an unusable answer is not 'I couldn't find that'"
    [failure] = failures(events)
    assert failure["error"] == "ModelError" and failure["reason"] == "error"
    assert "LLM endpoint" in failure["detail"]


@pytest.mark.parametrize("step", UNPARSABLE, ids=["html", "garbage", "no-choices"])
async def test_an_unparsable_answer_in_the_tool_loop_fails_the_turn(engine, llm, events, profiles, step):
    llm.steps.append(step)
    reply = await engine.handle(ask("Where is my order W42?", "web:desk", profile="desk"))
    assert "stream" not in llm.requests[0] and llm.requests[0]["tools"]
    assert apologised(reply, profiles, "desk")
    [failure] = failures(events, "web:desk")
    assert failure["error"] == "ModelError" and "unusable answer" in failure["detail"]


def test_the_bundled_deadline_is_20_seconds_and_the_default_too(tmp_path):
    assert load_profiles(DEFAULT_PROFILES).get().turn_deadline == 20
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.a]\n")
    assert load_profiles(path).get().turn_deadline == 20
    path.write_text("[profiles.a]\nturn_deadline = 2.5\n")
    assert load_profiles(path).get().turn_deadline == 2.5


@pytest.mark.parametrize("value", ["0", "-5", "0.0", "'20'", "true", "nan", "inf"])
def test_a_deadline_that_is_not_above_0_seconds_names_the_profile(tmp_path, value):
    path = tmp_path / "profiles.toml"
    path.write_text(f"[profiles.support]\n[profiles.hr]\nturn_deadline = {value}\n")
    with pytest.raises(ConfigError, match=re.escape("profile 'hr': 'turn_deadline' must be a number of "
                                                    "seconds above 0")) as caught:
        load_profiles(path)
    assert str(path) in str(caught.value)
