"""The Jira tools through atlassian-python-api against the fake Jira (tests/fakes/jira_api.py)."""
from __future__ import annotations

import time

import pytest

from bot import strings
from bot.tools import ToolContext, ToolError, Toolbox
from bot.tools.jira import JiraTools
from bot.types import User
from tests.fakes.jira_api import FakeJira
from tests.fakes.server import free_port, serve

TRANSCRIPT = (("user", "My VPN drops every 10 minutes since Monday."),
              ("assistant", "Sorry to hear that. Did restarting the VPN client help?"),
              ("user", "No, it still drops. Please open a ticket."))
LINK = "https://help.example.com/chat/abc"


@pytest.fixture
def fake():
    return FakeJira()


@pytest.fixture
def url(fake):
    with serve(fake.app()) as url:
        try:
            yield url
        finally:
            fake.release()  # a held request must not keep the server from stopping


@pytest.fixture
def jira(fake, url):
    return JiraTools(url=url, project="SUP", email=fake.email, token=fake.token, timeout=5)


def context(email: str = "jane@example.com", **changes) -> ToolContext:
    values = dict(conversation="web:abc", channel="web", user=User("u-42", "Jane Customer", email=email),
                  profile="default", link=LINK, transcript=TRANSCRIPT)
    return ToolContext(**{**values, **changes})


def posts(fake: FakeJira, path: str = "/rest/api/2/issue"):
    return [c for c in fake.calls if c.method == "POST" and c.path == path]


def test_tools_as_the_model_sees_them(jira):
    tools = Toolbox().register(jira).tools
    assert set(tools) == {"create_ticket", "add_comment", "ticket_status"}
    create, comment, status = tools["create_ticket"], tools["add_comment"], tools["ticket_status"]
    assert (create.acting, create.confirm, comment.acting, comment.confirm, status.acting) == (
        True, "confirm_create_ticket", True, "confirm_add_comment", False)
    assert create.parameters["required"] == ["summary"]
    assert create.parameters["properties"]["priority"]["enum"] == ["Lowest", "Low", "Medium", "High", "Highest"]
    assert comment.parameters["required"] == ["ticket", "comment"] and status.parameters["required"] == []
    for tool in tools.values():
        assert tool.description and all(p.get("description") for p in tool.parameters["properties"].values())
    for tool in (create, comment):  # the consent question formats with the call's arguments, as the engine does
        arguments = {name: "x" for name in tool.parameters["properties"]}
        for language in ("en", "fr"):
            assert language in strings.STRINGS[tool.confirm]
            assert "x" in strings.text(tool.confirm, language, **arguments)


def test_create_makes_one_issue_with_the_conversation(jira, fake):
    ctx = context()
    result = jira.create_ticket(ctx, "VPN  disconnects\nevery 10 minutes", "Restarting the client didn't help.",
                                "High")
    assert result == {"key": "SUP-1", "url": f"{jira.url}/browse/SUP-1", "summary": "VPN disconnects every 10 minutes",
                      "status": "To Do"}
    assert ctx.notes["tickets"] == ["SUP-1"]
    (issue,) = fake.created()
    assert len(posts(fake)) == 1
    fields = issue["fields"]
    assert (fields["project"]["key"], fields["issuetype"]["name"], fields["priority"]["name"]) == ("SUP", "Task", "High")
    description = fields["description"]
    assert description.startswith("Restarting the client didn't help.")
    for _, text in TRANSCRIPT:
        assert text in description
    assert LINK in description and "Jane Customer <jane@example.com>" in description
    assert fields["reporter"]["displayName"] == "Jane Customer"  # the one Jira user with her email
    assert fields["labels"] == ["switchboard"]


def test_each_call_creates_exactly_one_more_issue(jira, fake):
    ctx = context()
    jira.create_ticket(ctx, "First problem")
    jira.create_ticket(ctx, "Second problem")
    assert [i["key"] for i in fake.created()] == ["SUP-1", "SUP-2"] and len(posts(fake)) == 2
    assert ctx.notes["tickets"] == ["SUP-1", "SUP-2"]


def test_fields_the_project_refuses_are_dropped_once(jira, fake):
    fake.hidden_fields = {"reporter", "priority"}
    result = jira.create_ticket(context(), "Printer on floor 2 is jammed")
    (issue,) = fake.created()
    assert result["key"] == issue["key"] and len(posts(fake)) == 2  # the first answered 400: nothing created
    assert issue["fields"]["reporter"]["displayName"] == "Switchboard Bot"
    assert "Reported by Jane Customer <jane@example.com>" in issue["fields"]["description"]


def test_reporter_only_for_an_exact_email_match(jira, fake):
    fake.show_emails = False  # Cloud privacy: the search finds her but doesn't show her email
    jira.create_ticket(context(), "Hidden email")
    jira.create_ticket(context(email="nobody@example.com"), "Unknown email")
    sent = [c.body["fields"] for c in posts(fake)]
    assert all("reporter" not in f for f in sent)
    assert "nobody@example.com" in fake.created()[1]["fields"]["description"]


def test_a_refused_create_is_a_tool_error_and_no_issue(jira, fake):
    with pytest.raises(ToolError, match="project"):
        jira.create_ticket(context(options={"jira_project": "NOPE"}), "Anything")
    assert fake.created() == [] and len(posts(fake)) == 1


def test_user_text_cannot_mention_or_break_out_of_the_transcript(jira, fake):
    ctx = context(transcript=(("user", "hi {noformat} [~accountid:5b10a2844c20165700ede21g] h1. big"),))
    jira.create_ticket(ctx, "Mentions", "ping [~accountid:5b10a2844c20165700ede21g]")
    description = fake.created()[0]["fields"]["description"]
    assert "\\[~accountid" in description and description.count("{noformat}") == 2


