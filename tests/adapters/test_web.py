"""The web chat over real HTTP: page, SSE chat, history across reloads, feedback, handoff."""
from __future__ import annotations

import dataclasses
import json
import shutil
import uuid

import httpx
import pytest

from adapters.app import create_app
from bot.runtime import Runtime
from bot.settings import Settings
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


def test_healthz_names_an_unreachable_redis(tmp_path, sample_index_path, embedder):
    from tests.fakes.server import free_port

    runtime = open_runtime(tmp_path, sample_index_path, embedder, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with serve(create_app(runtime)) as url:
        health = httpx.get(f"{url}/healthz", timeout=30)
        assert health.status_code == 503 and "Redis unavailable" in health.json()["problems"][0]
        _, reply = sse(httpx.post(f"{url}/api/chat", json={"conversation": uuid.uuid4().hex, "text": "Returns?"},
                                  timeout=30).text)[-1]
        assert not reply["answered"] and reply["actions"][0]["kind"] == "handoff"
