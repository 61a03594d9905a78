"""The operator console's reads over many stored conversations (SQLite or PostgreSQL).

Fills an event database with N web and Telegram conversations (a question answered or
declined, some 👍, one in ten escalated, claimed and rated), then times, over the whole
period, what the Overview page and /admin/api/metrics compute (bot/overview.py
`figures`), what the Conversations list reads (bot/conversation_list.py `listing`: the
first page, newest first, and the same filtered by a question's words) and what the
Inbox lists (the open escalations). Each is run `--runs` times; p50 and p95 in
milliseconds. Last line: one JSON object. `--postgres` starts a throwaway PostgreSQL
(tests/services.py) instead of the SQLite file. `--gaps` also times the Knowledge gaps
page's work (bot/gaps.py, the real e5 embedder): the first look, which embeds every
question read, then the next ones, which find their vectors kept. `--pages` also serves the
real app over that database (SQLite or PostgreSQL, no sample knowledge) and times the pages
as a signed-in admin's browser gets them over loopback HTTP: Overview (30 days, and the
default 7), Inbox, Conversations (the first page).

    python bench/admin.py [--conversations 20000] [--runs 5] [--postgres] [--gaps] [--pages]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import Session, select  # noqa: E402

from bot.conversation_list import listing  # noqa: E402
from bot.handoff import OPEN  # noqa: E402
from bot.overview import figures  # noqa: E402
from bot.store import Escalation, Event, Feedback, connect  # noqa: E402


def fill(db, conversations: int, now: float) -> None:
    rng = random.Random(7)
    events, feedback, escalations = [], [], []
    for n in range(conversations):
        key, channel = f"web:{n:08d}", rng.choice(("web", "telegram"))
        at = now - rng.uniform(0, 30 * 86400)
        kind = "answered" if rng.random() < 0.8 else "declined"
        detail = json.dumps({"profile": "support", "confidence": round(rng.random(), 2),
                             "question": f"question number {n} about delivery"})
        events.append(Event(at=at, kind=kind, conversation=key, channel=channel, profile="support",
                            reply_id=f"r_{n}", detail=detail))
        if rng.random() < 0.3:
            feedback.append(Feedback(at=at + 5, conversation=key, reply_id=f"r_{n}", value=rng.choice(("up", "down"))))
        if n % 10 == 0:
            events.append(Event(at=at + 10, kind="escalated", conversation=key, channel=channel,
                                detail=json.dumps({"reason": "customer_request", "escalation": n})))
            events.append(Event(at=at + 600, kind="rated", conversation=key, channel=channel,
                                detail=json.dumps({"rating": rng.randint(1, 5), "escalation": n})))
            escalations.append(Escalation(conversation=key, channel=channel, state=rng.choice(
                ("queued", "claimed", "resolved", "resolved", "resolved")), reason="customer_request",
                created_at=at + 10, claimed_at=at + 10 + rng.uniform(20, 900)))
    with Session(db) as session:
        session.add_all(events + feedback + escalations)
        session.commit()


def timed(work, runs: int) -> dict[str, float]:
    took = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        took.append((time.perf_counter() - began) * 1000)
    took.sort()
    return {"p50_ms": round(statistics.median(took), 1), "p95_ms": round(took[min(len(took) - 1,
                                                                                  int(0.95 * len(took)))], 1)}


def gaps(db, runs: int, now: float) -> dict:
    import asyncio

    from bot.gaps import Gaps
    from bot.memory import InMemoryMemory
    from knowledge.embeddings import E5Embedder
    finder = Gaps(db, InMemoryMemory(), E5Embedder())
    began = time.perf_counter()
    found = asyncio.run(finder.find(now - 31 * 86400, now + 1))
    first = round((time.perf_counter() - began) * 1000, 1)
    return {"gaps_first_look_ms": first, "gaps_groups": len(found), "gaps_open": sum(g.count for g in found),
            "gaps_next_looks": timed(lambda: asyncio.run(finder.find(now - 31 * 86400, now + 1)), runs)}


def measure(db, conversations: int, runs: int, now: float) -> dict:
    began = time.perf_counter()
    fill(db, conversations, now)
    print(f"stored {conversations} conversations in {time.perf_counter() - began:.1f} s")

    def inbox() -> None:
        with Session(db) as session:
            list(session.exec(select(Escalation).where(Escalation.state.in_(OPEN))))
    month = (now - 31 * 86400, now + 1)
    return {"conversations": conversations, "database": db.dialect.name,
            "overview_30_days": timed(lambda: figures(db, *month), runs),
            "overview_7_days": timed(lambda: figures(db, now - 7 * 86400, now + 1), runs),
            "conversations_list_30_days": timed(lambda: listing(db, *month, {}), runs),
            "conversations_search_30_days": timed(lambda: listing(db, *month, {"q": "number 4242 "}), runs),
            "inbox_list": timed(inbox, runs)}


def pages(url: str, home: str, runs: int, conversations: int) -> dict:
    """GET /admin/overview, /admin/inbox and /admin/conversations over HTTP, signed in."""
    import dataclasses

    from adapters.app import create_app
    from bot.runtime import Runtime
    from bot.settings import Settings
    from tests.admin.conftest import Console
    from tests.fakes.server import serve

    settings = dataclasses.replace(Settings.from_env({"SWITCHBOARD_HOME": home, "DATABASE_URL": url,
                                                      "SWITCHBOARD_SAMPLE": "0"}))
    runtime = Runtime.open(settings)
    app = create_app(runtime)
    out = {}
    with serve(app) as served:
        admin = Console(served, runtime, app).signed_in("admin")
        month = "from={}&to={}".format(*(time.strftime("%Y-%m-%d", time.gmtime(t))
                                         for t in (time.time() - 31 * 86400, time.time())))
        shown = admin.http.get(f"/admin/api/metrics?{month}").json()["conversations"]
        assert shown == conversations, f"the pages read another database: {shown} conversations"
        for name, path in (("overview_page_30_days", f"/admin/overview?{month}"),
                           ("overview_page_7_days", "/admin/overview"), ("inbox_page", "/admin/inbox"),
                           ("conversations_page", "/admin/conversations")):
            admin.page(path)  # warm: the first request also opens the connections
            out[name] = timed(lambda: admin.page(path), runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL instead of SQLite")
    parser.add_argument("--gaps", action="store_true", help="also time the Knowledge gaps page (embeds questions)")
    parser.add_argument("--pages", action="store_true", help="also time the Overview, Inbox and Conversations "
                                                             "pages over HTTP")
    args = parser.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.postgres:
            from tests.services import postgres_server
            url = stack.enter_context(postgres_server())
        else:
            url = f"sqlite:///{Path(tmp) / 'events.db'}"
        db = connect(url)
        result = measure(db, args.conversations, args.runs, now)
        if args.gaps:
            result.update(gaps(db, args.runs, now))
        if args.pages:
            result.update(pages(url, tmp, args.runs, args.conversations))
        for name, value in result.items():
            print(f"{name}: {value}")
        print(json.dumps(result))


if __name__ == "__main__":
    main()