def test_jira_500_is_a_visible_failure_without_secrets(jira, fake):
    fake.fail(times=2, status=500)  # the user search (ignored), then the create
    ctx = context()
    with pytest.raises(ToolError) as failure:
        jira.create_ticket(ctx, "Anything")
    assert "500" in str(failure.value) and fake.token not in repr(failure.value)
    assert fake.created() == [] and "tickets" not in ctx.notes


def test_a_slow_jira_is_a_tool_error_bounded_by_the_timeout(fake, url):
    jira = JiraTools(url=url, project="SUP", email=fake.email, token=fake.token, timeout=0.3)
    fake.hold()
    started = time.monotonic()
    with pytest.raises(ToolError, match="no answer within 0.3s"):
        jira.ticket_status(context(), "SUP-1")
    assert time.monotonic() - started < 3


def test_wrong_credentials_and_no_server_are_tool_errors(fake, url):
    for wrong in (JiraTools(url=url, project="SUP", email=fake.email, token="wrong-SECRET"),
                  JiraTools(url=url, project="SUP", token="wrong-SECRET", cloud=False)):
        with pytest.raises(ToolError, match="credentials were refused") as failure:
            wrong.ticket_status(context(), "SUP-1")
        assert "SECRET" not in repr(failure.value)
    gone = JiraTools(url=f"http://127.0.0.1:{free_port()}", project="SUP", email=fake.email, token=fake.token)
    with pytest.raises(ToolError, match="can't reach Jira"):
        gone.ticket_status(context(), "SUP-1")


def test_data_center_uses_a_bearer_token(fake, url):
    jira = JiraTools(url=url, project="SUP", token=fake.token, cloud=False)
    ctx = context()
    assert jira.create_ticket(ctx, "From Data Center")["key"] == "SUP-1"
    assert fake.created()[0]["fields"]["reporter"]["name"] == "jane"  # found by username search


def test_status_of_a_ticket_by_key(jira, fake):
    ctx = context()
    jira.create_ticket(ctx, "VPN drops")
    fake.set_status("SUP-1", "In Progress")
    fake.assign("SUP-1", fake.users[1])
    fake.reply("SUP-1", "Could you send us the VPN client logs?")
    fake.reply("SUP-1", "internal: probably the Monday update", visibility={"type": "role", "value": "Developers"})
    result = jira.ticket_status(ctx, " sup-1 ")
    assert result["ticket"] == "SUP-1" and result["url"].endswith("/browse/SUP-1")
    assert (result["status"], result["assignee"], result["summary"]) == ("In Progress", "Sam Agent", "VPN drops")
    assert result["updated"].startswith("20")
    assert result["last_reply"]["text"] == "Could you send us the VPN client logs?"  # not the restricted one
    assert result["last_reply"]["author"] == "Sam Agent"


def test_any_news_reports_the_conversation_tickets(jira, fake):
    ctx = context()
    assert jira.ticket_status(ctx)["tickets"] == []
    jira.create_ticket(ctx, "VPN drops")
    fake.set_status("SUP-1", "Done", "done")
    (report,) = jira.ticket_status(ctx)["tickets"]
    assert (report["ticket"], report["status"], report["assignee"], report["last_reply"]) == (
        "SUP-1", "Done", "nobody yet", None)


def test_bad_keys_other_projects_and_unknown_tickets(jira, fake):
    ctx = context()
    for bad in ("ticket 12", "SUP12", "1-SUP", "SUP-"):
        assert "not a ticket key" in jira.ticket_status(ctx, bad)["error"]
    assert "not a ticket of this help desk" in jira.ticket_status(ctx, "HR-3")["error"]
    assert fake.calls == []  # none of these reached Jira
    assert jira.ticket_status(ctx, "SUP-999") == {"ticket": "SUP-999", "found": False,
                                                  "note": "there is no ticket SUP-999 (or it can't be seen from here)"}


def test_someone_elses_ticket_shows_its_status_only(jira, fake):
    jira.create_ticket(context(), "Salary question", "My salary is wrong")
    fake.reply("SUP-1", "We checked your payslip")
    stranger = context(conversation="web:other", user=User("u-7", "Mallory"))
    result = jira.ticket_status(stranger, "SUP-1")
    assert result["status"] == "To Do" and "summary" not in result and "last_reply" not in result
    staff = context(conversation="slack:T1:C1:1.0", options={"any_ticket": True})
    assert jira.ticket_status(staff, "SUP-1")["last_reply"]["text"] == "We checked your payslip"


def test_comment_on_the_conversation_ticket(jira, fake):
    ctx = context()
    jira.create_ticket(ctx, "VPN drops")
    result = jira.add_comment(ctx, "SUP-1", "Here are the logs: it dropped at 10:42.")
    assert result == {"ticket": "SUP-1", "url": f"{jira.url}/browse/SUP-1", "comment_added": True}
    (comment,) = fake.comments("SUP-1")
    assert comment["body"].startswith("Here are the logs: it dropped at 10:42.")
    assert "Jane Customer <jane@example.com>" in comment["body"] and LINK in comment["body"]


def test_comments_only_on_own_tickets(jira, fake):
    jira.create_ticket(context(), "Someone else's")
    stranger = context(conversation="web:other")
    assert "only be added to tickets opened in this conversation" in jira.add_comment(stranger, "SUP-1", "hi")["error"]
    assert "not a ticket key" in jira.add_comment(stranger, "nope", "hi")["error"]
    assert posts(fake, "/rest/api/2/issue/SUP-1/comment") == []
    staff = context(options={"any_ticket": True})
    assert jira.add_comment(staff, "SUP-404", "hi")["found"] is False
    assert jira.add_comment(staff, "SUP-1", "Looking into it")["comment_added"] is True
