"""Model routing (bot/routing.py) over two scripted OpenAI-compatible endpoints, and the
cost of each turn (bot/accounting.py) from their `usage` fields, on the event and in /metrics."""
from __future__ import annotations

import json

import pytest

from adapters.metrics import Metrics
from bot import accounting
from bot.accounting import Ledger
from bot.answering import GenerativeAnswerer
from bot.engine import Engine
from bot.errors import ConfigError
from bot.model import OpenAIChatModel
from bot.profiles import load_profiles
from bot.routing import Endpoint, RoutedModel
from bot.types import Message, User
from tests.fakes.openai_server import Step, running, tokens

RETURNS = "How long do I have to return an item?"
ANSWER = "You have 30 days from delivery to return an item [1]."


@pytest.fixture
def strong():
    with running() as scripted:
        yield scripted


@pytest.fixture
def cheap(openai_server):
    return openai_server


def profiles_file(tmp_path, cheap, strong, extra: str = ""):
    path = tmp_path / "profiles.toml"
    path.write_text(f"""
[prices]
"mini" = {{ input = 0.15, output = 0.60 }}
"large" = {{ input = 2.50, output = 10.00 }}

[profiles.support]
persona = "You are the support assistant."
min_confidence = 0.5
turn_deadline = 120  # a loaded machine may take more than 20 s over a first search: not what is tested here
[profiles.support.models]
cheap = {{ model = "mini", base_url = "{cheap.base_url}" }}
strong = {{ model = "large", base_url = "{strong.base_url}" }}
{extra}
""")
    return load_profiles(path)


@pytest.fixture
def world(tmp_path, cheap, strong, memory, retriever, events):
    ledger = Ledger()
    profiles = profiles_file(tmp_path, cheap, strong)
    plan = profiles.get().models
    made = {e: OpenAIChatModel(e.model, e.base_url, "sk-test", 10, max_retries=0, ledger=ledger)
            for e in (plan.cheap, plan.strong)}
    default = OpenAIChatModel("default", cheap.base_url, "sk-test", 10, max_retries=0, ledger=ledger)
    model = RoutedModel(default, made, ledger)
    engine = Engine(memory=memory, retriever=retriever, answerer=GenerativeAnswerer(model), profiles=profiles,
                    events=events)
    yield engine, model, ledger
    engine.close()


def ask(text: str, conversation: str = "web:1") -> Message:
    return Message(conversation=conversation, text=text, user=User(id="u"), channel="web")


async def turn(events, conversation: str) -> dict:
    await events.flush()
    return json.loads([e for e in events.events(conversation) if e.kind in ("answered", "declined")][-1].detail)


async def test_a_confident_faq_question_goes_to_the_cheap_model_and_is_costed(world, cheap, strong, events):
    engine, _, ledger = world
    cheap.steps.append(Step(text=ANSWER))
    reply = await engine.handle(ask(RETURNS))
    assert reply.answered and len(cheap.requests) == 1 and not strong.requests
    event = await turn(events, "web:1")
    assert (event["route"], event["route_reason"], event["models"]) == ("cheap", "faq", ["mini"])
    sent = 3 + sum(4 + tokens(m["content"]) for m in cheap.requests[0]["messages"])
    assert cheap.requests[0]["stream_options"] == {"include_usage": True}  # a stream's usage, asked for
    assert (event["tokens_in"], event["tokens_out"]) == (sent, tokens(ANSWER))
    assert event["cost"] == pytest.approx((sent * 0.15 + tokens(ANSWER) * 0.60) / 1e6)
    assert ledger.tokens[("support", "web", "mini", "in")] == sent
    assert ledger.cost[("support", "web", "mini")] == pytest.approx(event["cost"])


async def test_a_multi_step_or_unsure_question_goes_to_the_strong_model(world, cheap, strong, events):
    engine, _, _ = world
    strong.steps += [Step(text=ANSWER), Step(text="NO_ANSWER")]
    await engine.handle(ask("How long do I have to return an item, and then how do I get a refund?", "web:2"))
    assert (await turn(events, "web:2"))["route_reason"] == "multi_step"
    await engine.handle(ask("Can I return a custom-engraved lamp bought at a partner shop in Belgium?", "web:3"))
    event = await turn(events, "web:3")
    assert not cheap.requests and len(strong.requests) == 2
    assert event["route"] == "strong" and event["route_reason"] == "low_confidence" and event["models"] == ["large"]


