"""The web chat over real HTTP: page, SSE chat, history across reloads and restarts (every
bubble, in order, a page at a time), feedback, handoff, a person from the team writing to a
web visitor, and messages over the length limit."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import shutil
import uuid

import httpx
import pytest

from adapters.app import create_app
from adapters.web import PAGE, Transcript
from bot.profiles import load_profiles
from bot.runtime import Runtime
from bot.settings import Settings
from bot.settings import DEFAULT_PROFILES
from bot.types import Citation, Reply
from tests.bot.test_handoff import Desk
from tests.fakes.server import serve


def open_runtime(tmp_path, sample_index_path, embedder, **env: str) -> Runtime:
    """A runtime over a private copy of the sample index, configured by `env`."""
    shutil.copy(sample_index_path, tmp_path / "index.sqlite3")
    settings = dataclasses.replace(Settings.from_env({"SWITCHBOARD_HOME": str(tmp_path), **env}),
                                   index_path=tmp_path / "index.sqlite3", load_sample=False)
    return Runtime.open(settings, embedder=embedder)


@pytest.fixture
def web(tmp_path, sample_index_path, embedder):
    runtime = open_runtime(tmp_path, sample_index_path, embedder)
    with serve(create_app(runtime)) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client, runtime


def sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def chat(client: httpx.Client, conversation: str, text: str) -> list[tuple[str, dict]]:
    response = client.post("/api/chat", json={"conversation": conversation, "text": text})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    return sse(response.text)


def test_the_page_and_its_assets_are_served(web):
    client, _ = web
    page = client.get("/")
    assert page.status_code == 200 and '<meta name="switchboard-bot" content="Maison Lumière support">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/healthz").json()["ok"] is True


def test_a_question_streams_and_ends_with_a_rendered_cited_reply(web):
    client, _ = web
    events = chat(client, uuid.uuid4().hex, "How long do I have to return an item?")
    kind, reply = events[-1]
    assert kind == "reply" and reply["answered"] and reply["citations"]
    assert "<strong>" in reply["answer_html"] and "30 days" in reply["answer_html"]
    assert all(kind == "delta" for kind, _ in events[:-1])


def test_the_conversation_survives_a_reload(web):
    client, _ = web
    conversation = uuid.uuid4().hex
    assert client.get(f"/api/conversations/{conversation}").status_code == 404
    chat(client, conversation, "What are your delivery times?")
    chat(client, conversation, "and for Belgium?")
    turns = client.get(f"/api/conversations/{conversation}").json()["turns"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[2]["text"] == "and for Belgium?" and "Belgium" in turns[3]["reply"]["answer_html"]


def test_feedback_and_handoff(web):
    client, runtime = web
    conversation = uuid.uuid4().hex
    _, reply = chat(client, conversation, "Do you offer gift wrapping?")[-1]
    answer = client.post("/api/feedback", json={"conversation": conversation, "reply_id": reply["id"], "value": "down"})
    assert answer.json() == {"message": "Thanks for your feedback!"}
    assert runtime.events.feedbacks(reply["id"])[0].value == "down"
    handoff = client.post("/api/handoff", json={"conversation": conversation}).json()
    assert handoff["handoff"]["reason"] == "customer_request" and handoff["answer_html"]


def test_markdown_from_knowledge_cannot_inject_html(web):
    from adapters.web import render_html
    html = render_html("<script>alert(1)</script> [x](javascript:alert(1)) **ok**")
    assert "<script>" not in html and "href=\"javascript" not in html and "<strong>ok</strong>" in html


@pytest.mark.parametrize("body, status", [
    (b"not json", 400), (b"[]", 400), (json.dumps({"conversation": "../../etc", "text": "hi"}).encode(), 400),
    (json.dumps({"conversation": "web-0123456789", "text": 42}).encode(), 400),
    (json.dumps({"conversation": "web-0123456789", "text": {"q": "hi"}}).encode(), 400),
])
def test_bad_requests_get_a_clear_error(web, body, status):
    client, _ = web
    response = client.post("/api/chat", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and response.json()["error"]


def test_empty_and_huge_messages_get_a_reply_not_an_error(web):
    client, _ = web
    _, empty = chat(client, uuid.uuid4().hex, "")[-1]
    _, huge = chat(client, uuid.uuid4().hex, "a" * 20_001)[-1]
    assert "empty" in empty["answer"] and "too long" in huge["answer"]


def test_a_message_over_the_limit_gets_the_too_long_notice_not_an_answer(web):
    client, _ = web
    conversation = uuid.uuid4().hex
    question = "How long do I have to return an item? "
    question += "x" * (25_000 - len(question))
    events = chat(client, conversation, question)
    assert [kind for kind, _ in events] == ["reply"]  # nothing was written as an answer
    reply = events[0][1]
    assert "too long (25000 characters; the limit is 20000)" in reply["answer"]
    assert not reply["answered"] and not reply["citations"] and "30 days" not in reply["answer"]
    turns = client.get(f"/api/conversations/{conversation}").json()["turns"]
    assert [t.get("text") for t in turns] == [question, None]  # shown as sent, never cut


def bubbles(client: httpx.Client, conversation: str, **params) -> list[str]:
    """The conversation as the page shows it: "user: …" and "bot: …" lines, in order."""
    turns = client.get(f"/api/conversations/{conversation}", params=params).json()["turns"]
    return [f"user: {t['text']}" if t["role"] == "user" else f"bot: {t['reply']['answer']}" for t in turns]


def test_a_reload_shows_every_bubble_in_order_even_past_memory_and_a_restart(tmp_path, sample_index_path, embedder):
    conversation = uuid.uuid4().hex
    questions = ["How long do I have to return an item? " + "Please tell me everything. " * 300,
                 "What are your delivery times?", "and for Belgium?", "Do you offer gift wrapping?"]
    runtime = open_runtime(tmp_path, sample_index_path, embedder)
    with serve(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=60) as client:
        answers = [chat(client, conversation, q)[-1][1]["answer"] for q in questions]
        handoff = client.post("/api/handoff", json={"conversation": conversation}).json()
        before = bubbles(client, conversation)
    expected = [line for q, a in zip(questions, answers) for line in (f"user: {q.strip()}", f"bot: {a}")]
    assert before == expected + [f"bot: {handoff['answer']}"] and handoff["handoff"]
    remembered = asyncio.run(runtime.engine.history(f"web:{conversation}"))
    assert len(remembered.turns) < len(before)  # the memory keeps a bounded tail; the page shows it all
    asyncio.run(runtime.close())
    again = open_runtime(tmp_path, sample_index_path, embedder)
    with serve(create_app(again)) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert bubbles(client, conversation) == before


def test_history_comes_a_page_at_a_time_and_since_a_line(web):
    client, _ = web
    conversation = uuid.uuid4().hex
    for _ in range(PAGE + 5):
        client.post("/api/handoff", json={"conversation": conversation}).raise_for_status()
    newest = client.get(f"/api/conversations/{conversation}").json()
    assert len(newest["turns"]) == PAGE and newest["more"]
    seqs = [t["seq"] for t in newest["turns"]]
    assert seqs == sorted(seqs)
    earlier = client.get(f"/api/conversations/{conversation}", params={"before": seqs[0]}).json()
    assert len(earlier["turns"]) == 5 and not earlier["more"] and earlier["turns"][-1]["seq"] < seqs[0]
    since = client.get(f"/api/conversations/{conversation}", params={"after": seqs[-3]}).json()["turns"]
    assert [t["seq"] for t in since] == seqs[-2:]
    assert client.get(f"/api/conversations/{conversation}", params={"before": "x"}).status_code == 400


def test_feedback_stays_chosen_after_a_reload(web):
    client, _ = web
    conversation = uuid.uuid4().hex
    _, reply = chat(client, conversation, "Do you offer gift wrapping?")[-1]
    client.post("/api/feedback", json={"conversation": conversation, "reply_id": reply["id"], "value": "up"})
    turns = client.get(f"/api/conversations/{conversation}").json()["turns"]
    assert turns[1]["reply"]["id"] == reply["id"] and turns[1]["chosen"] == "up"


HANDOFF = """
[profiles.support.handoff]
agents = "test:AGENTS"
hours = "mon-sun 00:00-23:59"
"""


@pytest.fixture
def desk_web(tmp_path, sample_index_path, embedder):
    """The web chat of a profile whose handoffs go to a recording agents' desk."""
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(DEFAULT_PROFILES.read_text() + HANDOFF)
    runtime = open_runtime(tmp_path, sample_index_path, embedder, SWITCHBOARD_PROFILES=str(profiles))
    desk = Desk()
    runtime.engine.handoffs.add_desk("test", desk)
    with serve(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, runtime.engine.handoffs, desk


async def test_what_a_person_from_the_team_writes_is_shown_in_order_and_after_a_reload(desk_web):
    client, handoffs, desk = desk_web
    conversation = uuid.uuid4().hex
    chat(client, conversation, "How long do I have to return an item?")
    handed = client.post("/api/handoff", json={"conversation": conversation}).json()
    [escalation] = desk.posts
    await handoffs.claim(escalation, "agent1", "Alice")
    await handoffs.from_agent(escalation, "agent1", "Hello, I can help with that.")
    seen = client.get(f"/api/conversations/{conversation}").json()["turns"][-1]["seq"]
    assert chat(client, conversation, "Thanks, it is order 1234")[-1][1]["answer"] == ""  # relayed to Alice
    await handoffs.resolve(escalation, "agent1")
    history = client.get(f"/api/conversations/{conversation}").json()
    closing = history["turns"][-1]["reply"]
    rating = next(a for a in closing["actions"] if a["kind"] == "rating" and a["label"] == "5")
    rated = client.post("/api/rate", json={"conversation": conversation, "value": rating["value"],
                                           "reply_id": closing["id"]}).json()
    shown = bubbles(client, conversation)
    assert shown[0] == "user: How long do I have to return an item?" and "30 days" in shown[1]
    assert shown[2:] == [f"bot: {handed['answer']}", "bot: Alice from our team has joined the conversation.",
                         "bot: **Alice**: Hello, I can help with that.", "user: Thanks, it is order 1234",
                         f"bot: {closing['answer']}", f"bot: {rated['answer']}"]
    assert "**Alice**" not in shown[3] and "<strong>Alice</strong>" in \
        client.get(f"/api/conversations/{conversation}").json()["turns"][4]["reply"]["answer_html"]
    assert client.get(f"/api/conversations/{conversation}").json()["turns"][-2]["chosen"] == "5"
    assert bubbles(client, conversation, after=seen)[0] == "user: Thanks, it is order 1234"


def test_healthz_names_an_unreachable_redis(tmp_path, sample_index_path, embedder):
    from tests.fakes.server import free_port

    runtime = open_runtime(tmp_path, sample_index_path, embedder, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with serve(create_app(runtime)) as url:
        health = httpx.get(f"{url}/healthz", timeout=30)
        assert health.status_code == 503 and "Redis unavailable" in health.json()["problems"][0]
        _, reply = sse(httpx.post(f"{url}/api/chat", json={"conversation": uuid.uuid4().hex, "text": "Returns?"},
                                  timeout=30).text)[-1]
        assert not reply["answered"] and reply["actions"][0]["kind"] == "handoff"


# an answer steered by a poisoned page: a link, an image, an autolink and a bare URL to
# evil.example, beside a link to the cited source and one to the profile's own domain
EVIL = ("Pay [click](https://evil.example/x) ![p](https://evil.example/p.png) <https://evil.example> "
        "or https://evil.example/bare, see [the policy](https://help.example/returns) "
        "and [our shop](https://www.shop.example/sale) [1].")
SOURCE = Citation("Returns", "https://help.example/returns", "…", "helpcenter", "en/returns")


def test_only_allowed_and_cited_links_open_and_no_image_is_shown():
    from adapters.web import reply_json
    answer = Reply(id="r_0123456789abcdef", conversation="web:x", answer=EVIL, language="en", citations=(SOURCE,))
    profile = dataclasses.replace(load_profiles(DEFAULT_PROFILES).get(), allowed_domains=("shop.example",))
    html = reply_json(answer, profile)["answer_html"]
    assert re.findall(r'href="([^"]+)"', html) == ["https://help.example/returns", "https://www.shop.example/sale"]
    assert "<img" not in html and "evil.example" not in html and "p.png" not in html
    assert "click (https[:]//evil[.]example/x)" in html and "https[:]//evil[.]example/bare" in html


async def test_a_reloaded_answer_opens_only_its_cited_source(web):
    client, runtime = web
    conversation = uuid.uuid4().hex
    answer = Reply(id="r_0123456789abcdef", conversation=f"web:{conversation}", answer=EVIL, language="en",
                   citations=(SOURCE,))
    await Transcript(runtime.events.engine).add(f"web:{conversation}", reply=answer)
    [turn] = client.get(f"/api/conversations/{conversation}").json()["turns"]
    html = turn["reply"]["answer_html"]  # rendered by the server, with the default profile: no allowed domain
    assert re.findall(r'href="([^"]+)"', html) == ["https://help.example/returns"]
    assert "<img" not in html and "our shop (https[:]//www[.]shop[.]example/sale)" in html
