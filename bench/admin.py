"""The operator console's reads over many stored conversations (SQLite).

Fills an SQLite event database with N web and Telegram conversations (a question
answered or declined, some 👍, one in ten escalated, claimed and rated), then times, over
the whole period, what the Overview page and /admin/api/metrics compute
(bot/overview.py `figures`), what the Conversations list reads
(adapters/admin/conversations.py `_rows`) and what the Inbox lists (the open
escalations). Each is run `--runs` times; p50 and p95 in milliseconds. Last line: one
JSON object.

    python bench/admin.py [--conversations 20000] [--runs 5]
"""
from __future__ import annotations

import argparse
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

from adapters.admin.conversations import _rows  # noqa: E402
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
        events.append(Event(at=at, kind=kind, conversation=key, channel=channel, reply_id=f"r_{n}", detail=detail))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        db = connect(f"sqlite:///{Path(tmp) / 'events.db'}")
        began = time.perf_counter()
        fill(db, args.conversations, now)
        print(f"stored {args.conversations} conversations in {time.perf_counter() - began:.1f} s")

        def inbox() -> None:
            with Session(db) as session:
                list(session.exec(select(Escalation).where(Escalation.state.in_(OPEN))))
        result = {"conversations": args.conversations,
                  "overview_30_days": timed(lambda: figures(db, now - 31 * 86400, now + 1), args.runs),
                  "overview_7_days": timed(lambda: figures(db, now - 7 * 86400, now + 1), args.runs),
                  "conversations_list_30_days": timed(lambda: _rows(db, now - 31 * 86400, now + 1), args.runs),
                  "inbox_list": timed(inbox, args.runs)}
        for name, value in result.items():
            print(f"{name}: {value}")
        print(json.dumps(result))


if __name__ == "__main__":
    main()
