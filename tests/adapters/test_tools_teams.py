"""Tools through Teams: a personal chat asks for a ticket, the scripted LLM proposes the real
Jira tool, the card offers Yes / No, and Yes pressed twice (two invokes) creates one issue
in the fake Jira; No creates none."""
from __future__ import annotations

import pytest

from bot.settings import DEFAULT_PROFILES
from tests.adapters.teams_tenant import CHANNELS, CHAT, buttons, cards, fake_teams, tenant, text  # noqa: F401
from tests.fakes.openai_server import Call, Step

# two tickets may be asked for in one conversation (the default is one): the second is the No
LIMITS = "\n[profiles.support.tool_options]\nlimits = {create_ticket = {per_conversation = 2}}\n"


@pytest.fixture
def t(fake_teams, tmp_path, sample_index_path, embedder, redis_url, openai_server, jira):  # noqa: F811
    profiles = tmp_path / "tools.toml"
    profiles.write_text(DEFAULT_PROFILES.read_text().replace(
        "[profiles.support]\ndefault = true\n", '[profiles.support]\ndefault = true\ntools = ["create_ticket"]\n', 1)
        + CHANNELS + LIMITS)
    with tenant(fake_teams, tmp_path, sample_index_path, embedder, REDIS_URL=redis_url,
                SWITCHBOARD_PROFILES=str(profiles), OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="sk-test",
                JIRA_URL=jira.url, JIRA_EMAIL=jira.email, JIRA_API_TOKEN=jira.token, JIRA_PROJECT="SUP") as space:
        yield space, openai_server


def test_yes_twice_creates_one_ticket_and_no_creates_none(t, jira):
    t, llm = t
    llm.steps += [Step(calls=[Call("create_ticket", {"summary": "Lamp arrived broken"})]),
                  Step(text="I opened SUP-1 for you.")]
    t.say("My lamp arrived broken, please open a ticket")
    [asked] = cards(t.wait_answers(1)[0])
    assert buttons(asked) == ["Yes", "No"] and "Lamp arrived broken" in text(asked)
    assert t.click(asked, "Yes", conversation=CHAT).status_code == 200
    second = t.click(asked, "Yes", conversation=CHAT)  # answered in place, to the clicker only
    assert second.status_code == 200 and "already handled" in second.text
    [done] = cards(t.wait_answers(2)[1])
    assert "SUP-1" in text(done) and len(jira.created()) == 1
    llm.steps += [Step(calls=[Call("create_ticket", {"summary": "Another one"})])]
    t.say("Open another ticket please")
    [again] = cards(t.wait_answers(3)[2])
    declined = t.click(again, "No", conversation=CHAT)
    assert "won't do that" in declined.text and len(jira.created()) == 1
