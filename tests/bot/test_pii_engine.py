"""Personal data through a whole turn: the model, memory and the event log get placeholders,
the tool gets the customer's own value back, the customer sees their own data."""
from __future__ import annotations

import json

import pytest

from bot.acting import ToolLoop
from bot.answering import GenerativeAnswerer
from bot.engine import Engine
from bot.memory_sqlite import SqliteMemory
from bot.model import OpenAIChatModel
from bot.pii import new_key
from bot.profiles import load_profiles
from bot.settings import DEFAULT_PROFILES
from bot.tools import ToolContext, Toolbox, tool
from bot.tools.jira import JiraTools
from bot.types import Message, User
from tests.fakes.openai_server import Call, Step

EMAIL = "noah.brown7922@example.com"
CARD = "4111 1111 1111 1111"
PROFILES = """
[profiles.orders]
name = "Orders"
tools = ["order_by_email"]

[profiles.open]
name = "No masking"
tools = ["order_by_email"]
[profiles.open.pii]
enabled = false
"""


class Shop:
    def __init__(self) -> None:
        self.asked: list[str] = []

    @tool
    async def order_by_email(self, ctx: ToolContext, order: str, email: str) -> dict:
        """Find an order for the customer's email.

        Args:
            order: the order number, like W123
            email: the customer's email address
        """
        self.asked.append(email)
        return {"order": order, "status": "shipped", "email": email, "ship_to": "986 Sunset Drive, Denver, CO 80279"}


@pytest.fixture
def shop() -> Shop:
    return Shop()


@pytest.fixture
def build(tmp_path, retriever, events, openai_server, shop):
    path = tmp_path / "profiles.toml"
    path.write_text(DEFAULT_PROFILES.read_text() + PROFILES)
    memory = SqliteMemory(tmp_path / "memory.sqlite3")

    def make(key: bytes | None = None) -> Engine:
        model = OpenAIChatModel("test-model", base_url=openai_server.base_url, api_key="sk-test", max_retries=0)
        return Engine(memory=memory, retriever=retriever, answerer=GenerativeAnswerer(model),
                      profiles=load_profiles(path), events=events, toolbox=Toolbox().register(shop),
                      acting=ToolLoop(model), pii_key=key)
    make.memory = memory
    return make


def ask(text: str, profile: str = "orders") -> Message:
    return Message(conversation="web:p1", text=text, user=User(id="u1"), channel="web", profile=profile)


async def test_the_model_memory_and_events_see_placeholders_the_tool_and_customer_real_values(
        build, openai_server, shop, events, tmp_path):
    engine = build(new_key())
    openai_server.steps += [Step(calls=[Call("order_by_email", {"order": "W7678072", "email": "<EMAIL_1>"})]),
                            Step(text="Order W7678072 for <EMAIL_1> has shipped to <ADDRESS_1>.")]
    reply = await engine.handle(ask(f"Where is order W7678072? My email is {EMAIL}, card {CARD}."))
    assert shop.asked == [EMAIL]  # the tool got the customer's own value back
    assert EMAIL in reply.answer and "986 Sunset Drive" in reply.answer  # theirs to see
    sent = json.dumps(openai_server.requests)
    assert EMAIL not in sent and "4111" not in sent and "986 Sunset" not in sent and "<EMAIL_1>" in sent
    assert "W7678072" in sent  # an order id is not personal data
    stored = b"".join(f.read_bytes() for f in tmp_path.glob("memory.sqlite3*"))  # with its WAL
    assert EMAIL.encode() not in stored and b"4111 1111" not in stored and b"Sunset" not in stored
    logged = json.dumps([e.__dict__ for e in events.events("web:p1")], default=str)
    assert EMAIL not in logged and "4111" not in logged and "Sunset" not in logged
    conversation = await build.memory.load("web:p1")
    assert conversation.meta["pii"] and EMAIL not in conversation.meta["pii"]  # sealed


async def test_placeholders_keep_their_values_across_turns_with_the_key(build, openai_server, shop):
    engine = build(new_key())
    openai_server.steps += [Step(text="NO_ANSWER")]
    await engine.handle(ask(f"Hello, my email is {EMAIL}. Is my order W7678072 on its way?"))
    openai_server.steps += [Step(calls=[Call("order_by_email", {"order": "W7678072", "email": "<EMAIL_1>"})]),
                            Step(text="It has shipped.")]
    await engine.handle(ask("Order W7678072 please, with the email I gave you"))
    assert shop.asked == [EMAIL]


async def test_a_profile_can_turn_masking_off(build, openai_server, shop):
    engine = build(new_key())
    openai_server.steps += [Step(calls=[Call("order_by_email", {"order": "W7678072", "email": EMAIL})]),
                            Step(text="It has shipped.")]
    await engine.handle(ask(f"Where is order W7678072? My email is {EMAIL}.", profile="open"))
    assert EMAIL in json.dumps(openai_server.requests[0]) and shop.asked == [EMAIL]


async def test_a_ticket_keeps_the_placeholders_the_model_wrote(tmp_path, retriever, events, openai_server, jira):
    path = tmp_path / "desk.toml"
    path.write_text(DEFAULT_PROFILES.read_text() + '\n[profiles.desk]\nname = "Desk"\ntools = ["create_ticket"]\n')
    model = OpenAIChatModel("test-model", base_url=openai_server.base_url, api_key="sk-test", max_retries=0)
    tools = Toolbox().register(JiraTools(url=jira.url, project="SUP", email=jira.email, token=jira.token, timeout=5))
    engine = Engine(memory=SqliteMemory(tmp_path / "desk.sqlite3"), retriever=retriever,
                    answerer=GenerativeAnswerer(model), profiles=load_profiles(path), events=events, toolbox=tools,
                    acting=ToolLoop(model), pii_key=new_key())
    openai_server.steps.append(Step(calls=[Call("create_ticket", {
        "summary": "Double charge for <EMAIL_1>", "description": "Charged twice on card <CARD_1>; reply to <EMAIL_1>."})]))
    asked = await engine.handle(ask(f"I was charged twice on {CARD}, open a ticket please, I'm {EMAIL}", "desk"))
    yes = next(a for a in asked.actions if a.id == "tool_yes")
    openai_server.steps.append(Step(text="NO_ANSWER"))
    await engine.confirm(ask("", "desk"), yes.value, True)
    [issue] = jira.created()
    written = json.dumps(issue)
    assert "<EMAIL_1>" in written and "<CARD_1>" in written  # the model's text, as it wrote it
    assert EMAIL not in written and "4111" not in written  # the transcript below it is masked too
