"""Knowledge gaps over real HTTP, a real SQLite event database and the real e5 embedder:
declined and 👎 questions grouped by meaning, most frequent first, closed by a later
answered question of the same meaning; an agent's reply drafted into a suggested Q&A
entry that an admin adds in one click, after which the next question is answered and
the gap is gone."""
from __future__ import annotations

import json
import re
import time
import uuid

import httpx
from sqlmodel import Session

from bot.gaps import Asked, agent_words, group
from bot.store import Event, Feedback, connect
from bot.gaps import answered, unanswered
from tests.adapters.test_web import chat


def _event(session: Session, at: float, kind: str, conversation: str, question: str, reply_id: str = "") -> None:
    session.add(Event(at=at, kind=kind, conversation=conversation, channel="web", reply_id=reply_id,
                      detail=json.dumps({"question": question, "profile": "support"})))


def test_unanswered_questions_are_grouped_by_meaning_and_closed_by_a_later_answer(tmp_path, embedder):
    db = connect(f"sqlite:///{tmp_path / 'events.db'}")
    t = 1_000_000.0
    with Session(db) as session:
        _event(session, t + 1, "declined", "c1", "Do you ship to Canada?")
        _event(session, t + 2, "declined", "c2", "Can I pay with PayPal?")
        _event(session, t + 3, "declined", "c3", "Can you deliver to Canada?")
        _event(session, t + 4, "answered", "c4", "Livrez-vous au Canada ?", reply_id="r4")
        session.add(Feedback(at=t + 5, conversation="c4", reply_id="r4", value="down"))
        _event(session, t + 6, "answered", "c5", "Do you accept PayPal?", reply_id="r5")  # no 👎: answered
        _event(session, t + 7, "answered", "c6", "How long do I have to return an item?", reply_id="r6")
        _event(session, t - 10, "declined", "old", "Do you ship to Canada?")  # before the period
        session.commit()
    open_ = unanswered(db, t, t + 100)
    assert [(a.conversation, a.why) for a in open_] == [("c4", "disliked"), ("c3", "declined"), ("c2", "declined"),
                                                        ("c1", "declined")]
    closing = answered(db, t, t + 100)
    assert [a.conversation for a in closing] == ["c6", "c5"]
    vectors: dict[str, object] = {}
    groups = group(open_, closing, lambda q: vectors.setdefault(q, embedder.query(q)))
    # Canada three times (French included), most frequent first; PayPal was answered later: closed
    assert [(sorted(a.conversation for a in asked), closed) for _, asked, closed in groups] == \
        [(["c1", "c3", "c4"], 0)]
    assert groups[0][0] in ("Do you ship to Canada?", "Can you deliver to Canada?", "Livrez-vous au Canada ?")
    # without the later answer the PayPal question is a gap of its own
    assert [len(asked) for _, asked, _ in group(open_, closing[:1], embedder.query)] == [3, 1]
    # an answer given before a question does not close it
    early = [Asked("c0", "Do you accept PayPal?", t, "answered")]
    assert [len(asked) for _, asked, _ in group(open_, early, embedder.query)] == [3, 1]


def test_an_agents_words_are_read_from_the_remembered_line_in_any_language():
    assert agent_words("**Alice**: Yes, we ship to Canada.", "Alice") == "Yes, we ship to Canada."
    assert agent_words("**Alice** : Oui, nous livrons au Canada.", "Alice") == "Oui, nous livrons au Canada."
    assert agent_words("**Bob**: hello", "Alice") == ""
    assert agent_words("I'm sorry, I couldn't find that.", "Alice") == ""


def _gaps(admin) -> str:
    return admin.page("/admin/gaps").text


def test_a_suggested_entry_is_approved_and_the_next_question_is_answered_from_it(console):
    admin, agent = console.signed_in("admin"), console.signed_in("agent", name="Alice")
    assert "No unanswered question in this period." in _gaps(admin)
    with httpx.Client(base_url=console.url, timeout=60) as customer:
        first, second = uuid.uuid4().hex, uuid.uuid4().hex
        assert not chat(customer, first, "Do you have a loyalty program?")[-1][1]["answered"]
        assert not chat(customer, second, "Do you offer loyalty points?")[-1][1]["answered"]
        assert not chat(customer, uuid.uuid4().hex, "Do you rent lamps for events?")[-1][1]["answered"]
        customer.post("/api/handoff", json={"conversation": second})
        [escalation] = agent.http.get("/admin/api/inbox").json()["escalations"]
        page = f"/admin/inbox/{escalation['id']}"
        assert agent.post(f"{page}/claim").status_code == 303
        assert agent.post(f"{page}/reply", {"text": "Yes: 1 point per euro, and 100 points make a €5 voucher."}) \
            .status_code == 303
        agent.post(f"{page}/resolve")

        shown = _gaps(admin)
        assert "3 unanswered questions in 2 groups" in shown
        assert shown.index("2 open") < shown.index("Do you rent lamps for events?")  # most frequent first
        assert f'href="/admin/conversations/web%3A{second}"' in shown
        assert f'href="/admin/conversations/web%3A{first}"' in shown
        assert "Drafted from an agent&#x27;s reply" in shown
        draft = re.search(r'<textarea id="answer-0" name="answer"[^>]*>([^<]*)</textarea>', shown).group(1)
        assert draft == "Yes: 1 point per euro, and 100 points make a €5 voucher."
        question = re.search(r'<input id="question-0" name="question" value="([^"]+)"', shown).group(1)
        assert question in ("Do you have a loyalty program?", "Do you offer loyalty points?")
        assert 'name="source" value="faq"' in shown
        assert agent.http.get("/admin/gaps").status_code == 403
        assert agent.post("/admin/gaps/approve", {"source": "faq", "question": "x", "answer": "y"}).status_code \
            == 403
        assert admin.post("/admin/gaps/approve", {"source": "nothing", "question": "x", "answer": "y"}) \
            .status_code == 404
        assert admin.post("/admin/gaps/approve", {"source": "faq", "question": question, "answer": " "}) \
            .headers["location"] == "/admin/gaps?notice=empty"
        assert admin.http.post("/admin/gaps/approve", data={"source": "faq", "question": question,
                                                            "answer": draft}).status_code == 403  # no CSRF token

        started = time.monotonic()
        approved = admin.post("/admin/gaps/approve", {"source": "faq", "question": question, "asked": "2",
                                                      "answer": draft + " Points are valid for 2 years."})
        assert approved.headers["location"] == "/admin/gaps?notice=approved"
        print(f"suggested entry approved and indexed in {time.monotonic() - started:.2f} s")
        assert "2 open" in _gaps(admin)  # nothing answered since yet


        reply = chat(customer, uuid.uuid4().hex, "Do you have a loyalty program?")[-1][1]
        assert reply["answered"] and "valid for 2 years" in reply["answer"]
    shown = _gaps(admin)  # the loyalty gap is closed; the other one stays
    assert "1 unanswered question in 1 group" in shown and "loyalty" not in shown.split('id="summary"')[1]
    assert "Do you rent lamps for events?" in shown
    trail = admin.page("/admin/audit").text
    assert "gap approved" in trail and "faq" in trail
    form = (console.runtime.settings.home / "knowledge" / "faq" / "qa_form.yaml").read_text(encoding="utf-8")
    assert "Points are valid for 2 years." in form
