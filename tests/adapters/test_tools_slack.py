"""Tools through Slack end to end: a mention → the scripted LLM asks for the real Jira tool →
Yes / No buttons in the thread → Yes (clicked twice) → exactly one issue in the fake Jira,
and the answer in the thread. No runs nothing. A Jira failure ends in a visible apology and
a tool_failure escalation to the agents channel."""
from __future__ import annotations

import json

import pytest

from tests.adapters.slack_workspace import BOT, event, workspace
from tests.fakes.openai_server import Call, Step

TOOLS = """
[channels."slack:CTOOLS"]
profile = "desk"

[profiles.desk]
name = "IT desk"
sources = ["helpcenter", "faq", "catalog"]
tools = ["create_ticket", "ticket_status"]

[profiles.desk.handoff]
agents = "slack:CAGENTS"
"""


@pytest.fixture
def ws(fake_slack, tmp_path, sample_index_path, embedder, redis_url, openai_server, jira):
    with workspace(fake_slack, tmp_path, sample_index_path, embedder, extra_profiles=TOOLS, REDIS_URL=redis_url,
                   OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="sk-test", JIRA_URL=jira.url,
                   JIRA_EMAIL=jira.email, JIRA_API_TOKEN=jira.token, JIRA_PROJECT="SUP") as space:
        yield space, openai_server


def question(ws, fake_slack, text: str) -> dict:
    ws.deliver(event(text=f"<@{BOT}> {text}", channel="CTOOLS"))
    ws.channel.deliveries.wait(1)
    [asked] = ws.answers()
    return {**asked, "ts": fake_slack.calls_to("chat.postMessage")[0].response["ts"]}


def test_yes_creates_exactly_one_ticket_even_when_clicked_twice(ws, fake_slack, jira):
    ws, llm = ws
    llm.steps += [Step(calls=[Call("create_ticket", {"summary": "Printer on floor 3 jams"})]),
                  Step(text="I created SUP-1 for you: the team will look at the printer.")]
    asked = question(ws, fake_slack, "The printer on floor 3 jams, please open a ticket")
    buttons = [e["action_id"] for b in asked["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["tool_yes", "tool_no"] and "Printer on floor 3 jams" in json.dumps(asked["blocks"])
    assert jira.created() == []
    assert ws.click("tool_yes", asked).status_code == 200
    assert ws.click("tool_yes", asked).status_code == 200
    done = fake_slack.wait_for("chat.postMessage", 2)[-1].args
    assert "SUP-1" in json.dumps(done["blocks"]) and done["thread_ts"] == asked["thread_ts"]
    assert len(jira.created()) == 1
    description = json.dumps(jira.created()[0])
    assert "printer on floor 3" in description.lower() and "app.slack.com/client" in description
    [stale] = fake_slack.wait_for("response_url")  # the second click: told privately, nothing posted
    assert "already handled" in stale.args["text"]
    [decided] = [c.args for c in fake_slack.calls_to("chat.update") if c.args["ts"] == asked["ts"]]
    assert "actions" not in json.dumps([b["type"] for b in decided["blocks"]])  # no more buttons to press
    assert "Yes · <@U00FAKEUSER1>" in json.dumps(decided["blocks"], ensure_ascii=False)


def test_no_creates_nothing(ws, fake_slack, jira):
    ws, llm = ws
    llm.steps += [Step(calls=[Call("create_ticket", {"summary": "Broken keyboard"})])]
    asked = question(ws, fake_slack, "My keyboard is broken, can you open a ticket?")
    ws.click("tool_no", asked)
    ws.channel.deliveries.wait(2)  # the question, then the press
    events = ws.runtime.events
    declined = [e for e in events.events() if e.kind == "tool_declined"]
    assert declined and jira.created() == []


def test_a_jira_failure_is_visible_and_escalates_with_tool_failure(ws, fake_slack, jira):
    ws, llm = ws
    llm.steps += [Step(calls=[Call("create_ticket", {"summary": "VPN down"})])]
    asked = question(ws, fake_slack, "The VPN is down, open a ticket")
    jira.fail(times=10, status=500)
    ws.click("tool_yes", asked)
    posts = [c.args for c in fake_slack.wait_for("chat.postMessage", 3)]
    assert any(p["channel"] == "CAGENTS" for p in posts)
    apology = next(p for p in posts if p["channel"] == "CTOOLS" and p is not posts[0])
    assert "couldn't complete that action" in json.dumps(apology)
    failed = [json.loads(e.detail) for e in ws.runtime.events.events() if e.kind == "tool_failed"]
    assert failed and failed[0]["tool"] == "create_ticket" and jira.token not in json.dumps(failed)
