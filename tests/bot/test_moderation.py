"""Content moderation: the local rules, and the OpenAI moderation endpoint (the fake server
speaking its wire format) with its fallback to the rules when it fails; an answer written on
a tool's result is moderated like any other."""
from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import httpx
import pytest

from bot.acting import ToolLoop
from bot.answering import GenerativeAnswerer
from bot.engine import Engine
from bot.model import OpenAIChatModel
from bot.moderation import (LocalModerator, ModerationSettings, OpenAIModerator, Verdict, fold,
                            moderator)
from bot.moderation import safe_message_key
from bot.profiles import load_profiles
from bot.settings import DEFAULT_PROFILES
from bot.strings import STRINGS as SAFETY_STRINGS
from bot.tools import Toolbox
from bot.tools.jira import JiraTools
from bot.types import Message, User
from tests.fakes.openai_server import Call, Moderated, Step
from tests.fakes.server import free_port

CASES = Path(__file__).resolve().parent.parent / "fixtures" / "moderation" / "cases.tsv"
LOCAL = LocalModerator()


def dev_cases() -> list[tuple[str, str]]:
    rows = [line.split("\t") for line in CASES.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    return [(category, text) for category, _, split, text in rows if split == "dev"]


@pytest.mark.parametrize("category, text", dev_cases())
def test_the_rules_catch_the_dev_cases_in_their_category_and_pass_complaints(category, text):
    assert LOCAL.verdict(text).category == (None if category == "-" else category)


@pytest.mark.parametrize("text", [
    "this is a terrible service", "your delivery is damn late", "I want to kill this order",
    "This is FUCKING ridiculous, 3 weeks!!", "Quels sont les délais de livraison ?", "我想杀价",
    "If you ever feel suicidal, please call a crisis line.",  # an answer about it is not intent
    "Can you shoot me an email? I'll shoot you a text when it's here.", "How do I kill the process?",
])
def test_frustration_and_ordinary_text_pass(text):
    assert LOCAL.verdict(text) == Verdict(False, None, "local")


@pytest.mark.parametrize("text, category", [
    ("I’m going to KILL you", "violence"),  # curly apostrophe, capitals
    ("Je vais vous égorger", "violence"), ("je vais vous egorger", "violence"),  # with or without accents
    ("you're a total idiot", "harassment"), ("Tu es complètement débile", "harassment"),
    ("I want to kill myself", "self_harm"), ("我想自杀", "self_harm"),
    ("fuck you, I'll kill myself", "self_harm"),  # self-harm first: its message points to help
])
def test_the_rules_fold_case_accents_and_apostrophes_and_rank_self_harm_first(text, category):
    assert LOCAL.verdict(text).category == category


def test_fold():
    assert fold("  Vous   ÊTES  l’idiot ") == "vous etes l'idiot"


# -- the OpenAI moderation endpoint -----------------------------------------------------------
def endpoint(openai_server, timeout: float = 5.0) -> OpenAIModerator:
    return OpenAIModerator(openai_server.base_url, "sk-test", timeout=timeout)


@pytest.mark.parametrize("flagged, category", [
    (("self-harm", "self-harm/intent"), "self_harm"),
    (("harassment", "harassment/threatening"), "violence"),
    (("harassment",), "harassment"), (("hate",), "harassment"), (("sexual",), "sexual"),
])
async def test_the_endpoint_decides_with_its_categories(openai_server, flagged, category):
    openai_server.moderations.append(Moderated(categories=flagged))
    verdict = await endpoint(openai_server).check("some words the local rules let pass", "en")
    assert verdict == Verdict(True, category, "openai")
    assert openai_server.moderation_requests == [{"model": "omni-moderation-latest",
                                                  "input": "some words the local rules let pass"}]


async def test_what_the_endpoint_clears_is_clear_even_if_the_rules_would_flag_it(openai_server):
    verdict = await endpoint(openai_server).check("you stupid bot", "en")  # nothing scripted: not flagged
    assert verdict == Verdict(False, None, "openai") and len(openai_server.moderation_requests) == 1


async def test_an_endpoint_error_falls_back_to_the_rules_and_is_logged(openai_server, caplog):
    openai_server.moderations += [Moderated(status=500), Moderated(status=401)]
    caplog.set_level(logging.WARNING, logger="bot.moderation")
    moderation = endpoint(openai_server)
    assert await moderation.check("I want to kill myself", "en") == Verdict(True, "self_harm", "local")
    assert await moderation.check("Where is my parcel?", "en") == Verdict(False, None, "local")
    assert len(openai_server.moderation_requests) == 2  # no retries: the turn doesn't wait
    assert [r.getMessage() for r in caplog.records] == [
        "moderation endpoint failed (InternalServerError): using the local rules",
        "moderation endpoint failed (AuthenticationError): using the local rules"]


async def test_an_unreachable_endpoint_falls_back_to_the_rules():
    moderation = OpenAIModerator(f"http://127.0.0.1:{free_port()}/v1", "sk-test", timeout=5)
    assert await moderation.check("je vais te tuer", "fr") == Verdict(True, "violence", "local")


async def test_a_slow_endpoint_is_given_up_on_after_the_timeout(openai_server):
    release = threading.Event()
    openai_server.moderations.append(Moderated(categories=("harassment",), hold=release))
    try:
        verdict = await endpoint(openai_server, timeout=0.3).check("ferme ta gueule", "fr")
    finally:
        release.set()  # lets the held request end, so the server stops at once
    assert verdict == Verdict(True, "harassment", "local")


def test_settings_choose_the_endpoint_or_the_rules():
    assert isinstance(moderator(ModerationSettings.from_env({})), LocalModerator)
    settings = ModerationSettings.from_env({"MODERATION_BASE_URL": "http://127.0.0.1:9/v1",
                                            "OPENAI_API_KEY": "sk-x", "MODERATION_TIMEOUT": "1.5"})
    chosen = moderator(settings)
    assert isinstance(chosen, OpenAIModerator) and chosen.timeout == 1.5 and chosen.model == "omni-moderation-latest"
    with pytest.raises(ValueError, match="MODERATION_TIMEOUT"):
        ModerationSettings.from_env({"MODERATION_TIMEOUT": "soon"})


# -- what the user reads ----------------------------------------------------------------------
def test_safe_messages_exist_in_every_language_and_name_no_countrys_number():
    for key in ("safe_message", "safe_message_self_harm", "safe_answer_withheld"):
        assert set(SAFETY_STRINGS[key]) == {"en", "fr", "zh", "de", "es"}, key
    for text in SAFETY_STRINGS["safe_message_self_harm"].values():
        assert not re.search(r"\d", text)  # "your local emergency number", not 911 or 112
    assert safe_message_key("self_harm") == safe_message_key("self_harm", output=True) == "safe_message_self_harm"
    assert safe_message_key("harassment") == "safe_message"
    assert safe_message_key("violence", output=True) == "safe_answer_withheld"


async def test_an_answer_written_on_a_tool_result_is_moderated_too(tmp_path, memory, retriever, events,
                                                                   openai_server, jira):
    path = tmp_path / "profiles.toml"
    path.write_text(DEFAULT_PROFILES.read_text() + '\n[profiles.desk]\nname = "Desk"\ntools = ["ticket_status"]\n'
                    '[profiles.desk.tool_options]\nany_ticket = true\n')
    model = OpenAIChatModel("test-model", base_url=openai_server.base_url, api_key="sk-test", max_retries=0)
    tools = Toolbox().register(JiraTools(url=jira.url, project="SUP", email=jira.email, token=jira.token, timeout=5))
    engine = Engine(memory=memory, retriever=retriever, answerer=GenerativeAnswerer(model), profiles=load_profiles(path),
                    events=events, toolbox=tools, acting=ToolLoop(model), moderator=LOCAL)
    created = httpx.post(f"{jira.url}/rest/api/2/issue", auth=(jira.email, jira.token), json={"fields": {
        "project": {"key": "SUP"}, "issuetype": {"name": "Task"}, "summary": "Printer jams"}})
    assert created.json()["key"] == "SUP-1"
    said = "Ticket SUP-1 has status To Do, you stupid idiot."
    openai_server.steps += [Step(calls=[Call("ticket_status", {"ticket": "SUP-1"})]), Step(text=said)]
    reply = await engine.handle(Message(conversation="web:m1", text="Any news on SUP-1?", user=User(id="u1"),
                                        channel="web", profile="desk"))
    assert "idiot" not in reply.answer and not reply.answered and [a.kind for a in reply.actions] == ["handoff"]
    [event] = events.events("web:m1", "moderated")
    assert '"output"' in event.detail and '"harassment"' in event.detail


async def test_a_streamed_answer_stops_before_the_sentence_moderation_flags(memory, retriever, events, openai_server):
    model = OpenAIChatModel("test-model", base_url=openai_server.base_url, api_key="sk-test", max_retries=0)
    engine = Engine(memory=memory, retriever=retriever, answerer=GenerativeAnswerer(model),
                    profiles=load_profiles(DEFAULT_PROFILES), events=events, moderator=endpoint(openai_server))
    first = "You have 30 days from delivery to return an item [1]."
    second = " That is more than twice the 14 days required by law [1]."
    openai_server.steps.append(Step(text=first + second))
    # the question passes; the answer's first sentence passes; with the second it is flagged
    openai_server.moderations += [Moderated(), Moderated(), Moderated(categories=("harassment",))]
    shown: list[str] = []

    async def on_text(delta: str) -> None:
        shown.append(delta)
    reply = await engine.handle(Message(conversation="web:m2", text="How long do I have to return an item?",
                                        user=User(id="u2"), channel="web"), on_text)
    assert "".join(shown).strip() == first  # the flagged sentence never reached the screen
    assert not reply.answered and [a.kind for a in reply.actions] == ["handoff"] and "30 days" not in reply.answer
    assert [r["input"].strip() for r in openai_server.moderation_requests][1:] == [first, first + second]
    [event] = events.events("web:m2", "moderated")
    assert '"output"' in event.detail
