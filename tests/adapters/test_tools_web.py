"""Tools in the web chat over real HTTP: the customer asks for an order's status (the real
Shopify tool against the fake store: right email → tracking, wrong email → nothing), and a
ticket proposed by the model waits for Yes on POST /api/confirm, created once on a double
click (the real Jira tool against the fake Jira)."""
from __future__ import annotations

import contextlib
import json
import uuid

import httpx
import pytest

from adapters.app import create_app
from tests.adapters.test_web import chat, open_runtime
from tests.fakes.jira_api import FakeJira
from tests.fakes.openai_server import Call, Step
from tests.fakes.server import serve
from tests.fakes.shopify_api import FakeShopify

PROFILES = """
[profiles.shop]
default = true
name = "Shop"
sources = ["helpcenter", "faq", "catalog"]
tools = ["order_status", "create_ticket"]
"""
ORDER, EMAIL = "#W2611340", "james.li4495@example.com"


@pytest.fixture
def services():
    jira, shop = FakeJira(), FakeShopify.from_tau2()
    with serve(jira.app()) as jira_url, serve(shop.app()) as shop_url:
        jira.url, shop.url = jira_url, shop_url
        try:
            yield jira, shop
        finally:
            jira.release()


@contextlib.contextmanager
def tools_web(tmp_path, sample_index_path, embedder, openai_server, services, profiles_toml: str,
              timeout: float = 60):
    """A web chat whose profiles (`profiles_toml`) may use the fake Jira and Shopify and the
    scripted model: yields (HTTP client, runtime)."""
    jira, shop = services
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(profiles_toml)
    runtime = open_runtime(tmp_path, sample_index_path, embedder, SWITCHBOARD_PROFILES=str(profiles),
                           OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="sk-test",
                           JIRA_URL=jira.url, JIRA_EMAIL=jira.email, JIRA_API_TOKEN=jira.token, JIRA_PROJECT="SUP",
                           SHOPIFY_STORE_URL=shop.url, SHOPIFY_ACCESS_TOKEN=shop.token)
    with serve(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=timeout) as client:
        yield client, runtime


@pytest.fixture
def web(tmp_path, sample_index_path, embedder, openai_server, services):
    with tools_web(tmp_path, sample_index_path, embedder, openai_server, services, PROFILES) as (client, _):
        yield client, openai_server


def final(events: list[tuple[str, dict]]) -> dict:
    return next(data for kind, data in events if kind == "reply")


def test_an_order_is_shown_only_with_its_email(web):
    client, llm = web
    conversation = uuid.uuid4().hex
    llm.steps += [Step(calls=[Call("order_status", {"order_number": ORDER, "email": "someone@example.com"})]),
                  Step(text="I couldn't find an order with that number and email.")]
    wrong = final(chat(client, conversation, f"Where is my order {ORDER}? my email is someone@example.com"))
    result = llm.requests[1]["messages"][-1]["content"]
    assert "357962501027" not in result and "Water Bottle" not in result  # nothing leaked to the model
    assert "couldn't find" in wrong["answer"]
    llm.steps += [Step(calls=[Call("order_status", {"order_number": ORDER, "email": EMAIL})]),
                  Step(text="Your order has shipped: tracking 357962501027.")]
    right = final(chat(client, conversation, f"Sorry, it's {EMAIL}"))
    assert "357962501027" in llm.requests[3]["messages"][-1]["content"]
    assert "357962501027" in right["answer"]


def test_a_ticket_waits_for_yes_and_is_created_once(web, services):
    client, llm = web
    jira, _ = services
    conversation = uuid.uuid4().hex
    llm.steps += [Step(calls=[Call("create_ticket", {"summary": "Damaged lamp shade"})]),
                  Step(text="Done: SUP-1 is open.")]
    asked = final(chat(client, conversation, "My lamp shade arrived damaged, please open a ticket"))
    yes = next(a for a in asked["actions"] if a["id"] == "tool_yes")
    assert yes["kind"] == "confirm" and jira.created() == []
    body = {"conversation": conversation, "action": yes["value"], "accepted": True}
    first, second = client.post("/api/confirm", json=body), client.post("/api/confirm", json=body)
    assert first.status_code == second.status_code == 200
    assert "SUP-1" in first.json()["answer"] and "already handled" in second.json()["answer"]
    assert len(jira.created()) == 1
    bad = client.post("/api/confirm", json={"conversation": conversation, "action": "x", "accepted": "yes"})
    assert bad.status_code == 400 and "accepted" in bad.json()["error"]
    history = client.get(f"/api/conversations/{conversation}").json()  # every bubble, the second click's too
    assert "SUP-1" in json.dumps(history["turns"][-2]) and "already handled" in json.dumps(history["turns"][-1])