async def test_a_long_conversation_goes_to_the_strong_model(tmp_path, cheap, strong, memory, retriever, events):
    profiles = profiles_file(tmp_path, cheap, strong)
    plan = profiles.get().models
    model = RoutedModel(OpenAIChatModel("default", cheap.base_url, "k", 10, max_retries=0),
                        {e: OpenAIChatModel(e.model, e.base_url, "k", 10, max_retries=0)
                         for e in (plan.cheap, plan.strong)})
    engine = Engine(memory=memory, retriever=retriever, answerer=GenerativeAnswerer(model), profiles=profiles,
                    events=events)
    cheap.steps += [Step(text=ANSWER)] * 6
    strong.steps.append(Step(text=ANSWER))
    for n in range(7):
        await engine.handle(ask(RETURNS, "web:long"))
    assert len(cheap.requests) == 6 and len(strong.requests) == 1
    assert (await turn(events, "web:long"))["route_reason"] == "long_history"
    engine.close()


async def test_a_failing_model_falls_back_to_the_other(world, cheap, strong, events):
    engine, _, ledger = world
    cheap.steps.append(Step(status=500))
    strong.steps.append(Step(text=ANSWER))
    reply = await engine.handle(ask(RETURNS, "web:4"))
    assert reply.answered and reply.answer == ANSWER
    event = await turn(events, "web:4")
    assert event["route"] == "cheap" and event["fallback_from"] == "mini" and event["models"] == ["large"]
    assert ledger.fallbacks[("support", "mini")] == 1


async def test_both_failing_is_the_apology(world, cheap, strong, events):
    engine, _, _ = world
    cheap.steps.append(Step(status=500))
    strong.steps.append(Step(status=503))
    reply = await engine.handle(ask(RETURNS, "web:5"))
    assert not reply.answered and reply.actions[0].value == "ai_error"


async def test_a_tool_step_goes_to_the_strong_model_unstreamed_and_is_costed(world, cheap, strong):
    _, model, ledger = world
    strong.steps.append(Step(text="Your order #1001 has shipped."))
    meter = accounting.begin(world[0].profiles.get(), "slack")
    tools = [{"type": "function", "function": {"name": "order_status", "parameters": {"type": "object"}}}]
    done = await model.step([{"role": "user", "content": "Where is order 1001?"}], tools)
    assert done.text == "Your order #1001 has shipped." and not cheap.requests
    assert meter.route.reason == "tools" and "stream" not in strong.requests[0]
    assert meter.fields()["tokens_out"] == tokens("Your order #1001 has shipped.")
    assert ledger.calls[("support", "slack", "large")] == 1


async def test_metrics_show_tokens_cost_routes_and_the_cache(world, cheap, events, sample_index):
    engine, _, ledger = world
    cheap.steps.append(Step(text=ANSWER))
    await engine.handle(ask(RETURNS, "web:6"))
    ledger.count("cache", "support", "hit")
    text = (await Metrics(events, sample_index, ledger=ledger).render()).decode()
    assert 'switchboard_llm_tokens_total{channel="web",direction="out",model="mini",profile="support"} 14.0' in text
    assert 'switchboard_llm_cost_dollars_total{channel="web",model="mini",profile="support"}' in text
    assert 'switchboard_routes_total{profile="support",reason="faq",tier="cheap"} 1.0' in text
    assert 'switchboard_answer_cache_total{outcome="hit",profile="support"} 1.0' in text


def test_a_malformed_models_table_names_the_field(tmp_path, cheap, strong):
    assert profiles_file(tmp_path, cheap, strong).get().models.strong.model == "large"
    path = tmp_path / "bad.toml"
    path.write_text('[profiles.a.models]\ncheap = { model = "m" }\nstrong = { base_url = "http://x" }\n')
    with pytest.raises(ConfigError, match="models.strong"):
        load_profiles(path)
    path = tmp_path / "prices.toml"
    path.write_text('[profiles.a.prices]\n"m" = { input = -1 }\n')
    with pytest.raises(ConfigError, match="prices"):
        load_profiles(path)
    assert Endpoint("m") == Endpoint("m", "", "")
